/*
 * test_envelope.c - wd_envelope_parse(): a delivery built by hand becomes a
 * warren_message (type from the JSON body, the AMQP type property or the
 * routing key) or is refused with a reason; never reads past the body; and
 * the SDK's header_string / header_int look-ups over its headers table,
 * the AMQP properties of SDK 1.4 and header_count / header_at / field_at.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host/sdk_api.h"
#include "message/envelope.h"

static amqp_bytes_t bytes_of(const char *s)
{
	return (amqp_bytes_t){.len = strlen(s), .bytes = (void *)s};
}

static const struct wd_input_limits limits = WD_INPUT_LIMITS_DEFAULT;

/* A delivery of `body` on exchange "ex" with routing key "rk". */
static void make(amqp_envelope_t *a, const char *body)
{
	memset(a, 0, sizeof(*a));
	a->message.body = bytes_of(body);
	a->routing_key = bytes_of("rk");
	a->exchange = bytes_of("ex");
}

static int parse_json(struct wd_envelope *e, const amqp_envelope_t *a)
{
	return wd_envelope_parse(e, a, "q", WD_TYPE_FROM_JSON, "type", &limits);
}

static int bytes_eq(warren_bytes b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.ptr, s, b.len) == 0;
}

#define expect_bytes(b, s)                                                     \
	cr_expect(bytes_eq((b), (s)), "%s is \"%.*s\" (%zu), expected \"%s\"", \
	          #b, (int)(b).len, (b).ptr ? (b).ptr : "(null)", (b).len,     \
	          (s))

/* Parse `body` from the JSON source: must fail with `needle` in reason. */
static void expect_refused(const char *body, const char *needle)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	int rc;

	make(&a, body);
	rc = parse_json(&e, &a);
	cr_expect_eq(rc, -1, "accepted: %s", body);
	cr_expect_null(e.json);
	cr_expect_not_null(strstr(e.reason, needle),
	                   "reason \"%s\" does not contain \"%s\"", e.reason,
	                   needle);
	wd_envelope_clear(&e);
	cr_expect_null(e.json);
	cr_expect_null(e.msg.json);
}

/* ---- the JSON source --------------------------------------------------- */

Test(envelope, valid_object)
{
	const char *body = "{\"type\":\"user:signup\",\"userId\":42}";
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, body);
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.size, sizeof(warren_message));
	expect_bytes(e.msg.type, "user:signup");
	cr_assert_not_null(e.msg.json);
	cr_expect(json_is_object(e.msg.json));
	cr_expect_eq((const json_t *)e.json, e.msg.json);
	cr_expect_eq(json_integer_value(json_object_get(e.msg.json, "userId")),
	             42);
	expect_bytes(e.msg.body, body);
	cr_expect_eq(e.msg.body.ptr, body, "body is a view, not a copy");
	expect_bytes(e.msg.routing_key, "rk");
	expect_bytes(e.msg.exchange, "ex");
	expect_bytes(e.msg.queue, "q");
	cr_expect_eq(e.amqp, &a);
	cr_expect_str_eq(e.reason, "");
	wd_envelope_clear(&e);
	cr_expect_null(e.json);
	cr_expect_null(e.msg.json);
}

Test(envelope, custom_type_field)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"wrong\",\"kind\":\"right\"}");
	cr_assert_eq(
	    wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_JSON, "kind", &limits),
	    0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "right");
	wd_envelope_clear(&e);
}

Test(envelope, invalid_json)
{
	expect_refused("{\"type\":\"a\",", "unparseable");
}

Test(envelope, trailing_garbage)
{
	expect_refused("{\"type\":\"a\"} x", "unparseable");
}

Test(envelope, duplicate_keys_refused)
{
	expect_refused("{\"type\":\"a\",\"type\":\"b\"}", "unparseable");
}

Test(envelope, json_array)
{
	expect_refused("[{\"type\":\"a\"}]", "not a JSON object");
	expect_refused("[{\"type\":\"a\"}]", "unparseable");
}

/* A bare scalar is valid JSON but jansson (without JSON_DECODE_ANY) stops
 * at its first byte, so the reason is the parser's ("'[' or '{' expected"),
 * not "not a JSON object". Either way: refused, "unparseable". */
