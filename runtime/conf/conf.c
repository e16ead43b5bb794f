/* conf.c - load warren.conf with libconfuse and check it whole.
 *
 * Errors are "FILE:LINE: what is wrong". libconfuse reports syntax errors,
 * unknown keys and bad values with the line being parsed; value checks run
 * as validate callbacks during the parse for the same reason. Checks that
 * span sections (a route's plugin, a binding's queue) run after the parse
 * and use the line where the referring key was read, remembered by
 * remember_line(). */
#include "conf/conf.h"

#include <confuse.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"

#ifndef WARREN_DEFAULT_PLUGIN_DIR
#define WARREN_DEFAULT_PLUGIN_DIR "/usr/local/lib/warren/plugins"
#endif

/* State of the one load in progress on this thread. */
struct load_ctx {
	const char *path;
	char *err;
	size_t errlen;
	bool failed;
	struct {
		const cfg_opt_t *opt;
		int line;
	} *lines;
	size_t nlines, caplines;
};
static _Thread_local struct load_ctx *cur;

static void set_err(const char *file, int line, const char *fmt, ...)
    WD_PRINTF(3, 4);

static void set_err(const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (cur->failed)
		return; /* the first error is the one worth reading */
	cur->failed = true;
	n = snprintf(cur->err, cur->errlen, "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= cur->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(cur->err + n, cur->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static void on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[1024];

	/* libconfuse 3.3 reports "no such option" for every key of a
	 * CFGF_KEYSTRVAL section before it accepts the key anyway. */
	if ((cfg->flags & CFGF_KEYSTRVAL) &&
	    strncmp(fmt, "no such option", 14) == 0)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	set_err(cur->path, cfg->line, "%s", msg);
}

static int remember_line(cfg_t *cfg, cfg_opt_t *opt)
{
	if (cur->nlines == cur->caplines) {
		size_t cap = cur->caplines ? cur->caplines * 2 : 32;
		void *p = realloc(cur->lines, cap * sizeof(*cur->lines));
		if (!p)
			return -1;
		cur->lines = p;
		cur->caplines = cap;
	}
	cur->lines[cur->nlines].opt = opt;
	cur->lines[cur->nlines].line = cfg->line;
	cur->nlines++;
	return 0;
}

/* The line an option was read on, else the line of its section. */
static int line_of(cfg_t *sec, const char *name)
{
	cfg_opt_t *opt = cfg_getopt(sec, name);
	for (size_t i = cur->nlines; opt && i-- > 0;)
		if (cur->lines[i].opt == opt)
			return cur->lines[i].line;
	return sec->line;
}

static int check_one_of(cfg_t *cfg, cfg_opt_t *opt, const char *const *allowed)
{
	const char *v = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);
	char list[256] = "";

	for (size_t i = 0; allowed[i]; i++) {
		if (strcmp(v, allowed[i]) == 0)
			return remember_line(cfg, opt);
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		         "%s%s", i ? ", " : "", allowed[i]);
	}
	cfg_error(cfg, "%s: \"%s\" is not one of %s", cfg_opt_name(opt), v,
	          list);
	return -1;
}

static int validate_log_level(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"error", "warn", "info", "debug", NULL};
	return check_one_of(cfg, opt, v);
}

static int validate_exchange_type(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"direct", "fanout", "topic", "headers",
	                                NULL};
	return check_one_of(cfg, opt, v);
}

static int validate_queue_type(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"classic", "quorum", NULL};
	return check_one_of(cfg, opt, v);
}

static int validate_type_from(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"json", "property", "routing_key",
	                                NULL};
	return check_one_of(cfg, opt, v);
}

static int validate_bad_input(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"dead-letter", "drop", NULL};
	return check_one_of(cfg, opt, v);
}

#define MAX_DELAY_MS 86400000L /* one day */
#define MAX_RETRY_QUEUES 32     /* distinct retry delays per queue */

