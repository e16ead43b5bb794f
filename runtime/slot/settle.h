/* settle.h - what a verdict becomes on the broker.
 *
 * A delivery whose handler is done (or that no handler will see) is
 * settled here, and only here: an ack, after the handler's follow-ups are
 * confirmed; a confirmed copy to a retry queue or to the dead-letter
 * exchange, then an ack; and when such a copy is refused, a hold and then
 * a requeue, so that the message is never lost and never loops at once. A
 * delivery is acked only after everything it caused is confirmed; if a
 * confirm fails, it is not acked.
 *
 * The broker is reached through struct wd_settle_ops (the connection's
 * implementation is in conn.c), the way broker/acks.c sends through its
 * send function, so these rules run without a socket in the unit tests.
 * Owned by the connection thread. */
#ifndef WD_SETTLE_H
#define WD_SETTLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"
#include "exec/delivery.h"

/* When a republish (retry or dead-letter copy) is refused, the delivery is
 * held this long and then requeued: never lost, never an instant loop. The
 * hold doubles with each refusal of the same message (slot/refusals.h), up
 * to WD_REQUEUE_HOLD_MAX_MS. */
#define WD_REQUEUE_HOLD_MS     2000
#define WD_REQUEUE_HOLD_MAX_MS 60000

struct wd_settle_ops {
	/* d is settled: ack it (coalesced) and free it. -1 if the connection
	 * failed. */
	int (*ack)(void *arg, struct wd_delivery *d);
	/* Give d back to the broker unacked (basic.nack, requeue) and free
	 * it. -1 if the connection failed. */
	int (*requeue)(void *arg, struct wd_delivery *d);
	/* A mandatory publish in confirm mode on d's behalf: 0 if sent (its
	 * fate comes back through wd_settle_confirmed()), 1 if refused at once
	 * with why set (nothing follows), -1 if the connection failed. */
	int (*publish)(void *arg, struct wd_delivery *d, amqp_bytes_t exchange,
	               amqp_bytes_t routing_key,
	               const amqp_basic_properties_t *props, amqp_bytes_t body,
	               char *why, size_t whylen);
	/* Free d without a word to the broker: its connection is gone, and
	 * the broker redelivers it. */
	void (*forget)(void *arg, struct wd_delivery *d);
};

struct wd_settler {
	const struct wd_settle_ops *ops;
	void *arg;
	int slot;      /* for log lines */
	bool stopping; /* held deliveries are requeued now, none is held */
	unsigned rnd;  /* for retry jitter (rand_r) */
	struct wd_delivery **waiting; /* waiting for confirms */
	size_t nwaiting, capwaiting;
	struct wd_delivery *ready; /* all confirms in: to settle */
	struct wd_delivery **held; /* to requeue at their due time */
	size_t nheld, capheld;
	/* While the broker blocks publishing (a resource alarm), deliveries
	 * that would publish (follow-ups, retry and dead-letter copies) wait
	 * here, unacked and in order, and are settled once it unblocks;
	 * the rest (plain acks, requeues) go on. */
	bool publish_blocked;
	struct wd_delivery *parked_head, *parked_tail;
	size_t nparked;
};

void wd_settle_init(struct wd_settler *s, const struct wd_settle_ops *ops,
                    void *arg, int slot, unsigned seed);

/* Turn d's verdict into broker operations. -1 if the connection failed;
 * d is then forgotten (the broker redelivers it), either way it is no
 * longer the caller's. */
int wd_settle(struct wd_settler *s, struct wd_delivery *d);

/* One of d's publishes is confirmed (ok) or refused (why): count it; once
 * all are in, d is ready (wd_settle_ready). Called from the publisher's
 * callback: no broker I/O here. */
void wd_settle_confirmed(struct wd_settler *s, struct wd_delivery *d, bool ok,
                         const char *why);

/* Settle the deliveries whose confirms are all in. -1 if the connection
 * failed. */
int wd_settle_ready(struct wd_settler *s);

/* Requeue the held deliveries that are due at now_ms (all of them when
 * stopping); lowers *next_due_ms (if >= 0, else sets it) to the next due
 * time. -1 if the connection failed. */
int wd_settle_requeue_due(struct wd_settler *s, int64_t now_ms,
                          int64_t *next_due_ms);

/* The broker blocked (true) or unblocked publishing. */
void wd_settle_block(struct wd_settler *s, bool blocked);

/* Not blocked (any more): settle the parked deliveries, in order.
 * Stopping while blocked: requeue them, as they cannot be published. -1 if
 * the connection failed. */
int wd_settle_unpark(struct wd_settler *s);

/* The connection is gone: forget every delivery held, parked or waiting
 * for confirms (the broker redelivers them). */
void wd_settle_forget(struct wd_settler *s);

/* Forget everything and free the lists. */
void wd_settle_free(struct wd_settler *s);

#endif