Test(envelope, json_string)
{
	expect_refused("\"type\"", "unparseable");
}

Test(envelope, json_number)
{
	expect_refused("42", "unparseable");
}

Test(envelope, json_null)
{
	expect_refused("null", "unparseable");
}

Test(envelope, missing_type)
{
	expect_refused("{\"kind\":\"a\"}",
	               "no type: field \"type\" is missing");
}

Test(envelope, numeric_type)
{
	expect_refused("{\"type\":7}",
	               "bad type: field \"type\" is not a string");
}

Test(envelope, null_type)
{
	expect_refused("{\"type\":null}", "not a string");
}

Test(envelope, empty_type)
{
	expect_refused("{\"type\":\"\"}", "bad type: the type field is empty");
}

/* {"type":"aaa...a"} with an n-byte type. */
static char *body_with_type(size_t n)
{
	char *s = malloc(n + 16);

	cr_assert_not_null(s);
	memcpy(s, "{\"type\":\"", 9);
	memset(s + 9, 'a', n);
	memcpy(s + 9 + n, "\"}", 3);
	return s;
}

Test(envelope, type_10k_too_long)
{
	char *body = body_with_type(10 * 1024);

	expect_refused(body, "longer than 255");
	free(body);
}

Test(envelope, type_255_ok)
{
	char *body = body_with_type(255);
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, body);
	cr_expect_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.type.len, 255);
	cr_expect_eq(e.msg.type.ptr[0], 'a');
	cr_expect_eq(e.msg.type.ptr[254], 'a');
	wd_envelope_clear(&e);
	free(body);
}

Test(envelope, type_256_rejected)
{
	char *body = body_with_type(256);

	expect_refused(body,
	               "bad type: the type field is longer than 255 bytes");
	free(body);
}

Test(envelope, empty_body)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "");
	a.message.body = (amqp_bytes_t){.len = 0, .bytes = NULL};
	cr_expect_eq(parse_json(&e, &a), -1);
	cr_expect_null(e.json);
	cr_expect_str_eq(e.reason, "unparseable: empty body");
	/* The views are safe to print even so. */
	cr_expect_not_null(e.msg.body.ptr);
	cr_expect_eq(e.msg.body.len, 0);
	wd_envelope_clear(&e);
}

Test(envelope, one_mib_body)
{
	const size_t n = 1024 * 1024;
	const char *head = "{\"type\":\"big\",\"blob\":\"";
	size_t hl = strlen(head);
	char *body = malloc(hl + n + 3);
	amqp_envelope_t a;
	struct wd_envelope e;
	const json_t *blob;

	cr_assert_not_null(body);
	memcpy(body, head, hl);
	memset(body + hl, 'z', n);
	memcpy(body + hl + n, "\"}", 3);
	make(&a, body);
	cr_assert_gt(a.message.body.len, n);
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "big");
	blob = json_object_get(e.msg.json, "blob");
	cr_assert(json_is_string(blob));
	cr_expect_eq(json_string_length(blob), n);
	cr_expect_eq(e.msg.body.len, hl + n + 2);
	wd_envelope_clear(&e);
	free(body);
}

Test(envelope, invalid_utf8_in_string)
{
	expect_refused("{\"type\":\"a\",\"name\":\"\xff\xfe\"}", "unparseable");
}

Test(envelope, invalid_utf8_in_type)
{
	expect_refused("{\"type\":\"ab\xc3\"}", "unparseable");
}

Test(envelope, overlong_utf8_rejected)
{
	/* "/" encoded in two bytes: not valid UTF-8. */
	expect_refused("{\"type\":\"a\xc0\xaf\"}", "unparseable");
}

Test(envelope, valid_utf8_type)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"caf\xc3\xa9\"}");
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "caf\xc3\xa9");
	wd_envelope_clear(&e);
}

/* The body is exactly len bytes, no terminator after it: an over-read
 * shows under ASan. */