static const struct int_range {
	const char *path;
	long min, max;
} int_ranges[] = {
    {"workers", 1, 1024},
    {"shutdown_timeout", 1, 86400},
    {"broker|heartbeat", 0, 65535},
    {"broker|connect_timeout", 1, 3600},
    {"broker|pool_size", 1, 64},
    {"broker|prefetch", 1, 65535},
    {"queue|prefetch", 0, 65535},
    {"queue|consumers", 0, 64},
    {"queue|message_ttl", 0, LONG_MAX},
    {"queue|max_length", 0, LONG_MAX},
    {"queue|delivery_limit", 0, INT_MAX},
    {"broker|ack_batch", 1, 65535},
    {"broker|ack_delay_ms", 0, 10000},
    {"broker|publish_timeout", 1, 3600},
    {"policy|max_attempts", 1, 1000},
    {"route|max_attempts", 1, 1000},
    {"policy|retry_delay_ms", 1, MAX_DELAY_MS},
    {"route|retry_delay_ms", 1, MAX_DELAY_MS},
    {"policy|retry_max_delay_ms", 1, MAX_DELAY_MS},
    {"route|retry_max_delay_ms", 1, MAX_DELAY_MS},
    {"policy|max_body_size", 1, 512L << 20},
    {"queue|max_body_size", 1, 512L << 20},
    {"route|batch_size", 1, 10000},
    {"route|batch_timeout_ms", 1, 60000},
};

static const struct float_range {
	const char *path;
	double min, max;
} float_ranges[] = {
    {"policy|retry_multiplier", 1.0, 100.0},
    {"route|retry_multiplier", 1.0, 100.0},
    {"policy|retry_jitter", 0.0, 1.0},
    {"route|retry_jitter", 0.0, 1.0},
};

static void opt_path(cfg_t *cfg, cfg_opt_t *opt, char *path, size_t len)
{
	/* The root section is called "root"; others by their own name. */
	if (strcmp(cfg_name(cfg), "root") == 0)
		snprintf(path, len, "%s", cfg_opt_name(opt));
	else
		snprintf(path, len, "%s|%s", cfg_name(cfg), cfg_opt_name(opt));
}

static int validate_float_range(cfg_t *cfg, cfg_opt_t *opt)
{
	double v = cfg_opt_getnfloat(opt, 0);
	char path[128];

	opt_path(cfg, opt, path, sizeof(path));
	for (size_t i = 0; i < sizeof(float_ranges) / sizeof(float_ranges[0]);
	     i++) {
		if (strcmp(float_ranges[i].path, path) != 0)
			continue;
		if (!(v >= float_ranges[i].min && v <= float_ranges[i].max)) {
			cfg_error(cfg, "%s: %g is out of range %g..%g",
			          cfg_opt_name(opt), v, float_ranges[i].min,
			          float_ranges[i].max);
			return -1;
		}
	}
	return 0;
}

static int validate_range(cfg_t *cfg, cfg_opt_t *opt)
{
	long v = cfg_opt_getnint(opt, 0);
	const char *name = cfg_opt_name(opt);
	char path[128];

	opt_path(cfg, opt, path, sizeof(path));
	for (size_t i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++) {
		if (strcmp(int_ranges[i].path, path) != 0)
			continue;
		if (v < int_ranges[i].min || v > int_ranges[i].max) {
			cfg_error(cfg, "%s: %ld is out of range %ld..%ld", name,
			          v, int_ranges[i].min, int_ranges[i].max);
			return -1;
		}
		return 0;
	}
	return 0;
}

/*
 * The file's text with comments blanked out (newlines kept), after checking
 * that strings, comments and braces are closed. Two libconfuse 3.3 bugs
 * make this necessary: every `#` comment line advances its line counter by
 * three, so FILE:LINE would point past the error, and a file that ends
 * inside an open section parses as if it were complete.
 */
static char *read_config_text(const char *path)
{
	enum { CODE, STR_DQ, STR_SQ, LINE_COMMENT, BLOCK_COMMENT } st = CODE;
	int open_lines[64], depth = 0, line = 1, start = 0;
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0;

	if (!f) {
		set_err(path, 0, "cannot read: %s", strerror(errno));
		return NULL;
	}
	if (getdelim(&text, &len, '\0', f) < 0) {
		free(text);
		text = strdup("");
	}
	fclose(f);
	if (!text) {
		set_err(path, 0, "out of memory");
		return NULL;
	}
	for (char *p = text; *p; p++) {
		char ch = *p;
		switch (st) {
		case CODE:
			if (ch == '"' || ch == '\'') {
				st = ch == '"' ? STR_DQ : STR_SQ;
				start = line;
			} else if (ch == '#' || (ch == '/' && p[1] == '/')) {
				st = LINE_COMMENT;
				*p = ' ';
			} else if (ch == '/' && p[1] == '*') {
				st = BLOCK_COMMENT;
				start = line;
				p[0] = p[1] = ' ';
				p++;
			} else if (ch == '{') {
				if (depth < 64)
					open_lines[depth] = line;
				depth++;
			} else if (ch == '}' && depth > 0) {
				depth--;
			}
			break;
		case STR_DQ:
		case STR_SQ:
			if (ch == '\\' && p[1]) {
				p++;
				line += *p == '\n';
			} else if (ch == (st == STR_DQ ? '"' : '\'')) {
				st = CODE;
			}
			break;
		case LINE_COMMENT:
			if (ch == '\n')
				st = CODE;
			else
				*p = ' ';
			break;
		case BLOCK_COMMENT:
			if (ch == '*' && p[1] == '/') {
				p[0] = p[1] = ' ';
				p++;
				st = CODE;
			} else if (ch != '\n') {
				*p = ' ';
			}
			break;
		}
		line += ch == '\n';
	}
	if (st == STR_DQ || st == STR_SQ || st == BLOCK_COMMENT) {
		set_err(path, start, "%s is not closed at the end of the file",
		        st == BLOCK_COMMENT ? "this comment" : "this string");
	} else if (depth > 0) {
		set_err(path, open_lines[depth > 64 ? 63 : depth - 1],
		        "this section is not closed ('}' missing) at the end "
		        "of the file");
	}
	if (cur->failed) {
		free(text);
		return NULL;
	}
	return text;
}

