/*
 * user_signup.c - the tutorial's user:signup processor.
 *
 * Handler `signup`: checks the message (signup_validate.c), rejects a bad
 * one to the dead-letter exchange with the reason, logs a good one.
 */
#include <warren.h>

#include <stdio.h>
#include <stdlib.h>

#include "../common/json_id.h"
#include "signup_validate.h"

struct signup_state {
	const warren_api *api;
};

static int signup_init(const warren_api *api, warren_ctx *ctx,
                       const warren_param *params, size_t nparams, void **state,
                       char *err, size_t errlen)
{
	struct signup_state *st;

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

static void signup_fini(void *state, warren_ctx *ctx)
{
	(void)ctx;
	free(state);
}

static warren_outcome signup_handle(void *state, const warren_message *msg,
                                    warren_ctx *ctx)
{
	const struct signup_state *st = state;
	char why[256], id[JSON_ID_BUFSZ];

	/* A malformed signup stays malformed on every retry: reject it. */
	if (signup_validate(msg->json, why, sizeof(why)) < 0) {
		st->api->reason(ctx, "%s", why);
		return WARREN_REJECT;
	}
	json_id_format(json_object_get(msg->json, "userId"), id, sizeof(id));
	st->api->log(ctx, WARREN_LOG_INFO, "handled user:signup userId=%s", id);
	return WARREN_ACK;
}

static const warren_handler signup_handlers[] = {
    {.name = "signup", .handle = signup_handle},
    {.name = NULL},
};

WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,   .name = "user_signup",
	    .version = "1.0.0",  .init = signup_init,
	    .fini = signup_fini, .handlers = signup_handlers,
	};

	return &p;
}
