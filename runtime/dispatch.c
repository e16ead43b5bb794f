/* dispatch.c - parse once, route by type, call the handler, judge. */
#include "dispatch.h"

#include "envelope.h"
#include "log.h"
#include "metrics.h"
#include "sdk_api.h"

/* Printable (and bounded) routing key for log lines. */
#define RK_FMT "%.*s"
#define RK_ARG(a) (int)((a)->routing_key.len > 128 ? 128 : (a)->routing_key.len), \
	(const char *)(a)->routing_key.bytes

int wd_dispatch_parse(const struct wd_routes *routes, size_t queue,
                      const amqp_envelope_t *amqp, struct wd_envelope *env)
{
	const struct wd_conf_queue *q = &routes->conf->queues[queue];

	return wd_envelope_parse(env, amqp, q->name, q->type_from,
	                         q->type_field);
}

enum wd_action wd_dispatch_run(const struct wd_routes *routes, size_t queue,
                               struct wd_envelope *env, int parse_rc)
{
	const struct wd_conf_queue *q = &routes->conf->queues[queue];
	const amqp_envelope_t *amqp = env->amqp;
	char reason[WD_REASON_MAX] = "";
	struct warren_ctx ctx = {.reason = reason, .reason_len = sizeof(reason)};
	const struct wd_route *route;
	warren_outcome out;
	enum wd_action action;

	wd_metric_inc(received);
	if (parse_rc < 0) {
		wd_metric_inc(unparseable);
		wd_metric_inc(dead_lettered);
		wd_log_warnx("dispatch",
		             "queue \"%s\" tag %ju rk \"" RK_FMT "\": %s: "
		             "dead-lettered",
		             q->name, (uintmax_t)amqp->delivery_tag,
		             RK_ARG(amqp), env->reason);
		wd_envelope_clear(env);
		return WD_ACTION_DEAD_LETTER;
	}
	route = wd_routes_find(routes, queue, env->msg.type);
	if (!route) {
		wd_metric_inc(unknown_type);
		wd_metric_inc(dead_lettered);
		wd_log_warnx("dispatch",
		             "queue \"%s\" tag %ju: unknown type \"%.*s\": "
		             "dead-lettered",
		             q->name, (uintmax_t)amqp->delivery_tag,
		             (int)env->msg.type.len, env->msg.type.ptr);
		wd_envelope_clear(env);
		return WD_ACTION_DEAD_LETTER;
	}

	ctx.plugin = route->plugin;
	out = route->handle(route->plugin->state, &env->msg, &ctx);
	switch (out) {
	case WARREN_ACK:
		action = WD_ACTION_ACK;
		break;
	case WARREN_RETRY:
		wd_metric_inc(retried);
		wd_log_info("dispatch",
		            "%s/%s: type \"%s\" tag %ju: retry%s%s",
		            route->plugin->conf->name, route->handler_name,
		            route->type, (uintmax_t)amqp->delivery_tag,
		            reason[0] ? ": " : "", reason);
		action = WD_ACTION_RETRY;
		break;
	case WARREN_REJECT:
		wd_metric_inc(rejected);
		wd_metric_inc(dead_lettered);
		wd_log_warnx("dispatch",
		             "%s/%s: type \"%s\" tag %ju: rejected: %s: "
		             "dead-lettered",
		             route->plugin->conf->name, route->handler_name,
		             route->type, (uintmax_t)amqp->delivery_tag,
		             reason[0] ? reason : "no reason given");
		action = WD_ACTION_DEAD_LETTER;
		break;
	default:
		wd_metric_inc(invalid_outcome);
		wd_metric_inc(dead_lettered);
		wd_log_error("dispatch",
		             "%s/%s: type \"%s\" tag %ju: invalid outcome %d: "
		             "dead-lettered",
		             route->plugin->conf->name, route->handler_name,
		             route->type, (uintmax_t)amqp->delivery_tag,
		             (int)out);
		action = WD_ACTION_DEAD_LETTER;
		break;
	}
	wd_envelope_clear(env);
	return action;
}
