/* skeleton.c - the warren plugin "skeleton", made by `warrenctl new-plugin`.
 *
 * One handler, "hello", for messages of type "skeleton:hello" such as
 *   {"type": "skeleton:hello", "name": "ada"}
 * Build it with `make` (skeleton.so), install it with `make install`, and
 * paste skeleton.conf into warren.conf. Every call used here is documented
 * in <warren.h>, the only header a plugin needs (jansson comes with it). */
#include <stdio.h>
#include <stdlib.h>
#include <warren.h>

/* The runtime's API table: valid from init until after fini returns. */
static const warren_api *api;

/* What init makes and every handler call gets back as `state`. Handlers
 * run on several threads at once with the same state: it is only read
 * after init, so it needs no lock. Anything a handler changes in it must
 * be guarded (a mutex, or C11 atomics). */
struct plugin_state {
	const char *greeting;
};

/* init: once, before any handler call. Reads the param "greeting" of the
 * conf's plugin section (`params { greeting = "hi" }`). */
static int plugin_init(const warren_api *a, warren_ctx *ctx,
                       const warren_param *params, size_t nparams, void **state,
                       char *err, size_t errlen)
{
	struct plugin_state *st;

	(void)params; /* the same params, as an array: api->param is simpler */
	(void)nparams;
	api = a;
	st = calloc(1, sizeof(*st));
	if (!st) {
		/* A failed init stops warrend at start (a reload keeps the
		 * running plugins instead), with this reason. */
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* api->param's string lives until fini returns: no copy needed.
	 * Everything else warrend hands in is borrowed for the call only. */
	st->greeting = api->param(ctx, "greeting");
	if (!st->greeting)
		st->greeting = "hello";
	*state = st;
	api->log(ctx, WARREN_LOG_INFO, "ready (greeting \"%s\")", st->greeting);
	return 0;
}

/* fini: once, after the last handler call has returned. */
static void plugin_fini(void *state, warren_ctx *ctx)
{
	struct plugin_state *st = state;

	(void)ctx;
	free(st);
}

/* The handler: called for each message of the route's type, possibly on
 * several threads at once. `msg` and everything in it is borrowed until
 * it returns: copy what you keep (or json_incref the JSON). The body was
 * parsed once by warrend: msg->json is a JSON object (never decref it).
 *
 * What it returns decides what happens to the message:
 *   WARREN_ACK     done: acked (after any api->publish follow-ups are
 *                  confirmed by the broker).
 *   WARREN_RETRY   a transient failure (a database is down): delivered
 *                  again after the route's retry delay, until its
 *                  max_attempts, then dead-lettered.
 *   WARREN_REJECT  a permanent failure (the message is wrong): dead-
 *                  lettered at once, with api->reason's text in its
 *                  x-warren-reason-text header.
 * It must not exit(), longjmp out, block forever, or keep msg or ctx. */
static warren_outcome hello(void *state, const warren_message *msg,
                            warren_ctx *ctx)
{
	const struct plugin_state *st = state;
	const json_t *name = json_object_get(msg->json, "name");

	if (!json_is_string(name)) {
		api->reason(ctx, "\"name\" must be a string");
		return WARREN_REJECT; /* retrying would not make it right */
	}
	api->log(ctx, WARREN_LOG_INFO, "%s, %s (attempt %u)", st->greeting,
	         json_string_value(name), (unsigned)msg->attempt);
	/* A counter of the plugin's own, served on /metrics. It exists since
	 * ABI 1.3; this plugin declares the ABI it was built with, and an
	 * older warrend refuses to load it, so no api->abi_minor check. */
	api->counter_add(ctx, "greeted", 1);
	return WARREN_ACK;
}

/* The handler table: a route names its entry with `handler = "hello"`.
 * Add more entries here, one per message type. Ends with a NULL name. */
static const warren_handler handlers[] = {
    {.name = "hello", .handle = hello},
    {.name = NULL},
};

/* The one exported symbol: warrend calls it right after loading the .so
 * and checks the ABI the plugin was built with before anything else. */
WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,   .name = "skeleton",  .version = "0.1.0",
	    .init = plugin_init, .fini = plugin_fini, .handlers = handlers,
	};
	return &p;
}