Test(envelope, body_not_nul_terminated)
{
	const char *text = "{\"type\":\"t\",\"n\":12345}";
	size_t len = strlen(text);
	char *body = malloc(len);
	amqp_envelope_t a;
	struct wd_envelope e;

	cr_assert_not_null(body);
	memcpy(body, text, len);
	make(&a, "");
	a.message.body = (amqp_bytes_t){.len = len, .bytes = body};
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "t");
	cr_expect_eq(json_integer_value(json_object_get(e.msg.json, "n")),
	             12345);
	wd_envelope_clear(&e);
	free(body);
}

/* Only the first len bytes count, whatever follows them in memory. */
Test(envelope, body_len_bounds_the_parse)
{
	const char *text = "{\"type\":\"t\"}GARBAGE";
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "");
	a.message.body = (amqp_bytes_t){.len = 12, .bytes = (void *)text};
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "t");
	cr_expect_eq(e.msg.body.len, 12);
	wd_envelope_clear(&e);
	/* And a body cut inside the object is refused. */
	a.message.body.len = 11;
	cr_expect_eq(parse_json(&e, &a), -1);
	cr_expect_not_null(strstr(e.reason, "unparseable"), "%s", e.reason);
	wd_envelope_clear(&e);
}

Test(envelope, deeply_nested)
{
	const size_t depth = 10000;
	const char *head = "{\"type\":\"t\",\"deep\":";
	size_t hl = strlen(head);
	char *body = malloc(hl + 2 * depth + 2);
	amqp_envelope_t a;
	struct wd_envelope e;

	cr_assert_not_null(body);
	memcpy(body, head, hl);
	memset(body + hl, '[', depth);
	memset(body + hl + depth, ']', depth);
	memcpy(body + hl + 2 * depth, "}", 2);
	make(&a, body);
	/* Past max_json_depth (64 by default), found by the scan. */
	cr_expect_eq(parse_json(&e, &a), -1);
	cr_expect_null(e.json);
	cr_expect(e.too_large);
	cr_expect_str_eq(e.reason,
	                 "body nested deeper than max_json_depth (64)");
	wd_envelope_clear(&e);
	free(body);
}

Test(envelope, reason_names_position)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\": }");
	cr_expect_eq(parse_json(&e, &a), -1);
	cr_expect_not_null(strstr(e.reason, "unparseable: "), "%s", e.reason);
	cr_expect_not_null(strstr(e.reason, " at byte "), "%s", e.reason);
	wd_envelope_clear(&e);
}

/* ---- the property and routing-key sources ------------------------------ */

Test(envelope, type_from_property)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"from-body\"}");
	a.message.properties._flags = AMQP_BASIC_TYPE_FLAG;
	a.message.properties.type = bytes_of("from-prop");
	cr_assert_eq(wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_PROPERTY,
	                               "type", &limits),
	             0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "from-prop");
	cr_expect(json_is_object(e.msg.json));
	wd_envelope_clear(&e);
}

Test(envelope, type_from_property_not_set)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"from-body\"}");
	/* A value without its flag does not count. */
	a.message.properties.type = bytes_of("stale");
	cr_expect_eq(wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_PROPERTY,
	                               "type", &limits),
	             -1);
	cr_expect_null(e.json);
	cr_expect_not_null(strstr(e.reason, "no type: the AMQP type property "
	                                    "is not set"),
	                   "%s", e.reason);
	wd_envelope_clear(&e);
}

Test(envelope, type_from_property_empty)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{}");
	a.message.properties._flags = AMQP_BASIC_TYPE_FLAG;
	a.message.properties.type = (amqp_bytes_t){0, NULL};
	cr_expect_eq(wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_PROPERTY,
	                               "type", &limits),
	             -1);
	cr_expect_not_null(strstr(e.reason, "empty"), "%s", e.reason);
	wd_envelope_clear(&e);
}

Test(envelope, type_from_property_still_needs_json_object)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "[1]");
	a.message.properties._flags = AMQP_BASIC_TYPE_FLAG;
	a.message.properties.type = bytes_of("t");
	cr_expect_eq(wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_PROPERTY,
	                               "type", &limits),
	             -1);
	cr_expect_not_null(strstr(e.reason, "not a JSON object"), "%s",
	                   e.reason);
	wd_envelope_clear(&e);
}

