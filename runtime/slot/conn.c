/* connection.c - the I/O loop of one pool slot: deliver -> worker -> settle.
 *
 * Every arrow of a message's path that touches the broker is here:
 * read_delivery() takes it off the wire and parses it, the handler runs on
 * a worker (run_delivery), and settle() turns its verdict into broker
 * operations: follow-ups then an ack; a confirmed copy to a retry queue or
 * to the dead-letter exchange, then an ack. A delivery is acked only after
 * everything it caused is confirmed; if a confirm fails, it is not acked. */
#define _GNU_SOURCE /* pthread_setname_np() */
#include "slot/conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "exec/batch.h"
#include "slot/consumers.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "message/policy.h"
#include "slot/pool.h"
#include "broker/topology.h"

/* When a republish (retry or dead-letter copy) is refused, the delivery is
 * held this long and then requeued: never lost, never an instant loop. */
#define REQUEUE_HOLD_MS 2000
/* Deliveries read before they are handed to the workers in one go. */
#define SUBMIT_BATCH 32
/* A non-blocking handler's call that takes longer stalls the connection
 * (its other deliveries, its acks): its route goes to the workers. */
#define NONBLOCKING_LIMIT_MS 20

static const char AREA[] = "conn";

void wd_conn_wake(struct wd_conn *c)
{
	uint64_t one = 1;
	ssize_t w = write(c->wakefd, &one, sizeof(one));
	(void)w; /* EAGAIN: the counter is already non-zero, it will wake */
}

