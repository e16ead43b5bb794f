/*
 * test_prefetch.c - the adaptive prefetch's rule (broker/prefetch.c),
 * without a broker: handlers that starve for deliveries while the queue
 * has more make it grow (doubling, up to prefetch_max), and so does a
 * window below what a stream keeps in flight (to twice Little's
 * estimate, in one step, backlog or not); deliveries that
 * wait for busy handlers make it shrink to the window the handlers get
 * through (not below prefetch_min); balanced, idle or without a backlog
 * it stays; a decision comes at most once per interval. The broker side
 * (the qos a running consumer obeys) is test_it_prefetch.
 */
#include <criterion/criterion.h>

#include "broker/prefetch.h"

#define SEC_US 1000000

/* An interval of 1 s in which n deliveries were settled, each after
 * waiting wait_us for a handler that took handler_us, with 4 handlers and
 * an ack delay of 10 ms. */
static struct wd_prefetch_obs obs(uint64_t n, int64_t wait_us,
                                  int64_t handler_us, long backlog)
{
	return (struct wd_prefetch_obs){.interval_us = SEC_US,
	                                .settled = n,
	                                .timed = n,
	                                .wait_us = wait_us * (int64_t)n,
	                                .handler_us = handler_us * (int64_t)n,
	                                .ack_delay_ms = 10,
	                                .handlers = 4,
	                                .backlog = backlog};
}

/* A no-op handler (2 us), deliveries taken at once (50 us), a backlog,
 * a window past what is in flight (20000/s x (2 us + 11 ms) + 4 = 225):
 * the window still bounds the rate. */
Test(prefetch, starving_grows)
{
	struct wd_prefetch_obs o = obs(20000, 50, 2, 5000);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(400, 10, 1000, &o, &why), 800);
	cr_expect_str_eq(why, "starving");
	cr_expect_eq(wd_prefetch_next(250, 10, 1000, &o, NULL), 500);
}

/* A paced stream of 10000/s, no backlog: what is in flight is 10000/s x
 * (2 us + 11 ms) + 4 = 115. A window of 40 below it goes to twice that
 * in one step, without asking for the backlog; past it, it stays. */
Test(prefetch, lean_grows_to_twice_the_estimate)
{
	struct wd_prefetch_obs o = obs(10000, 100, 2, -1);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(40, 10, 1000, &o, &why), 230);
	cr_expect_str_eq(why, "lean");
	cr_expect_eq(wd_prefetch_next(40, 10, 200, &o, NULL), 200);
	o.backlog = 0;
	cr_expect_eq(wd_prefetch_next(230, 10, 1000, &o, &why), 230);
	cr_expect_str_eq(why, "no backlog");
	cr_expect_eq(wd_prefetch_next(115, 10, 1000, &o, &why), 115);
	cr_expect_eq(wd_prefetch_next(114, 10, 1000, &o, &why), 230);
	cr_expect_str_eq(why, "lean");
}

/* Whether the queue has more is asked only when it would grow. */
Test(prefetch, asks_for_the_backlog_only_to_grow)
{
	struct wd_prefetch_obs o = obs(20000, 50, 2, -1);

	cr_expect_eq(wd_prefetch_next(400, 10, 1000, &o, NULL),
	             WD_PREFETCH_ASK_BACKLOG);
	/* At its max, or hoarding, or busy: no question. */
	cr_expect_eq(wd_prefetch_next(1000, 10, 1000, &o, NULL), 1000);
	o = obs(800, 100000, 5000, -1);
	cr_expect_neq(wd_prefetch_next(100, 10, 1000, &o, NULL),
	              WD_PREFETCH_ASK_BACKLOG);
}

/* Idle handlers but nothing more in the queue: a bigger window would not
 * bring more. */
Test(prefetch, no_backlog_keeps)
{
	struct wd_prefetch_obs o = obs(2000, 50, 2, 0);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(40, 10, 1000, &o, &why), 40);
	cr_expect_str_eq(why, "no backlog");
}

/* 5 ms handlers, 4 of them, all busy (800/s), deliveries waiting 100 ms
 * each: 80 of them sit hoarded. The window goes to what the handlers get
 * through: 800/s x (5 + 10 + 1) ms + 4 = 16.8, so 17. */
Test(prefetch, hoarding_shrinks)
{
	struct wd_prefetch_obs o = obs(800, 100000, 5000, 5000);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(100, 10, 1000, &o, &why), 17);
	cr_expect_str_eq(why, "hoarding");
}

/* Deliveries waited (20 ms), but the window is below what the handlers
 * get through (the wait is not the window's): it still grows. 20000/s x
 * (2 us + 11 ms) + 4 = 225 > 20. */
Test(prefetch, a_wait_under_a_small_window_is_not_hoarding)
{
	struct wd_prefetch_obs o = obs(20000, 20000, 2, 5000);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(20, 10, 1000, &o, &why), 450);
	cr_expect_str_eq(why, "lean");
	/* Between the estimate and an eighth above it: kept. */
	cr_expect_eq(wd_prefetch_next(240, 10, 1000, &o, &why), 240);
	cr_expect_str_eq(why, "hoarding");
}

