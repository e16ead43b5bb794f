/*
 * notifications.c - the tutorial's real-time notification service (its
 * section 7.2), done the warren way: one handler per channel (email, sms,
 * push, websocket), each on its own priority queue of conf/examples/
 * notifications.conf, each a simulated provider with the tutorial's
 * failure rate and latency.
 *
 * A malformed notification is rejected with the reason (it would fail
 * again); a provider failure is transient: the handler asks for a retry
 * and warren redelivers after the route's backoff, at most max_attempts
 * times (the tutorial's consumers requeued at once, a poison loop).
 *
 * Params (all optional): <channel>_fail_rate (0..1; defaults 0.10, 0.05,
 * 0.02, 0.01 as the tutorial), <channel>_latency_ms (defaults 1000, 500,
 * 300, 100), fail_attempts (the first N attempts of every notification
 * fail, for tests; default 0), seed (the dice; default 0).
 *
 * Each send logs the AMQP priority it came with (ABI 1.4; -1 if absent)
 * and counts it: sent_priority_10, sent_priority_1, ...
 */
#include <warren.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json_id.h"
#include "../common/simulate.h"
#include "notification_validate.h"

enum channel { EMAIL, SMS, PUSH, WEBSOCKET, NCHANNELS };

static const struct channel_default {
	const char *name;
	double fail_rate;
	uint32_t latency_ms;
} defaults[NCHANNELS] = {
    [EMAIL] = {"email", 0.10, 1000},
    [SMS] = {"sms", 0.05, 500},
    [PUSH] = {"push", 0.02, 300},
    [WEBSOCKET] = {"websocket", 0.01, 100},
};

struct notifications {
	const warren_api *api;
	struct sim_provider provider[NCHANNELS];
};

static int notifications_init(const warren_api *api, warren_ctx *ctx,
                              const warren_param *params, size_t nparams,
                              void **state, char *err, size_t errlen)
{
	struct notifications *st;
	uint64_t fail_attempts = 0, seed = 0;

	(void)params;
	(void)nparams;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->api = api;
	if (sim_parse_uint("fail_attempts", api->param(ctx, "fail_attempts"),
	                   1000, &fail_attempts, err, errlen) < 0 ||
	    sim_parse_uint("seed", api->param(ctx, "seed"), UINT64_MAX, &seed,
	                   err, errlen) < 0)
		goto fail;
	for (int c = 0; c < NCHANNELS; c++) {
		struct sim_provider *p = &st->provider[c];
		uint64_t latency = defaults[c].latency_ms;
		char key[64];

		p->fail_rate = defaults[c].fail_rate;
		snprintf(key, sizeof(key), "%s_fail_rate", defaults[c].name);
		if (sim_parse_rate(key, api->param(ctx, key), &p->fail_rate,
		                   err, errlen) < 0)
			goto fail;
		snprintf(key, sizeof(key), "%s_latency_ms", defaults[c].name);
		if (sim_parse_uint(key, api->param(ctx, key), 60000, &latency,
		                   err, errlen) < 0)
			goto fail;
		p->latency_ms = (uint32_t)latency;
		p->fail_attempts = (uint32_t)fail_attempts;
		p->seed = seed + (uint64_t)c;
		api->log(ctx, WARREN_LOG_INFO,
		         "%s: %u ms per send, failing %.1f %% at random",
		         defaults[c].name, p->latency_ms, p->fail_rate * 100);
	}
	*state = st;
	return 0;
fail:
	free(st);
	return -1;
}

static void notifications_fini(void *state, warren_ctx *ctx)
{
	(void)ctx;
	free(state);
}

static void count(const struct notifications *st, warren_ctx *ctx,
                  const char *channel, const char *what)
{
	char name[64];

	if (st->api->abi_minor < 3)
		return;
	snprintf(name, sizeof(name), "%s_%s", channel, what);
	st->api->counter_add(ctx, name, 1);
}

static warren_outcome send_on(enum channel c, void *state,
                              const warren_message *msg, warren_ctx *ctx)
{
	struct notifications *st = state;
	const char *name = defaults[c].name;
	uint32_t attempt =
	    msg->size > offsetof(warren_message, attempt) ? msg->attempt : 1;
	char why[512], id[JSON_ID_BUFSZ], to[JSON_ID_BUFSZ], name_p[32];
	const char *prio;
	int amqp_prio;

	if (notification_validate(name, msg->json, why, sizeof(why)) < 0) {
		st->api->reason(ctx, "%s", why);
		count(st, ctx, name, "invalid");
		return WARREN_REJECT;
	}
	json_id_format(json_object_get(msg->json, "id"), id, sizeof(id));
	json_id_format(json_object_get(msg->json, "recipient"), to, sizeof(to));
	prio = json_string_value(json_object_get(msg->json, "priority"));
	/* The AMQP priority the publisher set (10 high, 1 normal, as the
	 * tutorial's sendNotification; ABI 1.4), counted per value: the
	 * priority queue ordered by it, the JSON field is what the client
	 * says. */
	amqp_prio = st->api->abi_minor >= 4 &&
	                    msg->size > offsetof(warren_message, delivery_mode)
	                ? msg->priority
	                : -1;
	if (sim_call(&st->provider[c], msg->body.ptr, msg->body.len, attempt)) {
		st->api->reason(ctx,
		                "notification.%s: the %s provider failed "
		                "(simulated, attempt %u)",
		                name, name, attempt);
		count(st, ctx, name, "failed");
		return WARREN_RETRY;
	}
	st->api->log(ctx, WARREN_LOG_INFO,
	             "sent %s id=%s to=%s priority=%s amqp_priority=%d "
	             "message_id=%.*s (attempt %u)",
	             name, id, to, prio, amqp_prio, (int)msg->message_id.len,
	             msg->message_id.ptr, attempt);
	count(st, ctx, name, "sent");
	if (amqp_prio >= 0)
		snprintf(name_p, sizeof(name_p), "priority_%d", amqp_prio);
	else
		snprintf(name_p, sizeof(name_p), "priority_none");
	count(st, ctx, "sent", name_p);
	return WARREN_ACK;
}

static warren_outcome email(void *s, const warren_message *m, warren_ctx *c)
{
	return send_on(EMAIL, s, m, c);
}

static warren_outcome sms(void *s, const warren_message *m, warren_ctx *c)
{
	return send_on(SMS, s, m, c);
}

static warren_outcome push(void *s, const warren_message *m, warren_ctx *c)
{
	return send_on(PUSH, s, m, c);
}

static warren_outcome websocket(void *s, const warren_message *m, warren_ctx *c)
{
	return send_on(WEBSOCKET, s, m, c);
}

static const warren_handler notification_handlers[] = {
    {.name = "email", .handle = email},
    {.name = "sms", .handle = sms},
    {.name = "push", .handle = push},
    {.name = "websocket", .handle = websocket},
    {.name = NULL},
};

WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,          .name = "notifications",
	    .version = "1.0.0",         .init = notifications_init,
	    .fini = notifications_fini, .handlers = notification_handlers,
	};

	return &p;
}
