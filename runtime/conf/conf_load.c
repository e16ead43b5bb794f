/* conf_load.c - wd_conf_load: the parsed file into the model, section by
 * section. The sections load in the order their references need (a
 * binding names an exchange and a queue, a plugin's path is resolved
 * against plugin_dir), so that each reference is checked as it is read and
 * its error points at the line that makes it.
 *
 * An array's count is set only once the array exists: on failure
 * wd_conf_free walks what was loaded so far. */
#include "conf/conf_parse.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/amqp_compat.h"
#include "base/amqp_fields.h"
#include "base/install.h"
#include "base/listen.h"
#include "base/log.h"
#include "base/trust.h"

/* A copy of optional key `key` (NULL if unset) into *dst: 0, or -1 out of
 * memory. */
static int copy_opt(char **dst, cfg_t *sec, const char *key)
{
	const char *s = cfg_getstr(sec, key);

	*dst = s ? strdup(s) : NULL;
	return s && !*dst ? -1 : 0;
}

static long exchange_index(const struct wd_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nexchanges; i++)
		if (strcmp(conf->exchanges[i].name, name) == 0)
			return (long)i;
	return -1;
}

/* Whether url (copied: amqp_parse_url() writes into its text) is what the
 * connection will accept: the same parse the connection makes
 * (broker/broker.c), so that -t refuses what start would. 0, 1 if it does
 * not start with amqp:// or amqps://, 2 if it does not parse, -1 if out of
 * memory. */
static int check_url(const char *url)
{
	struct amqp_connection_info info;
	char *copy;
	int rc;

	if (strncmp(url, "amqp://", 7) != 0 && strncmp(url, "amqps://", 8) != 0)
		return 1;
	if (!(copy = strdup(url)))
		return -1;
	amqp_default_connection_info(&info);
	rc = amqp_parse_url(copy, &info);
	free(copy);
	return rc == AMQP_STATUS_OK ? 0 : 2;
}

static int add_url(struct wd_conf_broker *b, const char *url, size_t len)
{
	char **grown = realloc(b->urls, (b->nurls + 1) * sizeof(*grown));

	if (!grown)
		return -1;
	b->urls = grown;
	if (!(b->urls[b->nurls] = strndup(url, len)))
		return -1;
	b->nurls++;
	return 0;
}

/* The install's plugin dir (CMakeLists.txt), and where it lies from the
 * installed warrend, for a moved install (base/install.h). */
#ifndef WARREN_DEFAULT_PLUGIN_DIR
#define WARREN_DEFAULT_PLUGIN_DIR "/usr/local/lib/warren/plugins"
#endif
#ifndef WARREN_REL_PLUGIN_DIR
#define WARREN_REL_PLUGIN_DIR ""
#endif

/* What separates the URLs of WARREN_AMQP_URL. */
static const char URL_SEP[] = " \t\n,";

/* WARREN_AMQP_URL: one URL, or several separated by spaces or commas (a
 * comma inside a URL is written %2C). */
static int urls_from_env(struct wd_conf_broker *b, const char *env)
{
	for (const char *p = env + strspn(env, URL_SEP); *p;
	     p += strspn(p, URL_SEP)) {
		size_t len = strcspn(p, URL_SEP);
		if (add_url(b, p, len) < 0)
			return -1;
		p += len;
	}
	return 0;
}

