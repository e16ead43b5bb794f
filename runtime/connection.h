/* connection.h - one pool slot: a broker connection owned by one thread.
 *
 * The thread does broker I/O only: it reads deliveries, hands them to the
 * workers, and sends the ack / nack of each finished task. Workers give
 * tasks back through a locked list and an eventfd that wakes the thread's
 * poll(), so acks go out as soon as a handler returns while heartbeats keep
 * flowing however long a handler runs. */
#ifndef WD_CONNECTION_H
#define WD_CONNECTION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "amqp_compat.h"
#include "dispatch.h"
#include "envelope.h"
#include "workers.h"

struct wd_pool;

struct wd_consumer {
	size_t queue; /* index into the conf's queues */
	amqp_channel_t channel;
	char tag[256]; /* the broker's consumer tag, for basic.cancel */
};

/* A delivery on its way through a worker and back. */
struct wd_delivery {
	struct wd_task task; /* first: workers see only this */
	struct wd_conn *conn;
	uint64_t epoch; /* the connection's epoch at delivery */
	size_t queue;
	enum wd_action action;
	int64_t due_ms; /* for a held retry: when to requeue */
	amqp_envelope_t env;
	struct wd_envelope parsed; /* points into env */
	int parse_rc;
};

struct wd_conn {
	int id;
	struct wd_pool *pool;
	pthread_t thread;
	bool started;
	amqp_connection_state_t amqp;
	int wakefd; /* eventfd: workers and stop() wake the thread */

	/* Finished deliveries, filled by workers. */
	pthread_mutex_t lock;
	struct wd_delivery *done_head, *done_tail;
	/* Set while the thread is (about to be) in poll(): only then does a
	 * finished delivery cost a write to wakefd. */
	atomic_bool sleeping;

	/* A delivery whose epoch is older than this belongs to a connection
	 * that is gone: its tag means nothing any more. */
	_Atomic uint64_t epoch;

	/* Owned by the connection thread. */
	size_t inflight;           /* read, not settled yet */
	struct wd_delivery *batch_first, *batch_last; /* read, not handed over */
	size_t nbatch;
	struct wd_delivery **held; /* retries waiting for their due time */
	size_t nheld, capheld;
	struct wd_consumer *consumers;
	size_t nconsumers;
	bool cancelled;
	size_t abandoned; /* left in handlers when the stop deadline passed */
	int64_t last_rx_ms;
};

/* Connect, declare the topology, open the consumers. Called from the main
 * thread at start (errors are fatal there) and by the thread to reconnect.
 * Returns 0, or -1 with err set. */
int wd_conn_open(struct wd_conn *c, char *err, size_t errlen);

/* The thread's body: serve, reconnect with backoff, until the pool stops
 * and every in-flight delivery is settled (or the stop deadline passes). */
void *wd_conn_main(void *arg);

/* Wake the thread (thread-safe, async-signal-safe). */
void wd_conn_wake(struct wd_conn *c);

#endif
