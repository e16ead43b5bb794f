/*
 * test_confirms.c - the publisher's confirm bookkeeping (broker/confirms.c):
 * single confirms in order and out of order (the gap closes), a multiple
 * confirm settling a run, a nack, a basic.return failing every unconfirmed
 * publish to its exchange and routing key (and only those), the timeout of
 * the oldest, a reset that forgets without a word, and a ring that grows
 * while wrapped.
 *
 * The done callback records what it is told instead of settling deliveries:
 * the broker side (confirms and returns on a real channel) is in the
 * integration tests.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "broker/confirms.h"

struct done {
	uintptr_t owner;
	bool ok;
	bool why_null;
	char why[256];
};

static struct done dones[512];
static size_t ndones;

static void record(void *owner, bool ok, const char *why)
{
	struct done *d;

	cr_assert_lt(ndones, 512);
	d = &dones[ndones++];
	d->owner = (uintptr_t)owner;
	d->ok = ok;
	d->why_null = why == NULL;
	snprintf(d->why, sizeof(d->why), "%s", why ? why : "");
}

static void reset_dones(void)
{
	ndones = 0;
}

TestSuite(confirms, .init = reset_dones);

static amqp_bytes_t b(const char *s)
{
	return amqp_cstring_bytes(s);
}

/* A publish for owner `id` to x/rk at time `t`. */
static void push(struct wd_confirms *c, uintptr_t id, const char *x,
                 const char *rk, int64_t t)
{
	cr_assert_eq(wd_confirms_push(c, (void *)id, b(x), b(rk), t), 0);
}

/* Owners 1..n, all to "x"/"rk" at time 0: seq i is owner i. */
static void push_n(struct wd_confirms *c, uintptr_t n)
{
	for (uintptr_t i = 1; i <= n; i++)
		push(c, i, "x", "rk", 0);
}

static void expect_done(size_t i, uintptr_t owner, bool ok)
{
	cr_assert_lt(i, ndones, "only %zu done calls", ndones);
	cr_expect_eq(dones[i].owner, owner, "done %zu: owner %ju, expected %ju",
	             i, (uintmax_t)dones[i].owner, (uintmax_t)owner);
	cr_expect_eq(dones[i].ok, ok, "done %zu (owner %ju): ok is %d", i,
	             (uintmax_t)dones[i].owner, dones[i].ok);
	cr_expect_eq(dones[i].why_null, ok, "why must be NULL exactly if ok");
}

Test(confirms, numbers_from_one)
{
	struct wd_confirms c;

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 3);
	cr_expect_eq(c.count, 3);
	cr_expect_eq(c.next_seq, 4);
	for (size_t i = 0; i < 3; i++)
		cr_expect_eq(c.recs[(c.head + i) % c.cap].seq, i + 1);
	cr_expect_eq(ndones, 0, "nothing settled before a confirm");
	wd_confirms_reset(&c);
}

Test(confirms, single_confirms_in_order)
{
	struct wd_confirms c;

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 3);
	for (uint64_t t = 1; t <= 3; t++) {
		wd_confirms_confirm(&c, t, false, true);
		cr_assert_eq(ndones, t, "one done per single confirm");
		expect_done(t - 1, t, true);
		cr_expect_eq(c.count, 3 - t);
	}
	wd_confirms_reset(&c);
}

Test(confirms, multiple_confirm_covers_a_run)
{
	struct wd_confirms c;

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 5);
	wd_confirms_confirm(&c, 3, true, true);
	cr_assert_eq(ndones, 3);
	for (size_t i = 0; i < 3; i++)
		expect_done(i, i + 1, true);
	cr_expect_eq(c.count, 2, "4 and 5 are still unconfirmed");
	wd_confirms_confirm(&c, 5, true, true);
	cr_assert_eq(ndones, 5);
	expect_done(3, 4, true);
	expect_done(4, 5, true);
	cr_expect_eq(c.count, 0);
	wd_confirms_reset(&c);
}