bool wd_delivery_live(const struct wd_delivery *d)
{
	return d->epoch == atomic_load(&d->conn->epoch);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the worker's side ------------------------------------------------ */

static void run_delivery(struct wd_task *t)
{
	struct wd_delivery *d = (struct wd_delivery *)t;

	/* A delivery of a connection that is gone will be redelivered: do not
	 * run its handler now, the redelivery will. */
	if (wd_delivery_live(d))
		wd_dispatch_run(&d->parsed, &d->verdict);
}

/* Whether the connection thread has nothing to do for d but queue its
 * ack: then it need not be woken for d alone. */
static bool plain_ack(const struct wd_delivery *d)
{
	return d->verdict.action == WD_ACTION_ACK && d->verdict.outbox.n == 0;
}

static void finish_delivery(struct wd_task *t)
{
	struct wd_delivery *d = (struct wd_delivery *)t;
	struct wd_conn *c = d->conn;
	bool wake;

	d->done_ms = wd_now_ms();
	pthread_mutex_lock(&c->lock);
	d->task.next = NULL;
	if (c->done_tail)
		c->done_tail->task.next = &d->task;
	else
		c->done_head = d;
	c->done_tail = d;
	c->ndone++;
	wake = !plain_ack(d) ||
	       c->ndone >= (size_t)atomic_load_explicit(&c->wake_at,
	                                                memory_order_relaxed);
	atomic_store(&c->has_done, true);
	if (wake)
		atomic_store(&c->wake_due, true); /* seq_cst: pairs with serve() */
	pthread_mutex_unlock(&c->lock);
	/* A busy connection thread finds the list on its next turn; a
	 * sleeping one needs one wake-up (the exchange makes it one), and
	 * only once the list is worth it: until then its timer comes back
	 * for plain acks within ack_delay_ms. Pairs with the
	 * store-then-check in serve(). */
	if (wake && atomic_exchange(&c->sleeping, false))
		wd_conn_wake(c);
}

/* ---- deliveries ---------------------------------------------------------- */

/* Deliveries are allocated and freed on their connection's thread only,
 * so a few spares are kept for the next ones: at some 2 KiB each they are
 * past malloc's per-thread cache, and the heap's locked path showed in
 * profiles. */
#define SPARE_MAX 256

/* Back to the spares (or the heap): d holds nothing any more. */
static void release(struct wd_conn *c, struct wd_delivery *d)
{
	if (c->nspare < SPARE_MAX) {
		d->task.next = c->spare;
		c->spare = &d->task;
		c->nspare++;
		return;
	}
	free(d);
}

static void free_delivery(struct wd_delivery *d)
{
	wd_envelope_clear(&d->parsed);
	wd_verdict_clear(&d->verdict);
	amqp_destroy_envelope(&d->env);
	if (d->gen)
		wd_gen_unref(d->gen); /* last: the verdict points into it */
	release(d->conn, d);
}

static struct wd_delivery *new_delivery(struct wd_conn *c)
{
	struct wd_delivery *d;

	if (c->spare) {
		d = (struct wd_delivery *)c->spare;
		c->spare = d->task.next;
		c->nspare--;
	} else if (!(d = malloc(sizeof(*d)))) {
		return NULL;
	}
	/* Not calloc: the envelope, its parse and the verdict (over 1 KiB
	 * for the reason text) are filled by whoever writes them. */
	memset(d, 0, offsetof(struct wd_delivery, env));
	memset(&d->stage, 0,
	       sizeof(*d) - offsetof(struct wd_delivery, stage));
	d->parsed.json = NULL;
	wd_verdict_init(&d->verdict);
	return d;
}

static const struct wd_conf_queue *queue_of(const struct wd_delivery *d)
{
	return &d->gen->routes->conf->queues[d->queue];
}

/* ---- publishes and their confirms -------------------------------------- */

/* The publisher's callback, from inside wd_pub_confirm(): only count here;
 * serve() settles the delivery once all its confirms are in. */
static void on_confirm(void *owner, bool ok, const char *why)
{
	struct wd_delivery *d = owner;

	if (!ok && !d->publish_failed) {
		d->publish_failed = true;
		snprintf(d->publish_why, sizeof(d->publish_why), "%s", why);
	}
	if (--d->unconfirmed == 0) {
		d->next_ready = d->conn->ready;
		d->conn->ready = d;
	}
}

static int wait_for_confirms(struct wd_conn *c, struct wd_delivery *d,
                             enum wd_stage stage)
{
	if (c->nwaiting == c->capwaiting) {
		size_t cap = c->capwaiting ? c->capwaiting * 2 : 64;
		void *p = realloc(c->waiting, cap * sizeof(*c->waiting));
		if (!p)
			return -1;
		c->waiting = p;
		c->capwaiting = cap;
	}
	d->stage = stage;
	d->waiting_at = c->nwaiting;
	c->waiting[c->nwaiting++] = d;
	return 0;
}

static void stop_waiting(struct wd_conn *c, struct wd_delivery *d)
{
	struct wd_delivery *last = c->waiting[--c->nwaiting];

	c->waiting[d->waiting_at] = last;
	last->waiting_at = d->waiting_at;
}

/* ---- the end of a delivery ---------------------------------------------- */

struct ack_target {
	struct wd_conn *c;
	amqp_channel_t ch;
};

static int ack_frame(void *arg, uint64_t tag, bool multiple)
{
	struct ack_target *t = arg;

	if (amqp_basic_ack(t->c->amqp, t->ch, tag, multiple) != AMQP_STATUS_OK)
		return -1;
	wd_metric_inc(ack_frames);
	wd_log_debug(AREA, "slot %d: ack sent: tag %ju%s on channel %u",
	             t->c->id, (uintmax_t)tag, multiple ? " and below" : "",
	             t->ch);
	return 0;
}

/* all: also the acks behind a delivery still in a handler, whether or
 * not their wait is over. */
static int flush_acks(struct wd_conn *c, struct wd_consumer *k, bool all)
{
	struct ack_target t = {c, k->channel};
	return wd_acks_flush(&k->acks, c->now_ms, all, ack_frame, &t) < 0
	           ? -1
	           : 0;
}

/* Done: ack (coalesced) and free. A full ack batch is flushed once the
 * pass over finished deliveries is over (flush_full_acks), so that what
 * one pass settles -- a whole handler batch, say -- goes out together. */
static int ack(struct wd_conn *c, struct wd_delivery *d)
{
	struct wd_consumer *k = wd_consumer_of(c, d->env.channel);
	uint64_t tag = d->env.delivery_tag;
	/* Its wait for the ack batch began when its handler returned,
	 * which may be a little before this thread came round to it. */
	int64_t since = d->done_ms ? d->done_ms : c->now_ms;

	free_delivery(d);
	c->inflight--;
	if (k && wd_acks_queue(&k->acks, tag, since)) {
		if (k->acks.batch == 1)
			return flush_acks(c, k, true); /* ack_batch = 1: at once */
		c->acks_full = true;
	}
	return 0;
}

static int flush_full_acks(struct wd_conn *c)
{
	if (!c->acks_full)
		return 0;
	c->acks_full = false;
	for (size_t i = 0; i < c->nconsumers; i++) {
		struct wd_consumer *k = &c->consumers[i];
		int64_t ignore = -1;
		if (wd_acks_due(&k->acks, c->now_ms, &ignore) &&
		    flush_acks(c, k, false) < 0)
			return -1;
	}
	return 0;
}

static int hold(struct wd_conn *c, struct wd_delivery *d)
{
	if (c->nheld == c->capheld) {
		size_t cap = c->capheld ? c->capheld * 2 : 16;
		void *p = realloc(c->held, cap * sizeof(*c->held));
		if (!p)
			return -1;
		c->held = p;
		c->capheld = cap;
	}
	d->due_ms = wd_now_ms() + REQUEUE_HOLD_MS;
	c->held[c->nheld++] = d;
	return 0;
}

/* Give it back to the broker unacked (requeue) and free it. */
static int requeue(struct wd_conn *c, struct wd_delivery *d)
{
	struct wd_consumer *k = wd_consumer_of(c, d->env.channel);
	int rc = amqp_basic_nack(c->amqp, d->env.channel, d->env.delivery_tag,
	                         0, 1);

	if (k)
		wd_acks_settled(&k->acks, d->env.delivery_tag);
	free_delivery(d);
	c->inflight--;
	return rc == AMQP_STATUS_OK ? 0 : -1;
}

/* A republish was refused: the copy may not exist, so the delivery must
 * stay with the broker. Held, then requeued: its next delivery tries
 * again. */
static int republish_failed(struct wd_conn *c, struct wd_delivery *d,
                            const char *why)
{
	wd_metric_inc(republish_failed);
	wd_log_error(AREA, "slot %d: queue \"%s\" tag %ju: cannot %s: %s: "
	             "requeued in %d ms", c->id, queue_of(d)->name,
	             (uintmax_t)d->env.delivery_tag,
	             d->verdict.action == WD_ACTION_RETRY
	                 ? "schedule its retry"
	                 : "dead-letter it",
	             why, REQUEUE_HOLD_MS);
	if (!c->cancelled && hold(c, d) == 0)
		return 0;
	return requeue(c, d);
}

/* ---- settling ------------------------------------------------------------ */

static int settle(struct wd_conn *c, struct wd_delivery *d);

/* Publish the copy of d to exchange/rk with warren's failure headers (and,
 * for a retry, a per-message expiration: the jittered delay). */
static int republish(struct wd_conn *c, struct wd_delivery *d,
                     amqp_bytes_t exchange, amqp_bytes_t rk,
                     const char *reason, long expiration_ms)
{
	const struct wd_conf_queue *q = queue_of(d);
	const struct wd_route *r = d->verdict.route;
	amqp_basic_properties_t props = d->env.message.properties;
	struct wd_failure f = {
	    .reason = reason,
	    .text = d->verdict.text,
	    .plugin = r ? r->plugin->conf->name : NULL,
	    .handler = r ? r->handler_name : NULL,
	    .attempts = d->parsed.attempts.attempt,
	    .now_ms = wall_ms(),
	};
	struct wd_header_scratch scratch;
	char exp[32], why[256];
	int rc;

	if (wd_policy_headers(&d->env, q->name, &f, &scratch,
	                      &props.headers) < 0)
		return republish_failed(c, d, "out of memory");
	props._flags |= AMQP_BASIC_HEADERS_FLAG;
	props._flags &= ~AMQP_BASIC_EXPIRATION_FLAG;
	if (expiration_ms > 0) {
		snprintf(exp, sizeof(exp), "%ld", expiration_ms);
		props.expiration = amqp_cstring_bytes(exp);
		props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
	}
	d->unconfirmed = 1;
	d->publish_failed = false;
	rc = wd_pub_send(&c->pub, d, exchange, rk, &props, d->env.message.body,
	                 wd_now_ms(), why, sizeof(why));
	free(props.headers.entries);
	if (rc < 0)
		return -1;
	if (rc > 0)
		return republish_failed(c, d, why);
	return wait_for_confirms(c, d, WD_STAGE_REPUBLISH);
}

static int dead_letter(struct wd_conn *c, struct wd_delivery *d,
                       const char *reason)
{
	const struct wd_conf_queue *q = queue_of(d);
	amqp_bytes_t rk = q->dead_letter_routing_key
	                      ? amqp_cstring_bytes(q->dead_letter_routing_key)
	                      : wd_policy_original_routing_key(&d->env);

	d->verdict.action = WD_ACTION_DEAD_LETTER;
	d->verdict.reason = reason;
	return republish(c, d, amqp_cstring_bytes(q->dead_letter_exchange), rk,
	                 reason, 0);
}

static int retry(struct wd_conn *c, struct wd_delivery *d)
{
	const struct wd_route *r = d->verdict.route;
	int attempt = d->parsed.attempts.attempt;
	char name[300];
	long delay;

	if (attempt >= r->policy->max_attempts) {
		wd_metric_inc(max_attempts);
		wd_log_warnx(AREA, "%s/%s: type \"%s\" tag %ju: attempt %d of "
		             "%d failed (%s%s%s): dead-lettered",
		             r->plugin->conf->name, r->handler_name, r->type,
		             (uintmax_t)d->env.delivery_tag, attempt,
		             r->policy->max_attempts, d->verdict.reason,
		             d->verdict.text[0] ? ": " : "", d->verdict.text);
		return dead_letter(c, d, WD_R_MAX_ATTEMPTS);
	}
	delay = wd_policy_delay_ms(r->policy, attempt);
	wd_policy_retry_queue(name, sizeof(name), queue_of(d)->name, delay);
	return republish(c, d, amqp_empty_bytes, amqp_cstring_bytes(name),
	                 d->verdict.reason,
	                 wd_policy_jittered_ms(r->policy, attempt,
	                                       rand_r(&c->rnd) /
	                                           (RAND_MAX + 1.0)));
}

static int send_followups(struct wd_conn *c, struct wd_delivery *d)
{
	char why[256];

	d->unconfirmed = 0;
	d->publish_failed = false;
	for (struct wd_followup *f = d->verdict.outbox.head; f; f = f->next) {
		int rc = wd_pub_send(&c->pub, d, f->exchange, f->routing_key,
		                     &f->props, f->body, wd_now_ms(), why,
		                     sizeof(why));
		if (rc < 0)
			return -1;
		if (rc > 0) {
			/* The rest would be duplicates on the retry. */
			d->publish_failed = true;
			snprintf(d->publish_why, sizeof(d->publish_why), "%s",
			         why);
			break;
		}
		d->unconfirmed++;
	}
	if (d->unconfirmed > 0)
		return wait_for_confirms(c, d, WD_STAGE_FOLLOWUPS);
	d->stage = WD_STAGE_FOLLOWUPS;
	return settle(c, d); /* refused before anything went out */
}

/* Turn a delivery's verdict into broker operations. Returns -1 if the
 * connection failed. */
static int settle(struct wd_conn *c, struct wd_delivery *d)
{
	if (d->stage == WD_STAGE_FOLLOWUPS) {
		d->stage = WD_STAGE_NONE;
		if (!d->publish_failed) {
			wd_metric_add(followups, d->verdict.outbox.n);
			wd_metric_inc(acked);
			return ack(c, d);
		}
		wd_metric_inc(followups_failed);
		wd_log_warnx(AREA, "%s/%s: type \"%s\" tag %ju: follow-up "
		             "publish failed: %s: the input goes the retry way",
		             d->verdict.route->plugin->conf->name,
		             d->verdict.route->handler_name,
		             d->verdict.route->type,
		             (uintmax_t)d->env.delivery_tag, d->publish_why);
		wd_outbox_clear(&d->verdict.outbox);
		d->verdict.action = WD_ACTION_RETRY;
		d->verdict.reason = WD_R_FOLLOWUP_FAILED;
		snprintf(d->verdict.text, sizeof(d->verdict.text),
		         "follow-up publish failed: %s", d->publish_why);
		return retry(c, d);
	}
	if (d->stage == WD_STAGE_REPUBLISH) {
		d->stage = WD_STAGE_NONE;
		if (d->publish_failed)
			return republish_failed(c, d, d->publish_why);
		if (d->verdict.action == WD_ACTION_RETRY)
			wd_metric_inc(retry_published);
		else
			wd_metric_inc(dead_lettered);
		return ack(c, d);
	}
	switch (d->verdict.action) {
	case WD_ACTION_ACK:
		if (d->verdict.outbox.n > 0)
			return send_followups(c, d);
		wd_metric_inc(acked);
		return ack(c, d);
	case WD_ACTION_RETRY:
		return retry(c, d);
	case WD_ACTION_DEAD_LETTER:
		return dead_letter(c, d, d->verdict.reason);
	case WD_ACTION_DROP:
		wd_metric_inc(dropped);
		return ack(c, d);
	}
	return ack(c, d);
}

/* Deliveries the workers finished. */
static int settle_done(struct wd_conn *c)
{
	struct wd_delivery *d, *next;
	int rc = 0;

	if (!atomic_load_explicit(&c->has_done, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&c->lock);
	d = c->done_head;
	c->done_head = c->done_tail = NULL;
	c->ndone = 0;
	atomic_store_explicit(&c->has_done, false, memory_order_relaxed);
	atomic_store_explicit(&c->wake_due, false, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	for (; d; d = next) {
		next = (struct wd_delivery *)d->task.next;
		if (!wd_delivery_live(d) || rc < 0) {
			free_delivery(d); /* the broker redelivers it */
			continue;
		}
		rc = settle(c, d);
	}
	return rc;
}

/* Deliveries whose confirms are all in. */
static int settle_confirmed(struct wd_conn *c)
{
	while (c->ready) {
		struct wd_delivery *d = c->ready;
		c->ready = d->next_ready;
		stop_waiting(c, d);
		if (settle(c, d) < 0)
			return -1;
	}
	return 0;
}

/* Requeue held deliveries that are due (all of them when stopping). */
static int requeue_due(struct wd_conn *c, int64_t now, int64_t *next_due)
{
	size_t keep = 0;
	int rc = 0;

	for (size_t i = 0; i < c->nheld; i++) {
		struct wd_delivery *d = c->held[i];
		if (!c->cancelled && d->due_ms > now) {
			if (*next_due < 0 || d->due_ms < *next_due)
				*next_due = d->due_ms;
			c->held[keep++] = d;
			continue;
		}
		if (rc == 0)
			rc = requeue(c, d);
		else
			free_delivery(d);
	}
	c->nheld = keep;
	return rc;
}

/* Acks whose wait is over (all of them when stopping). */
static int flush_due_acks(struct wd_conn *c, int64_t now, int64_t *next_due)
{
	for (size_t i = 0; i < c->nconsumers; i++) {
		struct wd_consumer *k = &c->consumers[i];
		if ((c->cancelled || wd_acks_due(&k->acks, now, next_due)) &&
		    flush_acks(c, k, c->cancelled) < 0)
			return -1;
	}
	return 0;
}

/* ---- opening and dropping ------------------------------------------------ */

/* The exchanges of c->gen's conf are declared: no probe needed. */
static void know_exchanges(struct wd_conn *c)
{
	const struct wd_conf *conf = c->gen->routes->conf;

	for (size_t i = 0; i < conf->nexchanges; i++)
		wd_pub_known(&c->pub, conf->exchanges[i].name);
}

int wd_conn_open(struct wd_conn *c, char *err, size_t errlen)
{
	struct wd_gen *g = wd_pool_gen(c->pool);
	char name[64];

	if (c->gen)
		wd_gen_unref(c->gen);
	c->gen = g;
	snprintf(name, sizeof(name), "warrend pid %d slot %d", (int)getpid(),
	         c->id);
	c->amqp = wd_broker_connect(&c->pool->broker, name, err, errlen);
	if (!c->amqp)
		return -1;
	if (wd_broker_channel_open(c->amqp, WD_CHANNEL_PUBLISH, err, errlen) < 0 ||
	    wd_topology_declare(c->amqp, WD_CHANNEL_PUBLISH, g->routes->conf,
	                        err, errlen) < 0 ||
	    wd_pub_open(&c->pub, c->amqp, WD_CHANNEL_PUBLISH, WD_CHANNEL_PROBE,
	                on_confirm, c->pool->publish_timeout * 1000, err,
	                errlen) < 0)
		goto fail;
	know_exchanges(c);
	if (wd_consumers_open(c, err, errlen) < 0)
		goto fail;
	c->cancelled = false;
	c->last_rx_ms = wd_now_ms();
	wd_metric_inc(connections_opened);
	return 0;
fail:
	wd_consumers_clear(c);
	wd_pub_reset(&c->pub);
	amqp_destroy_connection(c->amqp);
	c->amqp = NULL;
	return -1;
}

/* Everything the thread owns that belongs to the connection: freed, not
 * settled (the broker redelivers every unacked delivery). */
static void forget_owned(struct wd_conn *c)
{
	wd_pub_reset(&c->pub);
	for (size_t i = 0; i < c->nwaiting; i++)
		free_delivery(c->waiting[i]);
	c->nwaiting = 0;
	c->ready = NULL; /* its deliveries were in waiting */
	for (size_t i = 0; i < c->nheld; i++)
		free_delivery(c->held[i]);
	c->nheld = 0;
}

/* The connection is gone (or going): every tag it gave is void. */
static void drop(struct wd_conn *c, bool polite)
{
	atomic_fetch_add(&c->epoch, 1);
	c->inflight = 0;
	forget_owned(c);
	if (polite)
		wd_broker_close(c->amqp);
	else
		amqp_destroy_connection(c->amqp);
	c->amqp = NULL;
}

void wd_conn_free(struct wd_conn *c)
{
	struct wd_delivery *d, *next;

	forget_owned(c);
	/* Deliveries a worker handed back after the thread ended (a batch
	 * flushed at stop whose connection had dropped). */
	for (d = c->done_head; d; d = next) {
		next = (struct wd_delivery *)d->task.next;
		free_delivery(d);
	}
	c->done_head = c->done_tail = NULL;
	while (c->spare) {
		struct wd_task *t = c->spare;
		c->spare = t->next;
		free(t);
	}
	c->nspare = 0;
	wd_consumers_clear(c);
	if (c->gen)
		wd_gen_unref(c->gen);
	c->gen = NULL;
	free(c->waiting);
	free(c->held);
	if (c->amqp)
		amqp_destroy_connection(c->amqp);
	c->amqp = NULL;
}

/* ---- reading ------------------------------------------------------------- */

/* A method other than a delivery: confirms, returns, closes, cancels, flow
 * control. Returns 0 to go on, -1 if the connection must be dropped. */
static int handle_frame(struct wd_conn *c)
{
	amqp_frame_t f;
	int rc = amqp_simple_wait_frame(c->amqp, &f);

	if (rc != AMQP_STATUS_OK)
		return -1;
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *m = f.payload.method.decoded;
		wd_pub_confirm(&c->pub, m->delivery_tag, m->multiple, true);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *m = f.payload.method.decoded;
		wd_pub_confirm(&c->pub, m->delivery_tag, m->multiple, false);
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_basic_return_t *m = f.payload.method.decoded;
		amqp_message_t msg;
		/* Before reading the content: m lives in the same pool. */
		wd_pub_returned(&c->pub, m->exchange, m->routing_key,
		                m->reply_code, m->reply_text);
		if (amqp_read_message(c->amqp, f.channel, &msg, 0).reply_type !=
		    AMQP_RESPONSE_NORMAL)
			return -1;
		amqp_destroy_message(&msg);
		return 0;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *m = f.payload.method.decoded;
		amqp_connection_close_ok_t ok;
		wd_log_warnx(AREA, "slot %d: the broker closed the connection: "
		             "%.*s (%u)", c->id, (int)m->reply_text.len,
		             (const char *)m->reply_text.bytes, m->reply_code);
		amqp_send_method(c->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return -1;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f.payload.method.decoded;
		amqp_channel_close_ok_t ok;
		wd_log_warnx(AREA, "slot %d: the broker closed channel %u: "
		             "%.*s (%u)", c->id, f.channel,
		             (int)m->reply_text.len,
		             (const char *)m->reply_text.bytes, m->reply_code);
		amqp_send_method(c->amqp, f.channel,
		                 AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		/* Reconnect: consumers, tags and confirms are reset together,
		 * and whatever was not acked comes back. */
		return -1;
	}
	case AMQP_BASIC_CANCEL_METHOD:
		wd_log_warnx(AREA, "slot %d: the broker cancelled the consumer "
		             "on channel %u (queue deleted?): reconnecting",
		             c->id, f.channel);
		return -1;
	case AMQP_CONNECTION_BLOCKED_METHOD:
		wd_log_warnx(AREA, "slot %d: the broker blocked the connection "
		             "(resource alarm): publishes wait", c->id);
		return 0;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		wd_log_info(AREA, "slot %d: the broker unblocked the connection",
		            c->id);
		return 0;
	default:
		wd_log_debug(AREA, "slot %d: ignored method 0x%08x on channel %u",
		             c->id, f.payload.method.id, f.channel);
		return 0;
	}
}

/* Read and parse one delivery into *out. Returns 1 if one was read, 0 if
 * none was there, -1 if the connection failed. */
static int read_delivery(struct wd_conn *c, struct wd_delivery **out)
{
	struct timeval zero = {0, 0};
	struct wd_delivery *d = new_delivery(c);
	struct wd_consumer *k;
	amqp_rpc_reply_t r;

	if (!d)
		return -1;
	amqp_maybe_release_buffers(c->amqp);
	r = amqp_consume_message(c->amqp, &d->env, &zero, 0);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		d->task.run = run_delivery;
		d->task.finish = finish_delivery;
		d->conn = c;
		d->epoch = atomic_load(&c->epoch);
		k = wd_consumer_of(c, d->env.channel);
		if (!k || wd_acks_seen(&k->acks, d->env.delivery_tag) < 0) {
			wd_log_error(AREA, "slot %d: delivery on unknown channel "
			             "%u (or out of memory)", c->id,
			             d->env.channel);
			free_delivery(d);
			return -1;
		}
		d->queue = k->queue;
		d->gen = k->gen;
		wd_gen_ref(d->gen);
		/* The one parse of the body, here: bounded work, and it
		 * keeps this thread busy rather than waking per message. */
		if (wd_dispatch_parse(d->gen->routes, d->queue, &d->env,
		                      &d->parsed, &d->verdict) < 0)
			d->task.run = NULL; /* no handler: settle here */
		*out = d;
		return 1;
	}
	release(c, d); /* nothing was read into it */
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		if (r.library_error == AMQP_STATUS_TIMEOUT)
			return 0;
		if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
			return handle_frame(c);
		wd_log_warnx(AREA, "slot %d: connection lost: %s", c->id,
		             amqp_error_string2(r.library_error));
	}
	return -1;
}

/* ---- the loop ------------------------------------------------------------ */

/* Stop new deliveries but keep the channels open, so that what is in the
 * handlers can still be acked. Deliveries that cross the cancel on the wire
 * are read and handled like any other. */
static int cancel_consumers(struct wd_conn *c)
{
	if (wd_consumers_cancel(c) < 0)
		return -1;
	wd_log_info(AREA, "slot %d: stopped consuming; %zu deliveries in "
	            "flight", c->id, c->inflight);
	return 0;
}

/* A reload swapped in a new generation: consume what it says from now on. */
static int take_up_generation(struct wd_conn *c)
{
	if (wd_consumers_update(c, wd_pool_gen(c->pool)) < 0)
		return -1;
	know_exchanges(c);
	return 0;
}

/* A handler that promised not to block (WARREN_HANDLER_NONBLOCKING):
 * called here, right away. One that took too long has its route moved to
 * the workers, once, with a warning: its promise was wrong. */
static int run_here(struct wd_conn *c, struct wd_delivery *d)
{
	const struct wd_route *r = d->verdict.route;
	int64_t t0 = wd_now_ms(), took;

	d->task.run(&d->task);
	d->done_ms = wd_now_ms();
	took = d->done_ms - t0;
	if (took > NONBLOCKING_LIMIT_MS &&
	    !atomic_exchange(&((struct wd_route *)r)->on_workers, true))
		wd_log_warnx(AREA, "%s/%s: type \"%s\": a call took %jd ms, "
		             "but the handler is declared non-blocking: its "
		             "route runs on the workers from now on (until "
		             "the next reload)", r->plugin->conf->name,
		             r->handler_name, r->type, (intmax_t)took);
	return settle(c, d);
}

/* Hand what was read over to the workers. */
static void flush_batch(struct wd_conn *c)
{
	if (!c->batch_first)
		return;
	wd_workers_submit(c->pool->workers, &c->batch_first->task,
	                  &c->batch_last->task, c->nbatch);
	c->batch_first = c->batch_last = NULL;
	c->nbatch = 0;
}

/* A delivery just read: to the workers, to its route's batcher, or, if no
 * handler will see it, settled at once. */
static int take(struct wd_conn *c, struct wd_delivery *d)
{
	c->inflight++;
	wd_log_debug(AREA, "slot %d: read delivery %ju (%zu in flight)",
	             c->id, (uintmax_t)d->env.delivery_tag, c->inflight);
	if (!d->task.run)
		return settle(c, d);
	if (d->verdict.route->handle_batch) {
		wd_batchers_add(d->gen->batchers, d);
		return 0;
	}
	if (d->verdict.route->nonblocking &&
	    !atomic_load_explicit(&d->verdict.route->on_workers,
	                          memory_order_relaxed))
		return run_here(c, d);
	if (c->batch_last)
		c->batch_last->task.next = &d->task;
	else
		c->batch_first = d;
	c->batch_last = d;
	if (++c->nbatch >= SUBMIT_BATCH)
		flush_batch(c);
	return 0;
}

/* How many finished plain acks make it worth waking this thread (see
 * wake_at), and so how long it may sleep while handlers hold deliveries:
 * *delay_ms. 1 (wake for each) while stopping or draining, and where acks
 * go out at once. */
static int wake_threshold(const struct wd_conn *c, int *delay_ms)
{
	int at = 0;

	*delay_ms = 1000;
	if (c->cancelled || c->ndraining > 0)
		return 1;
	for (size_t i = 0; i < c->nconsumers; i++) {
		const struct wd_acks *a = &c->consumers[i].acks;
		int left = a->batch - (int)a->npending;
		if (a->delay_ms == 0 || left <= 1)
			return 1;
		if (at == 0 || left < at)
			at = left;
		if (a->delay_ms < *delay_ms)
			*delay_ms = a->delay_ms;
	}
	return at > 0 ? at : 1;
}

/* Whether at least `at` finished deliveries wait: judged here because
 * the workers judged them against the threshold before this one. */
static bool done_reached(struct wd_conn *c, int at)
{
	bool r;

	pthread_mutex_lock(&c->lock);
	r = c->ndone >= (size_t)at;
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int poll_timeout_ms(const struct wd_conn *c, int64_t now,
                           int64_t next_due, int lazy_ms)
{
	int64_t t = 1000;
	int hb = c->pool->broker.heartbeat;

	if (hb > 0 && hb * 250 < t)
		t = hb * 250;
	if (c->inflight > 0 && lazy_ms < t)
		t = lazy_ms; /* come back for acks no worker woke us for */
	if (next_due >= 0 && next_due - now < t)
		t = next_due - now;
	if ((c->cancelled || c->ndraining > 0) && t > 100)
		t = 100; /* look again soon: is everything settled? */
	return t < 0 ? 0 : (int)t;
}

/* Serve until the connection fails (-1) or, when stopping, everything it
 * holds is settled or the deadline passed (0). */
static int serve(struct wd_conn *c)
{
	struct wd_pool *p = c->pool;
	struct wd_delivery *d;
	int64_t last_read = 0;
	int hb_ms = p->broker.heartbeat * 1000, lazy_ms = 1000;

	for (;;) {
		int64_t now = wd_now_ms(), next_due = -1;
		struct pollfd fds[2];
		int r;

		c->now_ms = now;
		if (settle_done(c) < 0 || settle_confirmed(c) < 0 ||
		    flush_full_acks(c) < 0 ||
		    requeue_due(c, now, &next_due) < 0 ||
		    flush_due_acks(c, now, &next_due) < 0)
			return -1;
		if (wd_pub_expired(&c->pub, now, &next_due)) {
			wd_log_error(AREA, "slot %d: no publisher confirm within "
			             "%d s: reconnecting (unconfirmed deliveries "
			             "are redelivered)", c->id,
			             p->publish_timeout);
			return -1;
		}
		if (!c->cancelled &&
		    atomic_load_explicit(&p->gen, memory_order_relaxed) != c->gen &&
		    take_up_generation(c) < 0)
			return -1;
		if (wd_consumers_close_drained(c) < 0)
			return -1;
		if (atomic_load(&p->stopping) && !c->cancelled) {
			c->cancelled = true;
			if (cancel_consumers(c) < 0)
				return -1;
		}
		if (c->cancelled) {
			/* The cancel waited for its cancel-ok: whatever was
			 * delivered before it is buffered here, and is read
			 * and handled before the connection is done. */
			if (c->inflight == 0 && !amqp_frames_enqueued(c->amqp) &&
			    !amqp_data_in_buffer(c->amqp))
				return flush_due_acks(c, now, &next_due);
			if (now > atomic_load(&p->stop_deadline_ms)) {
				c->abandoned = c->inflight;
				wd_log_error(AREA, "slot %d: shutdown timeout "
				             "with %zu deliveries still in "
				             "handlers or unconfirmed: the broker "
				             "will redeliver them",
				             c->id, c->inflight);
				flush_due_acks(c, now, &next_due);
				return 0;
			}
		}

		if (!amqp_frames_enqueued(c->amqp) &&
		    !amqp_data_in_buffer(c->amqp)) {
			/* Nothing buffered: hand over what was read, then
			 * sleep until the socket, a worker or a timer. */
			flush_batch(c);
			int at = wake_threshold(c, &lazy_ms);
			atomic_store_explicit(&c->wake_at, at,
			                      memory_order_relaxed);
			/* Announce the sleep, then look once more: a worker
			 * that finished in between either saw the flag (and
			 * wakes us) or is seen here. */
			atomic_store(&c->sleeping, true);
			if (atomic_load(&c->wake_due) || c->ready ||
			    (atomic_load(&c->has_done) && done_reached(c, at))) {
				atomic_store(&c->sleeping, false);
				continue;
			}
			fds[0] = (struct pollfd){.fd = amqp_get_sockfd(c->amqp),
			                         .events = POLLIN};
			fds[1] = (struct pollfd){.fd = c->wakefd, .events = POLLIN};
			r = poll(fds, 2, poll_timeout_ms(c, now, next_due, lazy_ms));
			atomic_store(&c->sleeping, false);
			if (r < 0 && errno != EINTR)
				return -1;
			now = wd_now_ms();
			if (r > 0 && (fds[1].revents & POLLIN)) {
				uint64_t v;
				ssize_t n = read(c->wakefd, &v, sizeof(v));
				(void)n;
			}
			if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
				c->last_rx_ms = now;
			else if (hb_ms > 0 && now - c->last_rx_ms > 2 * hb_ms) {
				wd_log_warnx(AREA, "slot %d: no heartbeat from "
				             "the broker for %d s: reconnecting",
				             c->id, 2 * p->broker.heartbeat);
				return -1;
			}
			/* Without data, still let rabbitmq-c send a due
			 * heartbeat now and then. */
			if (!(r > 0 && (fds[0].revents & POLLIN)) &&
			    now - last_read < 250)
				continue;
		}
		last_read = now;
		r = read_delivery(c, &d);
		if (r < 0)
			return -1;
		if (r > 0 && take(c, d) < 0)
			return -1;
	}
}

void *wd_conn_main(void *arg)
{
	struct wd_conn *c = arg;
	struct wd_pool *p = c->pool;
	int64_t backoff = 500;
	char err[1024];

	snprintf(err, sizeof(err), "wd-conn-%d", c->id);
	pthread_setname_np(pthread_self(), err); /* for top -H, gdb */
	c->rnd = (unsigned)getpid() ^ (unsigned)(c->id * 2654435761u) ^
	         (unsigned)wd_now_ms();
	for (;;) {
		if (c->amqp) {
			int rc = serve(c);
			/* Whatever was read but not handed over still goes
			 * through a worker, which skips it if its connection
			 * is gone, and comes back here to be freed. */
			flush_batch(c);
			if (rc == 0) {
				drop(c, true);
				return NULL;
			}
			wd_metric_inc(connections_lost);
			drop(c, false);
			wd_log_warnx(AREA, "slot %d: connection dropped; "
			             "deliveries in flight will be redelivered",
			             c->id);
		}
		if (atomic_load(&p->stopping))
			return NULL;
		if (wd_conn_open(c, err, sizeof(err)) == 0) {
			wd_log_info(AREA, "slot %d: reconnected to %s", c->id,
			            p->broker.redacted);
			backoff = 500;
			continue;
		}
		wd_log_warnx(AREA, "slot %d: %s (retrying in %jd ms)", c->id,
		             err, (intmax_t)backoff);
		struct pollfd fd = {.fd = c->wakefd, .events = POLLIN};
		if (poll(&fd, 1, (int)backoff) > 0) {
			uint64_t v;
			ssize_t n = read(c->wakefd, &v, sizeof(v));
			(void)n;
		}
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
}