Test(envelope, type_from_routing_key)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"from-body\"}");
	a.routing_key = bytes_of("order.created");
	cr_assert_eq(wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_ROUTING_KEY,
	                               "type", &limits),
	             0, "reason: %s", e.reason);
	expect_bytes(e.msg.type, "order.created");
	expect_bytes(e.msg.routing_key, "order.created");
	wd_envelope_clear(&e);
}

Test(envelope, type_from_routing_key_empty)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"from-body\"}");
	a.routing_key = (amqp_bytes_t){0, NULL};
	cr_expect_eq(wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_ROUTING_KEY,
	                               "type", &limits),
	             -1);
	cr_expect_null(e.json);
	cr_expect_not_null(strstr(e.reason, "bad type: the routing key is "
	                                    "empty"),
	                   "%s", e.reason);
	/* An absent routing key is still a printable view. */
	cr_expect_not_null(e.msg.routing_key.ptr);
	cr_expect_eq(e.msg.routing_key.len, 0);
	wd_envelope_clear(&e);
}

/* ---- properties -------------------------------------------------------- */

Test(envelope, properties)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"t\"}");
	a.message.properties._flags = AMQP_BASIC_MESSAGE_ID_FLAG |
	                              AMQP_BASIC_CORRELATION_ID_FLAG |
	                              AMQP_BASIC_TIMESTAMP_FLAG;
	a.message.properties.message_id = bytes_of("m-1");
	a.message.properties.correlation_id = bytes_of("c-2");
	a.message.properties.timestamp = 1700000000;
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	expect_bytes(e.msg.message_id, "m-1");
	expect_bytes(e.msg.correlation_id, "c-2");
	cr_expect_eq(e.msg.timestamp, 1700000000);
	cr_expect_eq(e.msg.redelivered, 0);
	cr_expect_eq(e.msg.delivery_count, 0);
	wd_envelope_clear(&e);
}

Test(envelope, absent_properties)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"t\"}");
	/* Values present but flags clear: they do not exist. */
	a.message.properties.message_id = bytes_of("m-1");
	a.message.properties.correlation_id = bytes_of("c-2");
	a.message.properties.timestamp = 99;
	a.exchange = (amqp_bytes_t){0, NULL};
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.message_id.len, 0);
	cr_expect_not_null(e.msg.message_id.ptr);
	cr_expect_eq(e.msg.correlation_id.len, 0);
	cr_expect_not_null(e.msg.correlation_id.ptr);
	cr_expect_eq(e.msg.timestamp, 0);
	cr_expect_eq(e.msg.exchange.len, 0);
	cr_expect_not_null(e.msg.exchange.ptr);
	wd_envelope_clear(&e);
}

Test(envelope, redelivered_without_header)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"t\"}");
	a.redelivered = 1;
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.redelivered, 1);
	cr_expect_eq(e.msg.delivery_count, 1);
	wd_envelope_clear(&e);
}

/* ---- headers ----------------------------------------------------------- */

static amqp_table_entry_t entries[8];

static void set_headers(amqp_envelope_t *a, int n)
{
	a->message.properties._flags |= AMQP_BASIC_HEADERS_FLAG;
	a->message.properties.headers.num_entries = n;
	a->message.properties.headers.entries = entries;
}

static void entry(int i, const char *key, amqp_field_value_kind_t kind)
{
	memset(&entries[i], 0, sizeof(entries[i]));
	entries[i].key = bytes_of(key);
	entries[i].value.kind = kind;
}

Test(envelope, delivery_count_from_i64_header)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"t\"}");
	a.redelivered = 1;
	entry(0, "x-other", AMQP_FIELD_KIND_I64);
	entries[0].value.value.i64 = 77;
	entry(1, "x-delivery-count", AMQP_FIELD_KIND_I64);
	entries[1].value.value.i64 = 5;
	set_headers(&a, 2);
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.delivery_count, 5);
	cr_expect_eq(e.msg.redelivered, 1);
	wd_envelope_clear(&e);
}

Test(envelope, delivery_count_header_ignored_without_flag)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"t\"}");
	entry(0, "x-delivery-count", AMQP_FIELD_KIND_I64);
	entries[0].value.value.i64 = 5;
	set_headers(&a, 1);
	a.message.properties._flags &= ~(amqp_flags_t)AMQP_BASIC_HEADERS_FLAG;
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.delivery_count, 0);
	wd_envelope_clear(&e);
}

