/* publisher.c - mandatory publishes in confirm mode, matched to their
 * confirms by sequence number. */
#include "broker/publisher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	p->done = done;
	p->timeout_ms = timeout_ms;
	p->next_seq = 1;
	if (wd_broker_channel_open(amqp, probe_channel, err, errlen) < 0)
		return -1;
	amqp_confirm_select(amqp, channel);
	r = amqp_get_rpc_reply(amqp);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "cannot put channel %u in confirm mode: %s",
		         channel, wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	return 0;
}

static bool is_known(const struct wd_publisher *p, amqp_bytes_t x)
{
	if (x.len == 0 || (x.len > 4 && memcmp(x.bytes, "amq.", 4) == 0))
		return true; /* the default exchange and amq.* always exist */
	for (size_t i = 0; i < p->nknown; i++)
		if (strlen(p->known[i]) == x.len &&
		    memcmp(p->known[i], x.bytes, x.len) == 0)
			return true;
	return false;
}

static void forget_known(struct wd_publisher *p)
{
	for (size_t i = 0; i < p->nknown; i++)
		free(p->known[i]);
	free(p->known);
	p->known = NULL;
	p->nknown = 0;
}

static void add_known(struct wd_publisher *p, amqp_bytes_t x)
{
	char **n;
	char *s;

	if (is_known(p, x))
		return;
	if (p->nknown >= KNOWN_MAX)
		forget_known(p);
	n = realloc(p->known, (p->nknown + 1) * sizeof(*n));
	if (!n)
		return;
	p->known = n;
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

	amqp_exchange_declare(p->amqp, p->probe_channel, x, amqp_empty_bytes,
	                      1, 0, 0, 0, amqp_empty_table);
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
	                     AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) != AMQP_STATUS_OK ||
	    wd_broker_channel_open(p->amqp, p->probe_channel, err,
	                           sizeof(err)) < 0)
		return -1;
	return 0;
}

static struct wd_pub_rec *rec_at(const struct wd_publisher *p, size_t i)
{
	return &p->recs[(p->head + i) % p->cap];
}

static int push(struct wd_publisher *p, const struct wd_pub_rec *r)
{
	if (p->count == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct wd_pub_rec *n = malloc(cap * sizeof(*n));
		if (!n)
			return -1;
		for (size_t i = 0; i < p->count; i++)
			n[i] = *rec_at(p, i);
		free(p->recs);
		p->recs = n;
		p->cap = cap;
		p->head = 0;
	}
	p->recs[(p->head + p->count) % p->cap] = *r;
	p->count++;
	return 0;
}

int wd_pub_send(struct wd_publisher *p, void *owner, amqp_bytes_t exchange,
                amqp_bytes_t routing_key,
                const amqp_basic_properties_t *props, amqp_bytes_t body,
                int64_t now_ms, char *why, size_t whylen)
{
	struct wd_pub_rec r = {.owner = owner, .sent_ms = now_ms};
	int rc;

	if (!is_known(p, exchange)) {
		rc = probe(p, exchange, why, whylen);
		if (rc <= 0)
			return rc < 0 ? -1 : 1;
	}
	r.exchange = strndup(exchange.len ? exchange.bytes : "", exchange.len);
	r.routing_key =
	    strndup(routing_key.len ? routing_key.bytes : "", routing_key.len);
	if (!r.exchange || !r.routing_key)
		goto oom;
	r.seq = p->next_seq;
	if (push(p, &r) < 0)
		goto oom;
	rc = amqp_basic_publish(p->amqp, p->channel, exchange, routing_key, 1,
	                        0, props, body);
	p->next_seq++;
	return rc == AMQP_STATUS_OK ? 0 : -1;
oom:
	free(r.exchange);
	free(r.routing_key);
	snprintf(why, whylen, "out of memory");
	return 1;
}

static void finish(struct wd_publisher *p, struct wd_pub_rec *r, bool ok,
                   const char *why)
{
	char *x = r->exchange, *rk = r->routing_key;

	if (r->returned) {
		ok = false;
		why = r->why;
	}
	p->done(r->owner, ok, ok ? NULL : why);
	free(x);
	free(rk);
}

void wd_pub_confirm(struct wd_publisher *p, uint64_t tag, bool multiple,
                    bool ack)
{
	const char *why = "the broker refused it (basic.nack)";

	/* Confirms come in seq order per tag, but single confirms may skip:
	 * settle the front while it is covered, and an exact match inside. */
	while (p->count > 0) {
		struct wd_pub_rec *r = rec_at(p, 0);
		if (r->seq > tag || (!multiple && r->seq != tag))
			break;
		struct wd_pub_rec copy = *r;
		p->head = (p->head + 1) % p->cap;
		p->count--;
		finish(p, &copy, ack, why);
		if (!multiple)
			return;
	}
	if (multiple)
		return;
	for (size_t i = 0; i < p->count; i++) {
		struct wd_pub_rec *r = rec_at(p, i);
		if (r->seq != tag)
			continue;
		struct wd_pub_rec copy = *r;
		/* Close the gap: shift the later ones down by one. */
		for (size_t j = i; j + 1 < p->count; j++)
			*rec_at(p, j) = *rec_at(p, j + 1);
		p->count--;
		finish(p, &copy, ack, why);
		return;
	}
}

void wd_pub_returned(struct wd_publisher *p, amqp_bytes_t exchange,
                     amqp_bytes_t routing_key, uint16_t code,
                     amqp_bytes_t text)
{
	for (size_t i = 0; i < p->count; i++) {
		struct wd_pub_rec *r = rec_at(p, i);
		if (strlen(r->exchange) != exchange.len ||
		    memcmp(r->exchange, exchange.bytes, exchange.len) != 0 ||
		    strlen(r->routing_key) != routing_key.len ||
		    memcmp(r->routing_key, routing_key.bytes, routing_key.len) != 0)
			continue;
		r->returned = true;
		snprintf(r->why, sizeof(r->why),
		         "unroutable: exchange \"%.50s\" routing key \"%.50s\": "
		         "%.*s (%u)",
		         r->exchange, r->routing_key,
		         (int)(text.len > 40 ? 40 : text.len),
		         (const char *)text.bytes, code);
	}
}

bool wd_pub_expired(const struct wd_publisher *p, int64_t now_ms,
                    int64_t *next_due_ms)
{
	int64_t due;

	if (p->count == 0)
		return false;
	due = rec_at(p, 0)->sent_ms + p->timeout_ms;
	if (due <= now_ms)
		return true;
	if (*next_due_ms < 0 || due < *next_due_ms)
		*next_due_ms = due;
	return false;
}

size_t wd_pub_pending(const struct wd_publisher *p) { return p->count; }

void wd_pub_reset(struct wd_publisher *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(rec_at(p, i)->exchange);
		free(rec_at(p, i)->routing_key);
	}
	free(p->recs);
	p->recs = NULL;
	p->head = p->count = p->cap = 0;
	forget_known(p);
}
