/* sdk_api.c - what plugins can call: log, reason, headers, params,
 * publish, counters, the exchanges a plugin publishes to. */
#include "host/sdk_api.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/series.h"
#include "conf/conf.h"
#include "host/sdk_fields.h"
#include "host/targets.h"
#include "message/envelope.h"
#include "message/outbox.h"

/* The SDK's levels are the log's, value for value: a plugin's level is
 * passed through as it is. */
_Static_assert((int)WARREN_LOG_ERROR == (int)WD_LOG_ERROR &&
                   (int)WARREN_LOG_WARN == (int)WD_LOG_WARN &&
                   (int)WARREN_LOG_INFO == (int)WD_LOG_INFO &&
                   (int)WARREN_LOG_DEBUG == (int)WD_LOG_DEBUG,
               "warren_log_level and wd_log_level must match");

static void api_log(warren_ctx *ctx, warren_log_level level, const char *fmt,
                    ...)
{
	char area[128];
	va_list ap;

	if ((int)level < WARREN_LOG_ERROR || (int)level > WARREN_LOG_DEBUG)
		level = WARREN_LOG_INFO;
	snprintf(area, sizeof(area), "plugin:%s",
	         ctx && ctx->plugin ? ctx->plugin->name : "?");
	va_start(ap, fmt);
	wd_logv((enum wd_log_level)level, area, fmt, ap);
	va_end(ap);
}

static void api_reason(warren_ctx *ctx, const char *fmt, ...)
{
	va_list ap;

	if (!ctx || !ctx->reason) {
		wd_log_warnx("sdk",
		             "plugin %s: reason() outside a handler "
		             "call is ignored",
		             ctx && ctx->plugin ? ctx->plugin->name : "?");
		return;
	}
	va_start(ap, fmt);
	vsnprintf(ctx->reason, ctx->reason_len, fmt, ap);
	va_end(ap);
}

static const amqp_field_value_t *header(const warren_message *msg,
                                        const char *name)
{
	/* msg is the first member of the runtime's envelope. */
	const struct wd_envelope *e = (const struct wd_envelope *)msg;
	return msg && name ? wd_amqp_header(e->amqp, name) : NULL;
}

static int api_header_string(const warren_message *msg, const char *name,
                             warren_bytes *out)
{
	const amqp_field_value_t *v = header(msg, name);

	if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 &&
	           v->kind != AMQP_FIELD_KIND_BYTES))
		return -1;
	out->ptr = v->value.bytes.bytes;
	out->len = v->value.bytes.len;
	return 0;
}

static int api_header_int(const warren_message *msg, const char *name,
                          int64_t *out)
{
	return wd_field_int(header(msg, name), out);
}

/* The delivery's headers table, or NULL if it has none. */
static const amqp_table_t *headers_of(const warren_message *msg)
{
	const struct wd_envelope *e = (const struct wd_envelope *)msg;
	const amqp_basic_properties_t *p;

	if (!msg)
		return NULL;
	p = &e->amqp->message.properties;
	return (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
}

static size_t api_header_count(const warren_message *msg)
{
	const amqp_table_t *t = headers_of(msg);

	return t && t->num_entries > 0 ? (size_t)t->num_entries : 0;
}

static int api_header_at(const warren_message *msg, size_t i,
                         warren_header_field *out)
{
	const amqp_table_t *t = headers_of(msg);

	if (!t || !out || t->num_entries <= 0 || i >= (size_t)t->num_entries)
		return -1;
	wd_sdk_field(t->entries[i].key, &t->entries[i].value, out);
	return 0;
}

static const char *api_param(warren_ctx *ctx, const char *key)
{
	const struct wd_conf_plugin *c;

	if (!ctx || !ctx->plugin || !key)
		return NULL;
	c = ctx->plugin;
	for (size_t i = 0; i < c->nparams; i++)
		if (strcmp(c->params[i].key, key) == 0)
			return c->params[i].value;
	return NULL;
}

static int api_publish(warren_ctx *ctx, const warren_publish *p)
{
	char why[256];

	if (!ctx || !ctx->outbox) {
		wd_log_warnx("sdk",
		             "plugin %s: publish() outside a handler "
		             "call is refused",
		             ctx && ctx->plugin ? ctx->plugin->name : "?");
		return -1;
	}
	if (wd_outbox_add(ctx->outbox, p, why, sizeof(why)) < 0) {
		wd_log_warnx("sdk", "plugin %s: %s", ctx->plugin->name, why);
		return -1;
	}
	return 0;
}

/* A Prometheus-friendly name part: [a-zA-Z_][a-zA-Z0-9_]{0,63}. */
static bool counter_name_ok(const char *s)
{
	size_t n = 0;

	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return false;
	for (; s[n]; n++)
		if (n >= 64 || !(isalnum((unsigned char)s[n]) || s[n] == '_'))
			return false;
	return true;
}

static int api_counter_add(warren_ctx *ctx, const char *name, uint64_t n)
{
	/* A plugin that gets it wrong does so per message: say it a few
	 * times, not a million. */
	static atomic_int complaints;
	struct wd_plugin_counter *c = NULL;

	if (ctx && ctx->plugin && counter_name_ok(name))
		c = wd_series_plugin_counter(ctx->plugin->name, name);
	if (!c) {
		if (atomic_fetch_add(&complaints, 1) < 10)
			wd_log_warnx(
			    "sdk",
			    "plugin %s: counter_add(\"%.80s\") refused: "
			    "a name is 1 to 64 of [a-zA-Z0-9_], not "
			    "starting with a digit, and at most %d "
			    "counters exist",
			    ctx && ctx->plugin ? ctx->plugin->name : "?",
			    name ? name : "(null)", WD_SERIES_PLUGIN_COUNTERS);
		return -1;
	}
	wd_count_n(c->value, n);
	return 0;
}

static int api_publishes_to(warren_ctx *ctx, const char *exchange)
{
	const char *who = ctx && ctx->plugin ? ctx->plugin->name : "?";

	if (!ctx || !ctx->targets) {
		wd_log_warnx("sdk",
		             "plugin %s: publishes_to() outside init is "
		             "refused",
		             who);
		return -1;
	}
	if (!exchange || strlen(exchange) > 255) {
		wd_log_warnx("sdk",
		             "plugin %s: publishes_to(%s) refused: an "
		             "exchange name is 0 to 255 bytes",
		             who, exchange ? "a longer name" : "NULL");
		return -1;
	}
	if (wd_targets_add(ctx->targets, exchange) < 0) {
		wd_log_warnx("sdk",
		             "plugin %s: publishes_to(\"%s\"): out of "
		             "memory",
		             who, exchange);
		return -1;
	}
	return 0;
}

const warren_api wd_sdk_api = {
    .abi_major = WARREN_ABI_MAJOR,
    .abi_minor = WARREN_ABI_MINOR,
    .log = api_log,
    .reason = api_reason,
    .header_string = api_header_string,
    .header_int = api_header_int,
    .param = api_param,
    .publish = api_publish,
    .counter_add = api_counter_add,
    .header_count = api_header_count,
    .header_at = api_header_at,
    .field_at = wd_sdk_field_at,
    .publishes_to = api_publishes_to,
};