/* The headers of one delivery: the kinds header_* must tell apart. */
static void headers_fixture(amqp_envelope_t *a, struct wd_envelope *e)
{
	make(a, "{\"type\":\"t\"}");
	entry(0, "s", AMQP_FIELD_KIND_UTF8);
	entries[0].value.value.bytes = bytes_of("hello");
	entry(1, "i32", AMQP_FIELD_KIND_I32);
	entries[1].value.value.i32 = -123456;
	entry(2, "i64", AMQP_FIELD_KIND_I64);
	entries[2].value.value.i64 = INT64_C(9000000000);
	entry(3, "u8", AMQP_FIELD_KIND_U8);
	entries[3].value.value.u8 = 250;
	entry(4, "big", AMQP_FIELD_KIND_U64);
	entries[4].value.value.u64 = (uint64_t)INT64_MAX + 1;
	entry(5, "u64", AMQP_FIELD_KIND_U64);
	entries[5].value.value.u64 = (uint64_t)INT64_MAX;
	entry(6, "f", AMQP_FIELD_KIND_F64);
	entries[6].value.value.f64 = 1.5;
	entry(7, "raw", AMQP_FIELD_KIND_BYTES);
	entries[7].value.value.bytes = bytes_of("b\0y");
	entries[7].value.value.bytes.len = 3;
	set_headers(a, 8);
	cr_assert_eq(parse_json(e, a), 0, "reason: %s", e->reason);
}

Test(envelope, header_string)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	warren_bytes out = {"untouched", 9};

	headers_fixture(&a, &e);
	cr_assert_eq(wd_sdk_api.header_string(&e.msg, "s", &out), 0);
	expect_bytes(out, "hello");
	cr_assert_eq(wd_sdk_api.header_string(&e.msg, "raw", &out), 0);
	cr_expect_eq(out.len, 3);
	cr_expect_eq(memcmp(out.ptr, "b\0y", 3), 0);
	wd_envelope_clear(&e);
}

Test(envelope, header_string_wrong_kind_or_missing)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	warren_bytes out = {"untouched", 9};

	headers_fixture(&a, &e);
	cr_expect_eq(wd_sdk_api.header_string(&e.msg, "i32", &out), -1);
	cr_expect_eq(wd_sdk_api.header_string(&e.msg, "missing", &out), -1);
	cr_expect_eq(wd_sdk_api.header_string(&e.msg, "S", &out), -1,
	             "names are case-sensitive");
	cr_expect_eq(wd_sdk_api.header_string(&e.msg, "", &out), -1);
	expect_bytes(out, "untouched");
	wd_envelope_clear(&e);
}

Test(envelope, header_int_kinds)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	int64_t v = 0;

	headers_fixture(&a, &e);
	cr_assert_eq(wd_sdk_api.header_int(&e.msg, "i32", &v), 0);
	cr_expect_eq(v, -123456);
	cr_assert_eq(wd_sdk_api.header_int(&e.msg, "i64", &v), 0);
	cr_expect_eq(v, INT64_C(9000000000));
	cr_assert_eq(wd_sdk_api.header_int(&e.msg, "u8", &v), 0);
	cr_expect_eq(v, 250);
	cr_assert_eq(wd_sdk_api.header_int(&e.msg, "u64", &v), 0);
	cr_expect_eq(v, INT64_MAX);
	wd_envelope_clear(&e);
}

Test(envelope, header_int_refusals)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	int64_t v = 31337;

	headers_fixture(&a, &e);
	cr_expect_eq(wd_sdk_api.header_int(&e.msg, "s", &v), -1);
	cr_expect_eq(wd_sdk_api.header_int(&e.msg, "f", &v), -1);
	cr_expect_eq(wd_sdk_api.header_int(&e.msg, "missing", &v), -1);
	cr_expect_eq(wd_sdk_api.header_int(&e.msg, "big", &v), -1,
	             "a U64 over INT64_MAX does not fit");
	cr_expect_eq(v, 31337, "out untouched on failure");
	wd_envelope_clear(&e);
}

