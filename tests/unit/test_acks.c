/*
 * test_acks.c - ack coalescing (runtime/acks.c): a multiple-ack only ever
 * covers tags that were queued for an ack (or settled otherwise); acks
 * behind a delivery still in a handler wait for it, and go out one by one
 * only when their time is over or everything must go; the count and
 * time bounds trigger a flush; a reset starts the tags again.
 *
 * The send callback records the frames instead of talking to a broker: the
 * broker side (one multiple-ack per all-ack batch) is in test_it_batch.
 */
#include <criterion/criterion.h>

#include "broker/acks.h"

struct frame {
	uint64_t tag;
	bool multiple;
};

static struct frame frames[64];
static size_t nframes;

static int record(void *arg, uint64_t tag, bool multiple)
{
	(void)arg;
	cr_assert_lt(nframes, 64);
	frames[nframes].tag = tag;
	frames[nframes].multiple = multiple;
	nframes++;
	return 0;
}

static int fail_send(void *arg, uint64_t tag, bool multiple)
{
	(void)arg;
	(void)tag;
	(void)multiple;
	return -1;
}

static void reset_frames(void)
{
	nframes = 0;
}

TestSuite(acks, .init = reset_frames);

static void see(struct wd_acks *a, uint64_t from, uint64_t to)
{
	for (uint64_t t = from; t <= to; t++)
		cr_assert_eq(wd_acks_seen(a, t), 0);
}

Test(acks, contiguous_run_is_one_multiple_ack)
{
	struct wd_acks a;

	wd_acks_init(&a, 100, 10);
	see(&a, 1, 5);
	for (uint64_t t = 5; t >= 1; t--)
		cr_expect_eq(wd_acks_queue(&a, t, 0), 0, "flush too early");
	cr_assert_eq(wd_acks_flush(&a, 0, true, record, NULL), 1);
	cr_assert_eq(nframes, 1);
	cr_expect_eq(frames[0].tag, 5);
	cr_expect(frames[0].multiple);
	cr_expect_eq(wd_acks_flush(&a, 0, true, record, NULL), 0,
	             "nothing left");
	wd_acks_free(&a);
}

/* Tags 1..6 seen; 1, 2, 4, 5 acked at time 0 (delay 10 ms), 3 still in its
 * handler, 6 not done. */
static void three_in_handler(struct wd_acks *a)
{
	wd_acks_init(a, 100, 10);
	see(a, 1, 6);
	wd_acks_queue(a, 1, 0);
	wd_acks_queue(a, 2, 0);
	wd_acks_queue(a, 5, 0);
	wd_acks_queue(a, 4, 0);
}

Test(acks, never_covers_a_delivery_in_a_handler)
{
	struct wd_acks a;

	three_in_handler(&a);
	/* Their wait is not over: 4 and 5 keep waiting for 3. */
	cr_assert_eq(wd_acks_flush(&a, 9, false, record, NULL), 1);
	cr_expect_eq(frames[0].tag, 2);
	cr_expect(frames[0].multiple);
	reset_frames();
	/* Now it is: one by one, without 3. */
	cr_assert_eq(wd_acks_flush(&a, 10, false, record, NULL), 2);
	cr_assert_eq(nframes, 2);
	for (size_t i = 0; i < 2; i++) {
		cr_expect_not(frames[i].multiple);
		cr_expect(frames[i].tag == 4 || frames[i].tag == 5);
	}
	/* 3 and 6 done later: 3 alone (4 and 5 are acked), then 6. */
	reset_frames();
	wd_acks_queue(&a, 6, 0);
	wd_acks_queue(&a, 3, 0);
	cr_assert_eq(wd_acks_flush(&a, 0, true, record, NULL), 1);
	cr_expect_eq(frames[0].tag, 6);
	cr_expect(frames[0].multiple, "3..6 with 4, 5 already acked");
	wd_acks_free(&a);
}

Test(acks, all_sends_what_waits_behind_a_handler)
{
	struct wd_acks a;

	three_in_handler(&a); /* stopping sends everything else */
	cr_assert_eq(wd_acks_flush(&a, 0, true, record, NULL), 3);
	cr_assert_eq(nframes, 3);
	cr_expect_eq(frames[0].tag, 2);
	cr_expect(frames[0].multiple);
	/* Behind 3: single acks, never a multiple that would cover 3. */
	for (size_t i = 1; i < 3; i++) {
		cr_expect_not(frames[i].multiple);
		cr_expect(frames[i].tag == 4 || frames[i].tag == 5);
	}
	wd_acks_free(&a);
}

Test(acks, nacked_tags_are_skipped_by_the_run)
{
	struct wd_acks a;

	wd_acks_init(&a, 100, 10);
	see(&a, 1, 4);
	wd_acks_settled(&a, 2); /* nacked on its own */
	wd_acks_queue(&a, 1, 0);
	wd_acks_queue(&a, 3, 0);
	wd_acks_queue(&a, 4, 0);
	cr_assert_eq(wd_acks_flush(&a, 0, true, record, NULL), 1);
	cr_expect_eq(frames[0].tag, 4);
	cr_expect(frames[0].multiple);
	wd_acks_free(&a);
}

