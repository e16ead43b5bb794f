/* policy.c - attempt counting and the headers of republished copies. */
#include "message/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/amqp_fields.h"

const char *const wd_reasons[WD_SERIES_REASONS] = {
    WD_R_HANDLER_REJECT, WD_R_MAX_ATTEMPTS, WD_R_UNPARSEABLE,     WD_R_BAD_TYPE,
    WD_R_UNKNOWN_TYPE,   WD_R_TOO_LARGE,    WD_R_INVALID_OUTCOME,
};

int wd_reason_index(const char *r)
{
	for (int i = 0; r && i < WD_SERIES_REASONS; i++)
		if (strcmp(wd_reasons[i], r) == 0)
			return i;
	return -1;
}

/* A non-negative integer field up to INT32_MAX, or -1. */
static int64_t field_count(const amqp_field_value_t *v)
{
	int64_t n;

	return wd_field_int(v, &n) == 0 && n >= 0 && n <= INT32_MAX ? n : -1;
}

/* Expiries from "<queue>.retry.*" recorded in x-death: one per retry. */
static int xdeath_retries(const amqp_envelope_t *env, const char *queue)
{
	const amqp_field_value_t *xd = wd_amqp_header(env, "x-death");
	size_t qlen = strlen(queue);
	int64_t n = 0;

	if (!xd || xd->kind != AMQP_FIELD_KIND_ARRAY)
		return 0;
	for (int i = 0; i < xd->value.array.num_entries; i++) {
		const amqp_field_value_t *e = &xd->value.array.entries[i];
		const amqp_field_value_t *q, *r;
		int64_t c;

		if (e->kind != AMQP_FIELD_KIND_TABLE)
			continue;
		q = wd_table_get(&e->value.table, "queue");
		r = wd_table_get(&e->value.table, "reason");
		c = field_count(wd_table_get(&e->value.table, "count"));
		if (!wd_field_is_string(q) || !wd_field_is_string(r) ||
		    c <= 0 || !wd_bytes_eq(r->value.bytes, "expired"))
			continue;
		if (q->value.bytes.len > qlen + 7 &&
		    memcmp(q->value.bytes.bytes, queue, qlen) == 0 &&
		    memcmp((const char *)q->value.bytes.bytes + qlen, ".retry.",
		           7) == 0)
			n += c;
	}
	return n > 1000000 ? 1000000 : (int)n;
}

void wd_policy_attempts(const amqp_envelope_t *env, const char *queue,
                        struct wd_attempts *out)
{
	const amqp_field_value_t *h = wd_amqp_header(env, WD_H_ATTEMPTS);
	int64_t v = field_count(h);
	int64_t dc = field_count(wd_amqp_header(env, "x-delivery-count"));
	int prior;

	out->header_bad = h && (v < 0 || v > 1000000);
	out->from_header = h && !out->header_bad ? (int)v : -1;
	out->from_xdeath = xdeath_retries(env, queue);
	out->delivery_count = dc;
	out->redeliveries = dc > 0 && dc <= 1000000 ? (int)dc : 0;
	prior = out->from_header > out->from_xdeath ? out->from_header
	                                            : out->from_xdeath;
	out->attempt = prior + 1 + out->redeliveries;
}

int wd_policy_retry_queue(char *buf, size_t len, const char *queue,
                          long delay_ms)
{
	int n = snprintf(buf, len, "%s.retry.%ld", queue, delay_ms);
	return n < 0 || (size_t)n >= len || n > 255 ? -1 : 0;
}

long wd_policy_delay_ms(const struct wd_policy *p, int attempt)
{
	double d = (double)p->retry_delay_ms;

	for (int i = 1; i < attempt && d < (double)p->retry_max_delay_ms; i++)
		d *= p->retry_multiplier;
	return d > (double)p->retry_max_delay_ms ? p->retry_max_delay_ms
	                                         : (long)(d + 0.5);
}

long wd_policy_jittered_ms(const struct wd_policy *p, int attempt, double rnd)
{
	long d = wd_policy_delay_ms(p, attempt);
	long cut = (long)((double)d * p->retry_jitter * rnd);

	return d - cut < 1 ? 1 : d - cut;
}

