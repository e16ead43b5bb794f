/* connection.h - one pool slot: a broker connection owned by one thread.
 *
 * The thread does broker I/O only: it reads deliveries, hands them to the
 * workers, and settles each finished one: follow-ups and republishes (to a
 * retry queue or the dead-letter exchange) in confirm mode, then the ack,
 * coalesced. Workers give deliveries back through a locked list and an
 * eventfd that wakes the thread's poll(), so heartbeats keep flowing
 * however long a handler runs. */
#ifndef WD_CONNECTION_H
#define WD_CONNECTION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/acks.h"
#include "base/amqp_compat.h"
#include "exec/dispatch.h"
#include "message/envelope.h"
#include "exec/generation.h"
#include "broker/publisher.h"
#include "exec/workers.h"

struct wd_pool;

/* Channel 1 declares the topology and then publishes in confirm mode;
 * channel 2 checks exchanges; consumers use 3, 4, ... */
#define WD_CHANNEL_PUBLISH 1
#define WD_CHANNEL_PROBE 2
#define WD_CHANNEL_FIRST_CONSUMER 3

struct wd_consumer {
	struct wd_gen *gen; /* a reference: the generation queue indexes */
	size_t queue;       /* index into gen's conf queues */
	int nth;            /* which of the queue's consumers it is */
	amqp_channel_t channel;
	bool draining; /* cancelled by a reload; closed once all settled */
	char tag[256]; /* the broker's consumer tag, for basic.cancel */
	struct wd_acks acks;
};

/* Where a delivery waits for its publishes' confirms. */
enum wd_stage {
	WD_STAGE_NONE = 0,
	WD_STAGE_FOLLOWUPS, /* the handler's follow-ups, before the ack */
	WD_STAGE_REPUBLISH, /* its copy to a retry queue or dead-letter */
};

/* A delivery on its way through a worker and back. */
struct wd_delivery {
	struct wd_task task; /* first: workers see only this */
	struct wd_conn *conn;
	/* A reference to the generation it is parsed and handled under:
	 * its code stays loaded until the delivery is settled. */
	struct wd_gen *gen;
	uint64_t epoch; /* the connection's epoch at delivery */
	size_t queue;   /* index into gen's conf queues */
	amqp_envelope_t env;
	struct wd_envelope parsed; /* points into env */
	struct wd_verdict verdict;

	/* Owned by the connection thread once the worker is done. */
	enum wd_stage stage;
	int unconfirmed;     /* publishes of this stage not confirmed yet */
	bool publish_failed; /* one of them was refused */
	char publish_why[256];
	struct wd_delivery *next_ready;
	size_t waiting_at;   /* index in wd_conn.waiting */
	int64_t due_ms;      /* for a held requeue: when */
	int64_t done_ms;     /* when its handler returned (0: not yet) */
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
	size_t ndone; /* in the list; under lock */
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
	struct wd_gen *gen; /* a reference: the generation it consumes for */
	size_t inflight;           /* read, not settled yet */
	struct wd_delivery *batch_first, *batch_last; /* read, not handed over */
	size_t nbatch;
	struct wd_publisher pub;
	struct wd_delivery **waiting; /* waiting for confirms */
	size_t nwaiting, capwaiting;
	struct wd_delivery *ready; /* all confirms in: to settle */
	struct wd_delivery **held; /* to requeue at their due time */
	size_t nheld, capheld;
	struct wd_consumer *consumers; /* consumers.c */
	size_t nconsumers;
	size_t ndraining; /* consumers cancelled by a reload, still open */
	bool acks_full; /* some consumer's ack batch is full: flush */
	bool cancelled;
	size_t abandoned; /* left in handlers when the stop deadline passed */
	int64_t last_rx_ms;
	int64_t now_ms; /* wd_now_ms() at the top of this turn of the loop */
	unsigned rnd; /* for retry jitter */
	struct wd_task *spare; /* freed deliveries, for reuse */
	size_t nspare;
};

/* Connect, declare the topology, open the consumers, all for the pool's
 * current generation. Called from the main thread at start (errors are
 * fatal there) and by the thread to reconnect. Returns 0, or -1 with err
 * set. */
int wd_conn_open(struct wd_conn *c, char *err, size_t errlen);

/* The thread's body: serve, reconnect with backoff, until the pool stops
 * and every in-flight delivery is settled (or the stop deadline passes). */
void *wd_conn_main(void *arg);

/* Wake the thread (thread-safe, async-signal-safe). */
void wd_conn_wake(struct wd_conn *c);

/* Whether the delivery's connection is still the one it came on (else the
 * broker redelivers it, and its handler must not run). Thread-safe. */
bool wd_delivery_live(const struct wd_delivery *d);

/* Free what the thread left behind (pool teardown). */
void wd_conn_free(struct wd_conn *c);

#endif
