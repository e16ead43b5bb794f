/* pool.c - start the slots, spread the consumers over them, stop them. */
#include "pool.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int64_t wd_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Acks coalesced per frame: ack_batch, but at most half the prefetch
 * window, so the broker always has credit to send the next deliveries
 * while the first half's acks are on their way (waiting for a full
 * window would stall the consumer until the time bound). */
static int ack_batch(const struct wd_conf *conf, const struct wd_conf_queue *q)
{
	int half = q->prefetch / 2 > 0 ? q->prefetch / 2 : 1;
	return conf->broker.ack_batch < half ? conf->broker.ack_batch : half;
}

/* Queue q is consumed on `consumers` slots, starting at slot q so that
 * queues with fewer consumers than slots land on different slots. The
 * first channels of a slot are for publishing (connection.h). */
static int assign_consumers(struct wd_pool *p)
{
	const struct wd_conf *conf = p->routes->conf;

	for (size_t q = 0; q < conf->nqueues; q++) {
		if (!conf->queues[q].consumed)
			continue;
		for (int k = 0; k < conf->queues[q].consumers; k++) {
			struct wd_conn *c = &p->conns[(q + (size_t)k) %
			                              (size_t)p->nconns];
			struct wd_consumer *cs = realloc(
			    c->consumers, (c->nconsumers + 1) * sizeof(*cs));
			if (!cs)
				return -1;
			c->consumers = cs;
			memset(&cs[c->nconsumers], 0, sizeof(*cs));
			cs[c->nconsumers].queue = q;
			cs[c->nconsumers].channel = (amqp_channel_t)(
			    c->nconsumers + WD_CHANNEL_FIRST_CONSUMER);
			wd_acks_init(&cs[c->nconsumers].acks,
			             ack_batch(conf, &conf->queues[q]),
			             conf->broker.ack_delay_ms);
			c->nconsumers++;
		}
	}
	return 0;
}

struct wd_pool *wd_pool_start(const struct wd_routes *routes, char *err,
                              size_t errlen)
{
	const struct wd_conf *conf = routes->conf;
	struct wd_pool *p = calloc(1, sizeof(*p));
	int rc;

	if (!p)
		goto oom;
	p->routes = routes;
	p->nconns = conf->broker.pool_size;
	if (wd_broker_init(&p->broker, &conf->broker, err, errlen) < 0) {
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
	if (assign_consumers(p) < 0)
		goto oom;
	p->workers = wd_workers_start(conf->workers);
	if (!p->workers) {
		snprintf(err, errlen, "cannot start %d workers", conf->workers);
		goto fail;
	}
	p->batchers = wd_batchers_start(routes, p->workers);
	if (!p->batchers) {
		snprintf(err, errlen, "cannot start the batch thread");
		goto fail;
	}
	/* Connect every slot before any thread runs, so that a wrong URL,
	 * password or topology stops the start with one clear error. */
	for (int i = 0; i < p->nconns; i++)
		if (wd_conn_open(&p->conns[i], err, errlen) < 0)
			goto fail;
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
			wd_pool_free(p);
			return NULL;
		}
		p->conns[i].started = true;
	}
	return p;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	wd_pool_free(p);
	return NULL;
}

void wd_pool_stop(struct wd_pool *p, int timeout_s)
{
	atomic_store(&p->stop_deadline_ms, wd_now_ms() + timeout_s * 1000LL);
	atomic_store(&p->stopping, true);
	/* Pending batches go to the workers now, not at their timeout. */
	if (p->batchers)
		wd_batchers_drain(p->batchers);
	for (int i = 0; i < p->nconns; i++)
		wd_conn_wake(&p->conns[i]);
}

int wd_pool_join(struct wd_pool *p)
{
	size_t left = 0;

	for (int i = 0; i < p->nconns; i++) {
		if (p->conns[i].started)
			pthread_join(p->conns[i].thread, NULL);
		p->conns[i].started = false;
		left += p->conns[i].abandoned;
	}
	if (left > 0)
		return -1; /* handlers still run: do not pull workers down */
	wd_batchers_stop(p->batchers);
	p->batchers = NULL;
	wd_workers_stop(p->workers);
	p->workers = NULL;
	return 0;
}

void wd_pool_free(struct wd_pool *p)
{
	if (!p)
		return;
	wd_batchers_stop(p->batchers);
	if (p->workers)
		wd_workers_stop(p->workers);
	for (int i = 0; p->conns && i < p->nconns; i++) {
		struct wd_conn *c = &p->conns[i];
		wd_conn_free(c);
		if (c->wakefd >= 0)
			close(c->wakefd);
		pthread_mutex_destroy(&c->lock);
		free(c->consumers);
	}
	free(p->conns);
	wd_broker_free(&p->broker);
	free(p);
}
