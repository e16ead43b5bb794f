/* dlq_scan.c - the broker side of `warrenctl dlq`: connect as warrend
 * does, and one pass over a queue (dlq_scan.h says why it is safe and
 * keeps the order). */
#include "dlq_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "broker/publisher.h"
#include "conf/conf.h"

#define CH_GET     1 /* basic.get, ack, the final nack */
#define CH_PUBLISH 2 /* the copies, in confirm mode */
#define CH_PROBE   3 /* the publisher's exchange checks */
#define MAX_URLS   16
#define SETTLE_MS  10000 /* at most, for a batch of requeues to be back */
#define NACK_BATCH 16    /* requeues in flight at most (give_back) */

static const char URL_SEP[] = " \t\n,";

/* The broker section to use, into *b (urls point into `keep`, or into
 * *conf, which the caller frees). */
static int find_broker(const struct wc_dlq_source *src,
                       struct wd_conf_broker *b, char **urls, char *keep,
                       size_t keeplen, struct wd_conf **conf, char *err,
                       size_t errlen)
{
	const char *env = getenv("WARREN_AMQP_URL");
	const char *from = src->amqp_url;

	*conf = NULL;
	memset(b, 0, sizeof(*b));
	if (!from && !src->conf_given && access(src->conf, F_OK) != 0 && env &&
	    env[strspn(env, URL_SEP)])
		from = env;
	if (!from) {
		*conf = wd_conf_load(src->conf, err, errlen);
		if (!*conf)
			return -1;
		*b = (*conf)->broker;
		return 0;
	}
	snprintf(keep, keeplen, "%s", from);
	for (char *p = keep + strspn(keep, URL_SEP); *p && b->nurls < MAX_URLS;
	     p += strspn(p, URL_SEP)) {
		size_t len = strcspn(p, URL_SEP);
		urls[b->nurls++] = p;
		p += len;
		if (*p)
			*p++ = '\0';
	}
	if (b->nurls == 0) {
		snprintf(err, errlen, "--amqp: no URL");
		return -1;
	}
	b->urls = urls;
	b->heartbeat = 60;
	b->connect_timeout = 10;
	b->verify_peer = true;
	return 0;
}

int wc_dlq_connect(struct wc_dlq_conn *c, const struct wc_dlq_source *src,
                   char *err, size_t errlen)
{
	struct wd_conf_broker b;
	struct wd_conf *conf;
	char *urls[MAX_URLS], keep[4096];
	size_t addr = 0;
	int rc;

	memset(c, 0, sizeof(*c));
	if (find_broker(src, &b, urls, keep, sizeof(keep), &conf, err, errlen) <
	    0)
		return -1;
	rc = wd_broker_init(&c->broker, &b, err, errlen);
	wd_conf_free(conf);
	/* The copy of the URLs (with any password in them) is not needed. */
	memset(keep, 0, sizeof(keep));
	if (rc < 0)
		return -1;
	c->amqp = wd_broker_connect_any(&c->broker, "warrenctl dlq", err,
	                                errlen, NULL, &addr);
	if (!c->amqp) {
		wd_broker_free(&c->broker);
		return -1;
	}
	snprintf(c->where, sizeof(c->where), "%s",
	         c->broker.addrs[addr].redacted);
	if (wd_broker_channel_open(c->amqp, CH_GET, err, errlen) < 0 ||
	    wd_broker_channel_open(c->amqp, CH_PUBLISH, err, errlen) < 0) {
		wc_dlq_disconnect(c);
		return -1;
	}
	return 0;
}

void wc_dlq_disconnect(struct wc_dlq_conn *c)
{
	wd_broker_close(c->amqp);
	c->amqp = NULL;
	wd_broker_free(&c->broker);
}

/* A copy on its way: the dead-letter's delivery tag, acked once the
 * copy is confirmed. */
struct slot {
	struct pass *ps;
	uint64_t tag;
	bool used;
};

struct pass {
	struct wc_dlq_conn *c;
	struct wd_publisher pub;
	struct slot *slots;
	/* A bit per delivery tag (1, 2, ... on the pass's channel: one per
	 * message read): set once it is acked. What is not is given back. */
	unsigned char *acked;
	size_t acked_cap; /* bytes */
	int window, inflight;
	struct wc_dlq_result *res;
	volatile sig_atomic_t *stop;
	bool broken; /* the connection failed: nothing more can be sent */
};

static void mark_acked(struct pass *ps, uint64_t tag)
{
	ps->acked[tag / 8] |= (unsigned char)(1u << (tag % 8));
}

static bool is_acked(const struct pass *ps, uint64_t tag)
{
	return ps->acked[tag / 8] & (1u << (tag % 8));
}

