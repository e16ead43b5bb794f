/*
 * test_policy.c - runtime/policy.c on hand-built deliveries: the attempt
 * count (warren's header, x-death expiries from this queue's retry queues,
 * quorum x-delivery-count; a header of the wrong type ignored), retry
 * queue names, jitter bounds, and the headers of a republished copy.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "message/policy.h"

static amqp_table_entry_t hdrs[16];
static amqp_table_entry_t deaths[4][4];
static amqp_field_value_t death_vals[4];
static amqp_envelope_t env;

static void reset(void)
{
	memset(&env, 0, sizeof(env));
	memset(hdrs, 0, sizeof(hdrs));
	env.exchange = amqp_cstring_bytes("orders");
	env.routing_key = amqp_cstring_bytes("order.created");
	env.message.properties._flags = AMQP_BASIC_HEADERS_FLAG;
	env.message.properties.headers.entries = hdrs;
}

TestSuite(policy, .init = reset);

static amqp_table_entry_t *hdr(const char *key)
{
	amqp_table_t *t = &env.message.properties.headers;
	amqp_table_entry_t *e = &hdrs[t->num_entries++];
	e->key = amqp_cstring_bytes(key);
	return e;
}

static void hdr_int(const char *key, int64_t v)
{
	amqp_table_entry_t *e = hdr(key);
	e->value.kind = AMQP_FIELD_KIND_I64;
	e->value.value.i64 = v;
}

static void hdr_str(const char *key, const char *v)
{
	amqp_table_entry_t *e = hdr(key);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

static void put_str(amqp_table_entry_t *e, const char *k, const char *v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

/* x-death with n entries (queue, reason, count). */
static void xdeath(int n, const char *const *queues, const char *const *reasons,
                   const int64_t *counts)
{
	amqp_table_entry_t *e = hdr("x-death");

	e->value.kind = AMQP_FIELD_KIND_ARRAY;
	e->value.value.array.num_entries = n;
	e->value.value.array.entries = death_vals;
	for (int i = 0; i < n; i++) {
		death_vals[i].kind = AMQP_FIELD_KIND_TABLE;
		death_vals[i].value.table.num_entries = 3;
		death_vals[i].value.table.entries = deaths[i];
		put_str(&deaths[i][0], "queue", queues[i]);
		put_str(&deaths[i][1], "reason", reasons[i]);
		deaths[i][2].key = amqp_cstring_bytes("count");
		deaths[i][2].value.kind = AMQP_FIELD_KIND_I64;
		deaths[i][2].value.value.i64 = counts[i];
	}
}

Test(policy, first_delivery_is_attempt_one)
{
	struct wd_attempts a;

	wd_policy_attempts(&env, "q", &a);
	cr_expect_eq(a.attempt, 1);
	cr_expect_eq(a.from_header, -1);
	cr_expect_eq(a.from_xdeath, 0);
	cr_expect_not(a.header_bad);
}

Test(policy, header_and_xdeath_take_the_larger)
{
	static const char *const qs[] = {"q.retry.500", "q.retry.1000",
	                                 "other.retry.500", "q.retry.2000"};
	static const char *const rs[] = {"expired", "expired", "expired",
	                                 "rejected"};
	static const int64_t cs[] = {1, 2, 7, 5};
	struct wd_attempts a;

	xdeath(4, qs, rs, cs);
	hdr_int(WD_H_ATTEMPTS, 2);
	wd_policy_attempts(&env, "q", &a);
	cr_expect_eq(a.from_xdeath, 3, "only q's retry queues, only expiries");
	cr_expect_eq(a.from_header, 2);
	cr_expect_eq(a.attempt, 4, "max(2, 3) + 1");
}

Test(policy, a_lost_header_still_counts_via_xdeath)
{
	static const char *const qs[] = {"q.retry.500"};
	static const char *const rs[] = {"expired"};
	static const int64_t cs[] = {3};
	struct wd_attempts a;

	xdeath(1, qs, rs, cs);
	wd_policy_attempts(&env, "q", &a);
	cr_expect_eq(a.attempt, 4);
}

Test(policy, queue_prefix_must_be_exact)
{
	static const char *const qs[] = {"qq.retry.500", "q.retry"};
	static const char *const rs[] = {"expired", "expired"};
	static const int64_t cs[] = {3, 3};
	struct wd_attempts a;

	xdeath(2, qs, rs, cs);
	wd_policy_attempts(&env, "q", &a);
	cr_expect_eq(a.from_xdeath, 0);
}

