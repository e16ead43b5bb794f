/* pool.h - pool_size slots (slot/conn.h), each a connection with its own
 * thread, consuming the current generation's queues; and the workers their
 * deliveries go through.
 *
 * A reload that keeps the broker settings swaps a new generation into the
 * running pool (wd_pool_swap): each connection thread notices, changes its
 * consumers to match and parses what it reads from then on under the new
 * generation. Broker settings (and workers) are the pool's own: changing
 * them takes a new pool (daemon/reload.c). */
#ifndef WD_POOL_H
#define WD_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/broker.h"
#include "exec/generation.h"
#include "exec/workers.h"
#include "slot/conn.h"

struct wd_pool {
	struct wd_broker broker;
	const char **nodes; /* each address's "host:port", for the metrics */
	struct wd_workers *workers;
	struct wd_gen_slot current; /* holds the pool's reference */
	struct wd_conn *conns;
	int nconns;
	atomic_bool stopping;
	_Atomic int64_t stop_deadline_ms; /* monotonic */
	struct wd_slot_env env; /* points at the above, for every slot */
};

/* Connect every slot, declare the topology, start consuming generation g
 * (the pool takes over the caller's reference). Returns NULL with err set
 * if any connection or declaration fails; g is then still the caller's,
 * and *outage (unless NULL) says whether the broker was only unreachable
 * (worth another try) rather than refusing something. */
struct wd_pool *wd_pool_start(struct wd_gen *g, char *err, size_t errlen,
                              bool *outage);

/* Make g (the caller's reference, taken over) the current generation and
 * wake every connection to take it up. Returns the generation it replaced,
 * with the pool's reference to it now the caller's; its pending batches
 * are flushed now. NULL (g still the caller's) if g's batch thread cannot
 * start. */
struct wd_gen *wd_pool_swap(struct wd_pool *p, struct wd_gen *g);

/* Ask every connection to stop consuming and finish what it holds within
 * timeout_s. Called from the main loop. */
void wd_pool_stop(struct wd_pool *p, int timeout_s);

/* Join the connection threads, then the current generation's batch thread
 * and the workers. Returns 0 if everything in flight was settled, -1 if the
 * deadline passed with handlers still running (the caller must then exit
 * without freeing what they use). */
int wd_pool_join(struct wd_pool *p);

/* Free the pool; its reference to the current generation is dropped (the
 * generation itself is reload.c's to free). */
void wd_pool_free(struct wd_pool *p);

#endif
