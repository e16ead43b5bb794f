/* workers.c - a fixed pool of threads over one FIFO of tasks. */
#define _GNU_SOURCE /* pthread_setname_np() */
#include "exec/workers.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

/* One worker's busy mark (wd_workers_busy), a seqlock: its worker writes
 * it, any thread reads it. seq is odd while a write is under way. A cache
 * line each, so that one worker's marks do not slow another's. */
struct busy {
	_Alignas(64) atomic_uint_fast64_t seq;
	_Atomic(const void *) owner;
	_Atomic(void *) what; /* NULL: idle */
	atomic_size_t n;
	_Atomic int64_t since_ms;
};

/*
 * How many threads a submit wakes, and how many tasks one takes.
 *
 * Waking a thread costs two context switches, some 5-10 us here, more
 * than a no-op handler takes. Waking every idle thread per submit, each to
 * take a share, made the worker path cost twice the CPU of a non-blocking
 * handler. So the pool keeps one estimate, cost_ns, the mean run time of
 * a task (an EWMA over takes), and
 *  - a thread takes about TAKE_US of work at once (at least 1 task, at
 *    most TAKE_MAX): many no-op tasks, or one 5 ms task;
 *  - a submit wakes as many threads as the queued work needs at TAKE_US
 *    each, less those woken already that have not taken yet; one at least
 *    when none is on its way. A thread that takes and leaves work queued
 *    does the same, so wake-ups chain while the work needs them. A
 *    running thread is not counted on: its handler may block;
 *  - a thread whose take runs past 2 x TAKE_US (the handler got slower
 *    than the estimate) puts the tasks it has not started back at the
 *    head of the queue and wakes threads for them, so that a change of
 *    pace cannot leave tasks queued behind one slow thread.
 * The estimate starts at TAKE_US: one task per take until measured. A
 * task waits behind others of its take for TAKE_US on the estimate, at
 * most 2 x TAKE_US plus one task's run in fact.
 *
 * Each thread sleeps on a semaphore of its own, and an idle one waits on
 * a stack: a submit pops the threads it wakes under the lock and posts
 * them after it (a condition variable's signal under the lock had the
 * woken thread block again on the mutex), and the most recently idle
 * thread, whose cache is warm, goes first.
 */
#define TAKE_US  200
#define TAKE_MAX 64
/* Most threads one call wakes; the woken ones chain the rest. */
#define WAKE_MAX 16

struct worker {
	sem_t wake;
	pthread_t thread;
};

struct wd_workers {
	pthread_mutex_t lock;
	struct wd_task *head, *tail;
	size_t queued; /* tasks in the list */
	int *idle;     /* stack of idle threads' indexes, nidle of them */
	int nidle;
	int woken;       /* popped off the stack, not back under the lock */
	int64_t cost_ns; /* estimated run time of one task */
	bool stopping;
	int n;
	atomic_int nstarted; /* hands each thread its index */
	struct busy *busy;   /* one per thread */
	struct worker *threads;
};

/* Threads popped to be woken once the lock is let go: wake_post(). */
struct wakes {
	int n;
	int who[WAKE_MAX];
};

/* The calling worker's slot; NULL on any other thread. */
static _Thread_local struct busy *my_busy;

/* Open a write of b's fields; returns the sequence number to close it
 * with. No fence (ThreadSanitizer does not model fences): the fields are
 * stored with release after the odd seq, so a reader whose acquire load
 * sees a new field sees the odd seq, or a later one, when it reads seq
 * again (wd_workers_scan). On x86 both are plain moves. */
static uint_fast64_t busy_begin(struct busy *b)
{
	uint_fast64_t s = atomic_load_explicit(&b->seq, memory_order_relaxed);

	atomic_store_explicit(&b->seq, s + 1, memory_order_relaxed);
	return s + 2;
}

void wd_workers_busy(const void *owner, void *what, size_t n)
{
	struct busy *b = my_busy;
	uint_fast64_t end;

	if (!b)
		return;
	end = busy_begin(b);
	atomic_store_explicit(&b->owner, owner, memory_order_release);
	atomic_store_explicit(&b->what, what, memory_order_release);
	atomic_store_explicit(&b->n, n, memory_order_release);
	atomic_store_explicit(&b->since_ms, wd_now_ms(), memory_order_release);
	atomic_store_explicit(&b->seq, end, memory_order_release);
}

