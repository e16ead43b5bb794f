/* pool.h - pool_size connections, each with its own thread, consuming the
 * conf's queues; and the workers their deliveries go through. */
#ifndef WD_POOL_H
#define WD_POOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch.h"
#include "broker.h"
#include "connection.h"
#include "routes.h"
#include "workers.h"

struct wd_pool {
	struct wd_broker broker;
	const struct wd_routes *routes;
	struct wd_workers *workers;
	struct wd_batchers *batchers;
	struct wd_conn *conns;
	int nconns;
	atomic_bool stopping;
	_Atomic int64_t stop_deadline_ms; /* monotonic */
};

/* Connect every slot, declare the topology, start consuming. Returns NULL
 * with err set if any connection or declaration fails. */
struct wd_pool *wd_pool_start(const struct wd_routes *routes, char *err,
                              size_t errlen);

/* Ask every connection to stop consuming and finish what it holds within
 * timeout_s. Async-signal-safe is not needed: called from the main loop. */
void wd_pool_stop(struct wd_pool *p, int timeout_s);

/* Join the connection threads, then the workers. Returns 0 if everything in
 * flight was settled, -1 if the deadline passed with handlers still running
 * (the caller must then exit without freeing what they use). */
int wd_pool_join(struct wd_pool *p);

void wd_pool_free(struct wd_pool *p);

/* Monotonic clock in milliseconds. */
int64_t wd_now_ms(void);

#endif
