/* acks.h - ack coalescing for one consumer channel.
 *
 * A per-message basic.ack costs the broker about a third of its work per
 * message, so finished deliveries wait a little and go out together as one
 * multiple-ack. A multiple-ack of tag T acknowledges every unacked delivery
 * up to T, so it is only sent for a run of tags that are all acked (or
 * already settled otherwise); an ack behind a delivery still in a handler
 * waits for that one to finish, and goes out on its own only when its wait
 * is over. Nothing is ever acked before wd_acks_queue() was called for it.
 * Owned by the connection thread. */
#ifndef WD_ACKS_H
#define WD_ACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Send basic.ack(tag, multiple); returns 0 or -1 (connection failed). */
typedef int (*wd_acks_send_fn)(void *arg, uint64_t tag, bool multiple);

struct wd_acks {
	int batch;      /* flush at this many waiting acks */
	int delay_ms;   /* or when the oldest has waited this long */
	uint64_t base;  /* lowest tag not settled yet */
	uint64_t next;  /* one past the highest tag seen */
	uint8_t *state; /* ring of tag states from base, cap entries */
	size_t cap;
	uint64_t *pending; /* tags waiting to be acked, in arrival order */
	size_t npending, cappending;
	int64_t oldest_ms; /* when pending[0] started waiting */
};

void wd_acks_init(struct wd_acks *a, int batch, int delay_ms);
void wd_acks_free(struct wd_acks *a);
/* The channel was (re)opened: its tags start again at 1. */
void wd_acks_reset(struct wd_acks *a);
/* A delivery with this tag was read. Returns -1 on out of memory. */
int wd_acks_seen(struct wd_acks *a, uint64_t tag);
/* The delivery was settled some other way (nack). */
void wd_acks_settled(struct wd_acks *a, uint64_t tag);
/* The delivery may be acked. Returns 1 if a flush is due now: a full
 * batch that a multiple-ack can start from the lowest tag, or any ack
 * when batch is 1 or delay_ms 0. */
int wd_acks_queue(struct wd_acks *a, uint64_t tag, int64_t now_ms);
/* Whether a flush is due at now_ms; else lowers *next_due_ms (if >= 0, or
 * sets it) to when one will be. */
bool wd_acks_due(const struct wd_acks *a, int64_t now_ms, int64_t *next_due_ms);
/* Whether every delivery seen is settled and every ack sent. */
bool wd_acks_idle(const struct wd_acks *a);
/* Send the waiting acks: one multiple-ack for the settled run from the
 * lowest tag; acks behind a delivery still in a handler go out as single
 * acks if `all` or once the oldest has waited delay_ms, else they keep
 * waiting. Returns the number of ack frames sent, or -1 if send failed. */
int wd_acks_flush(struct wd_acks *a, int64_t now_ms, bool all,
                  wd_acks_send_fn send, void *arg);

#endif
