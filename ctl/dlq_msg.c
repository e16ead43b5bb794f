/* dlq_msg.c - a dead-letter's fields, its redriven headers, safe printing. */
#include "dlq_msg.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/amqp_fields.h"
#include "message/policy.h"

/* A string header into buf ("" if absent or not a string). */
static void str_header(const amqp_envelope_t *env, const char *name, char *buf,
                       size_t len)
{
	const amqp_field_value_t *v = wd_amqp_header(env, name);

	buf[0] = '\0';
	if (wd_field_is_string(v))
		snprintf(buf, len, "%.*s", (int)v->value.bytes.len,
		         (const char *)v->value.bytes.bytes);
}

/* The type as warrend reads it by default: the body's "type" field; a
 * body that is not a JSON object with one falls back to the property. */
static void read_type(const amqp_envelope_t *env, char *buf, size_t len)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	const amqp_bytes_t b = env->message.body;
	json_t *doc = b.len ? json_loadb(b.bytes, b.len, 0, NULL) : NULL;
	const char *t = json_string_value(json_object_get(doc, "type"));

	buf[0] = '\0';
	if (t)
		snprintf(buf, len, "%s", t);
	else if (p->_flags & AMQP_BASIC_TYPE_FLAG)
		snprintf(buf, len, "%.*s", (int)p->type.len,
		         (const char *)p->type.bytes);
	json_decref(doc);
}

/* When the broker dead-lettered it: the newest x-death entry's time. */
static int64_t xdeath_ms(const amqp_envelope_t *env)
{
	const amqp_field_value_t *xd = wd_amqp_header(env, "x-death"), *t;

	if (!xd || xd->kind != AMQP_FIELD_KIND_ARRAY ||
	    xd->value.array.num_entries < 1 ||
	    xd->value.array.entries[0].kind != AMQP_FIELD_KIND_TABLE)
		return -1;
	t = wd_table_get(&xd->value.array.entries[0].value.table, "time");
	if (!t || t->kind != AMQP_FIELD_KIND_TIMESTAMP ||
	    t->value.u64 > (uint64_t)INT64_MAX / 1000)
		return -1;
	return (int64_t)t->value.u64 * 1000;
}

void wc_dlq_info_read(const amqp_envelope_t *env, struct wc_dlq_info *out)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	char plugin[128], handler[128];
	int64_t v;

	str_header(env, WD_H_REASON, out->reason, sizeof(out->reason));
	if (!out->reason[0])
		str_header(env, "x-first-death-reason", out->reason,
		           sizeof(out->reason));
	read_type(env, out->type, sizeof(out->type));
	str_header(env, WD_H_PLUGIN, plugin, sizeof(plugin));
	str_header(env, WD_H_HANDLER, handler, sizeof(handler));
	snprintf(out->handler, sizeof(out->handler), "%s%s%s", plugin,
	         plugin[0] && handler[0] ? "/" : "", handler);
	str_header(env, WD_H_QUEUE, out->queue, sizeof(out->queue));
	if (!out->queue[0])
		str_header(env, "x-first-death-queue", out->queue,
		           sizeof(out->queue));
	out->message_id[0] = '\0';
	if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		snprintf(out->message_id, sizeof(out->message_id), "%.*s",
		         (int)p->message_id.len,
		         (const char *)p->message_id.bytes);
	if (wd_field_int(wd_amqp_header(env, WD_H_LAST_FAILURE), &v) == 0 &&
	    v > 0)
		out->failed_ms = v;
	else
		out->failed_ms = xdeath_ms(env);
	if (wd_field_int(wd_amqp_header(env, WC_H_REDRIVEN), &v) != 0 || v < 0)
		v = 0;
	out->redriven = v;
}

static bool eq(const char *want, const char *have)
{
	return !want || strcmp(want, have) == 0;
}

bool wc_dlq_match(const struct wc_dlq_filter *f, const struct wc_dlq_info *i)
{
	size_t n;

	if (!eq(f->reason, i->reason) || !eq(f->type, i->type) ||
	    !eq(f->queue, i->queue))
		return false;
	if (!f->handler || strcmp(f->handler, i->handler) == 0)
		return true;
	/* The plugin alone: "p" matches "p/h". */
	n = strlen(f->handler);
	return strncmp(f->handler, i->handler, n) == 0 && i->handler[n] == '/';
}

static bool dropped_on_redrive(amqp_bytes_t k)
{
	static const char *const exact[] = {
	    WD_H_ATTEMPTS, WD_H_REASON,        WD_H_REASON_TEXT,   WD_H_PLUGIN,
	    WD_H_HANDLER,  WD_H_FIRST_FAILURE, WD_H_LAST_FAILURE,  WD_H_QUEUE,
	    WC_H_REDRIVEN, "x-death",          "x-delivery-count",
	};
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (wd_bytes_eq(k, exact[i]))
			return true;
	/* x-first-death-queue/-reason/-exchange, x-last-death-* */
	return (k.len > 14 && memcmp(k.bytes, "x-first-death-", 14) == 0) ||
	       (k.len > 13 && memcmp(k.bytes, "x-last-death-", 13) == 0);
}

