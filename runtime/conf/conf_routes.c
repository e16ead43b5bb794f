/* conf_routes.c - the route sections into the model: each route's queue,
 * plugin and handler, and its retry policy, whose delays decide the retry
 * queues of its queue. */
#include "conf/conf_parse.h"

#include <stdlib.h>
#include <string.h>

#include "message/policy.h"

/* The route's own key, else the `policy` section's. */
static long route_int(cfg_t *r, cfg_t *policy, const char *key)
{
	return cfg_size(r, key) ? cfg_getint(r, key) : cfg_getint(policy, key);
}

static double route_float(cfg_t *r, cfg_t *policy, const char *key)
{
	return cfg_size(r, key) ? cfg_getfloat(r, key)
	                        : cfg_getfloat(policy, key);
}

static int load_policy(struct wd_conf *c, cfg_t *s, cfg_t *policy,
                       struct wd_policy *p)
{
	p->max_attempts = (int)route_int(s, policy, "max_attempts");
	p->retry_delay_ms = route_int(s, policy, "retry_delay_ms");
	p->retry_multiplier = route_float(s, policy, "retry_multiplier");
	p->retry_max_delay_ms = route_int(s, policy, "retry_max_delay_ms");
	p->retry_jitter = route_float(s, policy, "retry_jitter");
	p->batch_size = (int)cfg_getint(s, "batch_size");
	p->batch_timeout_ms = cfg_getint(s, "batch_timeout_ms");
	p->handler_warn_ms =
	    route_int(s, policy, "handler_timeout_warn") * 1000;
	p->concurrency = (int)cfg_getint(s, "concurrency");
	/* A limit above the workers would never bind: refused, so that
	 * nobody counts on a limit that does nothing. */
	if (p->concurrency > c->workers) {
		wd_conf_set_err(c->file, wd_conf_line_of(s, "concurrency"),
		                "route \"%s\": concurrency (%d) is more than "
		                "workers (%d): at most %d calls run at once "
		                "anyway",
		                cfg_title(s), p->concurrency, c->workers,
		                c->workers);
		return -1;
	}
	if (p->retry_max_delay_ms < p->retry_delay_ms) {
		wd_conf_set_err(c->file, s->line,
		                "route \"%s\": retry_max_delay_ms (%ld) is "
		                "shorter than retry_delay_ms (%ld)",
		                cfg_title(s), p->retry_max_delay_ms,
		                p->retry_delay_ms);
		return -1;
	}
	return 0;
}

/* Add the route's retry delays to its queue's sorted set. */
static int add_retry_delays(struct wd_conf_queue *q, const struct wd_policy *p)
{
	for (int a = 1; a < p->max_attempts; a++) {
		long d = wd_policy_delay_ms(p, a);
		size_t i = 0;

		while (i < q->nretry_delays && q->retry_delays[i] < d)
			i++;
		if (i < q->nretry_delays && q->retry_delays[i] == d)
			continue;
		void *n = realloc(q->retry_delays,
		                  (q->nretry_delays + 1) * sizeof(long));
		if (!n)
			return -1;
		q->retry_delays = n;
		memmove(&q->retry_delays[i + 1], &q->retry_delays[i],
		        (q->nretry_delays - i) * sizeof(long));
		q->retry_delays[i] = d;
		q->nretry_delays++;
	}
	return 0;
}

/* The route table maps (queue, type) to one handler. */
static int check_duplicate(struct wd_conf *c, cfg_t *s, size_t i)
{
	const struct wd_conf_route *r = &c->routes[i];

	for (size_t j = 0; j < i; j++) {
		if (c->routes[j].queue == r->queue &&
		    strcmp(c->routes[j].type, r->type) == 0) {
			wd_conf_set_err(c->file, wd_conf_line_of(s, "queue"),
			                "route \"%s\": type \"%s\" is already "
			                "routed on queue \"%s\" (line %d)",
			                cfg_title(s), r->type,
			                c->queues[r->queue].name,
			                c->routes[j].line);
			return -1;
		}
	}
	return 0;
}

