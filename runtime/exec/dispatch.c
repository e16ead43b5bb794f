/* dispatch.c - size check, parse once, route by type, call the handler,
 * judge the outcome. */
#include "exec/dispatch.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "message/limits.h"
#include "message/policy.h"

static const char AREA[] = "dispatch";

/* Printable (and bounded) routing key for log lines. */
#define RK_FMT "%.*s"
#define RK_ARG(a)                                                              \
	(int)((a)->routing_key.len > 128 ? 128 : (a)->routing_key.len),        \
	    (const char *)(a)->routing_key.bytes

/* A delivery no handler will see: dead-letter it, or drop it if the
 * queue's policy says so. */
static int refuse(struct wd_verdict *v, enum wd_bad_input policy,
                  const char *reason, const struct wd_conf_queue *q,
                  const amqp_envelope_t *amqp, const char *text)
{
	bool drop = policy == WD_BAD_DROP;

	v->action = drop ? WD_ACTION_DROP : WD_ACTION_DEAD_LETTER;
	v->reason = reason;
	snprintf(v->text, sizeof(v->text), "%s", text);
	wd_log_warnx(AREA,
	             "queue \"%s\" tag %ju rk \"" RK_FMT "\": %s: %s "
	             "as %s",
	             q->name, (uintmax_t)amqp->delivery_tag, RK_ARG(amqp), text,
	             drop ? "dropped" : "dead-lettered", reason);
	return -1;
}

int wd_dispatch_parse(const struct wd_routes *routes, size_t queue,
                      const amqp_envelope_t *amqp, struct wd_envelope *env,
                      struct wd_verdict *v)
{
	const struct wd_conf_queue *q = &routes->conf->queues[queue];
	char text[WD_REASON_MAX];

	wd_verdict_init(v);
	wd_metric_inc(received);
	wd_count(routes->queue_series[queue]->received);
	/* First, before anything walks them (the attempt count of any
	 * refusal, a handler). */
	if (wd_limits_headers(
	        &q->limits,
	        (amqp->message.properties._flags & AMQP_BASIC_HEADERS_FLAG)
	            ? &amqp->message.properties.headers
	            : NULL,
	        text, sizeof(text)) < 0) {
		memset(env, 0, sizeof(*env));
		env->attempts.attempt = 1;
		wd_metric_inc(too_large);
		/* Its copy carries warren's headers only: the delivery's own
		 * again could be past what the broker takes (frame_max). */
		v->drop_headers = true;
		return refuse(v, q->on_too_large, WD_R_TOO_LARGE, q, amqp,
		              text);
	}
	/* Checked before the parse: a huge body costs nothing more here. */
	if (amqp->message.body.len > (size_t)q->max_body_size) {
		memset(env, 0, sizeof(*env));
		/* Its dead-letter copy still says how often it was tried. */
		wd_policy_attempts(amqp, q->name, &env->attempts);
		wd_metric_inc(too_large);
		snprintf(text, sizeof(text),
		         "body of %zu bytes is over "
		         "max_body_size (%ld)",
		         amqp->message.body.len, q->max_body_size);
		return refuse(v, q->on_too_large, WD_R_TOO_LARGE, q, amqp,
		              text);
	}
	if (wd_envelope_parse(env, amqp, q->name, q->type_from, q->type_field,
	                      &q->limits) < 0) {
		if (env->too_large) {
			wd_metric_inc(too_large);
			return refuse(v, q->on_too_large, WD_R_TOO_LARGE, q,
			              amqp, env->reason);
		}
		wd_metric_inc(unparseable);
		return refuse(v, q->on_unparseable,
		              env->bad_type ? WD_R_BAD_TYPE : WD_R_UNPARSEABLE,
		              q, amqp, env->reason);
	}
	if (env->attempts.header_bad)
		wd_log_warnx(AREA,
		             "queue \"%s\" tag %ju: header " WD_H_ATTEMPTS
		             " is not a count: using x-death (%d earlier "
		             "attempts)",
		             q->name, (uintmax_t)amqp->delivery_tag,
		             env->attempts.from_xdeath);
	v->route = wd_routes_find(routes, queue, env->msg.type);
	if (!v->route) {
		wd_metric_inc(unknown_type);
		snprintf(text, sizeof(text),
		         "no route for type \"%.*s\" on "
		         "this queue",
		         (int)env->msg.type.len, env->msg.type.ptr);
		return refuse(v, q->on_unknown_type, WD_R_UNKNOWN_TYPE, q, amqp,
		              text);
	}
	return 0;
}

