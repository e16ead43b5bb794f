/*
 * email_send.c - the tutorial's email:send processor.
 *
 * Handler `send`: checks the message (email_validate.c) and logs what it
 * would send. It does NOT send mail: the tutorial's processor only logs,
 * and a real one would hand the message to an MTA here, returning
 * WARREN_RETRY when the MTA is unreachable.
 *
 * Param `from` (default "noreply@localhost"): the sender address.
 */
#include <warren.h>

#include <stdio.h>
#include <stdlib.h>

#include "../common/json_id.h"
#include "email_validate.h"

#define EMAIL_DEFAULT_FROM "noreply@localhost"

struct email_state {
	const warren_api *api;
	/* Borrowed from the runtime: params stay valid until fini returns. */
	const char *from;
};

static int email_init(const warren_api *api, warren_ctx *ctx,
                      const warren_param *params, size_t nparams, void **state,
                      char *err, size_t errlen)
{
	struct email_state *st;

	(void)params;
	(void)nparams;
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->api = api;
	if ((st->from = api->param(ctx, "from")) == NULL)
		st->from = EMAIL_DEFAULT_FROM;
	*state = st;
	return 0;
}

static void email_fini(void *state, warren_ctx *ctx)
{
	(void)ctx;
	free(state);
}

static warren_outcome email_send(void *state, const warren_message *msg,
                                 warren_ctx *ctx)
{
	const struct email_state *st = state;
	char why[256], to[JSON_ID_BUFSZ];

	/* No address to send to will not appear on a retry: reject. */
	if (email_validate(msg->json, why, sizeof(why)) < 0) {
		st->api->reason(ctx, "%s", why);
		return WARREN_REJECT;
	}
	json_id_format(json_object_get(msg->json, "to"), to, sizeof(to));
	st->api->log(ctx, WARREN_LOG_INFO, "handled email:send to=%s from=%s",
	             to, st->from);
	return WARREN_ACK;
}

static const warren_handler email_handlers[] = {
    {.name = "send", .handle = email_send},
    {.name = NULL},
};

WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,  .name = "email_send",
	    .version = "1.0.0", .init = email_init,
	    .fini = email_fini, .handlers = email_handlers,
	};

	return &p;
}
