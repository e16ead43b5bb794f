/* workers.c - a fixed pool of threads over one FIFO of tasks. */
#define _GNU_SOURCE /* pthread_setname_np() */
#include "exec/workers.h"

#include <pthread.h>
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

struct wd_workers {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct wd_task *head, *tail;
	size_t queued; /* tasks in the list */
	size_t idle;   /* threads waiting on `ready` */
	bool stopping;
	int n;
	atomic_int nstarted; /* hands each thread its busy slot */
	struct busy *busy;   /* one per thread */
	pthread_t threads[];
};

/* The calling worker's slot; NULL on any other thread. */
static _Thread_local struct busy *my_busy;

/* Open a write of b's fields; returns the sequence number to close it
 * with. The release fence keeps the field stores after the odd seq. */
static uint_fast64_t busy_begin(struct busy *b)
{
	uint_fast64_t s = atomic_load_explicit(&b->seq, memory_order_relaxed);

	atomic_store_explicit(&b->seq, s + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	return s + 2;
}

void wd_workers_busy(const void *owner, void *what, size_t n)
{
	struct busy *b = my_busy;
	uint_fast64_t end;

	if (!b)
		return;
	end = busy_begin(b);
	atomic_store_explicit(&b->owner, owner, memory_order_relaxed);
	atomic_store_explicit(&b->what, what, memory_order_relaxed);
	atomic_store_explicit(&b->n, n, memory_order_relaxed);
	atomic_store_explicit(&b->since_ms, wd_now_ms(), memory_order_relaxed);
	atomic_store_explicit(&b->seq, end, memory_order_release);
}

void wd_workers_idle(void)
{
	struct busy *b = my_busy;
	uint_fast64_t end;

	if (!b)
		return;
	end = busy_begin(b);
	atomic_store_explicit(&b->what, NULL, memory_order_relaxed);
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
		o = atomic_load_explicit(&b->owner, memory_order_relaxed);
		what = atomic_load_explicit(&b->what, memory_order_relaxed);
		n = atomic_load_explicit(&b->n, memory_order_relaxed);
		since =
		    atomic_load_explicit(&b->since_ms, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		s2 = atomic_load_explicit(&b->seq, memory_order_relaxed);
		if (s1 != s2 || !what || o != owner)
			continue;
		fn(what, n, since, arg);
	}
}

/* Most tasks one worker takes at once: enough to wake a task's owner once
 * per take, few enough that the other workers get their share. */
#define TAKE_MAX 16

static void *worker_main(void *arg)
{
	struct wd_workers *w = arg;
	struct wd_task *taken, *t, *next;
	size_t take;

	pthread_setname_np(pthread_self(), "wd-worker"); /* for top -H, gdb */
	my_busy = &w->busy[atomic_fetch_add(&w->nstarted, 1)];
	pthread_mutex_lock(&w->lock);
	for (;;) {
		while (!w->head && !w->stopping) {
			w->idle++;
			pthread_cond_wait(&w->ready, &w->lock);
			w->idle--;
		}
		if (!w->head)
			break; /* stopping and drained */
		take = w->queued / (size_t)w->n;
		take = take < 1 ? 1 : take > TAKE_MAX ? TAKE_MAX : take;
		taken = w->head;
		for (t = taken; --take > 0 && t->next;)
			t = t->next;
		w->head = t->next;
		t->next = NULL;
		if (!w->head)
			w->tail = NULL;
		for (t = taken; t; t = t->next)
			w->queued--;
		pthread_mutex_unlock(&w->lock);
		for (t = taken; t; t = t->next)
			t->run(t);
		for (t = taken; t; t = next) {
			next = t->next; /* finish hands t over */
			t->finish(t);
		}
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct wd_workers *wd_workers_start(int n)
{
	struct wd_workers *w =
	    calloc(1, sizeof(*w) + (size_t)n * sizeof(pthread_t));
	int rc;

	if (!w)
		return NULL;
	w->busy = aligned_alloc(_Alignof(struct busy),
	                        (size_t)(n > 0 ? n : 1) * sizeof(struct busy));
	if (!w->busy) {
		free(w);
		return NULL;
	}
	memset(w->busy, 0, (size_t)(n > 0 ? n : 1) * sizeof(struct busy));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->ready, NULL);
	for (int i = 0; i < n; i++) {
		rc = pthread_create(&w->threads[i], NULL, worker_main, w);
		if (rc != 0) {
			wd_log_error("workers", "cannot start worker %d: %s", i,
			             strerror(rc));
			w->n = i;
			wd_workers_stop(w);
			return NULL;
		}
	}
	w->n = n;
	return w;
}

void wd_workers_submit(struct wd_workers *w, struct wd_task *first,
                       struct wd_task *last, size_t n)
{
	size_t wake;

	last->next = NULL;
	pthread_mutex_lock(&w->lock);
	if (w->tail)
		w->tail->next = first;
	else
		w->head = first;
	w->tail = last;
	w->queued += n;
	/* Wake no more threads than there are tasks for. */
	wake = n < w->idle ? n : w->idle;
	if (wake > 1)
		pthread_cond_broadcast(&w->ready);
	else if (wake == 1)
		pthread_cond_signal(&w->ready);
	pthread_mutex_unlock(&w->lock);
}

void wd_workers_stop(struct wd_workers *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->ready);
	pthread_mutex_unlock(&w->lock);
	for (int i = 0; i < w->n; i++)
		pthread_join(w->threads[i], NULL);
	pthread_cond_destroy(&w->ready);
	pthread_mutex_destroy(&w->lock);
	free(w->busy);
	free(w);
}