/* Judge one outcome. */
static void judge(struct wd_verdict *v, const struct wd_envelope *env,
                  warren_outcome out)
{
	const struct wd_route *r = v->route;
	const amqp_envelope_t *amqp = env->amqp;

	switch (out) {
	case WARREN_ACK:
		wd_count(r->series->handled[WD_OUTCOME_ACK]);
		v->action = WD_ACTION_ACK;
		return;
	case WARREN_RETRY:
		wd_count(r->series->handled[WD_OUTCOME_RETRY]);
		wd_metric_inc(retried);
		v->action = WD_ACTION_RETRY;
		v->reason = WD_R_HANDLER_RETRY;
		wd_log_info(AREA, WD_ROUTE_FMT " tag %ju attempt %d: retry%s%s",
		            WD_ROUTE_ARGS(r), (uintmax_t)amqp->delivery_tag,
		            env->attempts.attempt, v->text[0] ? ": " : "",
		            v->text);
		break;
	case WARREN_REJECT:
		wd_count(r->series->handled[WD_OUTCOME_REJECT]);
		wd_metric_inc(rejected);
		v->action = WD_ACTION_DEAD_LETTER;
		v->reason = WD_R_HANDLER_REJECT;
		if (!v->text[0])
			snprintf(v->text, sizeof(v->text), "no reason given");
		wd_log_warnx(AREA, WD_ROUTE_FMT " tag %ju: rejected: %s",
		             WD_ROUTE_ARGS(r), (uintmax_t)amqp->delivery_tag,
		             v->text);
		break;
	default:
		wd_count(r->series->handled[WD_OUTCOME_INVALID]);
		wd_metric_inc(invalid_outcome);
		v->action = WD_ACTION_DEAD_LETTER;
		v->reason = WD_R_INVALID_OUTCOME;
		snprintf(v->text, sizeof(v->text), "the handler returned %d",
		         (int)out);
		wd_log_error(AREA, WD_ROUTE_FMT " tag %ju: invalid outcome %d",
		             WD_ROUTE_ARGS(r), (uintmax_t)amqp->delivery_tag,
		             (int)out);
		break;
	}
	/* Follow-ups go out only with an ack. */
	wd_outbox_clear(&v->outbox);
}

static struct warren_ctx call_ctx(struct wd_verdict *v)
{
	return (struct warren_ctx){.plugin = v->route->plugin->conf,
	                           .reason = v->text,
	                           .reason_len = sizeof(v->text),
	                           .outbox = &v->outbox};
}

void wd_dispatch_run(struct wd_envelope *env, struct wd_verdict *v)
{
	struct warren_ctx ctx = call_ctx(v);
	const struct wd_route *r = v->route;
	int64_t t0 = wd_now_us();
	warren_outcome out = r->handle(r->plugin->state, &env->msg, &ctx);

	int64_t took = wd_now_us() - t0;

	wd_hist_observe_us(&r->series->handler_seconds, (uint64_t)took);
	v->started_us = t0;
	v->handler_us = took;
	judge(v, env, out);
}

void wd_dispatch_run_batch(const struct wd_route *route,
                           struct wd_envelope *const *envs,
                           struct wd_verdict *const *vs, size_t n)
{
	const warren_message **msgs = calloc(n, sizeof(*msgs));
	struct warren_ctx *ctx = calloc(n, sizeof(*ctx));
	warren_ctx **ctxs = calloc(n, sizeof(*ctxs));
	warren_outcome *outs = calloc(n, sizeof(*outs));
	int64_t t0;

	if (!msgs || !ctx || !ctxs || !outs) {
		/* Nothing was handled: every message comes back later. */
		for (size_t i = 0; i < n; i++)
			wd_verdict_retry(vs[i], "out of memory for the batch");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		msgs[i] = &envs[i]->msg;
		ctx[i] = call_ctx(vs[i]);
		ctxs[i] = &ctx[i];
		outs[i] = WARREN_RETRY;
	}
	wd_metric_inc(batches);
	wd_count(route->series->batches);
	t0 = wd_now_us();
	route->handle_batch(route->plugin->state, n, msgs, ctxs, outs);
	int64_t took = wd_now_us() - t0;
	wd_hist_observe_us(&route->series->handler_seconds, (uint64_t)took);
	for (size_t i = 0; i < n; i++) {
		/* Each waited for the whole call. */
		vs[i]->started_us = t0;
		vs[i]->handler_us = took;
		judge(vs[i], envs[i], outs[i]);
	}
out:
	free(msgs);
	free(ctx);
	free(ctxs);
	free(outs);
}

void wd_verdict_init(struct wd_verdict *v)
{
	memset(v, 0, offsetof(struct wd_verdict, text));
	v->text[0] = '\0';
	memset(&v->outbox, 0, sizeof(v->outbox));
}

void wd_verdict_retry(struct wd_verdict *v, const char *text)
{
	v->action = WD_ACTION_RETRY;
	v->reason = WD_R_HANDLER_RETRY;
	snprintf(v->text, sizeof(v->text), "%s", text);
}

void wd_verdict_clear(struct wd_verdict *v)
{
	wd_outbox_clear(&v->outbox);
}