void wd_workers_idle(void)
{
	struct busy *b = my_busy;
	uint_fast64_t end;

	if (!b)
		return;
	end = busy_begin(b);
	atomic_store_explicit(&b->what, NULL, memory_order_release);
	atomic_store_explicit(&b->seq, end, memory_order_release);
}

void wd_workers_scan(struct wd_workers *w, const void *owner,
                     void (*fn)(void *what, size_t n, int64_t since_ms,
                                void *arg),
                     void *arg)
{
	for (int i = 0; i < w->n; i++) {
		struct busy *b = &w->busy[i];
		uint_fast64_t s1, s2;
		const void *o;
		void *what;
		size_t n;
		int64_t since;

		s1 = atomic_load_explicit(&b->seq, memory_order_acquire);
		if (s1 & 1)
			continue; /* being written: a new mark, seen next time
			           */
		o = atomic_load_explicit(&b->owner, memory_order_acquire);
		what = atomic_load_explicit(&b->what, memory_order_acquire);
		n = atomic_load_explicit(&b->n, memory_order_acquire);
		since =
		    atomic_load_explicit(&b->since_ms, memory_order_acquire);
		s2 = atomic_load_explicit(&b->seq, memory_order_relaxed);
		if (s1 != s2 || !what || o != owner)
			continue;
		fn(what, n, since, arg);
	}
}

/* Tasks one take runs: TAKE_US of work on the estimate, 1..TAKE_MAX. */
static size_t take_size(const struct wd_workers *w)
{
	int64_t k = (int64_t)TAKE_US * 1000 / w->cost_ns;

	return k < 1 ? 1 : k > TAKE_MAX ? TAKE_MAX : (size_t)k;
}

/* Pop the idle threads that the queue needs (see TAKE_US) into *k, to
 * be posted by wake_post() after the lock is let go. Under the lock. */
static void wake_for_queue(struct wd_workers *w, struct wakes *k)
{
	int64_t work_ns = (int64_t)w->queued * w->cost_ns;
	int64_t want = (work_ns + TAKE_US * 1000 - 1) / (TAKE_US * 1000);

	k->n = 0;
	if (w->queued == 0)
		return;
	if (want < 1)
		want = 1;
	if (want > (int64_t)w->queued)
		want = (int64_t)w->queued;
	want -= w->woken;
	while (want-- > 0 && w->nidle > 0 && k->n < WAKE_MAX) {
		k->who[k->n++] = w->idle[--w->nidle];
		w->woken++;
	}
}

static void wake_post(struct wd_workers *w, const struct wakes *k)
{
	for (int i = 0; i < k->n; i++)
		sem_post(&w->threads[k->who[i]].wake);
}

/* Sleep until popped and posted. Under the lock, which it lets go while
 * it sleeps. */
static void sleep_idle(struct wd_workers *w, int me)
{
	w->idle[w->nidle++] = me;
	pthread_mutex_unlock(&w->lock);
	while (sem_wait(&w->threads[me].wake) < 0 && errno == EINTR)
		;
	pthread_mutex_lock(&w->lock);
	w->woken--;
}

/* Detach up to `max` tasks from the head of the queue. Under the lock. */
static struct wd_task *take(struct wd_workers *w, size_t max, size_t *n)
{
	struct wd_task *first = w->head, *t = first;

	*n = 1;
	while (*n < max && t->next) {
		t = t->next;
		++*n;
	}
	w->head = t->next;
	t->next = NULL;
	if (!w->head)
		w->tail = NULL;
	w->queued -= *n;
	return first;
}

/* Put the chain first.. (n tasks) back at the head of the queue. */
static void give_back(struct wd_workers *w, struct wd_task *first, size_t n)
{
	struct wd_task *last = first;

	while (last->next)
		last = last->next;
	last->next = w->head;
	if (!w->head)
		w->tail = last;
	w->head = first;
	w->queued += n;
}

/* Fold one take's measure into the estimate (weight 1/8). */
static void learn_cost(struct wd_workers *w, int64_t elapsed_us, size_t ran)
{
	int64_t per_ns = elapsed_us * 1000 / (int64_t)ran;

	w->cost_ns += (per_ns - w->cost_ns) / 8;
	if (w->cost_ns < 1)
		w->cost_ns = 1;
}

