/* pool.c - start the slots, hand them generations, stop them. Which queues
 * a slot consumes is consumers.c's. */
#include "slot/pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"

struct wd_gen *wd_pool_gen(struct wd_pool *p)
{
	struct wd_gen *g;

	pthread_mutex_lock(&p->gen_lock);
	g = atomic_load(&p->gen);
	wd_gen_ref(g);
	pthread_mutex_unlock(&p->gen_lock);
	return g;
}

struct wd_gen *wd_pool_swap(struct wd_pool *p, struct wd_gen *g)
{
	struct wd_gen *old;

	if (wd_gen_start_batchers(g, p->workers) < 0)
		return NULL;
	pthread_mutex_lock(&p->gen_lock);
	old = atomic_load(&p->gen);
	atomic_store(&p->gen, g);
	pthread_mutex_unlock(&p->gen_lock);
	for (int i = 0; i < p->nconns; i++)
		wd_conn_wake(&p->conns[i]);
	/* Its batches go to the workers now, and anything added to them
	 * later (a connection that has not switched yet) at once. */
	if (old->batchers)
		wd_batchers_drain(old->batchers);
	return old;
}

struct wd_pool *wd_pool_start(struct wd_gen *g, char *err, size_t errlen)
{
	const struct wd_conf *conf = g->routes->conf;
	struct wd_pool *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		goto oom;
	p->nconns = conf->broker.pool_size;
	p->publish_timeout = conf->broker.publish_timeout;
	pthread_mutex_init(&p->gen_lock, NULL);
	if (wd_broker_init(&p->broker, &conf->broker, err, errlen) < 0) {
		pthread_mutex_destroy(&p->gen_lock);
		free(p);
		return NULL;
	}
	p->conns = calloc((size_t)p->nconns, sizeof(*p->conns));
	if (!p->conns)
		goto oom;
	for (int i = 0; i < p->nconns; i++)
		p->conns[i].wakefd = -1;
	for (int i = 0; i < p->nconns; i++) {
		struct wd_conn *c = &p->conns[i];
		c->id = i;
		c->pool = p;
		pthread_mutex_init(&c->lock, NULL);
		c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (c->wakefd < 0) {
			snprintf(err, errlen, "eventfd: %s", strerror(errno));
			goto fail;
		}
	}
	p->workers = wd_workers_start(conf->workers);
	if (!p->workers) {
		snprintf(err, errlen, "cannot start %d workers", conf->workers);
		goto fail;
	}
	if (wd_gen_start_batchers(g, p->workers) < 0) {
		snprintf(err, errlen, "cannot start the batch thread");
		goto fail;
	}
	atomic_store(&p->gen, g);
	/* Connect every slot before any thread runs, so that a wrong URL,
	 * password or topology stops the start with one clear error. */
	for (int i = 0; i < p->nconns; i++)
		if (wd_conn_open(&p->conns[i], err, errlen) < 0)
			goto fail_started;
	wd_log_info("pool", "%d connection(s) to %s, %d worker(s)", p->nconns,
	            p->broker.redacted, conf->workers);
	for (int i = 0; i < p->nconns; i++) {
		rc = pthread_create(&p->conns[i].thread, NULL, wd_conn_main,
		                    &p->conns[i]);
		if (rc != 0) {
			snprintf(err, errlen, "cannot start a connection "
			         "thread: %s", strerror(rc));
			wd_pool_stop(p, 1);
			wd_pool_join(p);
			goto fail_started;
		}
		p->conns[i].started = true;
	}
	return p;
oom:
	snprintf(err, errlen, "out of memory");
	goto fail;
fail_started:
	/* g stays the caller's: take back the reference given to the pool. */
	wd_gen_ref(g);
fail:
	wd_pool_free(p);
	return NULL;
}

void wd_pool_stop(struct wd_pool *p, int timeout_s)
{
	struct wd_gen *g = atomic_load(&p->gen);

	atomic_store(&p->stop_deadline_ms, wd_now_ms() + timeout_s * 1000LL);
	atomic_store(&p->stopping, true);
	/* Pending batches go to the workers now, not at their timeout. */
	if (g && g->batchers)
		wd_batchers_drain(g->batchers);
	for (int i = 0; i < p->nconns; i++)
		wd_conn_wake(&p->conns[i]);
}

int wd_pool_join(struct wd_pool *p)
{
	struct wd_gen *g = atomic_load(&p->gen);
	size_t left = 0;

	for (int i = 0; i < p->nconns; i++) {
		if (p->conns[i].started)
			pthread_join(p->conns[i].thread, NULL);
		p->conns[i].started = false;
		left += p->conns[i].abandoned;
	}
	if (left > 0)
		return -1; /* handlers still run: do not pull workers down */
	/* Batch threads submit to the workers: they go first. Those of
	 * retired generations are empty by now (everything is settled). */
	if (g) {
		wd_batchers_stop(g->batchers);
		g->batchers = NULL;
	}
	wd_workers_stop(p->workers);
	p->workers = NULL;
	return 0;
}

void wd_pool_free(struct wd_pool *p)
{
	struct wd_gen *g;

	if (!p)
		return;
	g = atomic_load(&p->gen);
	if (g && p->workers) {
		wd_batchers_stop(g->batchers);
		g->batchers = NULL;
	}
	if (p->workers)
		wd_workers_stop(p->workers);
	for (int i = 0; p->conns && i < p->nconns; i++) {
		struct wd_conn *c = &p->conns[i];
		wd_conn_free(c);
		if (c->wakefd >= 0)
			close(c->wakefd);
		pthread_mutex_destroy(&c->lock);
	}
	free(p->conns);
	if (g)
		wd_gen_unref(g);
	wd_broker_free(&p->broker);
	pthread_mutex_destroy(&p->gen_lock);
	free(p);
}