Test(envelope, header_lookup_without_headers)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	warren_bytes out;
	int64_t v;

	make(&a, "{\"type\":\"t\"}");
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(wd_sdk_api.header_string(&e.msg, "s", &out), -1);
	cr_expect_eq(wd_sdk_api.header_int(&e.msg, "i", &v), -1);
	cr_expect_null(wd_amqp_header(&a, "s"));
	wd_envelope_clear(&e);
}

Test(envelope, envelope_header_direct)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	const amqp_field_value_t *v;

	headers_fixture(&a, &e);
	v = wd_amqp_header(&a, "i64");
	cr_assert_not_null(v);
	cr_expect_eq(v, &entries[2].value);
	cr_expect_null(wd_amqp_header(&a, "i6"), "no prefix match");
	cr_expect_null(wd_amqp_header(&a, "i644"));
	wd_envelope_clear(&e);
}

/* ---- SDK 1.4: the AMQP properties and every header ---------------------- */

Test(envelope, properties_of_1_4)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	amqp_basic_properties_t *p = &a.message.properties;

	make(&a, "{\"type\":\"t\"}");
	p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
	            AMQP_BASIC_CONTENT_ENCODING_FLAG |
	            AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
	            AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG |
	            AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
	p->content_type = bytes_of("application/json");
	p->content_encoding = bytes_of("gzip");
	p->reply_to = bytes_of("answers");
	p->expiration = bytes_of("60000");
	p->user_id = bytes_of("ada");
	p->app_id = bytes_of("shop");
	p->priority = 255;
	p->delivery_mode = 2;
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_assert_gt(e.msg.size, offsetof(warren_message, delivery_mode));
	expect_bytes(e.msg.content_type, "application/json");
	expect_bytes(e.msg.content_encoding, "gzip");
	expect_bytes(e.msg.reply_to, "answers");
	expect_bytes(e.msg.expiration, "60000");
	expect_bytes(e.msg.user_id, "ada");
	expect_bytes(e.msg.app_id, "shop");
	cr_expect_eq(e.msg.priority, 255);
	cr_expect_eq(e.msg.delivery_mode, 2);
	wd_envelope_clear(&e);

	/* Priority 0 is a priority, not "absent". */
	p->_flags = AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
	p->priority = 0;
	p->delivery_mode = 1;
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.priority, 0);
	cr_expect_eq(e.msg.delivery_mode, 1);
	/* Values left in the struct without their flag are absent. */
	expect_bytes(e.msg.content_type, "");
	cr_expect_not_null(e.msg.app_id.ptr);
	wd_envelope_clear(&e);
}

Test(envelope, properties_absent)
{
	amqp_envelope_t a;
	struct wd_envelope e;

	make(&a, "{\"type\":\"t\"}");
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(e.msg.priority, -1);
	cr_expect_eq(e.msg.delivery_mode, 0);
	warren_bytes all[] = {e.msg.content_type, e.msg.content_encoding,
	                      e.msg.reply_to,     e.msg.expiration,
	                      e.msg.user_id,      e.msg.app_id};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		cr_expect_eq(all[i].len, 0, "property %zu", i);
		cr_expect_not_null(all[i].ptr, "property %zu", i);
	}
	wd_envelope_clear(&e);
	/* The 1.4 properties are there even when the body is refused. */
	make(&a, "not json");
	a.message.properties._flags = AMQP_BASIC_PRIORITY_FLAG;
	a.message.properties.priority = 9;
	cr_assert_eq(parse_json(&e, &a), -1);
	cr_expect_eq(e.msg.priority, 9);
	wd_envelope_clear(&e);
}

static warren_header_field at(const struct wd_envelope *e, size_t i)
{
	warren_header_field f;

	memset(&f, 0x5a, sizeof(f));
	cr_assert_eq(wd_sdk_api.header_at(&e->msg, i, &f), 0, "header %zu", i);
	return f;
}

