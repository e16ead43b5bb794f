/* ctl/dlq_msg.c: what warrenctl dlq reads from a dead-letter, its filters,
 * the headers of a redriven copy (warrend's attempt count starts again:
 * checked with the runtime's own wd_policy_attempts) and safe printing. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/amqp_fields.h"
#include "dlq_msg.h"
#include "message/policy.h"

/* A dead-letter as warrend writes one after a retry through Q.retry.100. */
struct fixture {
	amqp_envelope_t env;
	amqp_table_entry_t h[16], death[3];
	amqp_field_value_t deaths[1];
};

static void str(amqp_table_entry_t *e, const char *k, const char *v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_UTF8;
	e->value.value.bytes = amqp_cstring_bytes(v);
}

static void i64(amqp_table_entry_t *e, const char *k, int64_t v)
{
	e->key = amqp_cstring_bytes(k);
	e->value.kind = AMQP_FIELD_KIND_I64;
	e->value.value.i64 = v;
}

static void setup(struct fixture *f, const char *body)
{
	amqp_basic_properties_t *p = &f->env.message.properties;
	int n = 0;

	memset(f, 0, sizeof(*f));
	str(&f->death[0], "queue", "orders.retry.100");
	str(&f->death[1], "reason", "expired");
	i64(&f->death[2], "count", 1);
	f->deaths[0].kind = AMQP_FIELD_KIND_TABLE;
	f->deaths[0].value.table.num_entries = 3;
	f->deaths[0].value.table.entries = f->death;

	str(&f->h[n++], "x-custom", "keep-me");
	i64(&f->h[n++], WD_H_ATTEMPTS, 2);
	str(&f->h[n++], WD_H_REASON, "max-attempts");
	str(&f->h[n++], WD_H_REASON_TEXT, "not yet");
	str(&f->h[n++], WD_H_PLUGIN, "shop");
	str(&f->h[n++], WD_H_HANDLER, "order");
	i64(&f->h[n++], WD_H_FIRST_FAILURE, 1000);
	i64(&f->h[n++], WD_H_LAST_FAILURE, 2000);
	str(&f->h[n++], WD_H_QUEUE, "orders");
	str(&f->h[n++], WD_H_ORIG_EXCHANGE, "shop");
	str(&f->h[n++], WD_H_ORIG_ROUTING_KEY, "order.created");
	f->h[n].key = amqp_cstring_bytes("x-death");
	f->h[n].value.kind = AMQP_FIELD_KIND_ARRAY;
	f->h[n].value.value.array.num_entries = 1;
	f->h[n++].value.value.array.entries = f->deaths;
	str(&f->h[n++], "x-first-death-queue", "orders.retry.100");
	i64(&f->h[n++], "x-delivery-count", 3);
	p->_flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG;
	p->message_id = amqp_cstring_bytes("m-1");
	p->headers.num_entries = n;
	p->headers.entries = f->h;
	f->env.message.body = amqp_cstring_bytes(body);
}

Test(dlq_msg, reads_the_fields)
{
	struct fixture f;
	struct wc_dlq_info i;

	setup(&f, "{\"type\":\"order:created\",\"id\":1}");
	wc_dlq_info_read(&f.env, &i);
	cr_expect_str_eq(i.reason, "max-attempts");
	cr_expect_str_eq(i.type, "order:created");
	cr_expect_str_eq(i.handler, "shop/order");
	cr_expect_str_eq(i.queue, "orders");
	cr_expect_str_eq(i.message_id, "m-1");
	cr_expect_eq(i.failed_ms, 2000);
	cr_expect_eq(i.redriven, 0);
}

Test(dlq_msg, filters_are_exact_and_combined)
{
	struct fixture f;
	struct wc_dlq_info i;

	setup(&f, "{\"type\":\"order:created\"}");
	wc_dlq_info_read(&f.env, &i);
	cr_expect(wc_dlq_match(&(struct wc_dlq_filter){0}, &i));
	cr_expect(wc_dlq_match(&(struct wc_dlq_filter){.reason = "max-attempts",
	                                               .type = "order:created"},
	                       &i));
	cr_expect(!wc_dlq_match(
	    &(struct wc_dlq_filter){.reason = "max-attempts", .type = "x"},
	    &i));
	cr_expect(!wc_dlq_match(&(struct wc_dlq_filter){.reason = "max"}, &i));
	cr_expect(wc_dlq_match(&(struct wc_dlq_filter){.handler = "shop"}, &i));
	cr_expect(
	    wc_dlq_match(&(struct wc_dlq_filter){.handler = "shop/order"}, &i));
	cr_expect(!wc_dlq_match(&(struct wc_dlq_filter){.handler = "sho"}, &i));
	cr_expect(wc_dlq_match(&(struct wc_dlq_filter){.queue = "orders"}, &i));
}