static int load_urls(struct wd_conf *c, cfg_t *b)
{
	const char *env = getenv("WARREN_AMQP_URL");
	bool from_env = env && env[strspn(env, URL_SEP)];
	const char *origin = from_env ? " (it comes from WARREN_AMQP_URL)" : "";
	int line = from_env ? b->line : wd_conf_line_of(b, "url");

	if (from_env) {
		if (urls_from_env(&c->broker, env) < 0)
			return -1;
	} else {
		for (unsigned i = 0; i < cfg_size(b, "url"); i++) {
			const char *u = cfg_getnstr(b, "url", i);
			if (add_url(&c->broker, u, strlen(u)) < 0)
				return -1;
		}
	}
	if (c->broker.nurls == 0) {
		wd_conf_set_err(c->file, line, "broker: url is an empty list");
		return -1;
	}
	for (size_t i = 0; i < c->broker.nurls; i++) {
		char which[48] = "";
		int rc = check_url(c->broker.urls[i]);

		if (rc < 0)
			return -1;
		if (rc == 0)
			continue;
		/* The URL is not repeated: it may hold a password. */
		if (c->broker.nurls > 1)
			snprintf(which, sizeof(which), " %zu of %zu", i + 1,
			         c->broker.nurls);
		wd_conf_set_err(c->file, line,
		                rc == 1
		                    ? "broker: url%s must start with amqp:// "
		                      "or amqps://%s"
		                    : "broker: url%s is not a valid amqp:// "
		                      "or amqps:// URL (host, port, percent "
		                      "escapes)%s",
		                which, origin);
		return -1;
	}
	return 0;
}

/* A secret the broker section names (password_file, client_key) that
 * others could read is refused at every load (start, reload, -t), before
 * anything reads it. */
static int check_secret(struct wd_conf *c, cfg_t *b, const char *key,
                        const char *path)
{
	char why[PATH_MAX + 256];

	if (!path || wd_secret_check(path, why, sizeof(why)) == 0)
		return 0;
	wd_conf_set_err(c->file, wd_conf_line_of(b, key), "broker: %s %s", key,
	                why);
	return -1;
}

static int load_broker(struct wd_conf *c, cfg_t *cfg)
{
	cfg_t *b = cfg_getsec(cfg, "broker");

	c->broker.heartbeat = (int)cfg_getint(b, "heartbeat");
	c->broker.connect_timeout = (int)cfg_getint(b, "connect_timeout");
	c->broker.pool_size = (int)cfg_getint(b, "pool_size");
	c->broker.prefetch = (int)cfg_getint(b, "prefetch");
	c->broker.prefetch_min = (int)cfg_getint(b, "prefetch_min");
	c->broker.prefetch_max = (int)cfg_getint(b, "prefetch_max");
	if (c->broker.prefetch_min > c->broker.prefetch_max) {
		wd_conf_set_err(c->file, wd_conf_line_of(b, "prefetch_max"),
		                "prefetch_max: %d is below prefetch_min %d",
		                c->broker.prefetch_max, c->broker.prefetch_min);
		return -1;
	}
	c->broker.verify_peer = cfg_getbool(b, "verify_peer");
	c->broker.ack_batch = (int)cfg_getint(b, "ack_batch");
	c->broker.ack_delay_ms = (int)cfg_getint(b, "ack_delay_ms");
	c->broker.publish_timeout = (int)cfg_getint(b, "publish_timeout");
	c->broker.startup_wait = strcmp(cfg_getstr(b, "startup"), "fail") != 0;
	if (copy_opt(&c->broker.password_file, b, "password_file") < 0 ||
	    copy_opt(&c->broker.ca_cert, b, "ca_cert") < 0 ||
	    copy_opt(&c->broker.client_cert, b, "client_cert") < 0 ||
	    copy_opt(&c->broker.client_key, b, "client_key") < 0)
		return -1;
	/* One without the other was ignored: a broker that requires a client
	 * certificate would then refuse warrend with no word of why. */
	if (!c->broker.client_cert != !c->broker.client_key) {
		bool cert = c->broker.client_cert != NULL;
		wd_conf_set_err(
		    c->file,
		    wd_conf_line_of(b, cert ? "client_cert" : "client_key"),
		    "broker: %s is set without %s",
		    cert ? "client_cert" : "client_key",
		    cert ? "client_key" : "client_cert");
		return -1;
	}
	/* WARREN_AMQP_PASSWORD wins over password_file, which is then not
	 * read (broker/broker.c): nor checked. */
	const char *env_pw = getenv("WARREN_AMQP_PASSWORD");
	if (check_secret(c, b, "password_file",
	                 env_pw && *env_pw ? NULL : c->broker.password_file) <
	        0 ||
	    check_secret(c, b, "client_key", c->broker.client_key) < 0)
		return -1;
	return load_urls(c, b);
}