Test(policy, string_attempt_header_is_ignored)
{
	struct wd_attempts a;

	hdr_str(WD_H_ATTEMPTS, "lots");
	wd_policy_attempts(&env, "q", &a);
	cr_expect(a.header_bad);
	cr_expect_eq(a.from_header, -1);
	cr_expect_eq(a.attempt, 1);
}

Test(policy, negative_attempt_header_is_bad)
{
	struct wd_attempts a;

	hdr_int(WD_H_ATTEMPTS, -5);
	wd_policy_attempts(&env, "q", &a);
	cr_expect(a.header_bad);
	cr_expect_eq(a.attempt, 1);
}

Test(policy, quorum_redeliveries_count)
{
	struct wd_attempts a;

	hdr_int(WD_H_ATTEMPTS, 1);
	hdr_int("x-delivery-count", 2);
	wd_policy_attempts(&env, "q", &a);
	cr_expect_eq(a.redeliveries, 2);
	cr_expect_eq(a.attempt, 4, "1 retry + 2 unfinished + this one");
}

Test(policy, retry_queue_name)
{
	char buf[300], big[260];

	cr_assert_eq(wd_policy_retry_queue(buf, sizeof(buf), "events", 5000),
	             0);
	cr_expect_str_eq(buf, "events.retry.5000");
	memset(big, 'a', 250);
	big[250] = '\0';
	cr_expect_eq(wd_policy_retry_queue(buf, sizeof(buf), big, 5000), -1,
	             "over 255 bytes");
}

Test(policy, jitter_only_shortens_within_bounds)
{
	struct wd_policy p = {.max_attempts = 5,
	                      .retry_delay_ms = 1000,
	                      .retry_multiplier = 2.0,
	                      .retry_max_delay_ms = 3000,
	                      .retry_jitter = 0.25};

	cr_expect_eq(wd_policy_jittered_ms(&p, 1, 0.0), 1000);
	cr_expect_eq(wd_policy_jittered_ms(&p, 1, 0.999999), 751);
	cr_expect_eq(wd_policy_jittered_ms(&p, 2, 0.5), 1750);
	cr_expect_eq(wd_policy_jittered_ms(&p, 3, 0.0), 3000, "capped");
	p.retry_jitter = 0;
	cr_expect_eq(wd_policy_jittered_ms(&p, 2, 0.9), 2000);
}

static const amqp_field_value_t *find(const amqp_table_t *t, const char *key)
{
	for (int i = 0; i < t->num_entries; i++)
		if (t->entries[i].key.len == strlen(key) &&
		    memcmp(t->entries[i].key.bytes, key, strlen(key)) == 0)
			return &t->entries[i].value;
	return NULL;
}

static int count(const amqp_table_t *t, const char *key)
{
	int n = 0;
	for (int i = 0; i < t->num_entries; i++)
		n += t->entries[i].key.len == strlen(key) &&
		     memcmp(t->entries[i].key.bytes, key, strlen(key)) == 0;
	return n;
}

static void expect_str(const amqp_table_t *t, const char *key, const char *want)
{
	const amqp_field_value_t *v = find(t, key);
	cr_assert_not_null(v, "%s missing", key);
	cr_assert_eq(v->kind, AMQP_FIELD_KIND_UTF8, "%s not a string", key);
	cr_expect_eq(v->value.bytes.len, strlen(want), "%s", key);
	cr_expect_eq(memcmp(v->value.bytes.bytes, want, strlen(want)), 0, "%s",
	             key);
}

static int64_t get_i64(const amqp_table_t *t, const char *key)
{
	const amqp_field_value_t *v = find(t, key);
	cr_assert_not_null(v, "%s missing", key);
	cr_assert_eq(v->kind, AMQP_FIELD_KIND_I64, "%s not an I64", key);
	return v->value.i64;
}

