/*
 * orders.c - the tutorial's order processing system (its section 7.1),
 * done the warren way. Four handlers, one per queue of conf/examples/
 * orders.conf:
 *
 *  order_created  order.created: validates the order (common/
 *                 order_validate.c), checks every item against the
 *                 simulated inventory (stock.c; out of stock -> reject,
 *                 naming the items), then queues the tutorial's two
 *                 follow-ups, {type: "payment.process", orderId, amount,
 *                 userId} and {type: "inventory.reserve", orderId, items};
 *                 warrend acks the order only once the broker confirmed
 *                 both.
 *  payment        payment.process: a simulated gateway. Declined (an
 *                 amount over decline_above) -> reject; unavailable (the
 *                 payment_fail_* params) -> retry, with warren's backoff;
 *                 paid -> queues a notification.send.
 *  inventory      inventory.reserve (on queue inventory.update): takes the
 *                 quantities from the inventory, all or none.
 *  notify         notification.send: the customer is told (a log line).
 *
 * Params (all optional): stock ("productId:quantity,..."; none: nothing
 * is in stock), followup_exchange ("" = the default exchange, as the
 * tutorial's sendToQueue), payment_key / inventory_key / notification_key
 * (the follow-ups' routing keys: the queue names by default),
 * decline_above (default 10000), payment_fail_rate (0..1, default 0.05),
 * payment_fail_attempts (the first N attempts of every payment fail;
 * default 0), payment_latency_ms (default 0), seed (the dice; default 0).
 * With SDK ABI 1.4 it names followup_exchange at init (publishes_to), so
 * that warrend checks it exists before any order runs, and logs each
 * order's message id and AMQP priority.
 */
#include <warren.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json_id.h"
#include "../common/order_validate.h"
#include "../common/publish_json.h"
#include "../common/simulate.h"
#include "orders_validate.h"
#include "stock.h"

struct orders {
	const warren_api *api;
	const char *exchange, *payment_key, *inventory_key, *notification_key;
	double decline_above;
	struct sim_provider gateway;
	struct stock stock;
};

/* A param, or `dflt` if the conf does not set it. */
static const char *param_or(const warren_api *api, warren_ctx *ctx,
                            const char *key, const char *dflt)
{
	const char *v = api->param(ctx, key);

	return v ? v : dflt;
}