/* Room for tag's bit; -1 on out of memory. */
static int room_for(struct pass *ps, uint64_t tag)
{
	size_t need = (size_t)(tag / 8) + 1, cap;
	unsigned char *p;

	if (need <= ps->acked_cap)
		return 0;
	cap = ps->acked_cap ? ps->acked_cap * 2 : 1024;
	while (cap < need)
		cap *= 2;
	if (!(p = realloc(ps->acked, cap)))
		return -1;
	memset(p + ps->acked_cap, 0, cap - ps->acked_cap);
	ps->acked = p;
	ps->acked_cap = cap;
	return 0;
}

static void on_confirmed(void *owner, bool ok, const char *why)
{
	struct slot *s = owner;
	struct pass *ps = s->ps;

	s->used = false;
	ps->inflight--;
	if (!ok) {
		ps->res->failed++;
		fprintf(stderr,
		        "warrenctl: dlq: the copy of delivery %llu was not "
		        "confirmed (%s); the dead-letter stays\n",
		        (unsigned long long)s->tag, why ? why : "refused");
		return;
	}
	/* Only now: the copy is safe, the dead-letter can go. */
	if (amqp_basic_ack(ps->c->amqp, CH_GET, s->tag, 0) != AMQP_STATUS_OK) {
		ps->broken = true;
		return;
	}
	ps->res->moved++;
	mark_acked(ps, s->tag);
}

static void fail(char *err, size_t errlen, const char *what, amqp_rpc_reply_t r)
{
	char why[300];
	snprintf(err, errlen, "%s: %s", what,
	         wd_broker_reply_str(r, why, sizeof(why)));
}

/* Read one frame, at most timeout_ms: confirms and returns of the copies.
 * Returns 1 if one was read, 0 if none came, -1 (err set) if the
 * connection or a channel failed. */
static int pump(struct pass *ps, int timeout_ms, char *err, size_t errlen)
{
	amqp_connection_state_t a = ps->c->amqp;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	int64_t next = -1;
	amqp_frame_t f;
	amqp_message_t m;
	int rc;

	if (wd_pub_expired(&ps->pub, wd_now_ms(), &next)) {
		snprintf(err, errlen, "no publisher confirm in time");
		return -1;
	}
	rc = amqp_simple_wait_frame_noblock(a, &f, &tv);
	if (rc == AMQP_STATUS_TIMEOUT)
		return 0;
	if (rc != AMQP_STATUS_OK) {
		snprintf(err, errlen, "connection lost: %s",
		         amqp_error_string2(rc));
		return -1;
	}
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 1;
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *k = f.payload.method.decoded;
		wd_pub_confirm(&ps->pub, k->delivery_tag, k->multiple, true);
		break;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *k = f.payload.method.decoded;
		wd_pub_confirm(&ps->pub, k->delivery_tag, k->multiple, false);
		break;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_basic_return_t *r = f.payload.method.decoded;
		wd_pub_returned(&ps->pub, r->exchange, r->routing_key,
		                r->reply_code, r->reply_text);
		if (amqp_read_message(a, f.channel, &m, 0).reply_type !=
		    AMQP_RESPONSE_NORMAL) {
			snprintf(err, errlen, "connection lost");
			return -1;
		}
		amqp_destroy_message(&m);
		break;
	}
	case AMQP_CHANNEL_CLOSE_METHOD:
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_rpc_reply_t r = {.reply_type =
		                          AMQP_RESPONSE_SERVER_EXCEPTION,
		                      .reply = f.payload.method};
		fail(err, errlen, "the broker closed the channel", r);
		return -1;
	}
	default:
		break;
	}
	return 1;
}

/* Everything that has arrived, without waiting (bounded). */
static int pump_ready(struct pass *ps, char *err, size_t errlen)
{
	for (int i = 0; i < 10000; i++) {
		int rc = pump(ps, 0, err, errlen);
		if (rc <= 0)
			return rc;
	}
	return 0;
}

/* Wait until t_ms (monotonic), reading confirms meanwhile. Returns 0, 1
 * if a signal asked to stop, -1 if the connection failed. */
static int wait_until(struct pass *ps, int64_t t_ms, char *err, size_t errlen)
{
	int64_t now;

	while ((now = wd_now_ms()) < t_ms) {
		if (ps->stop && *ps->stop)
			return 1;
		if (pump(ps, (int)(t_ms - now > 100 ? 100 : t_ms - now), err,
		         errlen) < 0)
			return -1;
	}
	return 0;
}

static struct slot *free_slot(struct pass *ps)
{
	for (int i = 0; i < ps->window; i++)
		if (!ps->slots[i].used)
			return &ps->slots[i];
	return NULL;
}

