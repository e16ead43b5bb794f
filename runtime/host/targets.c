/* targets.c - the exchanges plugins publish follow-ups to, checked. */
#include "host/targets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/grow.h"
#include "base/log.h"
#include "broker/topology.h"
#include "host/routes.h"

static const char AREA[] = "plugin";

int wd_targets_add(struct wd_targets *t, const char *exchange)
{
	char *copy;

	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->names[i], exchange) == 0)
			return 0;
	if (WD_GROW(t->names, t->cap, t->n + 1, 4) < 0 ||
	    !(copy = strdup(exchange)))
		return -1;
	t->names[t->n++] = copy;
	return 0;
}

void wd_targets_free(struct wd_targets *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->names[i]);
	free(t->names);
	*t = (struct wd_targets){0};
}

/* The exchanges every RabbitMQ node has (AMQP 0-9-1's and RabbitMQ's
 * trace exchange): known to exist without asking. Any other "amq.*" name
 * cannot be declared by a client, so it is most likely a typo. */
static bool standard(const char *x)
{
	static const char *const names[] = {"amq.direct", "amq.fanout",
	                                    "amq.topic",  "amq.headers",
	                                    "amq.match",  "amq.rabbitmq.trace"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(x, names[i]) == 0)
			return true;
	return false;
}

/* Whether the conf answers for x without the broker: the default
 * exchange, or one it declares. */
static bool declared(const struct wd_conf *c, const char *x)
{
	return !*x || wd_conf_declares_exchange(c, x);
}

size_t wd_targets_check_conf(const struct wd_routes *r)
{
	size_t unknown = 0;

	for (size_t i = 0; i < r->nplugins; i++) {
		const struct wd_plugin *p = &r->plugins[i];
		for (size_t j = 0; j < p->targets.n; j++) {
			const char *x = p->targets.names[j];
			if (declared(r->conf, x) || standard(x))
				continue;
			unknown++;
			wd_log_warnx(AREA,
			             "plugin \"%s\" (%s) publishes to exchange "
			             "\"%s\", which the conf does not declare: "
			             "warrend checks that it exists on the "
			             "broker at start and at each reload (-t "
			             "does not connect)",
			             p->conf->name, p->conf->path, x);
		}
	}
	return unknown;
}

bool wd_targets_need_broker(const struct wd_routes *r)
{
	for (size_t i = 0; i < r->nplugins; i++)
		for (size_t j = 0; j < r->plugins[i].targets.n; j++)
			if (!declared(r->conf, r->plugins[i].targets.names[j]))
				return true;
	return false;
}

int wd_targets_check_broker(const struct wd_routes *r,
                            amqp_connection_state_t conn, amqp_channel_t ch,
                            char *err, size_t errlen)
{
	char why[512];

	for (size_t i = 0; i < r->nplugins; i++) {
		const struct wd_plugin *p = &r->plugins[i];
		for (size_t j = 0; j < p->targets.n; j++) {
			const char *x = p->targets.names[j];
			/* amq.* too: a misspelt one does not exist either. */
			if (declared(r->conf, x))
				continue;
			if (wd_topology_exchange_exists(conn, ch, x, why,
			                                sizeof(why)) == 0)
				continue;
			snprintf(err, errlen,
			         "plugin \"%s\" (%s) publishes to exchange "
			         "\"%s\" (publishes_to in its init), which "
			         "the conf does not declare and the broker "
			         "does not have (%s): declare it in %s "
			         "(exchange \"%s\" { type = ... }), create "
			         "it on the broker, or correct the name in "
			         "the plugin's params",
			         p->conf->name, p->conf->path, x, why,
			         r->conf->file, x);
			return -1;
		}
	}
	return 0;
}