/* The copy's first delivery from "orders" is attempt 1 for warrend. */
Test(dlq_msg, redriven_headers_start_the_count_again)
{
	struct fixture f;
	struct wd_attempts before, after;
	amqp_envelope_t copy;
	amqp_table_t h;

	setup(&f, "{}");
	wd_policy_attempts(&f.env, "orders", &before);
	cr_assert_gt(before.attempt, 3); /* 2 + a quorum redelivery count */
	cr_assert_eq(wc_dlq_redrive_headers(&f.env, &h), 0);
	copy = f.env;
	copy.message.properties.headers = h;
	wd_policy_attempts(&copy, "orders", &after);
	cr_expect_eq(after.attempt, 1);
	cr_expect_eq(h.num_entries, 4, "kept: %d", h.num_entries);
	cr_expect_not_null(wd_table_get(&h, "x-custom"));
	cr_expect_not_null(wd_table_get(&h, WD_H_ORIG_EXCHANGE));
	cr_expect_not_null(wd_table_get(&h, WD_H_ORIG_ROUTING_KEY));
	const char *gone[] = {
	    WD_H_ATTEMPTS,         WD_H_REASON,       WD_H_REASON_TEXT,
	    WD_H_PLUGIN,           WD_H_HANDLER,      WD_H_FIRST_FAILURE,
	    WD_H_LAST_FAILURE,     WD_H_QUEUE,        "x-death",
	    "x-first-death-queue", "x-delivery-count"};
	for (size_t k = 0; k < sizeof(gone) / sizeof(gone[0]); k++)
		cr_expect_null(wd_table_get(&h, gone[k]), "%s kept", gone[k]);
	int64_t n = 0;
	cr_expect_eq(wd_field_int(wd_table_get(&h, WC_H_REDRIVEN), &n), 0);
	cr_expect_eq(n, 1);

	/* Redriven again: the count goes on. */
	struct wc_dlq_info i;
	wc_dlq_info_read(&copy, &i);
	cr_expect_eq(i.redriven, 1);
	amqp_table_t h2;
	cr_assert_eq(wc_dlq_redrive_headers(&copy, &h2), 0);
	cr_expect_eq(wd_field_int(wd_table_get(&h2, WC_H_REDRIVEN), &n), 0);
	cr_expect_eq(n, 2);
	free(h2.entries);
	free(h.entries);
}

/* A dead-letter the broker made itself (a TTL) keeps its publisher's
 * user_id: the copy carries it as a header, and move() drops the property
 * (RabbitMQ refuses another user's under ours). */
Test(dlq_msg, a_user_id_becomes_a_header)
{
	struct fixture f;
	amqp_table_t h;
	char buf[64] = {0};

	setup(&f, "{}");
	f.env.message.properties._flags |= AMQP_BASIC_USER_ID_FLAG;
	f.env.message.properties.user_id = amqp_cstring_bytes("alice");
	cr_assert_eq(wc_dlq_redrive_headers(&f.env, &h), 0);
	const amqp_field_value_t *u = wd_table_get(&h, WD_H_ORIG_USER_ID);
	cr_assert(wd_field_is_string(u));
	memcpy(buf, u->value.bytes.bytes,
	       u->value.bytes.len < 63 ? u->value.bytes.len : 63);
	cr_expect_str_eq(buf, "alice");
	free(h.entries);
}

static char *printed(const char *s, size_t len, size_t max)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);

	wc_dlq_print_bytes(f, s, len, max);
	fclose(f);
	return out;
}

Test(dlq_msg, prints_bytes_safely)
{
	struct {
		const char *in, *want;
	} cases[] = {
	    {"plain {\"a\":1}", "plain {\"a\":1}"},
	    {"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x87", /* é € 🐇 */
	     "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\x87"},
	    {"\x1b[2J", "\\x1b[2J"},
	    {"a\nb\tc\rd\\e\x7f", "a\\nb\\tc\\rd\\\\e\\x7f"},
	    {"\xc2\x9b", "\\u009b"},             /* C1 CSI */
	    {"\xff\xfe", "\\xff\\xfe"},          /* never UTF-8 */
	    {"\xc3(", "\\xc3("},                 /* truncated sequence */
	    {"\xc0\xaf", "\\xc0\\xaf"},          /* overlong '/' */
	    {"\xed\xa0\x80", "\\xed\\xa0\\x80"}, /* a surrogate */
	    {"\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"}, /* past U+10FFFF */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = printed(cases[i].in, strlen(cases[i].in), 100);
		cr_expect_str_eq(out, cases[i].want, "case %zu", i);
		free(out);
	}
	char *out = printed("ab\0cd", 5, 100);
	cr_expect_str_eq(out, "ab\\x00cd");
	free(out);
	out = printed("abcdef", 6, 3);
	cr_expect_str_eq(out, "abc... (3 more bytes)");
	free(out);
	/* A sequence cut by the limit is escaped, not half-printed. */
	out = printed("a\xc3\xa9", 3, 2);
	cr_expect_str_eq(out, "a\\xc3... (1 more bytes)");
	free(out);
}