int64_t wd_policy_published_us(const amqp_envelope_t *env)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	int64_t v;

	if (wd_field_int(wd_amqp_header(env, WD_H_PUBLISHED_US), &v) == 0 &&
	    v > 0)
		return v;
	if (!(p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) || p->timestamp == 0 ||
	    p->timestamp > (uint64_t)INT64_MAX / 1000000)
		return -1;
	if (p->timestamp > 100000000000ULL)
		return (int64_t)p->timestamp * 1000; /* milliseconds */
	return (int64_t)p->timestamp * 1000000;
}

amqp_bytes_t wd_policy_original_exchange(const amqp_envelope_t *env)
{
	const amqp_field_value_t *v = wd_amqp_header(env, WD_H_ORIG_EXCHANGE);
	return wd_field_is_string(v) ? v->value.bytes : env->exchange;
}

amqp_bytes_t wd_policy_original_routing_key(const amqp_envelope_t *env)
{
	const amqp_field_value_t *v =
	    wd_amqp_header(env, WD_H_ORIG_ROUTING_KEY);
	return wd_field_is_string(v) ? v->value.bytes : env->routing_key;
}

/* warren's own headers are rewritten on every copy; the rest is kept. */
static bool is_warren_header(amqp_bytes_t key)
{
	return key.len > 9 && memcmp(key.bytes, "x-warren-", 9) == 0;
}

int wd_policy_headers(const amqp_envelope_t *env, const char *queue,
                      const struct wd_failure *f,
                      struct wd_header_scratch *scratch, amqp_table_t *out)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	const amqp_table_t *in =
	    (p->_flags & AMQP_BASIC_HEADERS_FLAG) && !f->drop_headers
	        ? &p->headers
	        : NULL;
	int nin = in ? in->num_entries : 0;
	int64_t first = 0;

	if (wd_field_int(wd_amqp_header(env, WD_H_FIRST_FAILURE), &first) < 0)
		first = 0;

	out->num_entries = 0;
	out->entries = calloc((size_t)nin + 12, sizeof(*out->entries));
	if (!out->entries)
		return -1;
	for (int i = 0; i < nin; i++)
		if (!is_warren_header(in->entries[i].key))
			out->entries[out->num_entries++] = in->entries[i];
	snprintf(scratch->queue, sizeof(scratch->queue), "%s", queue);
	wd_table_add_i64(out, WD_H_ATTEMPTS, f->attempts);
	wd_table_add_str(out, WD_H_REASON, amqp_cstring_bytes(f->reason));
	wd_table_add_str(out, WD_H_REASON_TEXT,
	                 amqp_cstring_bytes(f->text ? f->text : ""));
	if (f->plugin)
		wd_table_add_str(out, WD_H_PLUGIN,
		                 amqp_cstring_bytes(f->plugin));
	if (f->handler)
		wd_table_add_str(out, WD_H_HANDLER,
		                 amqp_cstring_bytes(f->handler));
	wd_table_add_i64(out, WD_H_FIRST_FAILURE,
	                 first > 0 ? first : f->now_ms);
	wd_table_add_i64(out, WD_H_LAST_FAILURE, f->now_ms);
	wd_table_add_str(out, WD_H_QUEUE, amqp_cstring_bytes(scratch->queue));
	wd_table_add_str(out, WD_H_ORIG_EXCHANGE,
	                 wd_policy_original_exchange(env));
	wd_table_add_str(out, WD_H_ORIG_ROUTING_KEY,
	                 wd_policy_original_routing_key(env));
	const amqp_field_value_t *user = wd_amqp_header(env, WD_H_ORIG_USER_ID);
	if (p->_flags & AMQP_BASIC_USER_ID_FLAG)
		wd_table_add_str(out, WD_H_ORIG_USER_ID, p->user_id);
	else if (wd_field_is_string(user))
		wd_table_add_str(out, WD_H_ORIG_USER_ID, user->value.bytes);
	return 0;
}
