/* envelope.c - parse once, extract the type, fill the SDK view. */
#include "message/envelope.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"

static warren_bytes view(amqp_bytes_t b)
{
	/* Never a NULL pointer, so "%.*s" is always safe in a plugin. */
	return (warren_bytes){.ptr = b.len ? b.bytes : "", .len = b.len};
}

static warren_bytes prop(const amqp_basic_properties_t *p, amqp_flags_t flag,
                         amqp_bytes_t b)
{
	return (p->_flags & flag) ? view(b) : (warren_bytes){"", 0};
}

static int fail(struct wd_envelope *e, const char *fmt, const char *arg)
{
	snprintf(e->reason, sizeof(e->reason), fmt, arg);
	json_decref(e->json);
	e->json = NULL;
	e->msg.json = NULL;
	e->msg.type = (warren_bytes){"", 0}; /* pointed into the JSON */
	return -1;
}

/* The body is fine but has no usable type. */
static int fail_type(struct wd_envelope *e, const char *fmt, const char *arg)
{
	e->bad_type = true;
	return fail(e, fmt, arg);
}

static int check_type(struct wd_envelope *e, const char *what, size_t len)
{
	if (len == 0)
		return fail_type(e, "%s is empty", what);
	if (len > WD_TYPE_MAX)
		return fail_type(e, "%s is longer than 255 bytes", what);
	return 0;
}

/* The body, fed to jansson a buffer (1 KiB in jansson 2.14) at a time, so
 * that a parse past its CPU budget can be stopped: every FEED_CHECK bytes
 * fed the thread's CPU clock is read, some 16 reads per MiB. A body no
 * longer than that is parsed in place: it would never be checked. */
#define FEED_CHECK (64 * 1024)

struct feed {
	const char *p;
	size_t left;
	int64_t deadline_ns; /* on the thread's CPU clock */
	size_t unchecked;    /* bytes fed since the clock was read */
	bool late;
};

static size_t feed(void *buf, size_t buflen, void *arg)
{
	struct feed *f = arg;
	size_t n = f->left < buflen ? f->left : buflen;

	if (f->unchecked >= FEED_CHECK) {
		f->unchecked = 0;
		if (wd_thread_cpu_ns() > f->deadline_ns) {
			f->late = true;
			return (size_t)-1; /* jansson stops: a read error */
		}
	}
	f->unchecked += n;
	memcpy(buf, f->p, n);
	f->p += n;
	f->left -= n;
	return n;
}

/* The body within `lim`: scanned for its nesting and value count, then
 * parsed within its CPU budget. -1 with e->reason set if not. */
static int parse_body(struct wd_envelope *e, amqp_bytes_t body,
                      const struct wd_input_limits *lim)
{
	const size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
	struct feed f = {.p = body.bytes, .left = body.len};
	json_error_t jerr;

	if (wd_limits_json(lim, body.bytes, body.len, e->reason,
	                   sizeof(e->reason)) < 0) {
		e->too_large = true;
		return -1;
	}
	/* jansson checks UTF-8 and caps nesting depth (2048) itself too.
	 * JSON_DECODE_ANY: a bare scalar is valid JSON, refused below as
	 * "not a JSON object" like an array. */
	if (lim->parse_ms > 0 && body.len > FEED_CHECK) {
		f.deadline_ns =
		    wd_thread_cpu_ns() + (int64_t)lim->parse_ms * 1000000;
		e->json = json_load_callback(feed, &f, flags, &jerr);
	} else {
		e->json = json_loadb(body.bytes, body.len, flags, &jerr);
	}
	if (f.late) {
		json_decref(e->json);
		e->json = NULL;
		e->too_large = true;
		snprintf(e->reason, sizeof(e->reason),
		         "parsing the body took over max_parse_ms (%d ms of "
		         "CPU), stopped at byte %zu",
		         lim->parse_ms, body.len - f.left);
		return -1;
	}
	if (!e->json) {
		snprintf(e->reason, sizeof(e->reason),
		         "unparseable: %s at byte %d", jerr.text,
		         jerr.position);
		return -1;
	}
	return 0;
}

