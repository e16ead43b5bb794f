/* delivery.c - what a delivery's log lines name, its in-flight gauges,
 * and the watch on handler calls that run too long. */
#include "exec/delivery.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/metrics.h"
#include "exec/generation.h"

void wd_delivery_subject(const struct wd_delivery *d, int slot,
                         struct wd_log_subject *s)
{
	const amqp_basic_properties_t *p = &d->env.message.properties;
	bool has_id = p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG;

	/* Pointers only: this runs three times per message. */
	*s = (struct wd_log_subject){
	    .queue =
	        d->gen ? d->gen->routes->conf->queues[d->queue].name : NULL,
	    .route = d->verdict.route ? d->verdict.route->type : NULL,
	    .slot = slot,
	    .tag = (unsigned long long)d->env.delivery_tag,
	    .message_id = has_id ? (const char *)p->message_id.bytes : NULL,
	    .message_id_len = has_id ? (int)p->message_id.len : 0,
	};
}

static _Atomic int64_t *gauge(const struct wd_delivery *d,
                              enum wd_inflight stage)
{
	return &d->gen->routes->queue_series[d->queue]->inflight[stage];
}

void wd_delivery_enter(const struct wd_delivery *d, enum wd_inflight stage)
{
	atomic_fetch_add_explicit(gauge(d, stage), 1, memory_order_relaxed);
}

void wd_delivery_leave(const struct wd_delivery *d, enum wd_inflight stage)
{
	atomic_fetch_sub_explicit(gauge(d, stage), 1, memory_order_relaxed);
}

struct watch {
	int slot;
	int64_t now_ms;
};

/* One busy worker's delivery d: warn if its call is due a warning. */
static void watch_one(void *what, size_t n, int64_t since_ms, void *arg)
{
	const struct watch *w = arg;
	struct wd_delivery *d = what;
	const struct wd_route *r = d->verdict.route;
	int64_t age = w->now_ms - since_ms, due;
	long limit = r ? r->policy->handler_warn_ms : 0;
	struct wd_log_subject about;
	char batch[64] = "";

	if (limit <= 0)
		return;
	due = d->warn_due_ms ? d->warn_due_ms : limit;
	if (age < due)
		return;
	if (!d->warn_due_ms) {
		wd_count(r->series->handler_timeout_warnings);
		wd_metric_inc(handler_timeout_warnings);
	}
	/* Then each time the call's age doubles: a stuck handler stays in
	 * the log, a few lines an hour at most. */
	while (due <= age)
		due *= 2;
	d->warn_due_ms = due;
	if (n > 1)
		snprintf(batch, sizeof(batch),
		         " (a batch of %zu: this is its first message)", n);
	wd_delivery_subject(d, w->slot, &about);
	wd_log_about(&about);
	wd_log_warnx("dispatch",
	             WD_ROUTE_FMT
	             ": a handler call has run for %.1f s%s, past its "
	             "handler_timeout_warn of %ld s; past the broker's "
	             "consumer_timeout (30 min by default) the message is "
	             "redelivered while this call still runs (next warning "
	             "at %" PRId64 " s)",
	             WD_ROUTE_ARGS(r), (double)age / 1000, batch, limit / 1000,
	             due / 1000);
	wd_log_about(NULL);
}

void wd_delivery_watch(struct wd_workers *w, const void *owner, int slot,
                       int64_t now_ms)
{
	struct watch arg = {.slot = slot, .now_ms = now_ms};

	wd_workers_scan(w, owner, watch_one, &arg);
}
