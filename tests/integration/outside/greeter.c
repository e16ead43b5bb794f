/* greeter.c - a plugin written outside warren's tree: it only includes the
 * installed <warren.h> and is built with
 *   cc -shared -fPIC $(pkg-config --cflags warren) greeter.c -o greeter.so */
#include <stdio.h>
#include <warren.h>

static const warren_api *api;

static int greeter_init(const warren_api *a, warren_ctx *ctx,
                        const warren_param *params, size_t nparams,
                        void **state, char *err, size_t errlen)
{
	(void)ctx;
	(void)params;
	(void)nparams;
	(void)err;
	(void)errlen;
	api = a;
	*state = NULL;
	return 0;
}

static warren_outcome greet(void *state, const warren_message *msg,
                            warren_ctx *ctx)
{
	const json_t *name = json_object_get(msg->json, "name");
	(void)state;
	if (!json_is_string(name)) {
		api->reason(ctx, "name must be a string");
		return WARREN_REJECT;
	}
	api->log(ctx, WARREN_LOG_INFO, "hello, %s (type %.*s)",
	         json_string_value(name), (int)msg->type.len, msg->type.ptr);
	return WARREN_ACK;
}

static const warren_handler handlers[] = {
    {.name = "greet", .handle = greet},
    {.name = NULL},
};

WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
{
	static const warren_plugin p = {
	    WARREN_PLUGIN_ABI,    .name = "greeter",    .version = "1.0",
	    .init = greeter_init, .handlers = handlers,
	};
	return &p;
}
