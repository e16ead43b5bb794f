/* fuzz_headers.c - a delivery's AMQP headers table, as any publisher on
 * the vhost may send it, through what warrend reads of it: the attempt
 * count (x-warren-attempts, x-death, x-delivery-count; message/policy.c),
 * the publish time and the original exchange and routing key, the SDK's
 * header_* and field_at views (host/sdk_api.c, sdk_fields.c), and the
 * headers of the copy a retry or dead-letter republishes, encoded again.
 *
 * Input: the table in AMQP's wire encoding without its 4-byte length
 * (rabbitmq-c's amqp_decode_table reads it, as it reads a delivery's
 * content header), so nested tables and arrays of any field kind come
 * from the bytes. The limits' walk must count what the views see
 * (check_limits). */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "fuzz.h"
#include "host/sdk_api.h"
#include "message/envelope.h"
#include "message/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	wd_log_set_level(WD_LOG_ERROR);
	return 0;
}

static const struct wd_input_limits limits = WD_INPUT_LIMITS_DEFAULT;

/* The deepest level walk() saw, the headers table being 1 (as
 * max_header_depth counts). */
static int deepest;

/* Every entry of a nested table or array, depth first. */
static size_t walk(const warren_header_field *f, int depth)
{
	size_t seen = 1;

	if (depth > 64 ||
	    (f->kind != WARREN_FIELD_TABLE && f->kind != WARREN_FIELD_ARRAY))
		return seen;
	if (depth + 2 > deepest)
		deepest = depth + 2;
	for (size_t i = 0; i < f->value.nested.count; i++) {
		warren_header_field c;
		if (wd_sdk_api.field_at(f, i, &c) != 0)
			__builtin_trap(); /* within count: must be there */
		if (c.name.len && !c.name.ptr)
			__builtin_trap();
		seen += walk(&c, depth + 1);
	}
	return seen;
}

/* The limits' walk (message/limits.c) counts what the SDK's views see:
 * it passes at those figures and fails one below each. */
static void check_limits(const amqp_table_t *t, size_t seen)
{
	struct wd_input_limits l = limits;
	char why[128];

	if (deepest > 60)
		return; /* walk() stops at 64 levels */
	l.header_depth = deepest;
	l.headers = (long)seen;
	if (wd_limits_headers(&l, t, why, sizeof(why)) != 0)
		__builtin_trap();
	l.headers = (long)seen - 1;
	if (seen > 0 && wd_limits_headers(&l, t, why, sizeof(why)) == 0)
		__builtin_trap();
	l.headers = (long)seen;
	l.header_depth = deepest - 1;
	if (deepest > 1 && wd_limits_headers(&l, t, why, sizeof(why)) == 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *wire = malloc(size + 4);
	amqp_pool_t pool;
	amqp_table_t table, out;
	amqp_envelope_t env;
	struct wd_envelope e;
	struct wd_header_scratch scratch;
	struct wd_failure f = {.reason = "handler",
	                       .text = "fuzzed",
	                       .plugin = "p",
	                       .handler = "h",
	                       .attempts = 3,
	                       .now_ms = 1700000000000};
	size_t offset = 0;
	warren_bytes s;
	int64_t i64;

	if (!wire || size > UINT32_MAX - 4) {
		free(wire);
		return 0;
	}
	wire[0] = (uint8_t)(size >> 24);
	wire[1] = (uint8_t)(size >> 16);
	wire[2] = (uint8_t)(size >> 8);
	wire[3] = (uint8_t)size;
	memcpy(wire + 4, data, size);
	init_amqp_pool(&pool, 4096);
	if (amqp_decode_table((amqp_bytes_t){size + 4, wire}, &pool, &table,
	                      &offset) != AMQP_STATUS_OK)
		goto out;

	memset(&env, 0, sizeof(env));
	env.exchange = amqp_cstring_bytes("orders.retry");
	env.routing_key = amqp_cstring_bytes("orders");
	env.message.properties._flags = AMQP_BASIC_HEADERS_FLAG;
	env.message.properties.headers = table;
	env.message.body = amqp_cstring_bytes("{\"type\":\"order:created\"}");
	if (wd_envelope_parse(&e, &env, "orders", WD_TYPE_FROM_JSON, "type",
	                      &limits) == 0) {
		size_t n = wd_sdk_api.header_count(&e.msg), seen = 0;
		deepest = 1;
		if (n != (size_t)table.num_entries)
			__builtin_trap();
		for (size_t i = 0; i < n; i++) {
			warren_header_field h;
			if (wd_sdk_api.header_at(&e.msg, i, &h) != 0)
				__builtin_trap();
			seen += walk(&h, 0);
		}
		check_limits(&table, seen);
		(void)wd_sdk_api.header_string(&e.msg, "x-warren-reason", &s);
		(void)wd_sdk_api.header_int(&e.msg, "x-warren-attempts", &i64);
		/* Attempts are counted, never negative or past the cap. */
		if (e.attempts.attempt < 1)
			__builtin_trap();
	}
	wd_envelope_clear(&e);
	(void)wd_policy_published_us(&env);

	/* The copy a retry republishes: its headers encode again. */
	if (wd_policy_headers(&env, "orders", &f, &scratch, &out) == 0) {
		size_t cap = size * 2 + 65536, at = 0;
		uint8_t *enc = malloc(cap);
		if (enc)
			(void)amqp_encode_table((amqp_bytes_t){cap, enc}, &out,
			                        &at);
		free(enc);
		free(out.entries);
	}
out:
	empty_amqp_pool(&pool);
	free(wire);
	return 0;
}
