/* confirms.h - the bookkeeping of publisher confirms on one channel: a
 * ring of the publishes not yet confirmed, in sequence-number order,
 * settled by the broker's basic.ack / basic.nack (single or multiple),
 * failed by a basic.return, timed out by the caller. No I/O: publisher.c
 * does the sending and feeds in what the broker says, so the matching can
 * be tested without a broker (tests/unit/test_confirms.c). Owned by one
 * thread. */
#ifndef WD_CONFIRMS_H
#define WD_CONFIRMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"

/* Called once per publish when its fate is known. `why` is NULL if ok. */
typedef void (*wd_confirms_done_fn)(void *owner, bool ok, const char *why);

struct wd_confirm_rec {
	uint64_t seq;
	void *owner;
	char *exchange, *routing_key; /* owned: basic.return matches on them */
	int64_t sent_ms;
	bool returned; /* a basic.return matched it: fails on its confirm */
	char why[200];
};

struct wd_confirms {
	wd_confirms_done_fn done;
	int timeout_ms;
	uint64_t next_seq; /* the broker numbers a channel's publishes from 1 */
	struct wd_confirm_rec *recs; /* ring, ordered by seq */
	size_t head, count, cap;
};

/* Start empty, numbering from 1 (as confirm.select does). c must hold
 * nothing: fresh (zeroed) or after wd_confirms_reset(). */
void wd_confirms_init(struct wd_confirms *c, wd_confirms_done_fn done,
                      int timeout_ms);

/* Record the publish about to be sent for `owner`, with the next sequence
 * number (the exchange and routing key are copied). Returns 0, or -1 on
 * out of memory with nothing recorded and the number not used. */
int wd_confirms_push(struct wd_confirms *c, void *owner, amqp_bytes_t exchange,
                     amqp_bytes_t routing_key, int64_t now_ms);

/* basic.ack (ack) or basic.nack of `tag`, or of every seq up to it if
 * `multiple`: done() for each publish it settles, in seq order. A tag
 * that matches nothing is ignored. */
void wd_confirms_confirm(struct wd_confirms *c, uint64_t tag, bool multiple,
                         bool ack);

/* basic.return: every unconfirmed publish to the same exchange and routing
 * key fails on its confirm (the return does not say which one it was;
 * failing one too many only retries it, failing one too few would lose
 * it). */
void wd_confirms_returned(struct wd_confirms *c, amqp_bytes_t exchange,
                          amqp_bytes_t routing_key, uint16_t code,
                          amqp_bytes_t text);

/* Whether the oldest publish has waited timeout_ms or longer; else lowers
 * *next_due_ms (-1 = none yet) to when it will have. */
bool wd_confirms_expired(const struct wd_confirms *c, int64_t now_ms,
                         int64_t *next_due_ms);

/* Every publish waiting now gets ms more: the time the broker spent not
 * reading them (a blocked connection) does not count against the
 * timeout. */
void wd_confirms_pause(struct wd_confirms *c, int64_t ms);

/* Forget every publish (the connection is gone); done() is not called. */
void wd_confirms_reset(struct wd_confirms *c);

#endif
