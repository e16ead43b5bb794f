/* conn.h - one pool slot: a pair of broker connections to one node, owned
 * by one thread: one consumes (and acks), the other publishes.
 *
 * The thread reads deliveries and parses each body once, hands them to the
 * workers (or calls a non-blocking handler itself), and settles each
 * finished one (settle.h): follow-ups and republishes in confirm mode on
 * the publishing connection, then the ack, coalesced, on the consuming
 * one. Two connections, as RabbitMQ advises: a memory or disk alarm
 * blocks (stops reading from) connections that publish, and a consuming
 * connection that never publishes keeps delivering and taking acks
 * through the alarm; what needs a publish waits for the unblock. Workers give
 * deliveries back through a locked list and an eventfd that wakes the thread's
 * poll(), so heartbeats keep flowing however long a handler runs.
 *
 * conn.c: the slot's deliveries, the settle operations on the live
 * connection, open and drop, reading frames. conn_loop.c: the loop and
 * reconnects. */
#ifndef WD_CONN_H
#define WD_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/amqp_compat.h"
#include "base/series.h"
#include "broker/broker.h"
#include "broker/publisher.h"
#include "exec/delivery.h"
#include "exec/generation.h"
#include "exec/workers.h"
#include "slot/consumers.h"
#include "slot/settle.h"

/* What the pool hands each of its slots: everything a slot needs from
 * above, so that it never reaches into the pool. The pool owns it all and
 * outlives the slots' threads. */
struct wd_slot_env {
	const struct wd_broker *broker;
	struct wd_workers *workers;
	struct wd_gen_slot *current; /* the generation to consume for */
	int publish_timeout;         /* s a publisher confirm may take */
	int nslots;                  /* the pool's size */
	const atomic_bool *stopping;
	const _Atomic int64_t *stop_deadline_ms; /* monotonic */
	struct wd_slot_series *series;           /* the pool's, one per slot */
};

struct wd_conn {
	int id;
	const struct wd_slot_env *env;
	pthread_t thread;
	bool started;
	amqp_connection_state_t amqp;     /* consumes, acks, declares */
	amqp_connection_state_t pub_amqp; /* publishes (confirm mode) */
	int wakefd; /* eventfd: workers and stop() wake the thread */
	struct wd_slot_series *series; /* its state, for /readyz, /metrics */

	/* Finished deliveries, filled by workers. */
	pthread_mutex_t lock;
	struct wd_delivery *done_head, *done_tail;
	size_t ndone;         /* in the list; under lock */
	atomic_bool has_done; /* done_head != NULL, readable without the lock */
	/* Set while the thread is (about to be) in poll(): only then does a
	 * finished delivery cost a write to wakefd. */
	atomic_bool sleeping;
	/* Plain acks wait for the thread's own timer (it never sleeps past
	 * ack_delay_ms while handlers hold deliveries) until this many are
	 * done: a wake-up per finished message was most of warrend's context
	 * switches. Set by the thread before it sleeps. */
	atomic_int wake_at;
	/* Set by a worker when the list is worth waking the thread for. */
	atomic_bool wake_due;

	/* A delivery whose epoch is older than this belongs to a connection
	 * that is gone: its tag means nothing any more. */
	_Atomic uint64_t epoch;

	/* Owned by the connection thread. */
	size_t inflight; /* read, not settled yet */
	/* Read, not handed over to the workers yet: they go in one submit. */
	struct wd_delivery *handoff_first, *handoff_last;
	size_t nhandoff;
	struct wd_publisher pub;
	struct wd_settler settler;
	struct wd_consumers consumers; /* and the generation consumed for */
	bool acks_full;   /* some consumer's ack batch is full: flush */
	bool cancelled;   /* stopping: the consumers are cancelled */
	bool open_outage; /* the last wd_conn_open could not connect at all */
	/* Set by the pool for one slot's first open (before its thread
	 * runs): check the exchanges the plugins publish to, after the
	 * topology and before consuming (host/targets.h). */
	bool check_targets;
	/* Where the slot is in its order of the broker's addresses
	 * (wd_broker_addr_at): the next wd_conn_open starts there. */
	unsigned addr_k;
	size_t addr;      /* the address connected to, while c->amqp */
	size_t abandoned; /* left in handlers when the stop deadline passed */
	int64_t last_rx_ms;
	/* The publishing connection: when it was last read (its confirms,
	 * returns and heartbeats are read whenever it has something, and at
	 * least every PUB_READ_MS), whether poll() saw it readable, and since
	 * when the broker has blocked it (0: it has not). */
	int64_t pub_read_ms;
	bool pub_readable;
	int64_t blocked_since_ms;
	int64_t now_ms; /* wd_now_ms() at the top of this turn of the loop */
	/* The same in us, taken again after a sleep: a delivery's read time
	 * (the adaptive prefetch's wait from read to handler). */
	int64_t now_us;
	int64_t watch_at_ms;   /* the next look for handlers that run long */
	bool read_since_trim;  /* deliveries came since the last malloc_trim */
	int64_t delivery_ms;   /* when the last one came */
	struct wd_task *spare; /* freed deliveries, for reuse */
	size_t nspare;
};

/* Set up slot `id` (not connected). Returns 0, or -1 with err set. */
int wd_conn_init(struct wd_conn *c, int id, const struct wd_slot_env *env,
                 char *err, size_t errlen);

/* Connect, declare the topology, open the consumers, all for the current
 * generation, trying the broker's addresses in the slot's order from the
 * one after the last it was on: a lost node is left at once. Called from
 * the main thread at start (errors are fatal there) and by the thread to
 * reconnect. Returns 0, or -1 with err set (the last address's error;
 * open_outage if every address was an outage). */
int wd_conn_open(struct wd_conn *c, char *err, size_t errlen);

/* The thread's body (conn_loop.c): serve, reconnect with backoff, until
 * the pool stops and every in-flight delivery is settled (or the stop
 * deadline passes). */
void *wd_conn_main(void *arg);

/* Wake the thread (thread-safe, async-signal-safe). */
void wd_conn_wake(struct wd_conn *c);

/* Free what the slot holds (pool teardown). */
void wd_conn_free(struct wd_conn *c);

/* ---- between conn.c and conn_loop.c ---- */

/* Read and parse one delivery into *out. Returns 1 if one was read, 0 if
 * none was there (or another frame was handled), -1 if the connection
 * failed. */
int wd_conn_read(struct wd_conn *c, struct wd_delivery **out);

/* Read what the publishing connection has (confirms, returns, blocked and
 * unblocked) without waiting, and let rabbitmq-c send its heartbeat.
 * Returns 0, or -1 if it failed. */
int wd_conn_read_pub(struct wd_conn *c);

/* The broker unblocked publishing (told) or the connection is gone: the
 * blocked time is counted and no longer counts against the confirm
 * timeout, and what waited may publish. */
void wd_conn_unblocked(struct wd_conn *c, int64_t now, bool told);

/* The connection is gone (or going): every tag it gave is void. */
void wd_conn_drop(struct wd_conn *c, bool polite);

/* Free a delivery the broker will redeliver (its connection is gone). */
void wd_conn_forget(struct wd_delivery *d);

/* Free the spare deliveries but `keep`. On the connection's thread. */
void wd_conn_trim_spares(struct wd_conn *c, size_t keep);

/* The exchanges of the generation consumed for are declared: no probe
 * needed. */
void wd_conn_know_exchanges(struct wd_conn *c);

#endif
