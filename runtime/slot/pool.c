/* pool.c - start the slots, hand them generations, stop them. What a slot
 * does is conn.c's; which queues it consumes, consumers.c's. */
#include "slot/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"

struct wd_gen *wd_pool_swap(struct wd_pool *p, struct wd_gen *g)
{
	struct wd_gen *old;

	if (wd_gen_start_batchers(g, p->workers) < 0)
		return NULL;
	old = wd_gen_slot_swap(&p->current, g);
	for (int i = 0; i < p->nconns; i++)
		wd_conn_wake(&p->conns[i]);
	/* Its batches go to the workers now, and anything added to them
	 * later (a connection that has not switched yet) at once. */
	wd_gen_drain(old);
	return old;
}

struct wd_pool *wd_pool_start(struct wd_gen *g, char *err, size_t errlen,
                              bool *outage)
{
	bool ignore;
	const struct wd_conf *conf = g->routes->conf;
	struct wd_pool *p = calloc(1, sizeof(*p));
	int rc;

	if (!outage)
		outage = &ignore;
	*outage = false;
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* The slot holds no generation until every part has started: a
	 * failed start leaves g the caller's. */
	wd_gen_slot_init(&p->current, NULL);
	p->nconns = conf->broker.pool_size;
	p->env = (struct wd_slot_env){
	    .series = wd_series_slots_new(),
	    .broker = &p->broker,
	    .current = &p->current,
	    .publish_timeout = conf->broker.publish_timeout,
	    .nslots = p->nconns,
	    .stopping = &p->stopping,
	    .stop_deadline_ms = &p->stop_deadline_ms,
	};
	if (!p->env.series) {
		snprintf(err, errlen, "out of memory");
		wd_gen_slot_destroy(&p->current);
		free(p);
		return NULL;
	}
	if (wd_broker_init(&p->broker, &conf->broker, err, errlen) < 0) {
		wd_gen_slot_destroy(&p->current);
		wd_series_slots_free(p->env.series);
		free(p);
		return NULL;
	}
	p->conns = calloc((size_t)p->nconns, sizeof(*p->conns));
	p->nodes = calloc(p->broker.naddrs, sizeof(*p->nodes));
	if (!p->conns || !p->nodes) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < p->broker.naddrs; i++)
		p->nodes[i] = p->broker.addrs[i].node;
	for (int i = 0; i < p->nconns; i++)
		p->conns[i].wakefd = -1; /* not initialised yet */
	for (int i = 0; i < p->nconns; i++)
		if (wd_conn_init(&p->conns[i], i, &p->env, err, errlen) < 0)
			goto fail;
	p->workers = wd_workers_start(conf->workers);
	if (!p->workers) {
		snprintf(err, errlen, "cannot start %d workers", conf->workers);
		goto fail;
	}
	p->env.workers = p->workers;
	if (wd_gen_start_batchers(g, p->workers) < 0) {
		snprintf(err, errlen, "cannot start the batch thread");
		goto fail;
	}
	wd_gen_slot_swap(&p->current, g); /* was empty */
	/* Connect every slot before any thread runs, so that a wrong URL,
	 * password or topology stops the start with one clear error. The
	 * first also checks the exchanges the plugins publish follow-ups
	 * to, before it consumes: a missing one stops the start before any
	 * handler's side effect runs for a message it cannot finish (not
	 * on a reconnect: an exchange deleted under a running daemon fails
	 * the follow-ups, and their inputs are retried, as before). */
	p->conns[0].check_targets = true;
	for (int i = 0; i < p->nconns; i++)
		if (wd_conn_open(&p->conns[i], err, errlen) < 0) {
			*outage = p->conns[i].open_outage;
			goto fail_started;
		}
	p->conns[0].check_targets = false;
	wd_log_info("pool",
	            "%d connection(s) over %zu address(es), %d "
	            "worker(s)",
	            p->nconns, p->broker.naddrs, conf->workers);
	for (int i = 0; i < p->nconns; i++) {
		rc = pthread_create(&p->conns[i].thread, NULL, wd_conn_main,
		                    &p->conns[i]);
		if (rc != 0) {
			snprintf(err, errlen,
			         "cannot start a connection "
			         "thread: %s",
			         strerror(rc));
			wd_pool_stop(p, 1);
			wd_pool_join(p);
			goto fail_started;
		}
		p->conns[i].started = true;
	}
	wd_series_slots_publish(p->env.series, p->nconns,
	                        (const char *const *)p->nodes,
	                        (int)p->broker.naddrs);
	return p;
fail_started:
	/* g stays the caller's: take back the reference given to the pool. */
	wd_gen_ref(g);
fail:
	wd_pool_free(p);
	return NULL;
}

void wd_pool_stop(struct wd_pool *p, int timeout_s)
{
	atomic_store(&p->stop_deadline_ms, wd_now_ms() + timeout_s * 1000LL);
	atomic_store(&p->stopping, true);
	/* Pending batches go to the workers now, not at their timeout. */
	wd_gen_drain(wd_gen_slot_peek(&p->current));
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
	/* Batch threads submit to the workers: they go first. Those of
	 * retired generations are empty by now (everything is settled). */
	wd_gen_stop_batchers(wd_gen_slot_peek(&p->current));
	wd_workers_stop(p->workers);
	p->workers = NULL;
	return 0;
}

void wd_pool_free(struct wd_pool *p)
{
	if (!p)
		return;
	if (p->workers) {
		wd_gen_stop_batchers(wd_gen_slot_peek(&p->current));
		wd_workers_stop(p->workers);
	}
	for (int i = 0; p->conns && i < p->nconns; i++)
		if (p->conns[i].wakefd >= 0)
			wd_conn_free(&p->conns[i]);
	free(p->conns);
	wd_gen_slot_destroy(&p->current);
	/* No longer served, then the node names it shows can go. */
	wd_series_slots_free(p->env.series); /* its threads are joined */
	free(p->nodes);
	wd_broker_free(&p->broker);
	free(p);
}