static int move(struct pass *ps, const amqp_envelope_t *env,
                const struct wc_dlq_move *mv, char *err, size_t errlen)
{
	amqp_basic_properties_t props = env->message.properties;
	struct slot *s;
	char why[300];
	int rc;

	/* A full window: wait for confirms (each wait is bounded by the
	 * confirm timeout, checked in pump). */
	while (ps->inflight >= ps->window && !ps->broken)
		if (pump(ps, 100, err, errlen) < 0)
			return -1;
	if (ps->broken || !(s = free_slot(ps))) {
		snprintf(err, errlen, "connection lost");
		return -1;
	}
	props._flags |= AMQP_BASIC_HEADERS_FLAG;
	props.headers = mv->headers;
	/* Another user's user_id would close the channel (406): the headers
	 * carry it (wc_dlq_redrive_headers). */
	props._flags &= ~AMQP_BASIC_USER_ID_FLAG;
	s->ps = ps;
	s->tag = env->delivery_tag;
	rc = wd_pub_send(&ps->pub, s, mv->exchange, mv->routing_key, &props,
	                 env->message.body, wd_now_ms(), why, sizeof(why));
	if (rc < 0) {
		snprintf(err, errlen, "connection lost while publishing");
		return -1;
	}
	if (rc > 0) {
		ps->res->failed++;
		fprintf(stderr, "warrenctl: dlq: not moved: %s\n", why);
		return 0;
	}
	s->used = true;
	ps->inflight++;
	return 0;
}

/* The queue's ready messages (passive declare), or -1 with err. */
static long ready(struct wc_dlq_conn *c, const char *queue, char *err,
                  size_t errlen)
{
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c->amqp, CH_GET, amqp_cstring_bytes(queue), 1, 0,
	                       0, 0, amqp_empty_table);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c->amqp);

	if (!ok || r.reply_type != AMQP_RESPONSE_NORMAL) {
		char what[300];
		snprintf(what, sizeof(what), "queue \"%s\"", queue);
		fail(err, errlen, what, r);
		return -1;
	}
	return (long)ok->message_count;
}

/* One basic.get into env: 1 got, 0 empty, -1 error. */
static int get_one(struct wc_dlq_conn *c, const char *queue,
                   amqp_envelope_t *env, char *err, size_t errlen)
{
	amqp_rpc_reply_t r =
	    amqp_basic_get(c->amqp, CH_GET, amqp_cstring_bytes(queue), 0);
	amqp_basic_get_ok_t *ok;

	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		fail(err, errlen, "basic.get", r);
		return -1;
	}
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
		return 0;
	ok = r.reply.decoded;
	memset(env, 0, sizeof(*env));
	env->channel = CH_GET;
	env->delivery_tag = ok->delivery_tag;
	env->redelivered = ok->redelivered;
	env->exchange = ok->exchange;
	env->routing_key = ok->routing_key;
	r = amqp_read_message(c->amqp, CH_GET, &env->message, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		fail(err, errlen, "reading a message", r);
		return -1;
	}
	return 1;
}

/* Wait (bounded) until the queue holds at least `want` ready messages:
 * 0 when it does, 1 if the wait timed out, -1 if the connection failed. */
static int wait_ready(struct wc_dlq_conn *c, const char *queue, long want,
                      char *err, size_t errlen)
{
	int64_t end = wd_now_ms() + SETTLE_MS;
	long n;

	while ((n = ready(c, queue, err, errlen)) >= 0 && n < want &&
	       wd_now_ms() < end)
		usleep(1000);
	if (n < 0)
		return -1;
	if (n >= want)
		return 0;
	fprintf(stderr,
	        "warrenctl: dlq: %s: %ld messages are still on their way "
	        "back; the rest is given back without waiting for them\n",
	        queue, want - n);
	return 1;
}

/*
 * Give back every message read and not acked, with a basic.nack(requeue)
 * each, in delivery order, NACK_BATCH at a time, waiting after each batch
 * until the queue's ready count shows them back. Why so careful:
 * - A classic queue puts each requeued message back at its position, but
 *   the channel hands requeues to the queue asynchronously: a command
 *   started right after this one would miss some.
 * - A quorum queue (RabbitMQ 3.10) takes the channel's commands through
 *   a pipeline of about 32; what waits behind it went back out of order
 *   here (one nack(multiple) of 40 messages, 40 single nacks, or the
 *   channel's close: the first 33 in order, the other 7 rotated to the
 *   front or reversed at the end). A batch that fits the pipeline, applied
 *   before the next is sent, keeps the order (tests/integration/
 *   test_it_dlq.c checks both kinds of queue).
 * Messages published to the queue meanwhile only end a wait early. The
 * channel's close (an RPC) ends the pass. Returns 0 or -1.
 */
