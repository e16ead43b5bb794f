/* conf_diff.c - comparisons of two confs. Field by field throughout: a
 * struct's padding is not part of its value, and a string is compared by
 * what it says, not where it is. */
#include "conf/conf_diff.h"

#include <string.h>

bool wd_conf_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_urls(const struct wd_conf_broker *x,
                      const struct wd_conf_broker *y)
{
	if (x->nurls != y->nurls)
		return false;
	for (size_t i = 0; i < x->nurls; i++)
		if (!wd_conf_str_eq(x->urls[i], y->urls[i]))
			return false;
	return true;
}

bool wd_conf_same_pool(const struct wd_conf *a, const struct wd_conf *b)
{
	const struct wd_conf_broker *x = &a->broker, *y = &b->broker;

	return same_urls(x, y) &&
	       wd_conf_str_eq(x->password_file, y->password_file) &&
	       x->heartbeat == y->heartbeat &&
	       x->connect_timeout == y->connect_timeout &&
	       x->pool_size == y->pool_size &&
	       wd_conf_str_eq(x->ca_cert, y->ca_cert) &&
	       wd_conf_str_eq(x->client_cert, y->client_cert) &&
	       wd_conf_str_eq(x->client_key, y->client_key) &&
	       x->verify_peer == y->verify_peer &&
	       x->publish_timeout == y->publish_timeout &&
	       a->workers == b->workers;
}

/* ---- topology ------------------------------------------------------------ */

static bool same_args(const struct wd_conf_arg *a, size_t na,
                      const struct wd_conf_arg *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!wd_conf_str_eq(a[i].key, b[i].key) ||
		    a[i].is_int != b[i].is_int || a[i].ival != b[i].ival ||
		    !wd_conf_str_eq(a[i].sval, b[i].sval))
			return false;
	return true;
}

/* `consumed` and the retry delays count: a consumed queue's retry queues
 * are declared with it. */
static bool same_queue(const struct wd_conf_queue *a,
                       const struct wd_conf_queue *b)
{
	if (!wd_conf_str_eq(a->name, b->name) || a->durable != b->durable ||
	    a->quorum != b->quorum ||
	    !wd_conf_str_eq(a->dead_letter_exchange, b->dead_letter_exchange) ||
	    !wd_conf_str_eq(a->dead_letter_routing_key,
	                    b->dead_letter_routing_key) ||
	    a->message_ttl != b->message_ttl ||
	    a->max_length != b->max_length ||
	    a->delivery_limit != b->delivery_limit ||
	    !same_args(a->args, a->nargs, b->args, b->nargs) ||
	    a->consumed != b->consumed || a->nretry_delays != b->nretry_delays)
		return false;
	for (size_t i = 0; i < a->nretry_delays; i++)
		if (a->retry_delays[i] != b->retry_delays[i])
			return false;
	return true;
}

bool wd_conf_same_topology(const struct wd_conf *a, const struct wd_conf *b)
{
	if (a->nexchanges != b->nexchanges || a->nqueues != b->nqueues ||
	    a->nbindings != b->nbindings)
		return false;
	for (size_t i = 0; i < a->nexchanges; i++)
		if (!wd_conf_str_eq(a->exchanges[i].name,
		                    b->exchanges[i].name) ||
		    !wd_conf_str_eq(a->exchanges[i].type,
		                    b->exchanges[i].type) ||
		    a->exchanges[i].durable != b->exchanges[i].durable ||
		    !same_args(a->exchanges[i].args, a->exchanges[i].nargs,
		               b->exchanges[i].args, b->exchanges[i].nargs))
			return false;
	for (size_t i = 0; i < a->nqueues; i++)
		if (!same_queue(&a->queues[i], &b->queues[i]))
			return false;
	for (size_t i = 0; i < a->nbindings; i++)
		if (!wd_conf_str_eq(a->bindings[i].exchange,
		                    b->bindings[i].exchange) ||
		    !wd_conf_str_eq(a->bindings[i].queue,
		                    b->bindings[i].queue) ||
		    !wd_conf_str_eq(a->bindings[i].key, b->bindings[i].key))
			return false;
	return true;
}

/* ---- consumers ----------------------------------------------------------- */

bool wd_conf_same_consumer(const struct wd_conf *a, size_t qa,
                           const struct wd_conf *b, size_t qb)
{
	const struct wd_conf_queue *x = &a->queues[qa], *y = &b->queues[qb];

	return strcmp(x->name, y->name) == 0 && x->prefetch == y->prefetch &&
	       (x->prefetch != WD_PREFETCH_AUTO ||
	        (x->prefetch_min == y->prefetch_min &&
	         x->prefetch_max == y->prefetch_max)) &&
	       wd_conf_ack_batch(a, x) == wd_conf_ack_batch(b, y) &&
	       a->broker.ack_delay_ms == b->broker.ack_delay_ms;
}

/* ---- the reload's summary ------------------------------------------------ */

/* The route of `conf` like r of `other`: the same type on a queue of the
 * same name (queue indexes differ between confs). */
static const struct wd_conf_route *route_like(const struct wd_conf *conf,
                                              const struct wd_conf *other,
                                              const struct wd_conf_route *r)
{
	const char *q = other->queues[r->queue].name;

	for (size_t i = 0; i < conf->nroutes; i++)
		if (strcmp(conf->routes[i].type, r->type) == 0 &&
		    strcmp(conf->queues[conf->routes[i].queue].name, q) == 0)
			return &conf->routes[i];
	return NULL;
}

static bool consumes(const struct wd_conf *conf, const char *queue)
{
	for (size_t i = 0; i < conf->nqueues; i++)
		if (conf->queues[i].consumed &&
		    strcmp(conf->queues[i].name, queue) == 0)
			return true;
	return false;
}

static bool same_policy(const struct wd_policy *a, const struct wd_policy *b)
{
	return a->max_attempts == b->max_attempts &&
	       a->retry_delay_ms == b->retry_delay_ms &&
	       a->retry_multiplier == b->retry_multiplier &&
	       a->retry_max_delay_ms == b->retry_max_delay_ms &&
	       a->retry_jitter == b->retry_jitter &&
	       a->batch_size == b->batch_size &&
	       a->batch_timeout_ms == b->batch_timeout_ms &&
	       a->handler_warn_ms == b->handler_warn_ms;
}

void wd_conf_diff(const struct wd_conf *old, const struct wd_conf *new,
                  struct wd_conf_diff *d)
{
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < new->nroutes; i++) {
		const struct wd_conf_route *n = &new->routes[i];
		const struct wd_conf_route *o = route_like(old, new, n);
		if (!o)
			d->routes_added++;
		else if (strcmp(o->handler, n->handler) != 0 ||
		         strcmp(old->plugins[o->plugin].name,
		                new->plugins[n->plugin].name) != 0 ||
		         !same_policy(&o->policy, &n->policy))
			d->routes_changed++;
	}
	for (size_t i = 0; i < old->nroutes; i++)
		if (!route_like(new, old, &old->routes[i]))
			d->routes_removed++;
	for (size_t i = 0; i < new->nqueues; i++)
		if (new->queues[i].consumed &&
		    !consumes(old, new->queues[i].name))
			d->queues_added++;
	for (size_t i = 0; i < old->nqueues; i++)
		if (old->queues[i].consumed &&
		    !consumes(new, old->queues[i].name))
			d->queues_removed++;
}
