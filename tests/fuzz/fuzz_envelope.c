/* fuzz_envelope.c - a delivery made ready for a handler
 * (message/envelope.c: wd_envelope_parse): its JSON body and its type
 * from the source the first byte chooses.
 *
 * Input: byte 0: bits 0-1 the type source (JSON field, AMQP `type`
 * property, routing key; 3 is JSON with the field "kind"), bit 2 the type
 * property set, bit 3 redelivered, bit 4 a timestamp; byte 1 the routing
 * key's length, byte 2 the type property's; those bytes; the rest the
 * body. A body that parses is counted again on jansson's tree: the
 * limits' scan must find the same values and nesting (check_scan). */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "fuzz.h"
#include "message/envelope.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	wd_log_set_level(WD_LOG_ERROR);
	return 0;
}

static const struct wd_input_limits limits = WD_INPUT_LIMITS_DEFAULT;

/* The values (elements and members, the root included) and the nesting
 * of a parsed tree, counted on jansson's side. */
static void count_tree(json_t *j, int depth, long *values, int *deepest)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_array(j) || json_is_object(j)) {
		depth++;
		if (depth > *deepest)
			*deepest = depth;
	}
	if (json_is_array(j))
		json_array_foreach(j, i, v)
		{
			++*values;
			count_tree(v, depth, values, deepest);
		}
	else if (json_is_object(j))
		json_object_foreach(j, key, v)
		{
			++*values;
			count_tree(v, depth, values, deepest);
		}
}

/* The limits' one-pass scan (message/limits.c) counts exactly what the
 * parse built: it passes at those figures and fails one below each. */
static void check_scan(json_t *j, const void *body, size_t len)
{
	struct wd_input_limits l = limits;
	long values = 1;
	int deepest = 0;
	char why[128];

	count_tree(j, 0, &values, &deepest);
	l.json_values = values;
	l.json_depth = deepest;
	if (wd_limits_json(&l, body, len, why, sizeof(why)) != 0)
		__builtin_trap();
	l.json_values = values - 1;
	if (values > 1 && wd_limits_json(&l, body, len, why, sizeof(why)) == 0)
		__builtin_trap();
	l.json_values = values;
	l.json_depth = deepest - 1;
	if (deepest > 1 && wd_limits_json(&l, body, len, why, sizeof(why)) == 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint8_t flags = fuzz_byte(&in);
	size_t rk_len = fuzz_byte(&in), type_len = fuzz_byte(&in), n;
	amqp_envelope_t env;
	struct wd_envelope e;
	const uint8_t *at;
	enum wd_type_source from = (enum wd_type_source)(flags & 3);
	int rc;

	memset(&env, 0, sizeof(env));
	at = fuzz_take(&in, rk_len, &n);
	env.routing_key = (amqp_bytes_t){n, (void *)at};
	env.exchange = amqp_cstring_bytes("events");
	at = fuzz_take(&in, type_len, &n);
	if (flags & 4) {
		env.message.properties._flags |= AMQP_BASIC_TYPE_FLAG;
		env.message.properties.type = (amqp_bytes_t){n, (void *)at};
	}
	env.redelivered = (flags & 8) != 0;
	if (flags & 16) {
		env.message.properties._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
		env.message.properties.timestamp = (uint64_t)size << 40;
	}
	/* A body copy of its own size: ASan sees a read past its end. */
	uint8_t *body = in.n ? malloc(in.n) : NULL;
	if (in.n && !body)
		return 0;
	if (body)
		memcpy(body, in.p, in.n);
	env.message.body = (amqp_bytes_t){in.n, body};

	rc = wd_envelope_parse(&e, &env, "orders",
	                       from == 3 ? WD_TYPE_FROM_JSON : from,
	                       from == 3 ? "kind" : "type", &limits);
	if (rc == 0)
		check_scan(e.json, body, in.n);
	if (rc == 0) {
		/* What a handler is promised: a type of 1..255 bytes and a
		 * JSON object. */
		if (e.msg.type.len == 0 || e.msg.type.len > WD_TYPE_MAX ||
		    !json_is_object(e.json))
			__builtin_trap();
	} else if (e.json != NULL || e.reason[0] == '\0') {
		__builtin_trap(); /* a refusal says why and holds nothing */
	}
	wd_envelope_clear(&e);
	free(body);
	return 0;
}
