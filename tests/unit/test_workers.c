/*
 * test_workers.c - the handler threads' scheduling (exec/workers.c): quick
 * tasks are run many to a take, by one woken thread, in order; slow ones
 * are spread over every thread; a take that turns slow gives back what it
 * has not started; a stop runs everything queued first.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "exec/workers.h"

#define NWORKERS 4
#define CHUNK    8

struct job {
	struct wd_task task;
	struct bench *b;
	int sleep_us;
	int seq;
	pthread_t ran_on;
	int ran_as; /* order in which it ran (b->order) */
};

struct bench {
	struct wd_workers *w;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int finished;
	atomic_int running, max_running, order;
};

static void job_run(struct wd_task *t)
{
	struct job *j = (struct job *)t;
	struct bench *b = j->b;
	int now = atomic_fetch_add(&b->running, 1) + 1;
	int max = atomic_load(&b->max_running);

	while (now > max &&
	       !atomic_compare_exchange_weak(&b->max_running, &max, now))
		;
	j->ran_on = pthread_self();
	j->ran_as = atomic_fetch_add(&b->order, 1);
	if (j->sleep_us > 0) {
		struct timespec ts = {0, (long)j->sleep_us * 1000};
		nanosleep(&ts, NULL);
	}
	atomic_fetch_sub(&b->running, 1);
}

static void job_finish(struct wd_task *t)
{
	struct bench *b = ((struct job *)t)->b;

	pthread_mutex_lock(&b->lock);
	b->finished++;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

static void bench_init(struct bench *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->lock, NULL);
	pthread_cond_init(&b->cond, NULL);
	b->w = wd_workers_start(NWORKERS);
	cr_assert_not_null(b->w);
}

/* Wait (10 s at most) until `n` jobs in all have finished. */
static void wait_finished(struct bench *b, int n)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&b->lock);
	while (b->finished < n)
		if (pthread_cond_timedwait(&b->cond, &b->lock, &until) != 0)
			break;
	cr_assert_geq(b->finished, n, "%d of %d jobs finished in 10 s",
	              b->finished, n);
	pthread_mutex_unlock(&b->lock);
}

/* Submit jobs j[0..n) as one chain. */
static void submit(struct bench *b, struct job *j, int n, int sleep_us)
{
	for (int i = 0; i < n; i++) {
		memset(&j[i], 0, sizeof(j[i]));
		j[i].task.run = job_run;
		j[i].task.finish = job_finish;
		j[i].b = b;
		j[i].sleep_us = sleep_us;
		j[i].seq = i;
		if (i > 0)
			j[i - 1].task.next = &j[i].task;
	}
	wd_workers_submit(b->w, &j[0].task, &j[n - 1].task, (size_t)n);
}

/* Chunks of quick jobs, one at a time, so that the pool learns their
 * cost. */
static void warm_up(struct bench *b, struct job *j, int *total)
{
	for (int c = 0; c < 50; c++) {
		submit(b, j, CHUNK, 0);
		wait_finished(b, *total += CHUNK);
	}
}

Test(workers, quick_tasks_share_one_thread_in_order)
{
	struct bench b;
	struct job j[CHUNK];
	int one_thread = 0, in_order = 0, total = 0;

	bench_init(&b);
	warm_up(&b, j, &total);
	for (int c = 0; c < 100; c++) {
		bool same = true, ordered = true;

		submit(&b, j, CHUNK, 0);
		wait_finished(&b, total += CHUNK);
		for (int i = 1; i < CHUNK; i++) {
			same &= pthread_equal(j[i].ran_on, j[0].ran_on) != 0;
			ordered &= j[i].ran_as > j[i - 1].ran_as;
		}
		one_thread += same;
		in_order += same && ordered;
	}
	/* Waking a thread per task, or every idle one per submit, runs a
	 * chunk on several threads nearly every time. A preempted take may
	 * give some back, so a majority, not all. */
	cr_expect_geq(one_thread, 50, "%d of 100 chunks ran on one thread",
	              one_thread);
	cr_expect_eq(in_order, one_thread,
	             "a chunk run by one thread runs in submission order");
	wd_workers_stop(b.w);
}

Test(workers, slow_tasks_use_every_thread)
{
	struct bench b;
	struct job j[2 * NWORKERS];

	bench_init(&b);
	submit(&b, j, 2 * NWORKERS, 20000);
	wait_finished(&b, 2 * NWORKERS);
	cr_expect_eq(atomic_load(&b.max_running), NWORKERS,
	             "20 ms jobs ran %d at once on %d threads",
	             atomic_load(&b.max_running), NWORKERS);
	wd_workers_stop(b.w);
}

Test(workers, a_take_that_turns_slow_gives_the_rest_back)
{
	struct bench b;
	struct job quick[CHUNK], slow[CHUNK];
	int total = 0;

	bench_init(&b);
	warm_up(&b, quick, &total);
	/* The estimate says these are quick: one thread takes them all,
	 * finds the first one slow and hands the rest to the others. */
	atomic_store(&b.max_running, 0);
	submit(&b, slow, CHUNK, 5000);
	wait_finished(&b, total += CHUNK);
	cr_expect_geq(atomic_load(&b.max_running), 3,
	              "5 ms jobs after quick ones ran at most %d at once",
	              atomic_load(&b.max_running));
	wd_workers_stop(b.w);
}

Test(workers, stop_runs_everything_queued)
{
	struct bench b;
	static struct job j[500];

	bench_init(&b);
	submit(&b, j, 500, 0);
	wd_workers_stop(b.w);
	cr_expect_eq(b.finished, 500, "%d of 500 ran before the stop ended",
	             b.finished);
}
