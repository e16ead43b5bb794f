/* envelope.h - one delivery made ready for a handler: the body parsed once
 * (jansson), the type extracted from the queue's configured source, and the
 * SDK's warren_message filled with borrowed views of the delivery. */
#ifndef WD_ENVELOPE_H
#define WD_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>

#include "base/amqp_compat.h"
#include "base/amqp_fields.h"
#include "message/limits.h"
#include "message/policy.h"
#include "warren.h"

/* Where a queue's messages carry their type. */
enum wd_type_source {
	WD_TYPE_FROM_JSON = 0,     /* a string field of the JSON body */
	WD_TYPE_FROM_PROPERTY = 1, /* the AMQP `type` property */
	WD_TYPE_FROM_ROUTING_KEY = 2,
};

/* Longest message type accepted (AMQP short strings are 255 too). */
#define WD_TYPE_MAX 255

struct wd_envelope {
	warren_message msg; /* first: the SDK's view, cast back in sdk_api.c */
	json_t *json;       /* owned: the one parse of the body */
	const amqp_envelope_t *amqp; /* borrowed delivery */
	char reason[256];            /* why it could not be made ready */
	bool bad_type;               /* ... because of its type, not its body */
	bool too_large; /* ... because it passed a limit (message/limits.h) */
	struct wd_attempts attempts;
};

/*
 * Parse `amqp`'s body and find its type. A retried copy shows the handler
 * the exchange and routing key it was first published with (and its type
 * comes from that routing key), not the retry queue's. On success returns 0 and
 * e->msg is ready. On failure returns -1 with e->reason set (invalid JSON, not
 * an object, missing / non-string / empty / too long type; or past one of
 * `lim`'s JSON bounds, e->too_large); e->json is then NULL. Never reads
 * past the body's length. Always call wd_envelope_clear() afterwards.
 */
int wd_envelope_parse(struct wd_envelope *e, const amqp_envelope_t *amqp,
                      const char *queue, enum wd_type_source from,
                      const char *type_field,
                      const struct wd_input_limits *lim);
void wd_envelope_clear(struct wd_envelope *e);

#endif
