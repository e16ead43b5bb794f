/* confirms.c - unconfirmed publishes in a ring, matched to the broker's
 * confirms by sequence number. */
#include "broker/confirms.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"

#include "base/amqp_fields.h"

/* Room for this many unconfirmed publishes before the ring first grows. */
#define RING_FIRST 64

void wd_confirms_init(struct wd_confirms *c, wd_confirms_done_fn done,
                      int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->done = done;
	c->timeout_ms = timeout_ms;
	c->next_seq = 1;
}

static struct wd_confirm_rec *rec_at(const struct wd_confirms *c, size_t i)
{
	return &c->recs[(c->head + i) % c->cap];
}

/* Not WD_GROW: a realloc keeps a wrapped ring's two halves where they are,
 * and the new slots would land in the middle of it. Copying into a fresh
 * array re-linearises it (head at 0) in the same pass. */
static int grow(struct wd_confirms *c)
{
	size_t cap = c->cap ? c->cap * 2 : RING_FIRST;
	struct wd_confirm_rec *n = malloc(cap * sizeof(*n));

	if (!n)
		return -1;
	for (size_t i = 0; i < c->count; i++)
		n[i] = *rec_at(c, i);
	free(c->recs);
	c->recs = n;
	c->cap = cap;
	c->head = 0;
	return 0;
}

int wd_confirms_push(struct wd_confirms *c, void *owner, amqp_bytes_t exchange,
                     amqp_bytes_t routing_key, int64_t now_ms)
{
	struct wd_confirm_rec r = {.owner = owner, .sent_ms = now_ms};

	r.exchange = strndup(exchange.len ? exchange.bytes : "", exchange.len);
	r.routing_key =
	    strndup(routing_key.len ? routing_key.bytes : "", routing_key.len);
	if (!r.exchange || !r.routing_key ||
	    (c->count == c->cap && grow(c) < 0)) {
		free(r.exchange);
		free(r.routing_key);
		return -1;
	}
	r.seq = c->next_seq++;
	c->recs[(c->head + c->count) % c->cap] = r;
	c->count++;
	return 0;
}

/* done() for a record already taken out of the ring (a copy), so a done()
 * that pushes or confirms again never finds the ring half-updated; then
 * free what the record owned. */
static void finish(struct wd_confirms *c, struct wd_confirm_rec *r, bool ok,
                   const char *why)
{
	if (r->returned) {
		ok = false;
		why = r->why;
		wd_metric_inc(publishes_returned);
	} else if (!ok) {
		wd_metric_inc(publishes_nacked);
	}
	c->done(r->owner, ok, ok ? NULL : why);
	free(r->exchange);
	free(r->routing_key);
}

void wd_confirms_confirm(struct wd_confirms *c, uint64_t tag, bool multiple,
                         bool ack)
{
	const char *why = "the broker refused it (basic.nack)";

	/* Confirms come in seq order per tag, but single confirms may skip:
	 * settle the front while it is covered, and an exact match inside. */
	while (c->count > 0) {
		struct wd_confirm_rec *r = rec_at(c, 0);
		if (r->seq > tag || (!multiple && r->seq != tag))
			break;
		struct wd_confirm_rec copy = *r;
		c->head = (c->head + 1) % c->cap;
		c->count--;
		finish(c, &copy, ack, why);
		if (!multiple)
			return;
	}
	if (multiple)
		return;
	for (size_t i = 0; i < c->count; i++) {
		struct wd_confirm_rec *r = rec_at(c, i);
		if (r->seq != tag)
			continue;
		struct wd_confirm_rec copy = *r;
		/* Close the gap: shift the later ones down by one. */
		for (size_t j = i; j + 1 < c->count; j++)
			*rec_at(c, j) = *rec_at(c, j + 1);
		c->count--;
		finish(c, &copy, ack, why);
		return;
	}
}

void wd_confirms_returned(struct wd_confirms *c, amqp_bytes_t exchange,
                          amqp_bytes_t routing_key, uint16_t code,
                          amqp_bytes_t text)
{
	for (size_t i = 0; i < c->count; i++) {
		struct wd_confirm_rec *r = rec_at(c, i);
		if (!wd_bytes_eq(exchange, r->exchange) ||
		    !wd_bytes_eq(routing_key, r->routing_key))
			continue;
		r->returned = true;
		snprintf(
		    r->why, sizeof(r->why),
		    "unroutable: exchange \"%.50s\" routing key \"%.50s\": "
		    "%.*s (%u)",
		    r->exchange, r->routing_key,
		    (int)(text.len > 40 ? 40 : text.len),
		    (const char *)text.bytes, code);
	}
}

bool wd_confirms_expired(const struct wd_confirms *c, int64_t now_ms,
                         int64_t *next_due_ms)
{
	int64_t due;

	if (c->count == 0)
		return false;
	/* The front is the oldest: publishes are pushed as they are sent. */
	due = rec_at(c, 0)->sent_ms + c->timeout_ms;
	if (due <= now_ms)
		return true;
	if (*next_due_ms < 0 || due < *next_due_ms)
		*next_due_ms = due;
	return false;
}

void wd_confirms_pause(struct wd_confirms *c, int64_t ms)
{
	for (size_t i = 0; i < c->count; i++)
		rec_at(c, i)->sent_ms += ms;
}

void wd_confirms_reset(struct wd_confirms *c)
{
	for (size_t i = 0; i < c->count; i++) {
		free(rec_at(c, i)->exchange);
		free(rec_at(c, i)->routing_key);
	}
	free(c->recs);
	c->recs = NULL;
	c->head = c->count = c->cap = 0;
}