Test(confirms, single_confirm_out_of_order_closes_the_gap)
{
	struct wd_confirms c;

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 5);
	wd_confirms_confirm(&c, 3, false, true);
	cr_assert_eq(ndones, 1, "a single confirm settles only its own tag");
	expect_done(0, 3, true);
	cr_expect_eq(c.count, 4);
	/* Seqs 1, 2, 4, 5 left in order: a multiple confirm of 4 settles
	 * 1, 2 and 4 (never 3 twice), and leaves 5. */
	wd_confirms_confirm(&c, 4, true, true);
	cr_assert_eq(ndones, 4);
	expect_done(1, 1, true);
	expect_done(2, 2, true);
	expect_done(3, 4, true);
	cr_expect_eq(c.count, 1);
	cr_expect_eq(c.recs[c.head].seq, 5);
	wd_confirms_reset(&c);
}

Test(confirms, unknown_tags_are_ignored)
{
	struct wd_confirms c;

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 2);
	wd_confirms_confirm(&c, 1, false, true);
	wd_confirms_confirm(&c, 1, false, true); /* again */
	wd_confirms_confirm(&c, 9, false, true); /* never sent */
	cr_expect_eq(ndones, 1);
	cr_expect_eq(c.count, 1);
	wd_confirms_reset(&c);
}

Test(confirms, nack_fails_with_its_why)
{
	struct wd_confirms c;
	const char *why = "the broker refused it (basic.nack)";

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 4);
	wd_confirms_confirm(&c, 2, false, false);
	cr_assert_eq(ndones, 1);
	expect_done(0, 2, false);
	cr_expect_str_eq(dones[0].why, why);
	wd_confirms_confirm(&c, 4, true, false); /* multiple nack */
	cr_assert_eq(ndones, 4);
	for (size_t i = 1; i < 4; i++) {
		expect_done(i, i == 1 ? 1 : i + 1, false);
		cr_expect_str_eq(dones[i].why, why);
	}
	wd_confirms_reset(&c);
}

Test(confirms, return_fails_every_match_and_only_those)
{
	struct wd_confirms c;
	const char *unroutable = "unroutable: exchange \"orders\" routing key "
	                         "\"created\": NO_ROUTE (312)";

	wd_confirms_init(&c, record, 1000);
	push(&c, 1, "orders", "created", 0);
	push(&c, 2, "orders", "cancelled", 0); /* same exchange */
	push(&c, 3, "audit", "created", 0);    /* same routing key */
	push(&c, 4, "orders", "created", 0);
	push(&c, 5, "orders", "create", 0); /* a prefix only */
	wd_confirms_returned(&c, b("orders"), b("created"), 312, b("NO_ROUTE"));
	cr_expect_eq(ndones, 0, "a return only marks; the confirm settles");
	/* The broker acks a returned publish: it still fails. */
	wd_confirms_confirm(&c, 5, true, true);
	cr_assert_eq(ndones, 5);
	for (size_t i = 0; i < 5; i++) {
		bool hit = i == 0 || i == 3;
		expect_done(i, i + 1, !hit);
		if (hit)
			cr_expect_str_eq(dones[i].why, unroutable);
	}
	wd_confirms_reset(&c);
}

Test(confirms, return_to_the_default_exchange)
{
	struct wd_confirms c;

	wd_confirms_init(&c, record, 1000);
	push(&c, 1, "", "q.retry.1000", 0);
	push(&c, 2, "", "other", 0);
	wd_confirms_returned(&c, b(""), b("q.retry.1000"), 312, b("NO_ROUTE"));
	wd_confirms_confirm(&c, 2, true, true);
	cr_assert_eq(ndones, 2);
	expect_done(0, 1, false);
	cr_expect_str_eq(dones[0].why, "unroutable: exchange \"\" routing key "
	                               "\"q.retry.1000\": NO_ROUTE (312)");
	expect_done(1, 2, true);
	wd_confirms_reset(&c);
}

