/* publisher.c - mandatory publishes in confirm mode: the channel set-up,
 * the exchange probe and the sending; which publish a confirm settles is
 * broker/confirms.c's. */
#include "broker/publisher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/metrics.h"

#include "base/amqp_fields.h"
#include "base/grow.h"
#include "broker/broker.h"

/* Exchanges remembered per connection before the cache starts over. */
#define KNOWN_MAX 256

int wd_pub_open(struct wd_publisher *p, amqp_connection_state_t amqp,
                amqp_channel_t channel, amqp_channel_t probe_channel,
                wd_pub_done_fn done, int timeout_ms, char *err, size_t errlen)
{
	char why[512];
	amqp_rpc_reply_t r;

	wd_pub_reset(p);
	p->amqp = amqp;
	p->channel = channel;
	p->probe_channel = probe_channel;
	/* confirm.select numbers the channel's publishes from 1 again. */
	wd_confirms_init(&p->confirms, done, timeout_ms);
	if (wd_broker_channel_open(amqp, probe_channel, err, errlen) < 0)
		return -1;
	amqp_confirm_select(amqp, channel);
	r = amqp_get_rpc_reply(amqp);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen,
		         "cannot put channel %u in confirm mode: %s", channel,
		         wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	return 0;
}

static bool is_known(const struct wd_publisher *p, amqp_bytes_t x)
{
	if (x.len == 0 || wd_amqp_predeclared(x))
		return true; /* the default exchange and amq.* always exist */
	for (size_t i = 0; i < p->nknown; i++)
		if (wd_bytes_eq(x, p->known[i]))
			return true;
	return false;
}

static void forget_known(struct wd_publisher *p)
{
	for (size_t i = 0; i < p->nknown; i++)
		free(p->known[i]);
	free(p->known);
	p->known = NULL;
	p->nknown = p->capknown = 0;
}

static void add_known(struct wd_publisher *p, amqp_bytes_t x)
{
	char *s;

	if (is_known(p, x))
		return;
	if (p->nknown >= KNOWN_MAX)
		forget_known(p);
	/* Out of memory only costs a probe next time. */
	if (WD_GROW(p->known, p->capknown, p->nknown + 1, 16) < 0)
		return;
	s = strndup(x.bytes, x.len);
	if (s)
		p->known[p->nknown++] = s;
}

void wd_pub_known(struct wd_publisher *p, const char *exchange)
{
	add_known(p, amqp_cstring_bytes(exchange));
}

/*
 * Does the exchange exist? A publish to a missing one would make the
 * broker close the publish channel, failing every publish in flight on it,
 * so ask first, on a channel of its own: a passive declare of a missing
 * exchange closes only that channel, which is reopened. Returns 1 if it
 * exists, 0 if not (why set), -1 if the connection failed.
 */
static int probe(struct wd_publisher *p, amqp_bytes_t x, char *why,
                 size_t whylen)
{
	amqp_rpc_reply_t r;
	char text[256], err[256];

	amqp_exchange_declare(p->amqp, p->probe_channel, x, amqp_empty_bytes, 1,
	                      0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(p->amqp);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		add_known(p, x);
		return 1;
	}
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
	    r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
		return -1;
	snprintf(why, whylen, "exchange \"%.*s\" does not exist (%s)",
	         (int)(x.len > 100 ? 100 : x.len), (const char *)x.bytes,
	         wd_broker_reply_str(r, text, sizeof(text)));
	amqp_channel_close_ok_t ok;
	if (amqp_send_method(p->amqp, p->probe_channel,
	                     AMQP_CHANNEL_CLOSE_OK_METHOD,
	                     &ok) != AMQP_STATUS_OK ||
	    wd_broker_channel_open(p->amqp, p->probe_channel, err,
	                           sizeof(err)) < 0)
		return -1;
	return 0;
}

int wd_pub_send(struct wd_publisher *p, void *owner, amqp_bytes_t exchange,
                amqp_bytes_t routing_key, const amqp_basic_properties_t *props,
                amqp_bytes_t body, int64_t now_ms, char *why, size_t whylen)
{
	int rc;

	if (!is_known(p, exchange)) {
		rc = probe(p, exchange, why, whylen);
		if (rc == 0)
			wd_metric_inc(publishes_refused);
		if (rc <= 0)
			return rc < 0 ? -1 : 1;
	}
	/* Recorded before it is sent: its confirm may be the next frame. */
	if (wd_confirms_push(&p->confirms, owner, exchange, routing_key,
	                     now_ms) < 0) {
		snprintf(why, whylen, "out of memory");
		return 1;
	}
	/* A failed send still used its sequence number; the connection is
	 * dropped (and the ring reset) anyway. */
	rc = amqp_basic_publish(p->amqp, p->channel, exchange, routing_key, 1,
	                        0, props, body);
	return rc == AMQP_STATUS_OK ? 0 : -1;
}

void wd_pub_confirm(struct wd_publisher *p, uint64_t tag, bool multiple,
                    bool ack)
{
	wd_confirms_confirm(&p->confirms, tag, multiple, ack);
}

void wd_pub_returned(struct wd_publisher *p, amqp_bytes_t exchange,
                     amqp_bytes_t routing_key, uint16_t code, amqp_bytes_t text)
{
	wd_confirms_returned(&p->confirms, exchange, routing_key, code, text);
}

bool wd_pub_expired(const struct wd_publisher *p, int64_t now_ms,
                    int64_t *next_due_ms)
{
	return wd_confirms_expired(&p->confirms, now_ms, next_due_ms);
}

void wd_pub_pause(struct wd_publisher *p, int64_t ms)
{
	wd_confirms_pause(&p->confirms, ms);
}

void wd_pub_reset(struct wd_publisher *p)
{
	wd_confirms_reset(&p->confirms);
	forget_known(p);
}
