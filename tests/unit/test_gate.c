/*
 * test_gate.c - a route's concurrency limit (exec/gate.c): places are
 * counted, the tasks over the limit wait in arrival order and each ended
 * call hands its place to the oldest; on real workers (exec/workers.c) a
 * limited route never has more calls at once than its limit and does not
 * hold back an unlimited one.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "exec/gate.h"
#include "exec/workers.h"

Test(gate, no_limit_is_not_limited)
{
	struct wd_gate g;

	wd_gate_init(&g, 0);
	cr_expect_not(wd_gate_limited(&g));
	wd_gate_destroy(&g);
	wd_gate_init(&g, -3);
	cr_expect_not(wd_gate_limited(&g), "a negative limit is none");
	wd_gate_destroy(&g);
}

Test(gate, over_the_limit_waits_in_order)
{
	struct wd_gate g;
	struct wd_task t[5];
	int running;
	size_t parked;

	memset(t, 0, sizeof(t));
	wd_gate_init(&g, 2);
	cr_assert(wd_gate_limited(&g));
	cr_expect(wd_gate_enter(&g, &t[0]));
	cr_expect(wd_gate_enter(&g, &t[1]));
	cr_expect_not(wd_gate_enter(&g, &t[2]), "the third is parked");
	cr_expect_not(wd_gate_enter(&g, &t[3]));
	cr_expect_not(wd_gate_enter(&g, &t[4]));
	wd_gate_counts(&g, &running, &parked);
	cr_expect_eq(running, 2);
	cr_expect_eq(parked, 3);

	/* Each end hands its place to the oldest parked task. */
	cr_expect_eq(wd_gate_leave(&g), &t[2]);
	cr_expect_eq(wd_gate_leave(&g), &t[3]);
	wd_gate_counts(&g, &running, &parked);
	cr_expect_eq(running, 2, "places passed on, not freed");
	cr_expect_eq(parked, 1);
	cr_expect_null(t[3].next, "a task handed back is unlinked");
	cr_expect_eq(wd_gate_leave(&g), &t[4]);
	cr_expect_null(wd_gate_leave(&g));
	wd_gate_counts(&g, &running, &parked);
	cr_expect_eq(running, 1);
	cr_expect_eq(parked, 0);

	/* A free place again: the next task runs at once. */
	cr_expect(wd_gate_enter(&g, &t[0]));
	cr_expect_null(wd_gate_leave(&g));
	cr_expect_null(wd_gate_leave(&g));
	wd_gate_counts(&g, &running, &parked);
	cr_expect_eq(running, 0);
	cr_expect_null(wd_gate_leave(&g), "never below zero");
	wd_gate_counts(&g, &running, &parked);
	cr_expect_eq(running, 0);
	wd_gate_destroy(&g);
}

/* ---- on real workers ------------------------------------------------ */

#define SLOW_N 12 /* route A: limit 2, 20 ms calls */
#define FAST_N 40 /* route B: no limit, short calls */

struct job {
	struct wd_task task; /* first */
	struct bench *b;
	bool slow;
	int seq;
};

struct bench {
	struct wd_workers *w;
	struct wd_gate gate; /* route A's */
	atomic_int slow_now, slow_max, slow_started, fast_done;
	atomic_size_t parked_when_fast_done;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int finished;
	struct job jobs[SLOW_N + FAST_N];
};

static void nap_ms(long ms)
{
	struct timespec ts = {0, ms * 1000000L};
	nanosleep(&ts, NULL);
}

static void run_job(struct wd_task *t)
{
	struct job *j = (struct job *)t;
	struct bench *b = j->b;

	if (!j->slow) {
		nap_ms(1);
		if (atomic_fetch_add(&b->fast_done, 1) + 1 == FAST_N) {
			int running;
			size_t parked;
			wd_gate_counts(&b->gate, &running, &parked);
			atomic_store(&b->parked_when_fast_done, parked);
		}
		return;
	}
	/* Never more than the limit at once. (The order is the unit test
	 * above's: two workers that each got a place may start in either
	 * order.) */
	atomic_fetch_add(&b->slow_started, 1);
	int now = atomic_fetch_add(&b->slow_now, 1) + 1;
	int max = atomic_load(&b->slow_max);
	while (now > max &&
	       !atomic_compare_exchange_weak(&b->slow_max, &max, now))
		;
	nap_ms(20);
	atomic_fetch_sub(&b->slow_now, 1);
	/* As slot/conn.c's run_delivery: the place goes to the next. */
	struct wd_task *next = wd_gate_leave(&b->gate);
	if (next)
		wd_workers_submit(b->w, next, next, 1);
}

static void finish_job(struct wd_task *t)
{
	struct bench *b = ((struct job *)t)->b;

	pthread_mutex_lock(&b->lock);
	b->finished++;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

Test(gate, limited_route_on_workers_keeps_limit_order_and_others_go_on,
     .timeout = 30)
{
	static struct bench b; /* too big for the stack of a test */
	struct timespec deadline;

	memset(&b, 0, sizeof(b));
	pthread_mutex_init(&b.lock, NULL);
	pthread_cond_init(&b.cond, NULL);
	wd_gate_init(&b.gate, 2);
	b.w = wd_workers_start(4);
	cr_assert_not_null(b.w);
	/* All of A first, then B: without the gate, B would queue behind
	 * A's calls on all four workers. */
	for (int i = 0; i < SLOW_N + FAST_N; i++) {
		struct job *j = &b.jobs[i];
		j->b = &b;
		j->slow = i < SLOW_N;
		j->seq = i;
		j->task.run = run_job;
		j->task.finish = finish_job;
		if (j->slow && !wd_gate_enter(&b.gate, &j->task))
			continue; /* parked */
		wd_workers_submit(b.w, &j->task, &j->task, 1);
	}
	deadline = wd_wall_deadline(20000);
	pthread_mutex_lock(&b.lock);
	while (b.finished < SLOW_N + FAST_N)
		if (pthread_cond_timedwait(&b.cond, &b.lock, &deadline) != 0)
			break;
	int finished = b.finished;
	pthread_mutex_unlock(&b.lock);
	cr_assert_eq(finished, SLOW_N + FAST_N, "only %d tasks finished",
	             finished);
	cr_expect_eq(atomic_load(&b.slow_max), 2, "most at once: %d",
	             atomic_load(&b.slow_max));
	cr_expect_eq(atomic_load(&b.slow_started), SLOW_N, "each ran once");
	/* B was done while A still had most of its calls waiting. */
	cr_expect_gt(atomic_load(&b.parked_when_fast_done), 0);
	int running;
	size_t parked;
	wd_gate_counts(&b.gate, &running, &parked);
	cr_expect_eq(running, 0);
	cr_expect_eq(parked, 0);
	wd_workers_stop(b.w);
	wd_gate_destroy(&b.gate);
}
