/* plugin.h - load one handler plugin: dlopen, the ABI check, the handler
 * table, init and fini. */
#ifndef WD_PLUGIN_H
#define WD_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "host/sdk_api.h"
#include "host/targets.h"
#include "warren.h"

struct wd_plugin {
	const struct wd_conf_plugin *conf; /* name, path, params (borrowed) */
	void *dl;
	int fd; /* the private copy dl was loaded from (plugin.c), or -1 */
	const warren_plugin *desc;
	void *state; /* what init stored */
	bool inited;
	struct warren_ctx ctx; /* the plugin-level ctx for init and fini */
	/* The exchanges its init named with publishes_to. */
	struct wd_targets targets;
};

/*
 * dlopen a private copy of conf->path and check its descriptor: entry symbol,
 * ABI major, ABI minor not newer than ours, a name and a handler table. On
 * failure returns -1 with err naming the plugin, its path and what to do.
 */
int wd_plugin_load(struct wd_plugin *p, const struct wd_conf_plugin *conf,
                   char *err, size_t errlen);

/* The handler called `name`, or NULL. */
warren_handler_fn wd_plugin_handler(const struct wd_plugin *p,
                                    const char *name);

/* The batch handler called `name`, or NULL (also for a plugin built for
 * ABI 1.0, whose table has no such field). */
warren_batch_fn wd_plugin_batch_handler(const struct wd_plugin *p,
                                        const char *name);

/* The WARREN_HANDLER_* flags of the handler called `name` (0 for a plugin
 * built for ABI 1.0 or 1.1, whose table has no such field). */
uintptr_t wd_plugin_handler_flags(const struct wd_plugin *p, const char *name);

/* Run the plugin's init with its params. -1 with err on failure. */
int wd_plugin_init(struct wd_plugin *p, char *err, size_t errlen);

/* fini (if init succeeded), then dlclose. Safe on a half-loaded plugin. */
void wd_plugin_unload(struct wd_plugin *p);

#endif