/* Route i, from section s. */
static int load_route(struct wd_conf *c, cfg_t *s, cfg_t *policy, size_t i)
{
	struct wd_conf_route *r = &c->routes[i];
	/* The title names the route and is its type unless `type` says
	 * otherwise (the same type routed on two queues needs two route
	 * names). */
	const char *type =
	    cfg_size(s, "type") ? cfg_getstr(s, "type") : cfg_title(s);
	long q, p;

	if (wd_conf_require(c->file, s, "route", "queue") < 0 ||
	    wd_conf_require(c->file, s, "route", "plugin") < 0 ||
	    wd_conf_require(c->file, s, "route", "handler") < 0)
		return -1;
	r->type = strdup(type);
	r->handler = strdup(cfg_getstr(s, "handler"));
	r->line = wd_conf_line_of(s, "handler");
	if (!r->type || !r->handler)
		return -1;
	if (!*type || strlen(type) > 255) {
		wd_conf_set_err(c->file, s->line,
		                "route: the message type must be 1 to 255 "
		                "bytes");
		return -1;
	}
	q = wd_conf_queue_index(c, cfg_getstr(s, "queue"));
	if (q < 0) {
		wd_conf_set_err(c->file, wd_conf_line_of(s, "queue"),
		                "route \"%s\": queue \"%s\" is not declared",
		                cfg_title(s), cfg_getstr(s, "queue"));
		return -1;
	}
	p = wd_conf_plugin_index(c, cfg_getstr(s, "plugin"));
	if (p < 0) {
		wd_conf_set_err(c->file, wd_conf_line_of(s, "plugin"),
		                "route \"%s\": plugin \"%s\" is not defined",
		                cfg_title(s), cfg_getstr(s, "plugin"));
		return -1;
	}
	r->queue = (size_t)q;
	r->plugin = (size_t)p;
	c->queues[q].consumed = true;
	if (load_policy(c, s, policy, &r->policy) < 0 ||
	    add_retry_delays(&c->queues[q], &r->policy) < 0)
		return -1;
	return check_duplicate(c, s, i);
}

/*
 * The prefetch of a queue whose section sets none (README: Concurrency per
 * route). If every route on it has a concurrency limit, the broker need
 * not push more than those calls can take soon: twice what they can hold
 * at once (each call, times its batch_size for a batch route), so that the
 * next delivery is there when a call returns, shared out between the
 * queue's consumers. Else broker.prefetch. The one place of the rule.
 * It wins over broker.prefetch = "auto" too: the limits say how many
 * calls can take deliveries, which is what auto would have to find out
 * (a queue's own prefetch = "auto" wins over the rule).
 */
static int derived_prefetch(const struct wd_conf *c, size_t queue)
{
	const struct wd_conf_queue *q = &c->queues[queue];
	long held = 0, per;

	for (size_t i = 0; i < c->nroutes; i++) {
		const struct wd_policy *p = &c->routes[i].policy;
		if (c->routes[i].queue != queue)
			continue;
		if (p->concurrency == 0)
			return c->broker.prefetch; /* a route without limit */
		held += (long)p->concurrency * p->batch_size;
	}
	if (held == 0)
		return c->broker.prefetch; /* not consumed */
	per = (2 * held + q->consumers - 1) / q->consumers;
	return per > 65535 ? 65535 : (int)per;
}

int wd_conf_load_routes(struct wd_conf *c, cfg_t *cfg)
{
	cfg_t *policy = cfg_getsec(cfg, "policy");
	size_t n = cfg_size(cfg, "route");

	/* The count once the array exists: wd_conf_free walks it. */
	c->routes = calloc(n + 1, sizeof(*c->routes));
	if (!c->routes)
		return -1;
	c->nroutes = n;
	for (size_t i = 0; i < n; i++)
		if (load_route(c, cfg_getnsec(cfg, "route", (unsigned)i),
		               policy, i) < 0)
			return -1;
	for (size_t i = 0; i < c->nqueues; i++)
		if (c->queues[i].prefetch == 0) /* an explicit one wins */
			c->queues[i].prefetch = derived_prefetch(c, i);
	return 0;
}