static int load_arguments(struct wd_conf *c, cfg_t *s, const char *what,
                          struct wd_conf_arg **args, size_t *nargs);

static int load_exchanges(struct wd_conf *c, cfg_t *cfg)
{
	size_t n = cfg_size(cfg, "exchange");

	c->exchanges = calloc(n + 1, sizeof(*c->exchanges));
	if (!c->exchanges)
		return -1;
	c->nexchanges = n;
	for (size_t i = 0; i < n; i++) {
		cfg_t *s = cfg_getnsec(cfg, "exchange", (unsigned)i);
		struct wd_conf_exchange *e = &c->exchanges[i];

		e->name = strdup(cfg_title(s));
		e->type = strdup(cfg_getstr(s, "type"));
		e->durable = cfg_getbool(s, "durable");
		e->line = s->line;
		if (!e->name || !e->type)
			return -1;
		if (!*e->name) {
			wd_conf_set_err(c->file, s->line,
			                "exchange: the default exchange \"\" "
			                "cannot be declared");
			return -1;
		}
		if (load_arguments(c, s, "exchange", &e->args, &e->nargs) < 0)
			return -1;
	}
	return 0;
}

/* "x-key=value": numbers stay numbers (x-max-priority=10 must be an int).
 * `what` is the section, "queue" or "exchange", for the error. */
static int parse_argument(struct wd_conf *c, cfg_t *s, const char *what,
                          const char *text, struct wd_conf_arg *a)
{
	const char *eq = strchr(text, '=');
	char *end;

	if (!eq || eq == text) {
		wd_conf_set_err(c->file, wd_conf_line_of(s, "arguments"),
		                "%s \"%s\": argument \"%s\" is not "
		                "\"key=value\"",
		                what, cfg_title(s), text);
		return -1;
	}
	a->key = strndup(text, (size_t)(eq - text));
	errno = 0;
	a->ival = strtol(eq + 1, &end, 10);
	a->is_int = eq[1] && !*end && errno == 0;
	a->sval = strdup(eq + 1);
	return a->key && a->sval ? 0 : -1;
}

/* A queue's or an exchange's `arguments` (one parse for both). */
static int load_arguments(struct wd_conf *c, cfg_t *s, const char *what,
                          struct wd_conf_arg **args, size_t *nargs)
{
	size_t n = cfg_size(s, "arguments");

	*args = calloc(n + 1, sizeof(**args));
	if (!*args)
		return -1;
	*nargs = n;
	for (size_t j = 0; j < n; j++)
		if (parse_argument(c, s, what,
		                   cfg_getnstr(s, "arguments", (unsigned)j),
		                   &(*args)[j]) < 0)
			return -1;
	return 0;
}

/* A queue's own input policy key, else the `policy` section's. */
static enum wd_bad_input bad_input(cfg_t *sec, cfg_t *policy, const char *key)
{
	const char *v =
	    cfg_size(sec, key) ? cfg_getstr(sec, key) : cfg_getstr(policy, key);
	return strcmp(v, "drop") == 0 ? WD_BAD_DROP : WD_BAD_DEAD_LETTER;
}

/* An input limit: the queue's own, else the policy section's. */
static long queue_or_policy(cfg_t *queue, cfg_t *policy, const char *key)
{
	return cfg_size(queue, key) ? cfg_getint(queue, key)
	                            : cfg_getint(policy, key);
}

static int load_queue(struct wd_conf *c, cfg_t *s, cfg_t *policy,
                      struct wd_conf_queue *q)
{
	const char *from = cfg_getstr(s, "type_from");
	long consumers = cfg_getint(s, "consumers");

