/* acks.c - a window of delivery tags and the acks waiting in it. */
#include "broker/acks.h"

#include <stdlib.h>
#include <string.h>

#include "base/grow.h"

enum { TAG_OPEN = 0, TAG_ACK = 1, TAG_DONE = 2 };

#define ST(a, tag) ((a)->state[(tag) & ((a)->cap - 1)])

void wd_acks_init(struct wd_acks *a, int batch, int delay_ms)
{
	memset(a, 0, sizeof(*a));
	a->batch = batch > 0 ? batch : 1;
	a->delay_ms = delay_ms;
	a->base = a->next = 1;
}

void wd_acks_free(struct wd_acks *a)
{
	free(a->state);
	free(a->pending);
	a->state = NULL;
	a->pending = NULL;
	a->cap = a->cappending = a->npending = 0;
}

bool wd_acks_idle(const struct wd_acks *a)
{
	return a->base == a->next && a->npending == 0;
}

void wd_acks_reset(struct wd_acks *a)
{
	a->base = a->next = 1;
	a->npending = 0;
	if (a->state)
		memset(a->state, 0, a->cap);
}

/* Room for tags base..tag in the ring (a power of two). */
static int reserve(struct wd_acks *a, uint64_t tag)
{
	size_t need = (size_t)(tag - a->base + 1), cap = a->cap ? a->cap : 256;
	uint8_t *n;

	if (need <= a->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	n = calloc(cap, 1);
	if (!n)
		return -1;
	for (uint64_t t = a->base; t < a->next; t++)
		n[t & (cap - 1)] = ST(a, t);
	free(a->state);
	a->state = n;
	a->cap = cap;
	return 0;
}

int wd_acks_seen(struct wd_acks *a, uint64_t tag)
{
	if (tag < a->next)
		return 0; /* not ours to track (never happens on a channel) */
	if (reserve(a, tag) < 0)
		return -1;
	/* Tags are consecutive per channel; a gap would be settled tags. */
	for (; a->next < tag; a->next++)
		ST(a, a->next) = TAG_DONE;
	ST(a, tag) = TAG_OPEN;
	a->next = tag + 1;
	return 0;
}

/* Move base past tags that need nothing more. */
static void advance(struct wd_acks *a)
{
	while (a->base < a->next && ST(a, a->base) == TAG_DONE)
		a->base++;
}

void wd_acks_settled(struct wd_acks *a, uint64_t tag)
{
	if (tag < a->base || tag >= a->next)
		return;
	ST(a, tag) = TAG_DONE;
	advance(a);
}

/* A full batch waits, and a multiple-ack can go out for it: the lowest
 * unsettled tag is acked. While it is still in its handler, the acks
 * behind it wait for it (or for their time), not to go out one by one:
 * with several workers, handlers finish out of order all the time. */
static bool full(const struct wd_acks *a)
{
	return a->npending >= (size_t)a->batch && a->base < a->next &&
	       ST(a, a->base) == TAG_ACK;
}

int wd_acks_queue(struct wd_acks *a, uint64_t tag, int64_t now_ms)
{
	if (tag < a->base || tag >= a->next || ST(a, tag) != TAG_OPEN)
		return 0;
	if (WD_GROW(a->pending, a->cappending, a->npending + 1, 128) < 0)
		return 1; /* flush now rather than lose track */
	ST(a, tag) = TAG_ACK;
	if (a->npending == 0 || now_ms < a->oldest_ms)
		a->oldest_ms = now_ms;
	a->pending[a->npending++] = tag;
	return a->batch == 1 || a->delay_ms == 0 || full(a);
}

bool wd_acks_due(const struct wd_acks *a, int64_t now_ms, int64_t *next_due_ms)
{
	int64_t due;

	if (a->npending == 0)
		return false;
	due = a->oldest_ms + a->delay_ms;
	if (full(a) || due <= now_ms)
		return true;
	if (*next_due_ms < 0 || due < *next_due_ms)
		*next_due_ms = due;
	return false;
}

int wd_acks_flush(struct wd_acks *a, int64_t now_ms, bool all,
                  wd_acks_send_fn send, void *arg)
{
	uint64_t last = 0;
	size_t run = 0, keep = 0;
	int frames = 0;

	if (a->npending == 0)
		return 0;
	/* The run from base of tags that are acked or otherwise settled. */
	while (a->base < a->next && ST(a, a->base) != TAG_OPEN) {
		if (ST(a, a->base) == TAG_ACK) {
			last = a->base;
			run++;
			ST(a, a->base) = TAG_DONE;
		}
		a->base++;
	}
	if (run > 0) {
		if (send(arg, last, run > 1) < 0)
			return -1;
		frames++;
	}
	/* Behind a delivery still in a handler: one by one once their wait
	 * is over (oldest_ms stands for all of them: none waited longer),
	 * else they keep waiting for it to finish. */
	all = all || now_ms >= a->oldest_ms + a->delay_ms;
	for (size_t i = 0; i < a->npending; i++) {
		uint64_t t = a->pending[i];
		if (t < a->base || ST(a, t) != TAG_ACK)
			continue;
		if (!all) {
			a->pending[keep++] = t;
			continue;
		}
		if (send(arg, t, false) < 0)
			return -1;
		ST(a, t) = TAG_DONE;
		frames++;
	}
	a->npending = keep;
	advance(a);
	return frames;
}
