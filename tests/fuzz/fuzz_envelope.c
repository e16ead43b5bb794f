/* fuzz_envelope.c - a delivery made ready for a handler
 * (message/envelope.c: wd_envelope_parse): its JSON body and its type
 * from the source the first byte chooses.
 *
 * Input: byte 0: bits 0-1 the type source (JSON field, AMQP `type`
 * property, routing key; 3 is JSON with the field "kind"), bit 2 the type
 * property set, bit 3 redelivered, bit 4 a timestamp; byte 1 the routing
 * key's length, byte 2 the type property's; those bytes; the rest the
 * body. */
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
	                       from == 3 ? "kind" : "type");
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
