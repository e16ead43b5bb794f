/*
 * order_created.c - the tutorial's order:created processor.
 *
 * Handler `created`: checks the order (order_validate.c), rejects a bad
 * one to the dead-letter exchange with the reason, logs a good one.
 */
#include <warren.h>

#include <stdio.h>
#include <stdlib.h>

#include "../common/json_id.h"
#include "order_validate.h"

struct order_state {
	const warren_api *api;
};

static int
order_init(const warren_api *api, warren_ctx *ctx, const warren_param *params,
           size_t nparams, void **state, char *err, size_t errlen)
{
	struct order_state *st;

	(void)ctx;
	(void)params;
	(void)nparams;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->api = api;
	*state = st;
	return 0;
}

static void
order_fini(void *state, warren_ctx *ctx)
{
	(void)ctx;
	free(state);
}

static warren_outcome
order_created(void *state, const warren_message *msg, warren_ctx *ctx)
{
	const struct order_state *st = state;
	char why[256], id[JSON_ID_BUFSZ];

	/* A bad order stays bad however often it is retried: reject it. */
	if (order_validate(msg->json, why, sizeof(why)) < 0) {
		st->api->reason(ctx, "%s", why);
		return WARREN_REJECT;
	}
	json_id_format(json_object_get(msg->json, "orderId"), id, sizeof(id));
	st->api->log(ctx, WARREN_LOG_INFO, "handled order:created orderId=%s",
	             id);
	return WARREN_ACK;
}

static const warren_handler order_handlers[] = {
	{ .name = "created", .handle = order_created },
	{ .name = NULL },
};

WARREN_EXPORT const warren_plugin *
warren_plugin_entry(void)
{
	static const warren_plugin p = {
		WARREN_PLUGIN_ABI,
		.name = "order_created",
		.version = "1.0.0",
		.init = order_init,
		.fini = order_fini,
		.handlers = order_handlers,
	};

	return &p;
}