Test(confirms, oldest_publish_times_out)
{
	struct wd_confirms c;
	int64_t next = -1;

	wd_confirms_init(&c, record, 1000);
	cr_expect_not(wd_confirms_expired(&c, 5000, &next), "nothing sent");
	cr_expect_eq(next, -1, "nothing due");
	push(&c, 1, "x", "rk", 100);
	push(&c, 2, "x", "rk", 300);
	cr_expect_not(wd_confirms_expired(&c, 1099, &next));
	cr_expect_eq(next, 1100, "due at sent + timeout");
	next = 500;
	cr_expect_not(wd_confirms_expired(&c, 1099, &next));
	cr_expect_eq(next, 500, "an earlier due time is kept");
	next = 2000;
	cr_expect_not(wd_confirms_expired(&c, 1099, &next));
	cr_expect_eq(next, 1100, "a later one is lowered");
	cr_expect(wd_confirms_expired(&c, 1100, &next));
	/* Once the oldest is confirmed, the next one sets the time. */
	wd_confirms_confirm(&c, 1, false, true);
	next = -1;
	cr_expect_not(wd_confirms_expired(&c, 1100, &next));
	cr_expect_eq(next, 1300);
	cr_expect(wd_confirms_expired(&c, 1300, &next));
	wd_confirms_reset(&c);
}

Test(confirms, reset_forgets_without_done)
{
	struct wd_confirms c;
	int64_t next = -1;

	wd_confirms_init(&c, record, 1000);
	push_n(&c, 3);
	wd_confirms_returned(&c, b("x"), b("rk"), 312, b("NO_ROUTE"));
	wd_confirms_reset(&c);
	cr_expect_eq(ndones, 0, "the connection is gone: nobody is told");
	cr_expect_eq(c.count, 0);
	cr_expect_null(c.recs);
	wd_confirms_confirm(&c, 3, true, true);
	cr_expect_eq(ndones, 0, "a late confirm finds nothing");
	cr_expect_not(wd_confirms_expired(&c, 1000000, &next));
	/* Usable again after init, numbering from 1. */
	wd_confirms_init(&c, record, 1000);
	push_n(&c, 1);
	wd_confirms_confirm(&c, 1, false, true);
	cr_assert_eq(ndones, 1);
	expect_done(0, 1, true);
	wd_confirms_reset(&c);
}

/* Past the first capacity (64) while the ring is wrapped, with a single
 * confirm closing a gap across the wrap: every publish is settled once, in
 * seq order. */
Test(confirms, grows_while_wrapped)
{
	struct wd_confirms c;
	uintptr_t id = 0;

	wd_confirms_init(&c, record, 1000);
	for (; id < 60; id++)
		push(&c, id + 1, "x", "rk", 0);
	size_t cap = c.cap;
	wd_confirms_confirm(&c, 50, true, true); /* head moves to 50 */
	cr_assert_eq(ndones, 50);
	for (; id < 90; id++) /* 40 in a ring of 64: wrapped */
		push(&c, id + 1, "x", "rk", 0);
	cr_assert_eq(c.cap, cap, "no growth yet");
	cr_assert_gt(c.head + c.count, c.cap, "the ring wraps");
	/* Seq 70 sits past the wrap; the ones after it shift over it. */
	wd_confirms_confirm(&c, 70, false, true);
	cr_assert_eq(ndones, 51);
	expect_done(50, 70, true);
	for (; id < 150; id++) /* 39 + 60 = 99: over 64 */
		push(&c, id + 1, "x", "rk", 0);
	cr_expect_gt(c.cap, cap);
	cr_expect_eq(c.count, 99);
	wd_confirms_confirm(&c, 150, true, true);
	cr_assert_eq(ndones, 150);
	cr_expect_eq(c.count, 0);
	/* The first 50, then 70, then 51..150 without 70. */
	for (size_t i = 0; i < 50; i++)
		expect_done(i, i + 1, true);
	for (size_t i = 51, want = 51; i < 150; i++, want++) {
		if (want == 70)
			want++;
		expect_done(i, want, true);
	}
	wd_confirms_reset(&c);
}