static int give_back(struct pass *ps, const char *queue, uint64_t last_tag,
                     char *err, size_t errlen)
{
	struct wc_dlq_conn *c = ps->c;
	long want = ready(c, queue, err, errlen);
	bool wait = true;
	amqp_rpc_reply_t r;

	if (want < 0)
		return -1;
	for (uint64_t t = 1; t <= last_tag;) {
		long batch = 0;

		for (; t <= last_tag && batch < NACK_BATCH; t++) {
			if (is_acked(ps, t))
				continue;
			if (amqp_basic_nack(c->amqp, CH_GET, t, 0, 1) !=
			    AMQP_STATUS_OK) {
				snprintf(err, errlen, "connection lost");
				return -1;
			}
			batch++;
		}
		want += batch;
		if (batch && wait) {
			int w = wait_ready(c, queue, want, err, errlen);
			if (w < 0)
				return -1;
			wait = w == 0;
		}
	}
	r = amqp_channel_close(c->amqp, CH_GET, AMQP_REPLY_SUCCESS);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		fail(err, errlen, "closing the channel", r);
		return -1;
	}
	return 0;
}

int wc_dlq_pass(struct wc_dlq_conn *c, const char *queue,
                const struct wc_dlq_pass_opts *o, wc_dlq_visit_fn fn, void *arg,
                struct wc_dlq_result *res, char *err, size_t errlen)
{
	struct pass ps = {.c = c,
	                  .window = o->window > 0 ? o->window : 1,
	                  .res = res,
	                  .stop = o->stop};
	int64_t t0 = wd_now_ms();
	uint64_t last_tag = 0;
	long acted = 0;
	int rc = 0;
	bool more = true;

	memset(res, 0, sizeof(*res));
	ps.slots = calloc((size_t)ps.window, sizeof(*ps.slots));
	if (!ps.slots) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (wd_pub_open(&ps.pub, c->amqp, CH_PUBLISH, CH_PROBE, on_confirmed,
	                o->confirm_ms, err, errlen) < 0 ||
	    (res->at_start = ready(c, queue, err, errlen)) < 0) {
		free(ps.slots);
		return -1;
	}
	while (more && res->scanned < res->at_start) {
		amqp_envelope_t env;
		struct wc_dlq_move mv = {0};
		enum wc_dlq_action act;
		int got;

		if (o->stop && *o->stop) {
			res->interrupted = true;
			break;
		}
		if (pump_ready(&ps, err, errlen) < 0 || ps.broken) {
			rc = -1;
			break;
		}
		got = get_one(c, queue, &env, err, errlen);
		if (got <= 0) {
			rc = got;
			break;
		}
		if (room_for(&ps, env.delivery_tag) < 0) {
			/* Not acked: the connection's close gives it back. */
			snprintf(err, errlen, "out of memory");
			amqp_destroy_message(&env.message);
			rc = -1;
			break;
		}
		last_tag = env.delivery_tag;
		res->scanned++;
		act = fn(arg, &env, &mv);
		if (act == WC_DLQ_STOP)
			more = false;
		if ((act == WC_DLQ_DELETE || act == WC_DLQ_MOVE) &&
		    o->rate > 0) {
			int w = wait_until(
			    &ps, t0 + (int64_t)((double)acted * 1000 / o->rate),
			    err, errlen);
			if (w != 0) { /* this one stays */
				act = WC_DLQ_KEEP;
				more = false;
				res->interrupted = w > 0;
				rc = w < 0 ? -1 : 0;
			}
		}
		if (act == WC_DLQ_DELETE) {
			if (amqp_basic_ack(c->amqp, CH_GET, env.delivery_tag,
			                   0) != AMQP_STATUS_OK) {
				snprintf(err, errlen, "connection lost");
				rc = -1;
			} else {
				res->deleted++;
				mark_acked(&ps, env.delivery_tag);
			}
		} else if (act == WC_DLQ_MOVE) {
			rc = move(&ps, &env, &mv, err, errlen);
		}
		if (act == WC_DLQ_DELETE || act == WC_DLQ_MOVE)
			acted++;
		free(mv.headers.entries);
		amqp_destroy_message(&env.message);
		amqp_maybe_release_buffers_on_channel(c->amqp, CH_GET);
		amqp_maybe_release_buffers_on_channel(c->amqp, CH_PUBLISH);
		if (rc < 0)
			break;
	}
	/* The last confirms (bounded by the confirm timeout, in pump). */
	while (rc == 0 && ps.inflight > 0 && !ps.broken)
		if (pump(&ps, 100, err, errlen) < 0)
			rc = -1;
	if (ps.broken && rc == 0) {
		snprintf(err, errlen, "connection lost");
		rc = -1;
	}
	if (rc == 0)
		rc = give_back(&ps, queue, last_tag, err, errlen);
	/* On an error, the connection's close gives back what is unacked
	 * (and an unconfirmed copy may have arrived too: then both), not
	 * necessarily in order on a quorum queue (see give_back). */
	wd_pub_reset(&ps.pub);
	free(ps.slots);
	free(ps.acked);
	return rc;
}