int wc_dlq_redrive_headers(const amqp_envelope_t *env, amqp_table_t *out)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	const amqp_table_t *in =
	    (p->_flags & AMQP_BASIC_HEADERS_FLAG) ? &p->headers : NULL;
	int nin = in ? in->num_entries : 0;
	struct wc_dlq_info info;
	int64_t before;

	wc_dlq_info_read(env, &info);
	before = info.redriven;
	out->num_entries = 0;
	out->entries = calloc((size_t)nin + 2, sizeof(*out->entries));
	if (!out->entries)
		return -1;
	for (int i = 0; i < nin; i++)
		if (!dropped_on_redrive(in->entries[i].key))
			out->entries[out->num_entries++] = in->entries[i];
	wd_table_add_i64(out, WC_H_REDRIVEN,
	                 before < INT64_MAX ? before + 1 : before);
	/* The copy goes without the user_id property (RabbitMQ refuses
	 * another user's under ours): it is kept as warrend keeps it. */
	if ((p->_flags & AMQP_BASIC_USER_ID_FLAG) &&
	    !wd_amqp_header(env, WD_H_ORIG_USER_ID))
		wd_table_add_str(out, WD_H_ORIG_USER_ID, p->user_id);
	return 0;
}

/* The length of the valid UTF-8 sequence at s (1..4), or 0 if it is not
 * one (overlong forms, surrogates and code points past U+10FFFF are not);
 * *cp gets the code point. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
	size_t len;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, c = s[0] & 0x1f, min = 0x80;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, c = s[0] & 0x0f, min = 0x800;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

void wc_dlq_print_bytes(FILE *f, const void *p, size_t len, size_t max)
{
	const unsigned char *s = p;
	size_t n = len > max ? max : len;

	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t l = utf8_len(s + i, n - i, &cp);

		if (l == 0) {
			fprintf(f, "\\x%02x", s[i]);
			i++;
			continue;
		}
		if (cp == '\\')
			fputs("\\\\", f);
		else if (cp == '\n')
			fputs("\\n", f);
		else if (cp == '\t')
			fputs("\\t", f);
		else if (cp == '\r')
			fputs("\\r", f);
		else if (cp < 0x20 || cp == 0x7f)
			fprintf(f, "\\x%02x", (unsigned)cp);
		else if (cp >= 0x80 && cp < 0xa0) /* C1: a terminal's CSI */
			fprintf(f, "\\u%04x", (unsigned)cp);
		else
			fwrite(s + i, 1, l, f);
		i += l;
	}
	if (len > max)
		fprintf(f, "... (%zu more bytes)", len - max);
}

void wc_dlq_print_field(FILE *f, const amqp_field_value_t *v, int depth)
{
	int64_t n;

	if (wd_field_int(v, &n) == 0) {
		fprintf(f, "%" PRId64, n);
		return;
	}
	switch (v->kind) {
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES:
		fputc('"', f);
		wc_dlq_print_bytes(f, v->value.bytes.bytes, v->value.bytes.len,
		                   4096);
		fputc('"', f);
		return;
	case AMQP_FIELD_KIND_BOOLEAN:
		fputs(v->value.boolean ? "true" : "false", f);
		return;
	case AMQP_FIELD_KIND_F32:
		fprintf(f, "%g", (double)v->value.f32);
		return;
	case AMQP_FIELD_KIND_F64:
		fprintf(f, "%g", v->value.f64);
		return;
	case AMQP_FIELD_KIND_TIMESTAMP:
		fprintf(f, "%" PRIu64 " (timestamp)", v->value.u64);
		return;
	case AMQP_FIELD_KIND_VOID:
		fputs("void", f);
		return;
	case AMQP_FIELD_KIND_DECIMAL:
		fprintf(f, "%u (decimal, %u places)", v->value.decimal.value,
		        v->value.decimal.decimals);
		return;
	case AMQP_FIELD_KIND_ARRAY:
		if (depth <= 0) {
			fputs("[...]", f);
			return;
		}
		fputc('[', f);
		for (int i = 0; i < v->value.array.num_entries; i++) {
			if (i)
				fputs(", ", f);
			wc_dlq_print_field(f, &v->value.array.entries[i],
			                   depth - 1);
		}
		fputc(']', f);
		return;
	case AMQP_FIELD_KIND_TABLE:
		if (depth <= 0) {
			fputs("{...}", f);
			return;
		}
		fputc('{', f);
		for (int i = 0; i < v->value.table.num_entries; i++) {
			const amqp_table_entry_t *e =
			    &v->value.table.entries[i];
			if (i)
				fputs(", ", f);
			wc_dlq_print_bytes(f, e->key.bytes, e->key.len, 256);
			fputs(": ", f);
			wc_dlq_print_field(f, &e->value, depth - 1);
		}
		fputc('}', f);
		return;
	default:
		fprintf(f, "(field kind '%c')", v->kind);
	}
}
