/*
 * tsan_workers.c - the worker pool and a route's gate under load from
 * several threads at once, for ThreadSanitizer (./dev.sh test runs it in
 * the TSan pass, build-tsan/; the other builds run it too). Criterion
 * cannot run under TSan (its issue #274), so this is a plain program: it
 * exits 1 naming what went wrong, and TSan makes a race exit 66.
 *
 * What it drives, as warrend does:
 *   - SUBMITTERS threads (the connection threads) submit chains of tasks
 *     of every length to one pool of WORKERS threads;
 *   - each task marks its worker busy and idle (the stuck-handler watch),
 *     while a watcher thread scans the marks, as the watch does each
 *     second;
 *   - half the tasks pass a gate of GATE_LIMIT places first: parked ones
 *     are handed back by wd_gate_leave() and submitted by the worker that
 *     finished, as dispatch does;
 *   - finish() hands each task back to its submitter under the
 *     submitter's lock, as a settle queue does.
 * Checked after wd_workers_stop(): every task ran once and came back once,
 * no more than GATE_LIMIT gated tasks ran at a time, and the gate handed
 * its parked tasks on in the order they arrived.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec/gate.h"
#include "exec/workers.h"

#define WORKERS    4
#define SUBMITTERS 3
#define PER_SUBMIT 20000
#define GATE_LIMIT 2
#define CHAIN_MAX  17

struct submitter;

struct job {
	struct wd_task task; /* first: the callbacks get &job->task */
	struct submitter *from;
	bool gated;
	size_t n;     /* what its busy mark says, 1..7: a torn read mixes two */
	int runs;     /* written by the one worker that runs it */
	int finished; /* written under from->lock */
	long gate_seq; /* its place in the gate's arrival order, or -1 */
};

struct submitter {
	pthread_t thread;
	pthread_mutex_t lock;
	struct job *jobs;
	size_t back; /* finished, under lock */
	unsigned seed;
};

static struct wd_workers *pool;
static struct wd_gate gate;
static atomic_int in_gate, gate_max;
static atomic_long gate_arrivals;
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;
static long last_handed_on = -1;
static bool gate_out_of_order;
static atomic_bool watching = true;
static atomic_long scans_seen;
static const int owner_tag = 1;

static void fail(const char *what)
{
	fprintf(stderr, "tsan_workers: FAILED: %s\n", what);
	exit(1);
}

static void run(struct wd_task *t)
{
	struct job *j = (struct job *)t;
	volatile unsigned spin = 0;

	wd_workers_busy(&owner_tag, j, j->n);
	j->runs++;
	if (j->gated) {
		int now = atomic_fetch_add(&in_gate, 1) + 1;
		int max = atomic_load(&gate_max);

		while (now > max &&
		       !atomic_compare_exchange_weak(&gate_max, &max, now))
			;
		for (int i = 0; i < 200; i++)
			spin += (unsigned)i;
		atomic_fetch_sub(&in_gate, 1);
	}
	wd_workers_idle();
}

static void finish(struct wd_task *t)
{
	struct job *j = (struct job *)t;
	struct wd_task *next = NULL;

	if (j->gated) {
		/* Under the arrivals' lock: the order handed on is the
		 * gate's own. */
		pthread_mutex_lock(&order_lock);
		next = wd_gate_leave(&gate);
		if (next) {
			long seq = ((struct job *)next)->gate_seq;

			if (seq < last_handed_on)
				gate_out_of_order = true;
			last_handed_on = seq;
		}
		pthread_mutex_unlock(&order_lock);
	}
	pthread_mutex_lock(&j->from->lock);
	j->finished++;
	j->from->back++;
	pthread_mutex_unlock(&j->from->lock);
	if (next) {
		next->next = NULL;
		wd_workers_submit(pool, next, next, 1);
	}
}

