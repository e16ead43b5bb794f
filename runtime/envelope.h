/* envelope.h - one delivery made ready for a handler: the body parsed once
 * (jansson), the type extracted from the queue's configured source, and the
 * SDK's warren_message filled with borrowed views of the delivery. */
#ifndef WD_ENVELOPE_H
#define WD_ENVELOPE_H

#include <jansson.h>
#include <stdbool.h>

#include "amqp_compat.h"
#include "conf.h"
#include "policy.h"
#include "warren.h"

/* Longest message type accepted (AMQP short strings are 255 too). */
#define WD_TYPE_MAX 255

struct wd_envelope {
	warren_message msg; /* first: the SDK's view, cast back in sdk_api.c */
	json_t *json;       /* owned: the one parse of the body */
	const amqp_envelope_t *amqp; /* borrowed delivery */
	char reason[256];   /* why it could not be made ready */
	bool bad_type;      /* ... because of its type, not its body */
	struct wd_attempts attempts;
};

/*
 * Parse `amqp`'s body and find its type. A retried copy shows the handler
 * the exchange and routing key it was first published with (and its type
 * comes from that routing key), not the retry queue's. On success returns 0 and e->msg
 * is ready. On failure returns -1 with e->reason set (invalid JSON, not an
 * object, missing / non-string / empty / too long type); e->json is then
 * NULL. Never reads past the body's length. Always call
 * wd_envelope_clear() afterwards.
 */
int wd_envelope_parse(struct wd_envelope *e, const amqp_envelope_t *amqp,
                      const char *queue, enum wd_type_source from,
                      const char *type_field);
void wd_envelope_clear(struct wd_envelope *e);

/* Look up `name` in an AMQP table, or NULL. */
const amqp_field_value_t *wd_table_get(const amqp_table_t *t,
                                       const char *name);

/* An integer field of any width (signed or unsigned, 8 to 64 bits) into
 * *out: 0, or -1 if absent, not an integer or over INT64_MAX. */
int wd_field_int(const amqp_field_value_t *v, int64_t *out);

/* Look up header `name` in a delivery's headers table, or NULL. */
const amqp_field_value_t *wd_envelope_header(const amqp_envelope_t *amqp,
                                             const char *name);

#endif