/* No-op handlers through a big window: a burst waits 2 ms for a worker,
 * less than its ack waits (10 ms). Not hoarding: it grows on. */
Test(prefetch, a_wait_under_the_ack_delay_is_not_hoarding)
{
	struct wd_prefetch_obs o = obs(20000, 2000, 2, 5000);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(400, 10, 1000, &o, &why), 800);
	cr_expect_str_eq(why, "starving");
	o = obs(20000, 10100, 2, 5000);
	cr_expect_eq(wd_prefetch_next(400, 10, 1000, &o, &why), 225);
	cr_expect_str_eq(why, "hoarding");
}

/* Busy handlers with a short wait (about one handler call): the window is
 * right; it neither grows (handlers are busy) nor shrinks. */
Test(prefetch, balanced_stays)
{
	struct wd_prefetch_obs o = obs(800, 5000, 5000, 5000);
	const char *why = NULL;

	cr_expect_eq(wd_prefetch_next(17, 10, 1000, &o, &why), 17);
	cr_expect_str_eq(why, "balanced");
	/* And it is the fixed point of the shrink: 17 again. */
	o = obs(800, 100000, 5000, 5000);
	cr_expect_eq(wd_prefetch_next(17, 10, 1000, &o, NULL), 17);
}

Test(prefetch, idle_stays)
{
	struct wd_prefetch_obs o = obs(0, 0, 0, 100);

	cr_expect_eq(wd_prefetch_next(300, 10, 1000, &o, NULL), 300);
}

/* Never past prefetch_max or below prefetch_min. */
Test(prefetch, bounds)
{
	struct wd_prefetch_obs o = obs(20000, 50, 2, 5000);

	cr_expect_eq(wd_prefetch_next(600, 10, 1000, &o, NULL), 1000);
	cr_expect_eq(wd_prefetch_next(10, 10, 15, &o, NULL), 15);
	/* 20 ms handlers, 4 busy (200/s): the estimate is 200/s x 31 ms
	 * + 4 = 10.2, so 11; prefetch_min 15 holds it at 15. */
	o = obs(200, 500000, 20000, 5000);
	cr_expect_eq(wd_prefetch_next(200, 15, 1000, &o, NULL), 15);
	cr_expect_eq(wd_prefetch_next(200, 1, 1000, &o, NULL), 11);
}

/* A small correction is not worth a qos: within an eighth it stays. */
Test(prefetch, small_shrink_is_skipped)
{
	struct wd_prefetch_obs o = obs(800, 100000, 5000, 5000);

	cr_expect_eq(wd_prefetch_next(18, 10, 1000, &o, NULL), 18);
	cr_expect_eq(wd_prefetch_next(20, 10, 1000, &o, NULL), 17);
}

/* One decision per interval at most; the interval's sums start again. */
Test(prefetch, rate_limited)
{
	struct wd_prefetch p;
	struct wd_prefetch_obs o;
	int64_t t = 5 * SEC_US, step = WD_PREFETCH_GROW_MS * 1000;
	int64_t full = WD_PREFETCH_INTERVAL_MS * 1000;

	wd_prefetch_init(&p, 10, 1000, t);
	cr_expect_eq(p.value, 10, "starts at prefetch_min");
	wd_prefetch_note(&p, t, t + 40, 3);
	wd_prefetch_note(&p, t, 0, 0); /* settled without a handler call */
	cr_expect_not(wd_prefetch_due(&p, t + step - 1));
	cr_expect(wd_prefetch_due(&p, t + step));
	wd_prefetch_take(&p, t + step, &o);
	cr_expect_eq(o.settled, 2);
	cr_expect_eq(o.timed, 1);
	cr_expect_eq(o.wait_us, 40);
	cr_expect_eq(o.handler_us, 3);
	cr_expect_eq(o.interval_us, step);
	cr_expect_eq(o.backlog, -1);
	/* The first look comes soon, and so does the one after a growth,
	 * or after an interval that settled nothing; after a shrink or no
	 * change, a full interval. */
	wd_prefetch_decided(&p, &o, 10, 20);
	cr_expect_not(wd_prefetch_due(&p, t + step + step - 1));
	cr_expect(wd_prefetch_due(&p, t + 2 * step));
	wd_prefetch_take(&p, t + 2 * step, &o);
	cr_expect_eq(o.settled, 0);
	wd_prefetch_decided(&p, &o, 20, 20);
	cr_expect(wd_prefetch_due(&p, t + 3 * step), "nothing settled");
	wd_prefetch_note(&p, t, t + 40, 3);
	wd_prefetch_take(&p, t + 3 * step, &o);
	wd_prefetch_decided(&p, &o, 20, 20);
	cr_expect_not(wd_prefetch_due(&p, t + 3 * step + full - 1));
	cr_expect(wd_prefetch_due(&p, t + 3 * step + full));
	wd_prefetch_decided(&p, &o, 20, 15);
	cr_expect_not(wd_prefetch_due(&p, t + 3 * step + full - 1),
	              "a shrink waits a full interval");
}
