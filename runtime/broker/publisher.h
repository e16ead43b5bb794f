/* publisher.h - confirmed publishes on one connection's publish channel.
 *
 * Every republish (retry, dead-letter) and every follow-up a handler asks
 * for goes through here, mandatory and in confirm mode, and reports back
 * to its owner (a delivery) once the broker has confirmed it (ok) or
 * refused it: basic.nack, basic.return (unroutable), an exchange that does
 * not exist, or no confirm within the timeout. Owned by the connection
 * thread. */
#ifndef WD_PUBLISHER_H
#define WD_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"
#include "broker/confirms.h"

/* Called once per publish when its fate is known. `why` is NULL if ok. */
typedef wd_confirms_done_fn wd_pub_done_fn;

struct wd_publisher {
	amqp_connection_state_t amqp;
	amqp_channel_t channel;       /* confirm mode */
	amqp_channel_t probe_channel; /* for passive exchange checks */
	struct wd_confirms confirms;  /* what is sent and not yet confirmed */
	char **known; /* exchanges seen to exist on this connection */
	size_t nknown, capknown;
};

/* Set up on a fresh connection: `channel` is open already (it declared
 * the topology); open probe_channel; put `channel` in confirm mode.
 * Returns 0, or -1 with err. */
int wd_pub_open(struct wd_publisher *p, amqp_connection_state_t amqp,
                amqp_channel_t channel, amqp_channel_t probe_channel,
                wd_pub_done_fn done, int timeout_ms, char *err, size_t errlen);

/* Remember that `exchange` exists (declared by the topology). */
void wd_pub_known(struct wd_publisher *p, const char *exchange);

/*
 * Publish (mandatory) for `owner`. Returns 0 if sent (done() follows), 1
 * if refused at once with *why set (the exchange does not exist; done() is
 * not called), -1 if the connection failed.
 */
int wd_pub_send(struct wd_publisher *p, void *owner, amqp_bytes_t exchange,
                amqp_bytes_t routing_key, const amqp_basic_properties_t *props,
                amqp_bytes_t body, int64_t now_ms, char *why, size_t whylen);

/* What the broker says on the publish channel, passed to the confirm
 * bookkeeping (broker/confirms.h says what each does): basic.ack and
 * basic.nack, basic.return, and the confirm timeout. */
void wd_pub_confirm(struct wd_publisher *p, uint64_t tag, bool multiple,
                    bool ack);
void wd_pub_returned(struct wd_publisher *p, amqp_bytes_t exchange,
                     amqp_bytes_t routing_key, uint16_t code,
                     amqp_bytes_t text);
bool wd_pub_expired(const struct wd_publisher *p, int64_t now_ms,
                    int64_t *next_due_ms);
/* The broker blocked the connection for ms: the confirm timeout of what
 * waits now starts again that much later. */
void wd_pub_pause(struct wd_publisher *p, int64_t ms);
/* Forget everything (the connection is gone); done() is not called. */
void wd_pub_reset(struct wd_publisher *p);

#endif