static void *submit_all(void *arg)
{
	struct submitter *s = arg;
	size_t i = 0;

	while (i < PER_SUBMIT) {
		size_t n = 1 + (size_t)rand_r(&s->seed) % CHAIN_MAX, k = 0;
		struct wd_task *first = NULL, *last = NULL;

		for (; k < n && i < PER_SUBMIT; i++) {
			struct job *j = &s->jobs[i];

			j->task.run = run;
			j->task.finish = finish;
			j->task.next = NULL;
			j->from = s;
			j->gated = i % 2 == 0;
			j->n = 1 + i % 7;
			j->gate_seq = -1;
			if (j->gated) {
				/* The arrival order and the gate's entry are
				 * one step: the gate's FIFO is what is
				 * checked, not two threads' interleaving. */
				bool placed;

				pthread_mutex_lock(&order_lock);
				j->gate_seq =
				    atomic_fetch_add(&gate_arrivals, 1);
				placed = wd_gate_enter(&gate, &j->task);
				pthread_mutex_unlock(&order_lock);
				if (!placed)
					continue; /* parked: leave() submits it
					           */
			}
			if (last)
				last->next = &j->task;
			else
				first = &j->task;
			last = &j->task;
			k++;
		}
		if (first)
			wd_workers_submit(pool, first, last, k);
	}
	return NULL;
}

static void seen(void *what, size_t n, int64_t since_ms, void *arg)
{
	const struct job *j = what;

	(void)since_ms;
	(void)arg;
	/* The pointer is a job's, never freed while the pool runs. */
	if (!j->from || n != j->n)
		fail("the watch read a torn busy mark");
	atomic_fetch_add(&scans_seen, 1);
}

static void *watch(void *arg)
{
	(void)arg;
	while (atomic_load(&watching))
		wd_workers_scan(pool, &owner_tag, seen, NULL);
	return NULL;
}

int main(void)
{
	static struct submitter subs[SUBMITTERS];
	pthread_t watcher;
	char msg[160];

	wd_gate_init(&gate, GATE_LIMIT);
	pool = wd_workers_start(WORKERS);
	if (!pool)
		fail("wd_workers_start");
	if (pthread_create(&watcher, NULL, watch, NULL))
		fail("pthread_create (watcher)");
	for (int s = 0; s < SUBMITTERS; s++) {
		subs[s].jobs = calloc(PER_SUBMIT, sizeof(*subs[s].jobs));
		if (!subs[s].jobs)
			fail("out of memory");
		pthread_mutex_init(&subs[s].lock, NULL);
		subs[s].seed = (unsigned)s * 7919u + 1;
		if (pthread_create(&subs[s].thread, NULL, submit_all, &subs[s]))
			fail("pthread_create (submitter)");
	}
	for (int s = 0; s < SUBMITTERS; s++)
		pthread_join(subs[s].thread, NULL);
	/* The watch ends before the pool does, as warrend's (a scan reads
	 * the pool that wd_workers_stop frees). */
	atomic_store(&watching, false);
	pthread_join(watcher, NULL);
	/* Runs what is queued, parked tasks handed on included, then
	 * joins: everything has come back once it returns. */
	wd_workers_stop(pool);

	for (int s = 0; s < SUBMITTERS; s++) {
		if (subs[s].back != PER_SUBMIT) {
			snprintf(msg, sizeof(msg),
			         "submitter %d got %zu of %d tasks back", s,
			         subs[s].back, PER_SUBMIT);
			fail(msg);
		}
		for (size_t i = 0; i < PER_SUBMIT; i++)
			if (subs[s].jobs[i].runs != 1 ||
			    subs[s].jobs[i].finished != 1) {
				snprintf(msg, sizeof(msg),
				         "task %d/%zu ran %d times, came back "
				         "%d times",
				         s, i, subs[s].jobs[i].runs,
				         subs[s].jobs[i].finished);
				fail(msg);
			}
		pthread_mutex_destroy(&subs[s].lock);
		free(subs[s].jobs);
	}
	if (atomic_load(&gate_max) > GATE_LIMIT) {
		snprintf(msg, sizeof(msg),
		         "%d gated tasks ran at once (limit %d)",
		         atomic_load(&gate_max), GATE_LIMIT);
		fail(msg);
	}
	if (gate_out_of_order)
		fail("the gate handed a parked task on before an older one");
	int running;
	size_t parked;
	wd_gate_counts(&gate, &running, &parked);
	if (running != 0 || parked != 0)
		fail("the gate is not empty at the end");
	wd_gate_destroy(&gate);
	printf("tsan_workers: %d tasks from %d threads on %d workers, gate "
	       "max %d of %d, %ld busy marks read: ok\n",
	       SUBMITTERS * PER_SUBMIT, SUBMITTERS, WORKERS,
	       atomic_load(&gate_max), GATE_LIMIT, atomic_load(&scans_seen));
	return 0;
}