static cfg_t *parse_file(const char *path)
{
	static cfg_opt_t broker_opts[] = {
	    CFG_STR("url", "amqp://guest:guest@127.0.0.1:5672", CFGF_NONE),
	    CFG_STR("password_file", NULL, CFGF_NONE),
	    CFG_INT("heartbeat", 60, CFGF_NONE),
	    CFG_INT("connect_timeout", 10, CFGF_NONE),
	    CFG_INT("pool_size", 2, CFGF_NONE),
	    CFG_INT("prefetch", 10, CFGF_NONE),
	    CFG_STR("ca_cert", NULL, CFGF_NONE),
	    CFG_STR("client_cert", NULL, CFGF_NONE),
	    CFG_STR("client_key", NULL, CFGF_NONE),
	    CFG_BOOL("verify_peer", cfg_true, CFGF_NONE),
	    CFG_INT("ack_batch", 100, CFGF_NONE),
	    CFG_INT("ack_delay_ms", 10, CFGF_NONE),
	    CFG_INT("publish_timeout", 30, CFGF_NONE),
	    CFG_END()};
	/* Defaults: the tutorial's production figures (3 retries, 5 s). */
	static cfg_opt_t policy_opts[] = {
	    CFG_INT("max_attempts", 4, CFGF_NONE),
	    CFG_INT("retry_delay_ms", 5000, CFGF_NONE),
	    CFG_FLOAT("retry_multiplier", 2.0, CFGF_NONE),
	    CFG_INT("retry_max_delay_ms", 60000, CFGF_NONE),
	    CFG_FLOAT("retry_jitter", 0.1, CFGF_NONE),
	    CFG_INT("max_body_size", 1L << 20, CFGF_NONE),
	    CFG_STR("on_unknown_type", "dead-letter", CFGF_NONE),
	    CFG_STR("on_unparseable", "dead-letter", CFGF_NONE),
	    CFG_STR("on_too_large", "dead-letter", CFGF_NONE),
	    CFG_END()};
	static cfg_opt_t exchange_opts[] = {
	    CFG_STR("type", "direct", CFGF_NONE),
	    CFG_BOOL("durable", cfg_true, CFGF_NONE),
	    CFG_END()};
	static cfg_opt_t queue_opts[] = {
	    CFG_BOOL("durable", cfg_true, CFGF_NONE),
	    CFG_STR("type", "classic", CFGF_NONE),
	    CFG_STR("dead_letter_exchange", NULL, CFGF_NONE),
	    CFG_STR("dead_letter_routing_key", NULL, CFGF_NONE),
	    CFG_INT("message_ttl", 0, CFGF_NONE),
	    CFG_INT("max_length", 0, CFGF_NONE),
	    CFG_INT("delivery_limit", 0, CFGF_NONE),
	    CFG_STR_LIST("arguments", NULL, CFGF_NONE),
	    CFG_STR("type_from", "json", CFGF_NONE),
	    CFG_STR("type_field", "type", CFGF_NONE),
	    CFG_INT("prefetch", 0, CFGF_NONE),
	    CFG_INT("consumers", 0, CFGF_NONE),
	    CFG_INT("max_body_size", 0, CFGF_NODEFAULT),
	    CFG_STR("on_unknown_type", NULL, CFGF_NODEFAULT),
	    CFG_STR("on_unparseable", NULL, CFGF_NODEFAULT),
	    CFG_STR("on_too_large", NULL, CFGF_NODEFAULT),
	    CFG_END()};
	static cfg_opt_t binding_opts[] = {
	    CFG_STR("exchange", NULL, CFGF_NODEFAULT),
	    CFG_STR("queue", NULL, CFGF_NODEFAULT),
	    CFG_STR("key", "", CFGF_NONE),
	    CFG_END()};
	static cfg_opt_t params_opts[] = {CFG_END()};
	static cfg_opt_t plugin_opts[] = {
	    CFG_STR("path", NULL, CFGF_NODEFAULT),
	    CFG_SEC("params", params_opts, CFGF_KEYSTRVAL),
	    CFG_END()};
	static cfg_opt_t route_opts[] = {
	    CFG_STR("type", NULL, CFGF_NODEFAULT),
	    CFG_STR("queue", NULL, CFGF_NODEFAULT),
	    CFG_STR("plugin", NULL, CFGF_NODEFAULT),
	    CFG_STR("handler", NULL, CFGF_NODEFAULT),
	    CFG_INT("max_attempts", 0, CFGF_NODEFAULT),
	    CFG_INT("retry_delay_ms", 0, CFGF_NODEFAULT),
	    CFG_FLOAT("retry_multiplier", 0, CFGF_NODEFAULT),
	    CFG_INT("retry_max_delay_ms", 0, CFGF_NODEFAULT),
	    CFG_FLOAT("retry_jitter", 0, CFGF_NODEFAULT),
	    CFG_INT("batch_size", 1, CFGF_NONE),
	    CFG_INT("batch_timeout_ms", 100, CFGF_NONE),
	    CFG_END()};
	static cfg_opt_t opts[] = {
	    CFG_STR("log_level", "info", CFGF_NONE),
	    CFG_INT("workers", 4, CFGF_NONE),
	    CFG_INT("shutdown_timeout", 30, CFGF_NONE),
	    CFG_STR("plugin_dir", WARREN_DEFAULT_PLUGIN_DIR, CFGF_NONE),
	    CFG_SEC("broker", broker_opts, CFGF_NONE),
	    CFG_SEC("policy", policy_opts, CFGF_NONE),
	    CFG_SEC("exchange", exchange_opts,
	            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	    CFG_SEC("queue", queue_opts,
	            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	    CFG_SEC("binding", binding_opts, CFGF_MULTI),
	    CFG_SEC("plugin", plugin_opts,
	            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	    CFG_SEC("route", route_opts,
	            CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	    CFG_END()};
	static const char *const remembered[] = {
	    "route|queue",      "route|plugin", "route|handler", "route|type",
	    "binding|exchange", "binding|queue", "plugin|path",
	    "queue|arguments",  "queue|delivery_limit"};
	static const char *const bad_input_keys[] = {
	    "policy|on_unknown_type", "policy|on_unparseable",
	    "policy|on_too_large",    "queue|on_unknown_type",
	    "queue|on_unparseable",   "queue|on_too_large"};
	cfg_t *cfg = cfg_init(opts, CFGF_NONE);
	char *text;
	int rc;

	if (!cfg) {
		set_err(path, 0, "out of memory");
		return NULL;
	}
	cfg_set_error_function(cfg, on_cfg_error);
	cfg_set_validate_func(cfg, "log_level", validate_log_level);
	cfg_set_validate_func(cfg, "exchange|type", validate_exchange_type);
	cfg_set_validate_func(cfg, "queue|type", validate_queue_type);
	cfg_set_validate_func(cfg, "queue|type_from", validate_type_from);
	for (size_t i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++)
		cfg_set_validate_func(cfg, int_ranges[i].path, validate_range);
	for (size_t i = 0; i < sizeof(float_ranges) / sizeof(float_ranges[0]);
	     i++)
		cfg_set_validate_func(cfg, float_ranges[i].path,
		                      validate_float_range);
	for (size_t i = 0; i < sizeof(bad_input_keys) / sizeof(bad_input_keys[0]);
	     i++)
		cfg_set_validate_func(cfg, bad_input_keys[i], validate_bad_input);
	for (size_t i = 0; i < sizeof(remembered) / sizeof(remembered[0]); i++)
		cfg_set_validate_func(cfg, remembered[i], remember_line);

	text = read_config_text(path);
	if (!text) {
		cfg_free(cfg);
		return NULL;
	}
	rc = cfg_parse_buf(cfg, text);
	free(text);
	if (rc != CFG_SUCCESS || cur->failed) {
		if (!cur->failed)
			set_err(path, 0, "cannot parse");
		cfg_free(cfg);
		return NULL;
	}
	return cfg;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Missing CFGF_NODEFAULT keys: "section "title": key is required". */
static int require(const char *file, cfg_t *sec, const char *what,
                   const char *key)
{
	if (cfg_size(sec, key) > 0)
		return 0;
	set_err(file, sec->line, "%s: \"%s\" is required", what, key);
	return -1;
}

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

static long exchange_index(const struct wd_conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->nexchanges; i++)
		if (strcmp(conf->exchanges[i].name, name) == 0)
			return (long)i;
	return -1;
}

static int load_broker(struct wd_conf *c, cfg_t *cfg)
{
	cfg_t *b = cfg_getsec(cfg, "broker");
	const char *env = getenv("WARREN_AMQP_URL");

	c->broker.url = strdup(env && *env ? env : cfg_getstr(b, "url"));
	c->broker.password_file = dup_or_null(cfg_getstr(b, "password_file"));
	c->broker.heartbeat = (int)cfg_getint(b, "heartbeat");
	c->broker.connect_timeout = (int)cfg_getint(b, "connect_timeout");
	c->broker.pool_size = (int)cfg_getint(b, "pool_size");
	c->broker.prefetch = (int)cfg_getint(b, "prefetch");
	c->broker.ca_cert = dup_or_null(cfg_getstr(b, "ca_cert"));
	c->broker.client_cert = dup_or_null(cfg_getstr(b, "client_cert"));
	c->broker.client_key = dup_or_null(cfg_getstr(b, "client_key"));
	c->broker.verify_peer = cfg_getbool(b, "verify_peer");
	c->broker.ack_batch = (int)cfg_getint(b, "ack_batch");
	c->broker.ack_delay_ms = (int)cfg_getint(b, "ack_delay_ms");
	c->broker.publish_timeout = (int)cfg_getint(b, "publish_timeout");
	if (!c->broker.url)
		return -1;
	if (strncmp(c->broker.url, "amqp://", 7) != 0 &&
	    strncmp(c->broker.url, "amqps://", 8) != 0) {
		set_err(c->file, b->line,
		        "broker: url must start with amqp:// or amqps://%s",
		        env && *env ? " (it comes from WARREN_AMQP_URL)" : "");
		return -1;
	}
	return 0;
}

static int load_exchanges(struct wd_conf *c, cfg_t *cfg)
{
	c->nexchanges = cfg_size(cfg, "exchange");
	c->exchanges = calloc(c->nexchanges + 1, sizeof(*c->exchanges));
	if (!c->exchanges)
		return -1;
	for (size_t i = 0; i < c->nexchanges; i++) {
		cfg_t *s = cfg_getnsec(cfg, "exchange", (unsigned)i);
		struct wd_conf_exchange *e = &c->exchanges[i];
		e->name = strdup(cfg_title(s));
		e->type = strdup(cfg_getstr(s, "type"));
		e->durable = cfg_getbool(s, "durable");
		e->line = s->line;
		if (!*e->name) {
			set_err(c->file, s->line,
			        "exchange: the default exchange \"\" cannot "
			        "be declared");
			return -1;
		}
	}
	return 0;
}

/* "x-key=value": numbers stay numbers (x-max-priority=10 must be an int). */
static int parse_argument(struct wd_conf *c, cfg_t *s, const char *text,
                          struct wd_conf_arg *a)
{
	const char *eq = strchr(text, '=');
	char *end;

	if (!eq || eq == text) {
		set_err(c->file, line_of(s, "arguments"),
		        "queue \"%s\": argument \"%s\" is not \"key=value\"",
		        cfg_title(s), text);
		return -1;
	}
	a->key = strndup(text, (size_t)(eq - text));
	errno = 0;
	a->ival = strtol(eq + 1, &end, 10);
	a->is_int = eq[1] && !*end && errno == 0;
	a->sval = strdup(eq + 1);
	return a->key && a->sval ? 0 : -1;
}

/* A queue's own input policy key, else the `policy` section's. */
static enum wd_bad_input bad_input(cfg_t *sec, cfg_t *policy, const char *key)
{
	const char *v = cfg_size(sec, key) ? cfg_getstr(sec, key)
	                                   : cfg_getstr(policy, key);
	return strcmp(v, "drop") == 0 ? WD_BAD_DROP : WD_BAD_DEAD_LETTER;
}

static int load_queues(struct wd_conf *c, cfg_t *cfg)
{
	cfg_t *policy = cfg_getsec(cfg, "policy");

	c->nqueues = cfg_size(cfg, "queue");
	c->queues = calloc(c->nqueues + 1, sizeof(*c->queues));
	if (!c->queues)
		return -1;
	for (size_t i = 0; i < c->nqueues; i++) {
		cfg_t *s = cfg_getnsec(cfg, "queue", (unsigned)i);
		struct wd_conf_queue *q = &c->queues[i];
		const char *from = cfg_getstr(s, "type_from");
		long consumers = cfg_getint(s, "consumers");

		q->name = strdup(cfg_title(s));
		q->line = s->line;
		q->durable = cfg_getbool(s, "durable");
		q->quorum = strcmp(cfg_getstr(s, "type"), "quorum") == 0;
		q->dead_letter_exchange =
		    dup_or_null(cfg_getstr(s, "dead_letter_exchange"));
		q->dead_letter_routing_key =
		    dup_or_null(cfg_getstr(s, "dead_letter_routing_key"));
		q->message_ttl = cfg_getint(s, "message_ttl");
		q->max_length = cfg_getint(s, "max_length");
		q->delivery_limit = cfg_getint(s, "delivery_limit");
		q->type_from = strcmp(from, "property") == 0 ? WD_TYPE_FROM_PROPERTY
		               : strcmp(from, "routing_key") == 0
		                   ? WD_TYPE_FROM_ROUTING_KEY
		                   : WD_TYPE_FROM_JSON;
		q->type_field = strdup(cfg_getstr(s, "type_field"));
		q->prefetch = (int)cfg_getint(s, "prefetch");
		if (q->prefetch == 0)
			q->prefetch = c->broker.prefetch;
		q->consumers = consumers == 0 || consumers > c->broker.pool_size
		                   ? c->broker.pool_size
		                   : (int)consumers;
		q->max_body_size = cfg_size(s, "max_body_size")
		                       ? cfg_getint(s, "max_body_size")
		                       : cfg_getint(policy, "max_body_size");
		q->on_unknown_type = bad_input(s, policy, "on_unknown_type");
		q->on_unparseable = bad_input(s, policy, "on_unparseable");
		q->on_too_large = bad_input(s, policy, "on_too_large");
		if (!q->name || !q->type_field)
			return -1;
		if (!*q->name || strlen(q->name) > 255) {
			set_err(c->file, s->line, "queue: a name of 1 to 255 "
			        "bytes is required");
			return -1;
		}
		if (q->delivery_limit && !q->quorum) {
			set_err(c->file, line_of(s, "delivery_limit"),
			        "queue \"%s\": delivery_limit needs type = "
			        "\"quorum\" (classic queues ignore it)",
			        q->name);
			return -1;
		}
		if (q->quorum && !q->durable) {
			set_err(c->file, s->line,
			        "queue \"%s\": quorum queues must be durable",
			        q->name);
			return -1;
		}
		q->nargs = cfg_size(s, "arguments");
		q->args = calloc(q->nargs + 1, sizeof(*q->args));
		if (!q->args)
			return -1;
		for (size_t j = 0; j < q->nargs; j++)
			if (parse_argument(c, s, cfg_getnstr(s, "arguments",
			                                     (unsigned)j),
			                   &q->args[j]) < 0)
				return -1;
	}
	return 0;
}

static int load_bindings(struct wd_conf *c, cfg_t *cfg)
{
	c->nbindings = cfg_size(cfg, "binding");
	c->bindings = calloc(c->nbindings + 1, sizeof(*c->bindings));
	if (!c->bindings)
		return -1;
	for (size_t i = 0; i < c->nbindings; i++) {
		cfg_t *s = cfg_getnsec(cfg, "binding", (unsigned)i);
		struct wd_conf_binding *b = &c->bindings[i];

		if (require(c->file, s, "binding", "exchange") < 0 ||
		    require(c->file, s, "binding", "queue") < 0)
			return -1;
		b->exchange = strdup(cfg_getstr(s, "exchange"));
		b->queue = strdup(cfg_getstr(s, "queue"));
		b->key = strdup(cfg_getstr(s, "key"));
		b->line = line_of(s, "exchange");
		/* amq.* exchanges are predeclared by every broker. */
		if (exchange_index(c, b->exchange) < 0 &&
		    strncmp(b->exchange, "amq.", 4) != 0) {
			set_err(c->file, line_of(s, "exchange"),
			        "binding: exchange \"%s\" is not declared",
			        b->exchange);
			return -1;
		}
		if (wd_conf_queue_index(c, b->queue) < 0) {
			set_err(c->file, line_of(s, "queue"),
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

static int load_plugins(struct wd_conf *c, cfg_t *cfg)
{
	c->nplugins = cfg_size(cfg, "plugin");
	c->plugins = calloc(c->nplugins + 1, sizeof(*c->plugins));
	if (!c->plugins)
		return -1;
	for (size_t i = 0; i < c->nplugins; i++) {
		cfg_t *s = cfg_getnsec(cfg, "plugin", (unsigned)i);
		struct wd_conf_plugin *p = &c->plugins[i];
		cfg_t *params = cfg_getsec(s, "params");

		p->name = strdup(cfg_title(s));
		p->line = s->line;
		if (require(c->file, s, "plugin", "path") < 0)
			return -1;
		p->line = line_of(s, "path");
		p->path = resolve_path(c->plugin_dir, cfg_getstr(s, "path"));
		if (!p->name || !p->path)
			return -1;
		p->nparams = params ? cfg_num(params) : 0;
		p->params = calloc(p->nparams + 1, sizeof(*p->params));
		if (!p->params)
			return -1;
		for (size_t j = 0; j < p->nparams; j++) {
			cfg_opt_t *o = cfg_getnopt(params, (unsigned)j);
			p->params[j].key = strdup(cfg_opt_name(o));
			p->params[j].value = strdup(cfg_opt_getnstr(o, 0));
			if (!p->params[j].key || !p->params[j].value)
				return -1;
		}
	}
	return 0;
}

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
	if (p->retry_max_delay_ms < p->retry_delay_ms) {
		set_err(c->file, s->line,
		        "route \"%s\": retry_max_delay_ms (%ld) is shorter "
		        "than retry_delay_ms (%ld)",
		        cfg_title(s), p->retry_max_delay_ms, p->retry_delay_ms);
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

static int load_routes(struct wd_conf *c, cfg_t *cfg)
{
	cfg_t *policy = cfg_getsec(cfg, "policy");

	c->nroutes = cfg_size(cfg, "route");
	c->routes = calloc(c->nroutes + 1, sizeof(*c->routes));
	if (!c->routes)
		return -1;
	for (size_t i = 0; i < c->nroutes; i++) {
		cfg_t *s = cfg_getnsec(cfg, "route", (unsigned)i);
		struct wd_conf_route *r = &c->routes[i];
		/* The title names the route and is its type unless `type`
		 * says otherwise (the same type routed on two queues needs
		 * two route names). */
		const char *type = cfg_size(s, "type") ? cfg_getstr(s, "type")
		                                       : cfg_title(s);
		long q, p;

		if (require(c->file, s, "route", "queue") < 0 ||
		    require(c->file, s, "route", "plugin") < 0 ||
		    require(c->file, s, "route", "handler") < 0)
			return -1;
		r->type = strdup(type);
		r->handler = strdup(cfg_getstr(s, "handler"));
		r->line = line_of(s, "handler");
		if (!r->type || !r->handler)
			return -1;
		if (!*type || strlen(type) > 255) {
			set_err(c->file, s->line,
			        "route: the message type must be 1 to 255 "
			        "bytes");
			return -1;
		}
		q = wd_conf_queue_index(c, cfg_getstr(s, "queue"));
		if (q < 0) {
			set_err(c->file, line_of(s, "queue"),
			        "route \"%s\": queue \"%s\" is not declared",
			        cfg_title(s), cfg_getstr(s, "queue"));
			return -1;
		}
		p = wd_conf_plugin_index(c, cfg_getstr(s, "plugin"));
		if (p < 0) {
			set_err(c->file, line_of(s, "plugin"),
			        "route \"%s\": plugin \"%s\" is not defined",
			        cfg_title(s), cfg_getstr(s, "plugin"));
			return -1;
		}
		r->queue = (size_t)q;
		r->plugin = (size_t)p;
		c->queues[q].consumed = true;
		if (load_policy(c, s, policy, &r->policy) < 0)
			return -1;
		if (add_retry_delays(&c->queues[q], &r->policy) < 0)
			return -1;
		for (size_t j = 0; j < i; j++) {
			if (c->routes[j].queue == r->queue &&
			    strcmp(c->routes[j].type, r->type) == 0) {
				set_err(c->file, line_of(s, "queue"),
				        "route \"%s\": type \"%s\" is already "
				        "routed on queue \"%s\" (line %d)",
				        cfg_title(s), type, c->queues[q].name,
				        c->routes[j].line);
				return -1;
			}
		}
	}
	return 0;
}

/* Every consumed queue needs somewhere to dead-letter to, and room in
 * its name for its retry queues' suffix. */
static int check_consumed_queues(struct wd_conf *c)
{
	for (size_t i = 0; i < c->nqueues; i++) {
		const struct wd_conf_queue *q = &c->queues[i];

		if (!q->consumed)
			continue;
		if (!q->dead_letter_exchange) {
			set_err(c->file, q->line,
			        "queue \"%s\": a consumed queue needs a "
			        "dead_letter_exchange (rejected and failing "
			        "messages are dead-lettered there)",
			        q->name);
			return -1;
		}
		if (!*q->dead_letter_exchange) {
			set_err(c->file, q->line,
			        "queue \"%s\": dead_letter_exchange must name "
			        "an exchange (the default exchange \"\" cannot "
			        "be one)", q->name);
			return -1;
		}
		if (q->nretry_delays && strlen(q->name) > 255 - 20) {
			set_err(c->file, q->line,
			        "queue \"%s\": the name is too long for its "
			        "retry queues (\"%s.retry.<ms>\"): at most "
			        "235 bytes",
			        q->name, q->name);
			return -1;
		}
		if (q->nretry_delays > MAX_RETRY_QUEUES) {
			set_err(c->file, q->line,
			        "queue \"%s\": its routes' retry policies need "
			        "%zu distinct delays (one retry queue each); at "
			        "most %d: lower max_attempts or raise "
			        "retry_multiplier", q->name, q->nretry_delays,
			        MAX_RETRY_QUEUES);
			return -1;
		}
		/* A declared queue must not be one of the generated ones. */
		for (size_t j = 0; j < q->nretry_delays; j++) {
			char name[300];
			long other;
			snprintf(name, sizeof(name), "%s.retry.%ld", q->name,
			         q->retry_delays[j]);
			other = wd_conf_queue_index(c, name);
			if (other >= 0) {
				set_err(c->file, c->queues[other].line,
				        "queue \"%s\": the name is taken by a "
				        "retry queue of queue \"%s\"", name,
				        q->name);
				return -1;
			}
		}
	}
	return 0;
}

struct wd_conf *wd_conf_load(const char *path, char *err, size_t errlen)
{
	struct load_ctx ctx = {.path = path, .err = err, .errlen = errlen};
	struct wd_conf *c = NULL;
	const char *env_dir = getenv("WARREN_PLUGIN_DIR");
	enum wd_log_level level;
	cfg_t *cfg;

	err[0] = '\0';
	cur = &ctx;
	cfg = parse_file(path);
	if (!cfg)
		goto out;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->file = strdup(path);
	wd_log_level_parse(cfg_getstr(cfg, "log_level"), &level);
	c->log_level = (int)level;
	c->workers = (int)cfg_getint(cfg, "workers");
	c->shutdown_timeout = (int)cfg_getint(cfg, "shutdown_timeout");
	c->plugin_dir =
	    strdup(env_dir && *env_dir ? env_dir : cfg_getstr(cfg, "plugin_dir"));
	if (!c->file || !c->plugin_dir)
		goto fail;
	if (load_broker(c, cfg) < 0 || load_exchanges(c, cfg) < 0 ||
	    load_queues(c, cfg) < 0 || load_bindings(c, cfg) < 0 ||
	    load_plugins(c, cfg) < 0 || load_routes(c, cfg) < 0)
		goto fail;
	if (c->nroutes == 0) {
		set_err(path, cfg->line, "no route: nothing would be consumed");
		goto fail;
	}
	if (check_consumed_queues(c) < 0)
		goto fail;
	cfg_free(cfg);
	goto out;
fail:
	if (!ctx.failed)
		set_err(path, 0, "out of memory");
	cfg_free(cfg);
	wd_conf_free(c);
	c = NULL;
out:
	free(ctx.lines);
	cur = NULL;
	return c;
}

void wd_conf_free(struct wd_conf *c)
{
	if (!c)
		return;
	free(c->file);
	free(c->plugin_dir);
	free(c->broker.url);
	free(c->broker.password_file);
	free(c->broker.ca_cert);
	free(c->broker.client_cert);
	free(c->broker.client_key);
	for (size_t i = 0; i < c->nexchanges; i++) {
		free(c->exchanges[i].name);
		free(c->exchanges[i].type);
	}
	free(c->exchanges);
	for (size_t i = 0; i < c->nqueues; i++) {
		struct wd_conf_queue *q = &c->queues[i];
		free(q->name);
		free(q->dead_letter_exchange);
		free(q->dead_letter_routing_key);
		free(q->type_field);
		free(q->retry_delays);
		for (size_t j = 0; j < q->nargs; j++) {
			free(q->args[j].key);
			free(q->args[j].sval);
		}
		free(q->args);
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

bool wd_conf_str_eq(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool wd_conf_same_pool(const struct wd_conf *a, const struct wd_conf *b)
{
	const struct wd_conf_broker *x = &a->broker, *y = &b->broker;

	return wd_conf_str_eq(x->url, y->url) &&
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