static int orders_init(const warren_api *api, warren_ctx *ctx,
                       const warren_param *params, size_t nparams, void **state,
                       char *err, size_t errlen)
{
	struct orders *st;
	uint64_t fail_attempts = 0, latency = 0, seed = 0, decline = 10000;
	const char *v;

	(void)params;
	(void)nparams;
	if (api->abi_minor < 1) {
		snprintf(err, errlen,
		         "needs a warrend with SDK ABI 1.1 or later (publish)");
		return -1;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->api = api;
	st->exchange = param_or(api, ctx, "followup_exchange", "");
	st->payment_key = param_or(api, ctx, "payment_key", "payment.process");
	st->inventory_key =
	    param_or(api, ctx, "inventory_key", "inventory.update");
	st->notification_key =
	    param_or(api, ctx, "notification_key", "notification.send");
	st->gateway.fail_rate = 0.05;
	v = api->param(ctx, "decline_above");
	if (sim_parse_uint("decline_above", v, UINT32_MAX, &decline, err,
	                   errlen) < 0 ||
	    sim_parse_rate("payment_fail_rate",
	                   api->param(ctx, "payment_fail_rate"),
	                   &st->gateway.fail_rate, err, errlen) < 0 ||
	    sim_parse_uint("payment_fail_attempts",
	                   api->param(ctx, "payment_fail_attempts"), 1000,
	                   &fail_attempts, err, errlen) < 0 ||
	    sim_parse_uint("payment_latency_ms",
	                   api->param(ctx, "payment_latency_ms"), 60000,
	                   &latency, err, errlen) < 0 ||
	    sim_parse_uint("seed", api->param(ctx, "seed"), UINT64_MAX, &seed,
	                   err, errlen) < 0 ||
	    stock_init(&st->stock, api->param(ctx, "stock"), err, errlen) < 0) {
		free(st);
		return -1;
	}
	/* A typo in followup_exchange then fails the start (or the reload)
	 * at once, not each order after its attempts (ABI 1.4). "" is the
	 * default exchange, which always exists. */
	if (api->abi_minor >= 4 && st->exchange[0] != '\0' &&
	    api->publishes_to(ctx, st->exchange) < 0) {
		snprintf(err, errlen, "publishes_to(\"%s\") failed",
		         st->exchange);
		stock_fini(&st->stock);
		free(st);
		return -1;
	}
	st->decline_above = (double)decline;
	st->gateway.fail_attempts = (uint32_t)fail_attempts;
	st->gateway.latency_ms = (uint32_t)latency;
	st->gateway.seed = seed;
	api->log(ctx, WARREN_LOG_INFO,
	         "%zu product(s) in stock; payments declined above %.0f, "
	         "failing %.0f %% at random",
	         st->stock.n, st->decline_above, st->gateway.fail_rate * 100);
	*state = st;
	return 0;
}

static void orders_fini(void *state, warren_ctx *ctx)
{
	struct orders *st = state;

	(void)ctx;
	stock_fini(&st->stock);
	free(st);
}

/* Count an event in the plugin's counters (ABI 1.3), if the runtime has
 * them: they show on /metrics and in warrenctl's report. */
static void count(const struct orders *st, warren_ctx *ctx, const char *name)
{
	if (st->api->abi_minor >= 3)
		st->api->counter_add(ctx, name, 1);
}

/* The message's AMQP priority, -1 if absent or the runtime is older than
 * ABI 1.4 (which added the properties). */
static int priority_of(const struct orders *st, const warren_message *msg)
{
	if (st->api->abi_minor < 4 ||
	    msg->size <= offsetof(warren_message, delivery_mode))
		return -1;
	return msg->priority;
}

/* The attempt of msg, 1 on a runtime older than ABI 1.1. */
static uint32_t attempt_of(const warren_message *msg)
{
	return msg->size > offsetof(warren_message, attempt) ? msg->attempt : 1;
}

static warren_outcome reject(const struct orders *st, warren_ctx *ctx,
                             const char *counter, const char *why)
{
	st->api->reason(ctx, "%s", why);
	count(st, ctx, counter);
	return WARREN_REJECT;
}

static warren_outcome order_created(void *state, const warren_message *msg,
                                    warren_ctx *ctx)
{
	struct orders *st = state;
	const json_t *o = msg->json;
	char why[512], id[JSON_ID_BUFSZ];
	json_t *pay, *res;
	int rc;

	/* A bad order stays bad however often it is retried: reject it. */
	if (order_validate_as("order.created", o, why, sizeof(why)) < 0 ||
	    (rc = stock_check(&st->stock, "order.created",
	                      json_object_get(o, "items"), why, sizeof(why))) ==
	        -2)
		return reject(st, ctx, "orders_invalid", why);
	if (rc < 0)
		return reject(st, ctx, "orders_out_of_stock", why);

	pay = json_pack("{s:s, s:O, s:O, s:O}", "type", "payment.process",
	                "orderId", json_object_get(o, "orderId"), "amount",
	                json_object_get(o, "totalAmount"), "userId",
	                json_object_get(o, "userId"));
	res = json_pack("{s:s, s:O, s:O}", "type", "inventory.reserve",
	                "orderId", json_object_get(o, "orderId"), "items",
	                json_object_get(o, "items"));
	rc = pay && res &&
	             publish_json(st->api, ctx, st->exchange, st->payment_key,
	                          pay, "payment.process") == 0 &&
	             publish_json(st->api, ctx, st->exchange, st->inventory_key,
	                          res, "inventory.reserve") == 0
	         ? 0
	         : -1;
	json_decref(pay);
	json_decref(res);
	if (rc < 0) {
		st->api->reason(ctx, "order.created: cannot queue the "
		                     "follow-ups");
		return WARREN_RETRY;
	}
	json_id_format(json_object_get(o, "orderId"), id, sizeof(id));
	st->api->log(ctx, WARREN_LOG_INFO,
	             "order.created orderId=%s accepted: payment.process and "
	             "inventory.reserve queued (message_id=%.*s priority=%d)",
	             id, (int)msg->message_id.len, msg->message_id.ptr,
	             priority_of(st, msg));
	count(st, ctx, "orders_accepted");
	return WARREN_ACK;
}

static warren_outcome payment(void *state, const warren_message *msg,
                              warren_ctx *ctx)
{
	struct orders *st = state;
	const json_t *p = msg->json;
	uint32_t attempt = attempt_of(msg);
	char why[512], id[JSON_ID_BUFSZ];
	double amount;
	json_t *note;
	int rc;

	if (payment_validate(p, why, sizeof(why)) < 0)
		return reject(st, ctx, "payments_invalid", why);
	json_id_format(json_object_get(p, "orderId"), id, sizeof(id));
	amount = json_number_value(json_object_get(p, "amount"));
	/* A decline is the gateway's final answer: retrying cannot help. */
	if (amount > st->decline_above) {
		snprintf(why, sizeof(why),
		         "payment.process: declined by the gateway: amount "
		         "%.2f over the limit %.0f",
		         amount, st->decline_above);
		return reject(st, ctx, "payments_declined", why);
	}
	/* The gateway being away is transient: warren retries with backoff
	 * (the tutorial requeued at once, a hot loop). */
	if (sim_call(&st->gateway, msg->body.ptr, msg->body.len, attempt)) {
		st->api->reason(
		    ctx,
		    "payment.process: gateway unavailable (simulated "
		    "failure, attempt %u)",
		    attempt);
		count(st, ctx, "payments_failed");
		return WARREN_RETRY;
	}
	note = json_pack(
	    "{s:s, s:O, s:O, s:s, s:O}", "type", "notification.send", "orderId",
	    json_object_get(p, "orderId"), "userId",
	    json_object_get(p, "userId"), "event", "payment.succeeded",
	    "amount", json_object_get(p, "amount"));
	rc = note
	         ? publish_json(st->api, ctx, st->exchange,
	                        st->notification_key, note, "notification.send")
	         : -1;
	json_decref(note);
	if (rc < 0) {
		st->api->reason(ctx, "payment.process: cannot queue the "
		                     "notification");
		return WARREN_RETRY;
	}
	st->api->log(ctx, WARREN_LOG_INFO,
	             "payment.process orderId=%s amount=%.2f paid (attempt %u)",
	             id, amount, attempt);
	count(st, ctx, "payments_paid");
	return WARREN_ACK;
}

static warren_outcome inventory(void *state, const warren_message *msg,
                                warren_ctx *ctx)
{
	struct orders *st = state;
	const json_t *r = msg->json;
	char why[512], id[JSON_ID_BUFSZ];

	if (reserve_validate(r, why, sizeof(why)) < 0 ||
	    stock_reserve(&st->stock, "inventory.reserve",
	                  json_object_get(r, "items"), why, sizeof(why)) < 0)
		return reject(st, ctx, "reservations_failed", why);
	json_id_format(json_object_get(r, "orderId"), id, sizeof(id));
	st->api->log(ctx, WARREN_LOG_INFO,
	             "inventory.reserve orderId=%s reserved %zu item(s)", id,
	             json_array_size(json_object_get(r, "items")));
	count(st, ctx, "reservations");
	return WARREN_ACK;
}

static warren_outcome notify(void *state, const warren_message *msg,
                             warren_ctx *ctx)
{
	struct orders *st = state;
	const json_t *n = msg->json;
	char why[512], id[JSON_ID_BUFSZ], user[JSON_ID_BUFSZ];

	if (order_notice_validate(n, why, sizeof(why)) < 0)
		return reject(st, ctx, "notices_invalid", why);
	json_id_format(json_object_get(n, "orderId"), id, sizeof(id));
	json_id_format(json_object_get(n, "userId"), user, sizeof(user));
	json_id_format(json_object_get(n, "event"), why, sizeof(why));
	st->api->log(ctx, WARREN_LOG_INFO,
	             "notification.send orderId=%s userId=%s event=%s", id,
	             user, why);
	count(st, ctx, "notices");
	return WARREN_ACK;
}

static const warren_handler orders_handlers[] = {
    {.name = "order_created", .handle = order_created},
    {.name = "payment", .handle = payment},
    {.name = "inventory", .handle = inventory},
    {.name = "notify", .handle = notify},
    {.name = NULL},
};

WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,   .name = "orders",
	    .version = "1.0.0",  .init = orders_init,
	    .fini = orders_fini, .handlers = orders_handlers,
	};

	return &p;
}