/* Run the chain `taken`, then finish the ones run. Past
 * 2 x TAKE_US, the ones not started are left in *rest. Returns how many
 * ran; *elapsed_us is the time they took. */
static size_t run_take(struct wd_task *taken, struct wd_task **rest,
                       int64_t *elapsed_us)
{
	int64_t start_us = wd_now_us();
	struct wd_task *t, *next;
	size_t ran = 0;

	*rest = NULL;
	for (t = taken; t; t = t->next) {
		t->run(t);
		ran++;
		if (t->next && wd_now_us() - start_us > 2 * TAKE_US) {
			*rest = t->next;
			t->next = NULL;
			break;
		}
	}
	*elapsed_us = wd_now_us() - start_us;
	for (t = taken; t; t = next) {
		next = t->next; /* finish hands t over */
		t->finish(t);
	}
	return ran;
}

static void *worker_main(void *arg)
{
	struct wd_workers *w = arg;
	struct wd_task *taken, *rest;
	struct wakes k;
	size_t ntaken, ran;
	int64_t elapsed_us;
	int me;

	pthread_setname_np(pthread_self(), "wd-worker"); /* for top -H, gdb */
	me = atomic_fetch_add(&w->nstarted, 1);
	my_busy = &w->busy[me];
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stopping)
			sleep_idle(w, me);
		if (!w->head)
			break; /* stopping and drained */
		taken = take(w, take_size(w), &ntaken);
		wake_for_queue(w, &k); /* for what this take left */
		pthread_mutex_unlock(&w->lock);
		wake_post(w, &k);
		ran = run_take(taken, &rest, &elapsed_us);
		pthread_mutex_lock(&w->lock);
		learn_cost(w, elapsed_us, ran);
		if (rest) {
			give_back(w, rest, ntaken - ran);
			wake_for_queue(w, &k);
			pthread_mutex_unlock(&w->lock);
			wake_post(w, &k);
			pthread_mutex_lock(&w->lock);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct wd_workers *wd_workers_start(int n)
{
	size_t slots = (size_t)(n > 0 ? n : 1);
	struct wd_workers *w = calloc(1, sizeof(*w));
	int rc;

	if (!w)
		return NULL;
	w->cost_ns = TAKE_US * 1000;
	w->idle = calloc(slots, sizeof(*w->idle));
	w->threads = calloc(slots, sizeof(*w->threads));
	w->busy =
	    aligned_alloc(_Alignof(struct busy), slots * sizeof(struct busy));
	if (!w->idle || !w->threads || !w->busy) {
		free(w->idle);
		free(w->threads);
		free(w->busy);
		free(w);
		return NULL;
	}
	memset(w->busy, 0, slots * sizeof(struct busy));
	pthread_mutex_init(&w->lock, NULL);
	for (int i = 0; i < n; i++)
		sem_init(&w->threads[i].wake, 0, 0);
	w->n = n; /* before any thread reads it */
	for (int i = 0; i < n; i++) {
		rc =
		    pthread_create(&w->threads[i].thread, NULL, worker_main, w);
		if (rc != 0) {
			wd_log_error("workers", "cannot start worker %d: %s", i,
			             strerror(rc));
			pthread_mutex_lock(&w->lock);
			w->n = i; /* the threads to join */
			pthread_mutex_unlock(&w->lock);
			wd_workers_stop(w);
			return NULL;
		}
	}
	return w;
}

void wd_workers_submit(struct wd_workers *w, struct wd_task *first,
                       struct wd_task *last, size_t n)
{
	struct wakes k;

	last->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = first;
	else
		w->head = first;
	w->tail = last;
	w->queued += n;
	wake_for_queue(w, &k);
	pthread_mutex_unlock(&w->lock);
	wake_post(w, &k);
}

void wd_workers_stop(struct wd_workers *w)
{
	int n;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	n = w->n;
	/* Every idle thread, to see `stopping`; busy ones see it after. */
	while (w->nidle > 0) {
		sem_post(&w->threads[w->idle[--w->nidle]].wake);
		w->woken++;
	}
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < n; i++)
		pthread_join(w->threads[i].thread, NULL);
	for (int i = 0; i < n; i++)
		sem_destroy(&w->threads[i].wake);
	pthread_mutex_destroy(&w->lock);
	free(w->idle);
	free(w->threads);
	free(w->busy);
	free(w);
}