	q->name = strdup(cfg_title(s));
	q->line = s->line;
	q->durable = cfg_getbool(s, "durable");
	q->quorum = strcmp(cfg_getstr(s, "type"), "quorum") == 0;
	q->message_ttl = cfg_getint(s, "message_ttl");
	q->max_length = cfg_getint(s, "max_length");
	q->delivery_limit = cfg_getint(s, "delivery_limit");
	q->type_from = strcmp(from, "property") == 0 ? WD_TYPE_FROM_PROPERTY
	               : strcmp(from, "routing_key") == 0
	                   ? WD_TYPE_FROM_ROUTING_KEY
	                   : WD_TYPE_FROM_JSON;
	q->type_field = strdup(cfg_getstr(s, "type_field"));
	/* 0 (unset) is resolved once the routes are known
	 * (conf_routes.c). */
	q->prefetch = (int)cfg_getint(s, "prefetch");
	q->prefetch_min = (int)cfg_getint(s, "prefetch_min");
	q->prefetch_max = (int)cfg_getint(s, "prefetch_max");
	if (q->prefetch_min == 0)
		q->prefetch_min = c->broker.prefetch_min;
	if (q->prefetch_max == 0)
		q->prefetch_max = c->broker.prefetch_max;
	if (q->prefetch_min > q->prefetch_max) {
		bool max_here = cfg_getint(s, "prefetch_max") != 0;
		wd_conf_set_err(
		    c->file,
		    wd_conf_line_of(s,
		                    max_here ? "prefetch_max" : "prefetch_min"),
		    "queue \"%s\": prefetch_max %d is below prefetch_min %d",
		    cfg_title(s), q->prefetch_max, q->prefetch_min);
		return -1;
	}
	q->consumers = consumers == 0 || consumers > c->broker.pool_size
	                   ? c->broker.pool_size
	                   : (int)consumers;
	q->max_body_size = queue_or_policy(s, policy, "max_body_size");
	q->limits.json_depth =
	    (int)queue_or_policy(s, policy, "max_json_depth");
	q->limits.json_values = queue_or_policy(s, policy, "max_json_values");
	q->limits.parse_ms = (int)queue_or_policy(s, policy, "max_parse_ms");
	q->limits.header_depth =
	    (int)queue_or_policy(s, policy, "max_header_depth");
	q->limits.headers = queue_or_policy(s, policy, "max_headers");
	q->on_unknown_type = bad_input(s, policy, "on_unknown_type");
	q->on_unparseable = bad_input(s, policy, "on_unparseable");
	q->on_too_large = bad_input(s, policy, "on_too_large");
	if (!q->name || !q->type_field ||
	    copy_opt(&q->dead_letter_exchange, s, "dead_letter_exchange") < 0 ||
	    copy_opt(&q->dead_letter_routing_key, s,
	             "dead_letter_routing_key") < 0)
		return -1;
	if (!*q->name || strlen(q->name) > 255) {
		wd_conf_set_err(c->file, s->line,
		                "queue: a name of 1 to 255 bytes is required");
		return -1;
	}
	if (q->delivery_limit && !q->quorum) {
		wd_conf_set_err(c->file, wd_conf_line_of(s, "delivery_limit"),
		                "queue \"%s\": delivery_limit needs type = "
		                "\"quorum\" (classic queues ignore it)",
		                q->name);
		return -1;
	}
	if (q->quorum && !q->durable) {
		wd_conf_set_err(c->file, s->line,
		                "queue \"%s\": quorum queues must be durable",
		                q->name);
		return -1;
	}
	return load_arguments(c, s, "queue", &q->args, &q->nargs);
}

static int load_queues(struct wd_conf *c, cfg_t *cfg)
{
	cfg_t *policy = cfg_getsec(cfg, "policy");
	size_t n = cfg_size(cfg, "queue");

	c->queues = calloc(n + 1, sizeof(*c->queues));
	if (!c->queues)
		return -1;
	c->nqueues = n;
	for (size_t i = 0; i < n; i++)
		if (load_queue(c, cfg_getnsec(cfg, "queue", (unsigned)i),
		               policy, &c->queues[i]) < 0)
			return -1;
	return 0;
}

