/* conf_schema.c - the keys warren.conf may have, their defaults and the
 * values each may take, as libconfuse option tables and validate
 * callbacks: a bad value fails the parse at the line it is on. */
#include "conf/conf_parse.h"

#include "base/listen.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_cfg_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[1024];

	/* libconfuse 3.3 reports "no such option" for every key of a
	 * CFGF_KEYSTRVAL section before it accepts the key anyway. */
	if ((cfg->flags & CFGF_KEYSTRVAL) &&
	    strncmp(fmt, "no such option", 14) == 0)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	wd_conf_set_err(wd_conf_cur->path, cfg->line, "%s", msg);
}

static int check_one_of(cfg_t *cfg, cfg_opt_t *opt, const char *const *allowed)
{
	const char *v = cfg_opt_getnstr(opt, cfg_opt_size(opt) - 1);
	char list[256] = "";

	for (size_t i = 0; allowed[i]; i++) {
		if (strcmp(v, allowed[i]) == 0)
			return wd_conf_remember_line(cfg, opt);
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
		         "%s%s", i ? ", " : "", allowed[i]);
	}
	cfg_error(cfg, "%s: \"%s\" is not one of %s", cfg_opt_name(opt), v,
	          list);
	return -1;
}

static int validate_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *v = cfg_opt_getnstr(opt, 0);
	struct sockaddr_storage ss;
	socklen_t len;

	if (!*v || wd_listen_parse(v, &ss, &len) == 0)
		return 0;
	cfg_error(cfg,
	          "listen: \"%s\" is not ADDRESS:PORT (an IPv4 address, "
	          "[IPv6] or localhost, and a port; \"\" turns the endpoint "
	          "off)",
	          v);
	return -1;
}

static int validate_startup(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"wait", "fail", NULL};
	return check_one_of(cfg, opt, v);
}

static int validate_log_format(cfg_t *cfg, cfg_opt_t *opt)
{
	static const char *const v[] = {"text", "json", NULL};
	return check_one_of(cfg, opt, v);
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

/* prefetch: a number, or "auto" (WD_PREFETCH_AUTO; its range check in
 * validate_range lets it through). */
static int parse_prefetch(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                          void *result)
{
	char *end;
	long v;

	if (strcmp(value, "auto") == 0) {
		*(long *)result = WD_PREFETCH_AUTO;
		return 0;
	}
	errno = 0;
	v = strtol(value, &end, 0);
	if (!*value || *end || errno) {
		cfg_error(cfg, "%s: \"%s\" is neither a number nor \"auto\"",
		          cfg_opt_name(opt), value);
		return -1;
	}
	*(long *)result = v;
	return 0;
}

#define MAX_DELAY_MS 86400000L /* one day */

static const struct int_range {
	const char *path;
	long min, max;
} int_ranges[] = {
    {"workers", 1, 1024},
    {"shutdown_timeout", 1, 86400},
    {"metrics_interval", 0, 86400},
    {"memory_warn_mb", 0, 1048576},
    {"memory_warn_samples", 2, 1000},
    {"memory_warn_growth_kb", 0, 1048576},
    {"broker|heartbeat", 0, 65535},
    {"broker|connect_timeout", 1, 3600},
    {"broker|pool_size", 1, 64},
    {"broker|prefetch", 1, 65535},
    {"queue|prefetch", 0, 65535},
    {"broker|prefetch_min", 1, 65535},
    {"broker|prefetch_max", 1, 65535},
    {"queue|prefetch_min", 0, 65535},
    {"queue|prefetch_max", 0, 65535},
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
    /* message/limits.h. jansson refuses more than 2048 levels itself,
     * counting a scalar inside the deepest container as one: 2047
     * containers are its most, so that a body past max_json_depth is
     * always too-large, never unparseable. */
    {"policy|max_json_depth", 1, 2047},
    {"queue|max_json_depth", 1, 2047},
    {"policy|max_json_values", 1, 100000000},
    {"queue|max_json_values", 1, 100000000},
    {"policy|max_parse_ms", 0, 60000},
    {"queue|max_parse_ms", 0, 60000},
    {"policy|max_header_depth", 1, 64},
    {"queue|max_header_depth", 1, 64},
    {"policy|max_headers", 1, 1000000},
    {"queue|max_headers", 1, 1000000},
    {"route|batch_size", 1, 10000},
    {"route|batch_timeout_ms", 1, 60000},
    {"route|concurrency", 0, 1024},
    {"policy|handler_timeout_warn", 0, 86400},
    {"route|handler_timeout_warn", 0, 86400},
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
	for (size_t i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]);
	     i++) {
		if (strcmp(int_ranges[i].path, path) != 0)
			continue;
		if (v == WD_PREFETCH_AUTO && strcmp(name, "prefetch") == 0)
			return wd_conf_remember_line(cfg, opt);
		if (v < int_ranges[i].min || v > int_ranges[i].max) {
			cfg_error(cfg, "%s: %ld is out of range %ld..%ld", name,
			          v, int_ranges[i].min, int_ranges[i].max);
			return -1;
		}
		/* Its line, for errors the model finds later. */
		return wd_conf_remember_line(cfg, opt);
	}
	return 0;
}

