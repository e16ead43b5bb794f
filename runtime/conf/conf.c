/* conf.c - the model's own functions: lookups, resolved values and free.
 * Loading is conf_load.c's; comparing two confs is conf_diff.c's. */
#include "conf/conf.h"

#include <stdlib.h>
#include <string.h>

long wd_conf_queue_index(const struct wd_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nqueues; i++)
		if (strcmp(conf->queues[i].name, name) == 0)
			return (long)i;
	return -1;
}

long wd_conf_plugin_index(const struct wd_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nplugins; i++)
		if (strcmp(conf->plugins[i].name, name) == 0)
			return (long)i;
	return -1;
}

bool wd_conf_declares_exchange(const struct wd_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nexchanges; i++)
		if (strcmp(conf->exchanges[i].name, name) == 0)
			return true;
	return false;
}

int wd_conf_ack_batch(const struct wd_conf *conf, const struct wd_conf_queue *q)
{
	int window =
	    q->prefetch == WD_PREFETCH_AUTO ? q->prefetch_max : q->prefetch;
	int half = window / 2 > 0 ? window / 2 : 1;

	return conf->broker.ack_batch < half ? conf->broker.ack_batch : half;
}

static void free_args(struct wd_conf_arg *args, size_t n)
{
	for (size_t j = 0; j < n && args; j++) {
		free(args[j].key);
		free(args[j].sval);
	}
	free(args);
}

void wd_conf_free(struct wd_conf *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->plugin_dir);
	free(c->http_listen);
	for (size_t i = 0; i < c->broker.nurls; i++)
		free(c->broker.urls[i]);
	free(c->broker.urls);
	free(c->broker.password_file);
	free(c->broker.ca_cert);
	free(c->broker.client_cert);
	free(c->broker.client_key);
	for (size_t i = 0; i < c->nexchanges; i++) {
		free(c->exchanges[i].name);
		free(c->exchanges[i].type);
		free_args(c->exchanges[i].args, c->exchanges[i].nargs);
	}
	free(c->exchanges);
	for (size_t i = 0; i < c->nqueues; i++) {
		struct wd_conf_queue *q = &c->queues[i];
		free(q->name);
		free(q->dead_letter_exchange);
		free(q->dead_letter_routing_key);
		free(q->type_field);
		free(q->retry_delays);
		free_args(q->args, q->nargs);
	}
	free(c->queues);
	for (size_t i = 0; i < c->nbindings; i++) {
		free(c->bindings[i].exchange);
		free(c->bindings[i].queue);
		free(c->bindings[i].key);
	}
	free(c->bindings);
	for (size_t i = 0; i < c->nplugins; i++) {
		free(c->plugins[i].name);
		free(c->plugins[i].path);
		for (size_t j = 0; j < c->plugins[i].nparams; j++) {
			free((char *)c->plugins[i].params[j].key);
			free((char *)c->plugins[i].params[j].value);
		}
		free(c->plugins[i].params);
	}
	free(c->plugins);
	for (size_t i = 0; i < c->nroutes; i++) {
		free(c->routes[i].type);
		free(c->routes[i].handler);
	}
	free(c->routes);
	free(c);
}