static int load_bindings(struct wd_conf *c, cfg_t *cfg)
{
	size_t n = cfg_size(cfg, "binding");

	c->bindings = calloc(n + 1, sizeof(*c->bindings));
	if (!c->bindings)
		return -1;
	c->nbindings = n;
	for (size_t i = 0; i < n; i++) {
		cfg_t *s = cfg_getnsec(cfg, "binding", (unsigned)i);
		struct wd_conf_binding *b = &c->bindings[i];

		if (wd_conf_require(c->file, s, "binding", "exchange") < 0 ||
		    wd_conf_require(c->file, s, "binding", "queue") < 0)
			return -1;
		b->exchange = strdup(cfg_getstr(s, "exchange"));
		b->queue = strdup(cfg_getstr(s, "queue"));
		b->key = strdup(cfg_getstr(s, "key"));
		b->line = wd_conf_line_of(s, "exchange");
		if (!b->exchange || !b->queue || !b->key)
			return -1;
		/* Every broker has the amq.* exchanges without a declare. */
		if (exchange_index(c, b->exchange) < 0 &&
		    !wd_amqp_predeclared(amqp_cstring_bytes(b->exchange))) {
			wd_conf_set_err(c->file, wd_conf_line_of(s, "exchange"),
			                "binding: exchange \"%s\" is not "
			                "declared",
			                b->exchange);
			return -1;
		}
		if (wd_conf_queue_index(c, b->queue) < 0) {
			wd_conf_set_err(c->file, wd_conf_line_of(s, "queue"),
			                "binding: queue \"%s\" is not declared",
			                b->queue);
			return -1;
		}
	}
	return 0;
}

static char *resolve_path(const char *dir, const char *path)
{
	size_t len = strlen(dir) + strlen(path) + 2;
	char *out;

	if (path[0] == '/')
		return strdup(path);
	out = malloc(len);
	if (out)
		snprintf(out, len, "%s/%s", dir, path);
	return out;
}

static int load_params(struct wd_conf_plugin *p, cfg_t *params)
{
	size_t n = params ? cfg_num(params) : 0;

	p->params = calloc(n + 1, sizeof(*p->params));
	if (!p->params)
		return -1;
	p->nparams = n;
	for (size_t j = 0; j < n; j++) {
		cfg_opt_t *o = cfg_getnopt(params, (unsigned)j);

		p->params[j].key = strdup(cfg_opt_name(o));
		p->params[j].value = strdup(cfg_opt_getnstr(o, 0));
		if (!p->params[j].key || !p->params[j].value)
			return -1;
	}
	return 0;
}

static int load_plugins(struct wd_conf *c, cfg_t *cfg)
{
	size_t n = cfg_size(cfg, "plugin");

	c->plugins = calloc(n + 1, sizeof(*c->plugins));
	if (!c->plugins)
		return -1;
	c->nplugins = n;
	for (size_t i = 0; i < n; i++) {
		cfg_t *s = cfg_getnsec(cfg, "plugin", (unsigned)i);
		struct wd_conf_plugin *p = &c->plugins[i];

		p->name = strdup(cfg_title(s));
		p->line = s->line;
		if (wd_conf_require(c->file, s, "plugin", "path") < 0)
			return -1;
		p->line = wd_conf_line_of(s, "path");
		p->path = resolve_path(c->plugin_dir, cfg_getstr(s, "path"));
		p->insecure = cfg_getbool(cfg, "plugin_insecure");
		if (!p->name || !p->path ||
		    load_params(p, cfg_getsec(s, "params")) < 0)
			return -1;
	}
	return 0;
}

/* The load of n bytes of text (text[n] a NUL; blanked in place) under
 * `name`, within the load ctx set up by the caller. */
