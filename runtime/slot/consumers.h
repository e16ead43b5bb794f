/* consumers.h - which queues a pool slot consumes, on which channels, and
 * the acks each consumer owes the broker.
 *
 * Opened with the connection from its generation's conf; changed in place
 * when a reload swaps in a new generation: an unchanged consumer stays (its
 * channel, tags and unacked deliveries untouched), a removed or changed one
 * is cancelled and its channel closed only once everything it delivered is
 * settled (so nothing it holds is lost or acked twice), a new one gets a
 * channel of its own. Owned by the connection's thread. */
#ifndef WD_CONSUMERS_H
#define WD_CONSUMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"
#include "broker/acks.h"
#include "broker/prefetch.h"
#include "exec/generation.h"

/* The consuming connection: channel 1 declares the topology; consumers
 * use 3, 4, ... The publishing connection: channel 1 publishes in confirm
 * mode, channel 2 checks exchanges. */
#define WD_CHANNEL_DECLARE        1
#define WD_CHANNEL_PUBLISH        1
#define WD_CHANNEL_PROBE          2
#define WD_CHANNEL_FIRST_CONSUMER 3

struct wd_consumer {
	struct wd_gen *gen; /* a reference: the generation queue indexes */
	size_t queue;       /* index into gen's conf queues */
	int nth;            /* which of the queue's consumers it is */
	amqp_channel_t channel;
	bool draining; /* cancelled by a reload; closed once all settled */
	char tag[256]; /* the broker's consumer tag, for basic.cancel */
	struct wd_acks acks;
	/* prefetch = "auto": its window moves (slot/prefetch_qos.h). A
	 * per-consumer basic.qos binds only the channel's next consumers, so
	 * a new window is a new consumer on the same channel: cancelled
	 * (paused: what it holds stays unacked on the channel), then qos and
	 * consume again. ack_cap: its ack batch at the largest window; the
	 * batch follows half the window below that. */
	bool adaptive;
	bool paused;
	struct wd_prefetch pf;
	int ack_cap;
	/* Deliveries read and not settled yet (all consumers: two
	 * additions on the hot path). */
	size_t unsettled;
};

struct wd_consumers {
	int slot;   /* this slot's number: log lines, and which queues */
	int nslots; /* the pool's size: a queue's consumers spread over it */
	struct wd_gen *gen; /* a reference: the generation consumed for */
	struct wd_consumer *v;
	size_t n;
	size_t ndraining;     /* cancelled by a reload, still open */
	int64_t adapt_due_us; /* the next look at the adaptive windows */
};

/* On a fresh connection: open the consumers cs->gen assigns to this slot.
 * Returns 0, or -1 with err naming the queue and the broker's reason. */
int wd_consumers_open(struct wd_consumers *cs, amqp_connection_state_t amqp,
                      char *err, size_t errlen);

/* Take up generation g (a reference the caller gives over) in place of
 * cs->gen. Returns -1 if the connection failed (the caller reconnects,
 * which opens g's consumers afresh). */
int wd_consumers_update(struct wd_consumers *cs, amqp_connection_state_t amqp,
                        struct wd_gen *g);

/* Close the channels of cancelled consumers that hold nothing any more.
 * -1 if the connection failed. */
int wd_consumers_close_drained(struct wd_consumers *cs,
                               amqp_connection_state_t amqp);

/* Cancel every consumer still consuming (stop). -1 on failure. */
int wd_consumers_cancel(struct wd_consumers *cs, amqp_connection_state_t amqp);

/* Forget every consumer: the connection is gone (or the slot freed). */
void wd_consumers_clear(struct wd_consumers *cs);

/* The broker closed channel ch (channel.close, m): log it, naming the
 * queue of the consumer on it. A consumer_timeout (a delivery held past
 * the broker's ack timeout) is an error that says what to change, and is
 * counted. The caller answers close-ok and reconnects. */
void wd_consumers_closed(struct wd_consumers *cs, amqp_channel_t ch,
                         const amqp_channel_close_t *m);

/* basic.qos (per consumer, prefetch) and basic.consume on k's channel
 * (k->tag: the new consumer's); clears k->paused. */
amqp_rpc_reply_t wd_consumer_start(amqp_connection_state_t amqp,
                                   struct wd_consumer *k, int prefetch);
/* basic.cancel of k's consumer; sets k->paused. Its deliveries stay
 * unacked on the channel, to be acked as ever. */
amqp_rpc_reply_t wd_consumer_stop(amqp_connection_state_t amqp,
                                  struct wd_consumer *k);

/* Consumer k's window is now `prefetch` (k->adaptive; the caller sent
 * the qos): its ack batch follows, at most half of it, and its gauge. */
void wd_consumer_set_window(struct wd_consumers *cs, struct wd_consumer *k,
                            int prefetch);

/* The consumer on channel ch, or NULL. */
struct wd_consumer *wd_consumer_of(struct wd_consumers *cs, amqp_channel_t ch);

/* Send k's waiting acks (wd_acks_flush); `all` also those behind a
 * delivery still in a handler. -1 if the connection failed. */
int wd_consumer_flush_acks(struct wd_consumers *cs, struct wd_consumer *k,
                           amqp_connection_state_t amqp, int64_t now_ms,
                           bool all);

/* Flush the acks of every consumer whose flush is due at now_ms (every
 * consumer's, all of them, if `all`); lowers *next_due_ms (unless NULL) to
 * when the next one will be. -1 if the connection failed. */
int wd_consumers_flush_due(struct wd_consumers *cs,
                           amqp_connection_state_t amqp, int64_t now_ms,
                           bool all, int64_t *next_due_ms);

#endif
