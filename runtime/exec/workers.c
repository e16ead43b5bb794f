/* workers.c - a fixed pool of threads over one FIFO of tasks. */
#define _GNU_SOURCE /* pthread_setname_np() */
#include "exec/workers.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

struct wd_workers {
	pthread_mutex_t lock;
	pthread_cond_t ready;
	struct wd_task *head, *tail;
	size_t queued; /* tasks in the list */
	size_t idle;   /* threads waiting on `ready` */
	bool stopping;
	int n;
	pthread_t threads[];
};

/* Most tasks one worker takes at once: enough to wake a task's owner once
 * per take, few enough that the other workers get their share. */
#define TAKE_MAX 16

static void *worker_main(void *arg)
{
	struct wd_workers *w = arg;
	struct wd_task *taken, *t, *next;
	size_t take;

	pthread_setname_np(pthread_self(), "wd-worker"); /* for top -H, gdb */
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
	free(w);
}
