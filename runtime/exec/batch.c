/* batch.c - batchers, their flush thread and the batch task. */
#define _GNU_SOURCE /* pthread_setname_np() */
#include "exec/batch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "exec/delivery.h"
#include "exec/dispatch.h"

struct batcher {
	const struct wd_route *route;
	struct wd_delivery **items;
	size_t n;
	int64_t first_ms; /* when items[0] arrived */
};

struct wd_batchers {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool draining, quit;
	struct wd_workers *workers;
	struct wd_gate *gates; /* by route index: the generation's */
	struct batcher *b;     /* one per route; route == NULL if not batched */
	size_t nb;
};

/* One handler call for a whole batch. */
struct batch_task {
	struct wd_task task; /* first: workers see only this */
	const struct wd_route *route;
	struct wd_delivery **items;
	size_t n;
	/* The route's gate if it has a limit (else NULL), and where the
	 * next parked batch goes once this one is over. */
	struct wd_gate *gate;
	struct wd_workers *workers;
};

/* The delivery whose parse env is. */
static struct wd_delivery *container_of_env(struct wd_envelope *env)
{
	return (struct wd_delivery *)((char *)env -
	                              offsetof(struct wd_delivery, parsed));
}

/* Move a batch's deliveries from one in-flight stage to another. */
static void restage(struct batch_task *bt, enum wd_inflight from,
                    enum wd_inflight to)
{
	for (size_t i = 0; i < bt->n; i++) {
		wd_delivery_leave(bt->items[i], from);
		wd_delivery_enter(bt->items[i], to);
	}
}

static void run_batch(struct wd_task *t)
{
	struct batch_task *bt = (struct batch_task *)t;
	struct wd_envelope **envs = calloc(bt->n, sizeof(*envs));
	struct wd_verdict **vs = calloc(bt->n, sizeof(*vs));
	size_t live = 0;

	for (size_t i = 0; i < bt->n; i++) {
		struct wd_delivery *d = bt->items[i];
		wd_delivery_leave(d, WD_INFLIGHT_WAITING_WORKER);
		/* Skip deliveries whose connection is gone (the broker
		 * redelivers them) and any that did not fit in memory. */
		if (!envs || !vs || !wd_delivery_live(d)) {
			wd_verdict_retry(&d->verdict, "");
			continue;
		}
		envs[live] = &d->parsed;
		vs[live] = &d->verdict;
		live++;
		wd_delivery_enter(d, WD_INFLIGHT_IN_HANDLER);
	}
	if (live > 0) {
		/* Watched by the first delivery's connection thread. */
		struct wd_delivery *first = container_of_env(envs[0]);
		wd_workers_busy(first->conn, first, live);
		wd_dispatch_run_batch(bt->route, envs, vs, live);
		wd_workers_idle();
	}
	/* Exactly those that entered: a connection may have gone meanwhile. */
	for (size_t i = 0; i < live; i++)
		wd_delivery_leave(container_of_env(envs[i]),
		                  WD_INFLIGHT_IN_HANDLER);
	free(envs);
	free(vs);
	if (bt->gate) {
		/* Its place goes to the oldest parked batch of the route. */
		struct wd_task *next = wd_gate_leave(bt->gate);
		if (next) {
			restage((struct batch_task *)next,
			        WD_INFLIGHT_WAITING_CONCURRENCY,
			        WD_INFLIGHT_WAITING_WORKER);
			wd_workers_submit(bt->workers, next, next, 1);
		}
	}
}

static void finish_batch(struct wd_task *t)
{
	struct batch_task *bt = (struct batch_task *)t;

	for (size_t i = 0; i < bt->n; i++)
		bt->items[i]->task.finish(&bt->items[i]->task);
	free(bt->items);
	free(bt);
}

/* Hand b's items to the workers. Called with the lock held. */
static void flush(struct wd_batchers *bs, struct batcher *b)
{
	struct batch_task *bt;

	if (b->n == 0)
		return;
	bt = calloc(1, sizeof(*bt));
	if (!bt) {
		/* Keep them: the next flush tries again. */
		wd_log_error("batch", "out of memory for a batch of %zu", b->n);
		return;
	}
	bt->task.run = run_batch;
	bt->task.finish = finish_batch;
	bt->route = b->route;
	bt->items = b->items;
	bt->n = b->n;
	bt->workers = bs->workers;
	b->items = NULL;
	b->n = 0;
	if (wd_gate_limited(&bs->gates[b->route->index])) {
		bt->gate = &bs->gates[b->route->index];
		/* Counted as parked before it is: a worker may take it out
		 * of the gate as soon as it is in. */
		restage(bt, WD_INFLIGHT_WAITING_WORKER,
		        WD_INFLIGHT_WAITING_CONCURRENCY);
		if (!wd_gate_enter(bt->gate, &bt->task))
			return; /* parked: a batch call of the route ends */
		restage(bt, WD_INFLIGHT_WAITING_CONCURRENCY,
		        WD_INFLIGHT_WAITING_WORKER);
	}
	wd_workers_submit(bs->workers, &bt->task, &bt->task, 1);
}