cfg_t *wd_conf_parse_text(const char *name, char *text, size_t n)
{
	static cfg_opt_t broker_opts[] = {
	    /* A string, or a list of a cluster's nodes: url = {"...", "..."} */
	    CFG_STR_LIST("url", "{amqp://guest:guest@127.0.0.1:5672}",
	                 CFGF_NONE),
	    CFG_STR("password_file", NULL, CFGF_NONE),
	    CFG_INT("heartbeat", 60, CFGF_NONE),
	    CFG_INT("connect_timeout", 10, CFGF_NONE),
	    CFG_INT("pool_size", 2, CFGF_NONE),
	    CFG_INT_CB("prefetch", WD_PREFETCH_DEFAULT, CFGF_NONE,
	               parse_prefetch),
	    CFG_INT("prefetch_min", WD_PREFETCH_MIN_DEFAULT, CFGF_NONE),
	    CFG_INT("prefetch_max", WD_PREFETCH_MAX_DEFAULT, CFGF_NONE),
	    CFG_STR("ca_cert", NULL, CFGF_NONE),
	    CFG_STR("client_cert", NULL, CFGF_NONE),
	    CFG_STR("client_key", NULL, CFGF_NONE),
	    CFG_BOOL("verify_peer", cfg_true, CFGF_NONE),
	    CFG_INT("ack_batch", 100, CFGF_NONE),
	    CFG_INT("ack_delay_ms", 10, CFGF_NONE),
	    CFG_INT("publish_timeout", 30, CFGF_NONE),
	    CFG_STR("startup", "wait", CFGF_NONE),
	    CFG_END()};
	/* Defaults: the tutorial's production figures (3 retries, 5 s). */
	static cfg_opt_t policy_opts[] = {
	    CFG_INT("max_attempts", 4, CFGF_NONE),
	    CFG_INT("retry_delay_ms", 5000, CFGF_NONE),
	    CFG_FLOAT("retry_multiplier", 2.0, CFGF_NONE),
	    CFG_INT("retry_max_delay_ms", 60000, CFGF_NONE),
	    CFG_FLOAT("retry_jitter", 0.1, CFGF_NONE),
	    CFG_INT("max_body_size", 1L << 20, CFGF_NONE),
	    /* WD_INPUT_LIMITS_DEFAULT (message/limits.h). */
	    CFG_INT("max_json_depth", 64, CFGF_NONE),
	    CFG_INT("max_json_values", 100000, CFGF_NONE),
	    CFG_INT("max_parse_ms", 50, CFGF_NONE),
	    CFG_INT("max_header_depth", 8, CFGF_NONE),
	    CFG_INT("max_headers", 1000, CFGF_NONE),
	    CFG_STR("on_unknown_type", "dead-letter", CFGF_NONE),
	    CFG_STR("on_unparseable", "dead-letter", CFGF_NONE),
	    CFG_STR("on_too_large", "dead-letter", CFGF_NONE),
	    /* Well below RabbitMQ's consumer_timeout (30 min by default):
	     * the warning comes while there is time to act on it. */
	    CFG_INT("handler_timeout_warn", 300, CFGF_NONE), CFG_END()};
	static cfg_opt_t exchange_opts[] = {
	    CFG_STR("type", "direct", CFGF_NONE),
	    CFG_BOOL("durable", cfg_true, CFGF_NONE),
	    CFG_STR_LIST("arguments", NULL, CFGF_NONE), CFG_END()};
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
	    CFG_INT_CB("prefetch", 0, CFGF_NONE, parse_prefetch),
	    /* 0: broker.prefetch_min / prefetch_max. */
	    CFG_INT("prefetch_min", 0, CFGF_NONE),
	    CFG_INT("prefetch_max", 0, CFGF_NONE),
	    CFG_INT("consumers", 0, CFGF_NONE),
	    CFG_INT("max_body_size", 0, CFGF_NODEFAULT),
	    CFG_INT("max_json_depth", 0, CFGF_NODEFAULT),
	    CFG_INT("max_json_values", 0, CFGF_NODEFAULT),
	    CFG_INT("max_parse_ms", 0, CFGF_NODEFAULT),
	    CFG_INT("max_header_depth", 0, CFGF_NODEFAULT),
	    CFG_INT("max_headers", 0, CFGF_NODEFAULT),
	    CFG_STR("on_unknown_type", NULL, CFGF_NODEFAULT),
	    CFG_STR("on_unparseable", NULL, CFGF_NODEFAULT),
	    CFG_STR("on_too_large", NULL, CFGF_NODEFAULT), CFG_END()};
	static cfg_opt_t binding_opts[] = {
	    CFG_STR("exchange", NULL, CFGF_NODEFAULT),
	    CFG_STR("queue", NULL, CFGF_NODEFAULT),
	    CFG_STR("key", "", CFGF_NONE), CFG_END()};
	static cfg_opt_t params_opts[] = {CFG_END()};
	static cfg_opt_t plugin_opts[] = {
	    CFG_STR("path", NULL, CFGF_NODEFAULT),
	    CFG_SEC("params", params_opts, CFGF_KEYSTRVAL), CFG_END()};
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
	    /* 0: no limit of its own (at most `workers` calls, as ever). */
	    CFG_INT("concurrency", 0, CFGF_NONE),
	    CFG_INT("handler_timeout_warn", 0, CFGF_NODEFAULT), CFG_END()};
	/* Loopback by default: the endpoint says a lot about the service
	 * and needs no authentication. 9466: in the exporters' 9100-9999
	 * range. */
	static cfg_opt_t http_opts[] = {
	    CFG_STR("listen", WD_HTTP_DEFAULT_LISTEN, CFGF_NONE), CFG_END()};
	static cfg_opt_t opts[] = {
	    CFG_STR("log_level", "info", CFGF_NONE),
	    CFG_STR("log_format", "text", CFGF_NONE),
	    CFG_INT("workers", 4, CFGF_NONE),
	    CFG_INT("shutdown_timeout", 30, CFGF_NONE),
	    /* The tutorial's figures: a line every 30 s, a warning when
	     * memory grows 5 samples in a row. */
	    CFG_INT("metrics_interval", 30, CFGF_NONE),
	    CFG_INT("memory_warn_mb", 0, CFGF_NONE),
	    CFG_INT("memory_warn_samples", 5, CFGF_NONE),
	    CFG_INT("memory_warn_growth_kb", 1024, CFGF_NONE),
	    /* Unset: the install's own (conf_load.c). */
	    CFG_STR("plugin_dir", NULL, CFGF_NONE),
	    /* A foot-gun for development: see host/plugin.c. */
	    CFG_BOOL("plugin_insecure", cfg_false, CFGF_NONE),
	    CFG_SEC("broker", broker_opts, CFGF_NONE),
	    CFG_SEC("http", http_opts, CFGF_NONE),
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
	    "broker|url",           "broker|client_cert", "broker|client_key",
	    "broker|password_file", "route|queue",        "route|plugin",
	    "route|handler",        "route|type",         "binding|exchange",
	    "binding|queue",        "plugin|path",        "queue|arguments",
	    "exchange|arguments"};
	static const char *const bad_input_keys[] = {
	    "policy|on_unknown_type", "policy|on_unparseable",
	    "policy|on_too_large",    "queue|on_unknown_type",
	    "queue|on_unparseable",   "queue|on_too_large"};
	cfg_t *cfg = cfg_init(opts, CFGF_NONE);
	int rc;

	if (!cfg) {
		wd_conf_set_err(name, 0, "out of memory");
		return NULL;
	}
	cfg_set_error_function(cfg, on_cfg_error);
	cfg_set_validate_func(cfg, "log_level", validate_log_level);
	cfg_set_validate_func(cfg, "log_format", validate_log_format);
	cfg_set_validate_func(cfg, "broker|startup", validate_startup);
	cfg_set_validate_func(cfg, "http|listen", validate_listen);
	cfg_set_validate_func(cfg, "exchange|type", validate_exchange_type);
	cfg_set_validate_func(cfg, "queue|type", validate_queue_type);
	cfg_set_validate_func(cfg, "queue|type_from", validate_type_from);
	for (size_t i = 0; i < sizeof(int_ranges) / sizeof(int_ranges[0]); i++)
		cfg_set_validate_func(cfg, int_ranges[i].path, validate_range);
	for (size_t i = 0; i < sizeof(float_ranges) / sizeof(float_ranges[0]);
	     i++)
		cfg_set_validate_func(cfg, float_ranges[i].path,
		                      validate_float_range);
	for (size_t i = 0;
	     i < sizeof(bad_input_keys) / sizeof(bad_input_keys[0]); i++)
		cfg_set_validate_func(cfg, bad_input_keys[i],
		                      validate_bad_input);
	for (size_t i = 0; i < sizeof(remembered) / sizeof(remembered[0]); i++)
		cfg_set_validate_func(cfg, remembered[i],
		                      wd_conf_remember_line);

	if (wd_conf_text_prepare(name, text, n) < 0) {
		cfg_free(cfg);
		return NULL;
	}
	rc = cfg_parse_buf(cfg, text);
	if (rc != CFG_SUCCESS || wd_conf_cur->failed) {
		if (!wd_conf_cur->failed)
			wd_conf_set_err(name, 0, "cannot parse");
		cfg_free(cfg);
		return NULL;
	}
	return cfg;
}