static struct wd_conf *load_text(struct wd_conf_load_ctx *ctx, const char *name,
                                 char *text, size_t n)
{
	struct wd_conf *c = NULL;
	const char *env_dir = getenv("WARREN_PLUGIN_DIR");
	const char *env_http = getenv("WARREN_HTTP_LISTEN");
	char installed[PATH_MAX];
	const char *dir;
	struct sockaddr_storage ss;
	socklen_t sslen;
	enum wd_log_level level;
	cfg_t *cfg;

	cfg = wd_conf_parse_text(name, text, n);
	if (!cfg)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->file = strdup(name);
	wd_log_level_parse(cfg_getstr(cfg, "log_level"), &level);
	c->log_level = (int)level;
	c->log_format = strcmp(cfg_getstr(cfg, "log_format"), "json") == 0
	                    ? WD_LOG_JSON
	                    : WD_LOG_TEXT;
	c->workers = (int)cfg_getint(cfg, "workers");
	c->shutdown_timeout = (int)cfg_getint(cfg, "shutdown_timeout");
	c->metrics_interval = (int)cfg_getint(cfg, "metrics_interval");
	c->memory_warn_mb = cfg_getint(cfg, "memory_warn_mb");
	c->memory_warn_samples = (int)cfg_getint(cfg, "memory_warn_samples");
	c->memory_warn_growth_kb = cfg_getint(cfg, "memory_warn_growth_kb");
	dir = env_dir && *env_dir ? env_dir : cfg_getstr(cfg, "plugin_dir");
	if (!dir) /* unset: the install's own */
		dir = wd_install_path(WARREN_REL_PLUGIN_DIR,
		                      WARREN_DEFAULT_PLUGIN_DIR, installed,
		                      sizeof(installed));
	c->plugin_dir = strdup(dir);
	c->http_listen =
	    strdup(env_http ? env_http
	                    : cfg_getstr(cfg_getsec(cfg, "http"), "listen"));
	if (!c->file || !c->plugin_dir || !c->http_listen)
		goto fail;
	if (env_http && *env_http &&
	    wd_listen_parse(env_http, &ss, &sslen) < 0) {
		wd_conf_set_err(name, 0,
		                "WARREN_HTTP_LISTEN \"%s\" is not ADDRESS:PORT",
		                env_http);
		goto fail;
	}
	if (load_broker(c, cfg) < 0 || load_exchanges(c, cfg) < 0 ||
	    load_queues(c, cfg) < 0 || load_bindings(c, cfg) < 0 ||
	    load_plugins(c, cfg) < 0 || wd_conf_load_routes(c, cfg) < 0 ||
	    wd_conf_check(c, cfg->line) < 0)
		goto fail;
	cfg_free(cfg);
	return c;
fail:
	if (!ctx->failed)
		wd_conf_set_err(name, 0, "out of memory");
	cfg_free(cfg);
	wd_conf_free(c);
	return NULL;
}

struct wd_conf *wd_conf_load(const char *path, char *err, size_t errlen)
{
	struct wd_conf_load_ctx ctx = {
	    .path = path, .err = err, .errlen = errlen};
	struct wd_conf *c = NULL;
	size_t n = 0;
	char *text;

	err[0] = '\0';
	wd_conf_cur = &ctx;
	text = wd_conf_read_file(path, &n);
	if (text)
		c = load_text(&ctx, path, text, n);
	free(text);
	free(ctx.lines);
	wd_conf_cur = NULL;
	return c;
}

struct wd_conf *wd_conf_load_text(const char *name, const char *text,
                                  size_t len, char *err, size_t errlen)
{
	struct wd_conf_load_ctx ctx = {
	    .path = name, .err = err, .errlen = errlen};
	struct wd_conf *c = NULL;
	char *copy = malloc(len + 1);

	err[0] = '\0';
	wd_conf_cur = &ctx;
	if (copy) {
		memcpy(copy, text, len);
		copy[len] = '\0';
		c = load_text(&ctx, name, copy, len);
	} else {
		wd_conf_set_err(name, 0, "out of memory");
	}
	free(copy);
	free(ctx.lines);
	wd_conf_cur = NULL;
	return c;
}