void wd_batchers_add(struct wd_batchers *bs, struct wd_delivery *d)
{
	struct batcher *b = &bs->b[d->verdict.route->index];
	size_t size = (size_t)d->verdict.route->policy->batch_size;

	pthread_mutex_lock(&bs->lock);
	if (!b->items) {
		b->items = calloc(size, sizeof(*b->items));
		if (!b->items) {
			pthread_mutex_unlock(&bs->lock);
			/* Not handled: it goes the retry way, never lost. */
			wd_delivery_leave(d, WD_INFLIGHT_WAITING_WORKER);
			wd_verdict_retry(&d->verdict,
			                 "out of memory for a batch");
			d->task.finish(&d->task);
			return;
		}
		b->first_ms = wd_now_ms();
		pthread_cond_signal(&bs->cond); /* a new deadline */
	}
	b->items[b->n++] = d;
	if (b->n >= size || bs->draining)
		flush(bs, b);
	pthread_mutex_unlock(&bs->lock);
}

static void *flusher(void *arg)
{
	struct wd_batchers *bs = arg;

	pthread_setname_np(pthread_self(), "wd-batch");
	pthread_mutex_lock(&bs->lock);
	while (!bs->quit) {
		int64_t now = wd_now_ms(), next = now + 1000;

		for (size_t i = 0; i < bs->nb; i++) {
			struct batcher *b = &bs->b[i];
			if (b->n == 0)
				continue;
			int64_t due =
			    b->first_ms + b->route->policy->batch_timeout_ms;
			if (due <= now || bs->draining)
				flush(bs, b);
			else if (due < next)
				next = due;
		}
		struct timespec ts = wd_wall_deadline(next - now);
		pthread_cond_timedwait(&bs->cond, &bs->lock, &ts);
	}
	pthread_mutex_unlock(&bs->lock);
	return NULL;
}

struct wd_batchers *wd_batchers_start(const struct wd_routes *routes,
                                      struct wd_gate *gates,
                                      struct wd_workers *workers)
{
	struct wd_batchers *bs = calloc(1, sizeof(*bs));

	if (!bs)
		return NULL;
	bs->workers = workers;
	bs->gates = gates;
	bs->nb = routes->nroutes;
	bs->b = calloc(bs->nb + 1, sizeof(*bs->b));
	if (!bs->b) {
		free(bs);
		return NULL;
	}
	for (size_t i = 0; i < bs->nb; i++)
		if (routes->routes[i].handle_batch)
			bs->b[i].route = &routes->routes[i];
	pthread_mutex_init(&bs->lock, NULL);
	pthread_cond_init(&bs->cond, NULL);
	if (pthread_create(&bs->thread, NULL, flusher, bs) != 0) {
		pthread_mutex_destroy(&bs->lock);
		pthread_cond_destroy(&bs->cond);
		free(bs->b);
		free(bs);
		return NULL;
	}
	return bs;
}

void wd_batchers_drain(struct wd_batchers *bs)
{
	pthread_mutex_lock(&bs->lock);
	bs->draining = true;
	for (size_t i = 0; i < bs->nb; i++)
		flush(bs, &bs->b[i]);
	pthread_mutex_unlock(&bs->lock);
}

void wd_batchers_stop(struct wd_batchers *bs)
{
	if (!bs)
		return;
	wd_batchers_drain(bs);
	pthread_mutex_lock(&bs->lock);
	bs->quit = true;
	pthread_cond_signal(&bs->cond);
	pthread_mutex_unlock(&bs->lock);
	pthread_join(bs->thread, NULL);
	pthread_mutex_destroy(&bs->lock);
	pthread_cond_destroy(&bs->cond);
	for (size_t i = 0; i < bs->nb; i++)
		free(bs->b[i].items);
	free(bs->b);
	free(bs);
}
