/* consumers.h - which queues a pool slot consumes, and on which channels.
 *
 * Opened with the connection from its generation's conf; changed in place
 * when a reload swaps in a new generation: an unchanged consumer stays (its
 * channel, tags and unacked deliveries untouched), a removed or changed one
 * is cancelled and its channel closed only once everything it delivered is
 * settled (so nothing it holds is lost or acked twice), a new one gets a
 * channel of its own. Owned by the connection's thread. */
#ifndef WD_CONSUMERS_H
#define WD_CONSUMERS_H

#include <stddef.h>

#include "base/amqp_compat.h"
#include "exec/generation.h"

struct wd_conn;
struct wd_consumer;

/* On a fresh connection: open the consumers c->gen assigns to this slot.
 * Returns 0, or -1 with err naming the queue and the broker's reason. */
int wd_consumers_open(struct wd_conn *c, char *err, size_t errlen);

/* Take up generation g (a reference the caller gives over) in place of
 * c->gen. Returns -1 if the connection failed (the caller reconnects,
 * which opens g's consumers afresh). */
int wd_consumers_update(struct wd_conn *c, struct wd_gen *g);

/* Close the channels of cancelled consumers that hold nothing any more.
 * -1 if the connection failed. */
int wd_consumers_close_drained(struct wd_conn *c);

/* Cancel every consumer still consuming (stop). -1 on failure. */
int wd_consumers_cancel(struct wd_conn *c);

/* Forget every consumer: the connection is gone (or the slot freed). */
void wd_consumers_clear(struct wd_conn *c);

/* The consumer on channel ch, or NULL. */
struct wd_consumer *wd_consumer_of(struct wd_conn *c, amqp_channel_t ch);

#endif
