/* outbox.h - the follow-up messages one handler call asked to publish
 * (warren_api.publish), copied out of the plugin's memory and held until
 * the call's outcome is known: sent on ack, dropped otherwise. */
#ifndef WD_OUTBOX_H
#define WD_OUTBOX_H

#include <stddef.h>

#include "base/amqp_compat.h"
#include "warren.h"

#define WD_OUTBOX_MAX_MESSAGES 256
#define WD_OUTBOX_MAX_BYTES    (64u << 20)

struct wd_followup {
	struct wd_followup *next;
	amqp_bytes_t exchange, routing_key, body; /* owned */
	amqp_basic_properties_t props;            /* strings owned */
};

struct wd_outbox {
	struct wd_followup *head, *tail;
	size_t n, bytes;
};

/* Copy `p` into the outbox. Returns 0, or -1 with why set (malformed,
 * over the limits, out of memory). */
int wd_outbox_add(struct wd_outbox *o, const warren_publish *p, char *why,
                  size_t whylen);
void wd_outbox_clear(struct wd_outbox *o);

#endif