Test(envelope, header_iteration_every_kind)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	warren_header_field f;

	/* headers_fixture's eight: s i32 i64 u8 big u64 f raw. */
	headers_fixture(&a, &e);
	cr_assert_eq(wd_sdk_api.header_count(&e.msg), 8);
	f = at(&e, 0);
	expect_bytes(f.name, "s");
	cr_expect_eq(f.kind, WARREN_FIELD_STRING);
	expect_bytes(f.value.bytes, "hello");
	f = at(&e, 1);
	cr_expect_eq(f.kind, WARREN_FIELD_INT);
	cr_expect_eq(f.value.i, -123456);
	f = at(&e, 2);
	cr_expect_eq(f.kind, WARREN_FIELD_INT);
	cr_expect_eq(f.value.i, INT64_C(9000000000));
	f = at(&e, 3);
	cr_expect_eq(f.kind, WARREN_FIELD_INT, "an unsigned byte is an INT");
	cr_expect_eq(f.value.i, 250);
	f = at(&e, 4);
	expect_bytes(f.name, "big");
	cr_expect_eq(f.kind, WARREN_FIELD_UINT, "over INT64_MAX");
	cr_expect_eq(f.value.u, (uint64_t)INT64_MAX + 1);
	f = at(&e, 5);
	cr_expect_eq(f.kind, WARREN_FIELD_INT, "a U64 that fits is an INT");
	cr_expect_eq(f.value.i, INT64_MAX);
	f = at(&e, 6);
	cr_expect_eq(f.kind, WARREN_FIELD_FLOAT);
	cr_expect_eq(f.value.f, 1.5);
	f = at(&e, 7);
	cr_expect_eq(f.kind, WARREN_FIELD_BYTES);
	cr_expect_eq(f.value.bytes.len, 3);
	cr_expect_eq(memcmp(f.value.bytes.ptr, "b\0y", 3), 0);
	/* Out of range or NULL: -1, out untouched. */
	memset(&f, 0x5a, sizeof(f));
	cr_expect_eq(wd_sdk_api.header_at(&e.msg, 8, &f), -1);
	cr_expect_eq(wd_sdk_api.header_at(&e.msg, SIZE_MAX, &f), -1);
	cr_expect_eq(f.kind, 0x5a5a5a5a);
	cr_expect_eq(wd_sdk_api.header_at(&e.msg, 0, NULL), -1);
	cr_expect_eq(wd_sdk_api.header_at(NULL, 0, &f), -1);
	cr_expect_eq(wd_sdk_api.header_count(NULL), 0);
	/* Not a container. */
	f = at(&e, 0);
	warren_header_field g;
	cr_expect_eq(wd_sdk_api.field_at(&f, 0, &g), -1);
	wd_envelope_clear(&e);
}

