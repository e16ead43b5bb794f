/* routes.h - what a generation runs: the conf, its plugins loaded and
 * initialised, and the route table (queue, type) -> handler.
 * Built whole or not at all, so a bad conf never half-starts (and, on
 * reload, never touches the running generation). */
#ifndef WD_ROUTES_H
#define WD_ROUTES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/series.h"
#include "conf/conf.h"
#include "host/plugin.h"
#include "warren.h"

struct wd_route {
	const char *type; /* borrowed from conf */
	size_t type_len;
	size_t queue;
	const struct wd_plugin *plugin;
	const char *handler_name;
	warren_handler_fn handle;       /* NULL for a batch route */
	warren_batch_fn handle_batch;   /* set for a batch route only */
	const struct wd_policy *policy; /* borrowed from conf */
	size_t index;                   /* in wd_routes.routes */
	/* WARREN_HANDLER_NONBLOCKING: called on the connection's thread,
	 * until a call takes too long (on_workers, set once). */
	bool nonblocking;
	atomic_bool on_workers;
	struct wd_route_series *series; /* its counters (base/series.h) */
};

/* The prefix of a log line about a route: "plugin/handler: type \"t\"".
 * One pair, so that every line about a route reads (and greps) the same:
 *   wd_log_info(AREA, WD_ROUTE_FMT " tag %ju", WD_ROUTE_ARGS(r), tag); */
#define WD_ROUTE_FMT     "%s/%s: type \"%s\""
#define WD_ROUTE_ARGS(r) (r)->plugin->conf->name, (r)->handler_name, (r)->type

struct wd_routes {
	struct wd_conf *conf; /* owned */
	struct wd_plugin *plugins;
	size_t nplugins;
	struct wd_route *routes;
	size_t nroutes;
	/* The counters of each of conf's queues, by queue index. */
	struct wd_queue_series **queue_series;
};

/* Load every plugin of `conf`, resolve every route's handler and run each
 * plugin's init. Takes ownership of conf (freed on failure too). Returns
 * NULL with err ("FILE:LINE: ..." or the plugin's path and reason). */
struct wd_routes *wd_routes_build(struct wd_conf *conf, char *err,
                                  size_t errlen);

/* fini and unload every plugin, free the conf. */
void wd_routes_free(struct wd_routes *r);

/* The route for `type` on queue index `queue`, or NULL. */
const struct wd_route *wd_routes_find(const struct wd_routes *r, size_t queue,
                                      warren_bytes type);

#endif
