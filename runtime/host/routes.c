/* routes.c - build a generation: load, check, init; then look up routes. */
#include "host/routes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "a, b, c": the handler names a plugin has, for the error message. */
static void handler_names(const struct wd_plugin *p, char *buf, size_t len)
{
	buf[0] = '\0';
	for (const warren_handler *h = p->desc->handlers; h->name; h++)
		snprintf(buf + strlen(buf), len - strlen(buf), "%s%s",
		         h == p->desc->handlers ? "" : ", ", h->name);
	if (!buf[0])
		snprintf(buf, len, "none");
}

static int resolve_routes(struct wd_routes *r, char *err, size_t errlen)
{
	const struct wd_conf *c = r->conf;
	char names[512];

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct wd_conf_route *cr = &c->routes[i];
		const struct wd_plugin *p = &r->plugins[cr->plugin];
		struct wd_route *rt = &r->routes[i];

		rt->type = cr->type;
		rt->type_len = strlen(cr->type);
		rt->queue = cr->queue;
		rt->plugin = p;
		rt->handler_name = cr->handler;
		rt->policy = &cr->policy;
		rt->index = i;
		rt->handle = wd_plugin_handler(p, cr->handler);
		rt->handle_batch = wd_plugin_batch_handler(p, cr->handler);
		if (cr->policy.batch_size > 1 && rt->handle &&
		    !rt->handle_batch) {
			snprintf(err, errlen,
			         "%s:%d: route \"%s\": batch_size is %d but "
			         "handler \"%s\" of plugin \"%s\" (%s) has no "
			         "handle_batch",
			         c->file, cr->line, cr->type,
			         cr->policy.batch_size, cr->handler,
			         p->conf->name, p->conf->path);
			return -1;
		}
		if (cr->policy.batch_size <= 1 && !rt->handle &&
		    rt->handle_batch) {
			snprintf(
			    err, errlen,
			    "%s:%d: route \"%s\": handler \"%s\" of plugin "
			    "\"%s\" (%s) only handles batches: set "
			    "batch_size above 1",
			    c->file, cr->line, cr->type, cr->handler,
			    p->conf->name, p->conf->path);
			return -1;
		}
		if (cr->policy.batch_size > 1)
			rt->handle = NULL;
		else
			rt->handle_batch = NULL;
		rt->nonblocking =
		    rt->handle && (wd_plugin_handler_flags(p, cr->handler) &
		                   WARREN_HANDLER_NONBLOCKING);
		atomic_init(&rt->on_workers, false);
		if (!rt->handle && !rt->handle_batch) {
			handler_names(p, names, sizeof(names));
			snprintf(
			    err, errlen,
			    "%s:%d: route \"%s\": plugin \"%s\" (%s) has no "
			    "handler \"%s\" (it has: %s)",
			    c->file, cr->line, cr->type, p->conf->name,
			    p->conf->path, cr->handler, names);
			return -1;
		}
	}
	return 0;
}

/* The counters the routes and queues count in: the same series as the
 * previous generation's wherever the labels are the same. */
static int find_series(struct wd_routes *r)
{
	const struct wd_conf *c = r->conf;

	for (size_t i = 0; i < c->nqueues; i++)
		if (!(r->queue_series[i] = wd_series_queue(c->queues[i].name)))
			return -1;
	for (size_t i = 0; i < c->nroutes; i++) {
		struct wd_route *rt = &r->routes[i];
		rt->series =
		    wd_series_route(c->queues[rt->queue].name, rt->type,
		                    rt->plugin->conf->name, rt->handler_name);
		if (!rt->series)
			return -1;
	}
	return 0;
}

struct wd_routes *wd_routes_build(struct wd_conf *conf, char *err,
                                  size_t errlen)
{
	struct wd_routes *r = calloc(1, sizeof(*r));

	if (!r) {
		wd_conf_free(conf);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->conf = conf;
	r->plugins = calloc(conf->nplugins + 1, sizeof(*r->plugins));
	r->routes = calloc(conf->nroutes + 1, sizeof(*r->routes));
	r->queue_series = calloc(conf->nqueues + 1, sizeof(*r->queue_series));
	if (!r->plugins || !r->routes || !r->queue_series) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Load and check everything before any plugin code runs (init). */
	for (size_t i = 0; i < conf->nplugins; i++) {
		if (wd_plugin_load(&r->plugins[i], &conf->plugins[i], err,
		                   errlen) < 0)
			goto fail;
		r->nplugins = i + 1;
	}
	if (resolve_routes(r, err, errlen) < 0)
		goto fail;
	if (find_series(r) < 0) {
		snprintf(err, errlen, "out of memory for the metrics");
		goto fail;
	}
	r->nroutes = conf->nroutes;
	for (size_t i = 0; i < r->nplugins; i++)
		if (wd_plugin_init(&r->plugins[i], err, errlen) < 0)
			goto fail;
	return r;
fail:
	wd_routes_free(r);
	return NULL;
}

void wd_routes_free(struct wd_routes *r)
{
	if (!r)
		return;
	/* fini in reverse order of init. */
	for (size_t i = r->nplugins; i-- > 0;)
		wd_plugin_unload(&r->plugins[i]);
	free(r->plugins);
	free(r->routes);
	free(r->queue_series);
	wd_conf_free(r->conf);
	free(r);
}

const struct wd_route *wd_routes_find(const struct wd_routes *r, size_t queue,
                                      warren_bytes type)
{
	for (size_t i = 0; i < r->nroutes; i++) {
		const struct wd_route *rt = &r->routes[i];
		if (rt->queue == queue && rt->type_len == type.len &&
		    memcmp(rt->type, type.ptr, type.len) == 0)
			return rt;
	}
	return NULL;
}