int wd_envelope_parse(struct wd_envelope *e, const amqp_envelope_t *amqp,
                      const char *queue, enum wd_type_source from,
                      const char *type_field, const struct wd_input_limits *lim)
{
	const amqp_basic_properties_t *p = &amqp->message.properties;
	amqp_bytes_t body = amqp->message.body;
	json_t *t;

	memset(e, 0, sizeof(*e));
	e->amqp = amqp;
	e->msg.size = sizeof(e->msg);
	e->msg.body = view(body);
	e->msg.routing_key = view(wd_policy_original_routing_key(amqp));
	e->msg.exchange = view(wd_policy_original_exchange(amqp));
	e->msg.queue = (warren_bytes){queue, strlen(queue)};
	e->msg.message_id = prop(p, AMQP_BASIC_MESSAGE_ID_FLAG, p->message_id);
	e->msg.correlation_id =
	    prop(p, AMQP_BASIC_CORRELATION_ID_FLAG, p->correlation_id);
	e->msg.timestamp =
	    (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG) ? p->timestamp : 0;
	e->msg.redelivered = amqp->redelivered ? 1 : 0;
	/* Views, like the rest: a few stores per message, no copy. */
	e->msg.content_type =
	    prop(p, AMQP_BASIC_CONTENT_TYPE_FLAG, p->content_type);
	e->msg.content_encoding =
	    prop(p, AMQP_BASIC_CONTENT_ENCODING_FLAG, p->content_encoding);
	e->msg.reply_to = prop(p, AMQP_BASIC_REPLY_TO_FLAG, p->reply_to);
	e->msg.expiration = prop(p, AMQP_BASIC_EXPIRATION_FLAG, p->expiration);
	e->msg.user_id = prop(p, AMQP_BASIC_USER_ID_FLAG, p->user_id);
	e->msg.app_id = prop(p, AMQP_BASIC_APP_ID_FLAG, p->app_id);
	e->msg.priority =
	    (p->_flags & AMQP_BASIC_PRIORITY_FLAG) ? (int)p->priority : -1;
	e->msg.delivery_mode = (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
	                           ? (int)p->delivery_mode
	                           : 0;
	wd_policy_attempts(amqp, queue, &e->attempts);
	e->msg.attempt = (uint32_t)e->attempts.attempt;
	/* Quorum queues count deliveries; the header is absent on the
	 * first. */
	e->msg.delivery_count = e->attempts.delivery_count >= 0
	                            ? (uint32_t)e->attempts.delivery_count
	                        : amqp->redelivered ? 1
	                                            : 0;

	if (body.len == 0)
		return fail(e, "%s", "unparseable: empty body");
	if (parse_body(e, body, lim) < 0)
		return -1;
	if (!json_is_object(e->json))
		return fail(e, "%s", "unparseable: body is not a JSON object");
	e->msg.json = e->json;

	switch (from) {
	case WD_TYPE_FROM_JSON:
		t = json_object_get(e->json, type_field);
		if (!t)
			return fail_type(e, "no type: field \"%s\" is missing",
			                 type_field);
		if (!json_is_string(t))
			return fail_type(
			    e, "bad type: field \"%s\" is not a string",
			    type_field);
		e->msg.type =
		    (warren_bytes){json_string_value(t), json_string_length(t)};
		return check_type(e, "bad type: the type field",
		                  e->msg.type.len);
	case WD_TYPE_FROM_PROPERTY:
		if (!(p->_flags & AMQP_BASIC_TYPE_FLAG))
			return fail_type(e, "%s",
			                 "no type: the AMQP type property "
			                 "is not set");
		e->msg.type = view(p->type);
		return check_type(e, "bad type: the AMQP type property",
		                  e->msg.type.len);
	case WD_TYPE_FROM_ROUTING_KEY:
		e->msg.type = e->msg.routing_key;
		return check_type(e, "bad type: the routing key",
		                  e->msg.type.len);
	}
	return fail_type(e, "%s", "no type");
}

void wd_envelope_clear(struct wd_envelope *e)
{
	json_decref(e->json);
	e->json = NULL;
	e->msg.json = NULL;
}