Test(acks, out_of_order_finishes_make_one_multiple_ack)
{
	struct wd_acks a;
	int64_t next = -1;

	/* Several workers: 2..4 finish before 1 and fill the batch, but no
	 * multiple-ack can cover them while 1 is in its handler. */
	wd_acks_init(&a, 3, 1000);
	see(&a, 1, 4);
	cr_expect_eq(wd_acks_queue(&a, 2, 0), 0);
	cr_expect_eq(wd_acks_queue(&a, 3, 0), 0);
	cr_expect_eq(wd_acks_queue(&a, 4, 0), 0, "full, but 1 is open");
	cr_expect_not(wd_acks_due(&a, 5, &next), "not due before its time");
	cr_expect_eq(next, 1000);
	cr_expect_eq(wd_acks_flush(&a, 5, false, record, NULL), 0);
	cr_expect_eq(wd_acks_queue(&a, 1, 6), 1, "1 done: the batch can go");
	cr_expect(wd_acks_due(&a, 6, &next));
	cr_assert_eq(wd_acks_flush(&a, 6, false, record, NULL), 1);
	cr_expect_eq(frames[0].tag, 4);
	cr_expect(frames[0].multiple);
	cr_expect(wd_acks_idle(&a));
	wd_acks_free(&a);
}

Test(acks, count_bound_triggers_a_flush)
{
	struct wd_acks a;

	wd_acks_init(&a, 3, 1000);
	see(&a, 1, 3);
	cr_expect_eq(wd_acks_queue(&a, 1, 0), 0);
	cr_expect_eq(wd_acks_queue(&a, 2, 0), 0);
	cr_expect_eq(wd_acks_queue(&a, 3, 0), 1, "3 waiting = ack_batch");
	wd_acks_free(&a);
}

Test(acks, time_bound_triggers_a_flush)
{
	struct wd_acks a;
	int64_t next = -1;

	wd_acks_init(&a, 100, 10);
	see(&a, 1, 2);
	cr_expect_not(wd_acks_due(&a, 0, &next), "nothing waits");
	wd_acks_queue(&a, 1, 1000);
	wd_acks_queue(&a, 2, 1005);
	cr_expect_not(wd_acks_due(&a, 1009, &next));
	cr_expect_eq(next, 1010, "due 10 ms after the oldest");
	cr_expect(wd_acks_due(&a, 1010, &next));
	wd_acks_free(&a);
}

Test(acks, batch_one_is_per_message)
{
	struct wd_acks a;

	wd_acks_init(&a, 1, 10);
	see(&a, 1, 2);
	cr_assert_eq(wd_acks_queue(&a, 2, 0), 1);
	wd_acks_flush(&a, 0, true, record, NULL);
	cr_assert_eq(wd_acks_queue(&a, 1, 0), 1);
	wd_acks_flush(&a, 0, true, record, NULL);
	cr_assert_eq(nframes, 2);
	cr_expect(!frames[0].multiple && frames[0].tag == 2);
	cr_expect(!frames[1].multiple && frames[1].tag == 1);
	wd_acks_free(&a);
}

Test(acks, reset_starts_tags_again_and_queue_ignores_unknown)
{
	struct wd_acks a;

	wd_acks_init(&a, 100, 10);
	see(&a, 1, 3);
	wd_acks_queue(&a, 1, 0);
	wd_acks_reset(&a); /* the channel was reopened */
	cr_expect_eq(wd_acks_flush(&a, 0, true, record, NULL), 0,
	             "a tag of the old channel must not be acked");
	cr_expect_eq(wd_acks_queue(&a, 1, 0), 0, "tag 1 not seen yet");
	cr_expect_eq(wd_acks_flush(&a, 0, true, record, NULL), 0);
	see(&a, 1, 1);
	wd_acks_queue(&a, 1, 0);
	cr_expect_eq(wd_acks_queue(&a, 1, 0), 0, "queued twice");
	cr_assert_eq(wd_acks_flush(&a, 0, true, record, NULL), 1);
	cr_expect_eq(frames[0].tag, 1);
	cr_expect_not(frames[0].multiple);
	wd_acks_free(&a);
}

Test(acks, window_grows_past_its_first_size)
{
	struct wd_acks a;

	wd_acks_init(&a, 100000, 10);
	see(&a, 1, 5000); /* tag 1 stays in its handler */
	for (uint64_t t = 2; t <= 5000; t++)
		wd_acks_queue(&a, t, 0);
	wd_acks_queue(&a, 1, 0);
	cr_assert_eq(wd_acks_flush(&a, 0, true, record, NULL), 1);
	cr_expect_eq(frames[0].tag, 5000);
	cr_expect(frames[0].multiple);
	wd_acks_free(&a);
}

Test(acks, send_failure_is_reported)
{
	struct wd_acks a;

	wd_acks_init(&a, 100, 10);
	see(&a, 1, 1);
	wd_acks_queue(&a, 1, 0);
	cr_expect_eq(wd_acks_flush(&a, 0, true, fail_send, NULL), -1);
	wd_acks_free(&a);
}