Test(envelope, header_iteration_scalars_and_nesting)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	warren_header_field f, g, h;
	amqp_table_entry_t inner[2];
	amqp_field_value_t elems[2], deep[1];

	make(&a, "{\"type\":\"t\"}");
	entry(0, "t", AMQP_FIELD_KIND_BOOLEAN);
	entries[0].value.value.boolean = 1;
	entry(1, "ts", AMQP_FIELD_KIND_TIMESTAMP);
	entries[1].value.value.u64 = 1700000000;
	entry(2, "d", AMQP_FIELD_KIND_DECIMAL);
	entries[2].value.value.decimal.decimals = 3;
	entries[2].value.value.decimal.value = 4500;
	entry(3, "v", AMQP_FIELD_KIND_VOID);
	entry(4, "f32", AMQP_FIELD_KIND_F32);
	entries[4].value.value.f32 = 0.25f;
	/* {k: "v", n: -1} */
	memset(inner, 0, sizeof(inner));
	inner[0].key = bytes_of("k");
	inner[0].value.kind = AMQP_FIELD_KIND_UTF8;
	inner[0].value.value.bytes = bytes_of("v");
	inner[1].key = bytes_of("n");
	inner[1].value.kind = AMQP_FIELD_KIND_I16;
	inner[1].value.value.i16 = -1;
	entry(5, "tbl", AMQP_FIELD_KIND_TABLE);
	entries[5].value.value.table = (amqp_table_t){2, inner};
	/* [7, [true]] */
	memset(elems, 0, sizeof(elems));
	memset(deep, 0, sizeof(deep));
	deep[0].kind = AMQP_FIELD_KIND_BOOLEAN;
	deep[0].value.boolean = 1;
	elems[0].kind = AMQP_FIELD_KIND_U32;
	elems[0].value.u32 = 7;
	elems[1].kind = AMQP_FIELD_KIND_ARRAY;
	elems[1].value.array = (amqp_array_t){1, deep};
	entry(6, "arr", AMQP_FIELD_KIND_ARRAY);
	entries[6].value.value.array = (amqp_array_t){2, elems};
	set_headers(&a, 7);
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_assert_eq(wd_sdk_api.header_count(&e.msg), 7);

	f = at(&e, 0);
	cr_expect_eq(f.kind, WARREN_FIELD_BOOL);
	cr_expect_eq(f.value.b, 1);
	f = at(&e, 1);
	cr_expect_eq(f.kind, WARREN_FIELD_TIMESTAMP);
	cr_expect_eq(f.value.u, 1700000000);
	f = at(&e, 2);
	cr_expect_eq(f.kind, WARREN_FIELD_DECIMAL);
	cr_expect_eq(f.value.decimal.places, 3);
	cr_expect_eq(f.value.decimal.value, 4500);
	f = at(&e, 3);
	expect_bytes(f.name, "v");
	cr_expect_eq(f.kind, WARREN_FIELD_VOID);
	f = at(&e, 4);
	cr_expect_eq(f.kind, WARREN_FIELD_FLOAT);
	cr_expect_eq(f.value.f, 0.25);

	f = at(&e, 5);
	cr_expect_eq(f.kind, WARREN_FIELD_TABLE);
	cr_assert_eq(f.value.nested.count, 2);
	cr_assert_eq(wd_sdk_api.field_at(&f, 0, &g), 0);
	expect_bytes(g.name, "k");
	cr_expect_eq(g.kind, WARREN_FIELD_STRING);
	expect_bytes(g.value.bytes, "v");
	cr_assert_eq(wd_sdk_api.field_at(&f, 1, &g), 0);
	expect_bytes(g.name, "n");
	cr_expect_eq(g.kind, WARREN_FIELD_INT);
	cr_expect_eq(g.value.i, -1);
	cr_expect_eq(wd_sdk_api.field_at(&f, 2, &g), -1);

	f = at(&e, 6);
	cr_expect_eq(f.kind, WARREN_FIELD_ARRAY);
	cr_assert_eq(f.value.nested.count, 2);
	cr_assert_eq(wd_sdk_api.field_at(&f, 0, &g), 0);
	cr_expect_eq(g.name.len, 0, "array elements have no name");
	cr_expect_not_null(g.name.ptr);
	cr_expect_eq(g.kind, WARREN_FIELD_INT);
	cr_expect_eq(g.value.i, 7);
	cr_assert_eq(wd_sdk_api.field_at(&f, 1, &g), 0);
	cr_expect_eq(g.kind, WARREN_FIELD_ARRAY);
	cr_assert_eq(g.value.nested.count, 1);
	cr_assert_eq(wd_sdk_api.field_at(&g, 0, &h), 0);
	cr_expect_eq(h.kind, WARREN_FIELD_BOOL);
	cr_expect_eq(h.value.b, 1);
	cr_expect_eq(wd_sdk_api.field_at(&g, 1, &h), -1);
	/* A count a plugin raised does not read past the real one. */
	f.value.nested.count = 100;
	cr_expect_eq(wd_sdk_api.field_at(&f, 5, &g), -1);
	cr_expect_eq(wd_sdk_api.field_at(NULL, 0, &g), -1);
	cr_expect_eq(wd_sdk_api.field_at(&f, 0, NULL), -1);
	wd_envelope_clear(&e);
}

Test(envelope, header_iteration_without_headers)
{
	amqp_envelope_t a;
	struct wd_envelope e;
	warren_header_field f;

	make(&a, "{\"type\":\"t\"}");
	cr_assert_eq(parse_json(&e, &a), 0, "reason: %s", e.reason);
	cr_expect_eq(wd_sdk_api.header_count(&e.msg), 0);
	cr_expect_eq(wd_sdk_api.header_at(&e.msg, 0, &f), -1);
	wd_envelope_clear(&e);
}
