/*
 * order_created.c - the tutorial's order:created processor.
 *
 * Handler `created`: checks the order (order_validate.c), rejects a bad
 * one to the dead-letter exchange with the reason. For a good one it
 * publishes, as the tutorial's processor does, a "payment.process" and an
 * "inventory.update" message to the exchange named by the param
 * `followup_exchange` (no follow-ups if unset). warrend confirms both
 * before it acks the order; if either cannot be delivered, the order is
 * retried instead, so a payment is never silently lost.
 */
#include <warren.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json_id.h"
#include "../common/order_validate.h"
#include "../common/publish_json.h"

struct order_state {
	const warren_api *api;
	const char *followup_exchange; /* NULL: no follow-ups */
};

static int order_init(const warren_api *api, warren_ctx *ctx,
                      const warren_param *params, size_t nparams, void **state,
                      char *err, size_t errlen)
{
	struct order_state *st;

	(void)params;
	(void)nparams;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->api = api;
	/* Params stay valid until fini. */
	st->followup_exchange = api->param(ctx, "followup_exchange");
	if (st->followup_exchange && api->abi_minor < 1) {
		snprintf(err, errlen,
		         "followup_exchange needs a warrend with "
		         "SDK ABI 1.1 (publish)");
		free(st);
		return -1;
	}
	/* ABI 1.4: warrend checks the exchange exists at start and at each
	 * reload, so a typo fails there, not once per order. */
	if (st->followup_exchange && api->abi_minor >= 4 &&
	    api->publishes_to(ctx, st->followup_exchange) < 0) {
		snprintf(err, errlen, "publishes_to(\"%s\") failed",
		         st->followup_exchange);
		free(st);
		return -1;
	}
	*state = st;
	return 0;
}

static void order_fini(void *state, warren_ctx *ctx)
{
	(void)ctx;
	free(state);
}

/* Queue one follow-up: `fields` of the order, copied into a new object. */
static int follow_up(const struct order_state *st, warren_ctx *ctx,
                     const json_t *order, const char *rk,
                     const char *const *fields)
{
	json_t *out = json_object();
	int rc;

	if (out == NULL)
		return -1;
	for (; *fields != NULL; fields++)
		json_object_set(out, *fields, json_object_get(order, *fields));
	rc = publish_json(st->api, ctx, st->followup_exchange, rk, out, rk);
	json_decref(out);
	return rc;
}

static warren_outcome order_created(void *state, const warren_message *msg,
                                    warren_ctx *ctx)
{
	static const char *const payment[] = {"orderId", "userId",
	                                      "totalAmount", NULL};
	static const char *const inventory[] = {"orderId", "items", NULL};
	const struct order_state *st = state;
	char why[256], id[JSON_ID_BUFSZ];

	/* A bad order stays bad however often it is retried: reject it. */
	if (order_validate(msg->json, why, sizeof(why)) < 0) {
		st->api->reason(ctx, "%s", why);
		return WARREN_REJECT;
	}
	json_id_format(json_object_get(msg->json, "orderId"), id, sizeof(id));
	if (st->followup_exchange != NULL &&
	    (follow_up(st, ctx, msg->json, "payment.process", payment) != 0 ||
	     follow_up(st, ctx, msg->json, "inventory.update", inventory) !=
	         0)) {
		st->api->reason(ctx, "cannot queue the follow-ups");
		return WARREN_RETRY;
	}
	st->api->log(ctx, WARREN_LOG_INFO, "handled order:created orderId=%s",
	             id);
	return WARREN_ACK;
}

static const warren_handler order_handlers[] = {
    {.name = "created", .handle = order_created},
    {.name = NULL},
};

WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,  .name = "order_created",
	    .version = "1.1.0", .init = order_init,
	    .fini = order_fini, .handlers = order_handlers,
	};

	return &p;
}