Test(policy, first_copy_headers)
{
	struct wd_failure f = {.reason = WD_R_HANDLER_REJECT,
	                       .text = "bad order",
	                       .plugin = "orders",
	                       .handler = "created",
	                       .attempts = 1,
	                       .now_ms = 1700000000000};
	struct wd_header_scratch s;
	amqp_table_t t;

	hdr_str("app-header", "kept");
	cr_assert_eq(wd_policy_headers(&env, "events", &f, &s, &t), 0);
	expect_str(&t, "app-header", "kept");
	expect_str(&t, WD_H_REASON, "handler-reject");
	expect_str(&t, WD_H_REASON_TEXT, "bad order");
	expect_str(&t, WD_H_PLUGIN, "orders");
	expect_str(&t, WD_H_HANDLER, "created");
	expect_str(&t, WD_H_QUEUE, "events");
	expect_str(&t, WD_H_ORIG_EXCHANGE, "orders");
	expect_str(&t, WD_H_ORIG_ROUTING_KEY, "order.created");
	cr_expect_eq(get_i64(&t, WD_H_ATTEMPTS), 1);
	cr_expect_eq(get_i64(&t, WD_H_FIRST_FAILURE), 1700000000000);
	cr_expect_eq(get_i64(&t, WD_H_LAST_FAILURE), 1700000000000);
	free(t.entries);
}

Test(policy, a_copy_without_the_deliverys_headers)
{
	struct wd_failure f = {.reason = WD_R_TOO_LARGE,
	                       .text = "headers have more than 1 entries "
	                               "(max_headers)",
	                       .attempts = 1,
	                       .now_ms = 1700000000000,
	                       .drop_headers = true};
	struct wd_header_scratch s;
	amqp_table_t t;

	hdr_str("app-header", "not kept");
	hdr_str("x-other", "not kept");
	cr_assert_eq(wd_policy_headers(&env, "events", &f, &s, &t), 0);
	cr_expect_null(find(&t, "app-header"));
	cr_expect_null(find(&t, "x-other"));
	expect_str(&t, WD_H_REASON, "too-large");
	expect_str(&t, WD_H_QUEUE, "events");
	expect_str(&t, WD_H_ORIG_EXCHANGE, "orders");
	cr_expect_eq(get_i64(&t, WD_H_ATTEMPTS), 1);
	free(t.entries);
}

Test(policy, later_copy_keeps_first_failure_and_origin_once)
{
	struct wd_failure f = {.reason = WD_R_MAX_ATTEMPTS,
	                       .text = "",
	                       .attempts = 3,
	                       .now_ms = 1700000009000};
	struct wd_header_scratch s;
	amqp_table_t t;

	/* As delivered from a retry queue: default exchange, queue as rk. */
	env.exchange = amqp_cstring_bytes("");
	env.routing_key = amqp_cstring_bytes("events");
	hdr_int(WD_H_ATTEMPTS, 2);
	hdr_int(WD_H_FIRST_FAILURE, 1700000000000);
	hdr_str(WD_H_ORIG_EXCHANGE, "orders");
	hdr_str(WD_H_ORIG_ROUTING_KEY, "order.created");
	hdr_str(WD_H_PLUGIN, "old");
	cr_assert_eq(wd_policy_headers(&env, "events", &f, &s, &t), 0);
	cr_expect_eq(get_i64(&t, WD_H_ATTEMPTS), 3);
	cr_expect_eq(get_i64(&t, WD_H_FIRST_FAILURE), 1700000000000);
	cr_expect_eq(get_i64(&t, WD_H_LAST_FAILURE), 1700000009000);
	expect_str(&t, WD_H_ORIG_EXCHANGE, "orders");
	expect_str(&t, WD_H_ORIG_ROUTING_KEY, "order.created");
	cr_expect_null(find(&t, WD_H_PLUGIN), "no handler this time");
	cr_expect_eq(count(&t, WD_H_ATTEMPTS), 1, "no duplicate keys");
	cr_expect_eq(count(&t, WD_H_FIRST_FAILURE), 1);
	cr_expect_eq(count(&t, WD_H_ORIG_EXCHANGE), 1);
	free(t.entries);
}

Test(policy, original_exchange_and_key)
{
	amqp_bytes_t x = wd_policy_original_exchange(&env);
	cr_expect_eq(x.len, 6);
	hdr_int(WD_H_ORIG_ROUTING_KEY, 5); /* wrong type: ignored */
	amqp_bytes_t rk = wd_policy_original_routing_key(&env);
	cr_expect_eq(rk.len, strlen("order.created"));
}
