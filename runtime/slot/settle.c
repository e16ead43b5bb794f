/* settle.c - verdict -> follow-ups, retry copy, dead-letter copy, hold,
 * requeue, ack; each publish confirmed before the ack. */
#include "slot/settle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/grow.h"
#include "base/log.h"
#include "base/metrics.h"
#include "exec/generation.h"
#include "message/policy.h"
#include "slot/refusals.h"

static const char AREA[] = "conn";

void wd_settle_init(struct wd_settler *s, const struct wd_settle_ops *ops,
                    void *arg, int slot, unsigned seed)
{
	memset(s, 0, sizeof(*s));
	s->ops = ops;
	s->arg = arg;
	s->slot = slot;
	s->rnd = seed;
}

/* d goes to be freed (ack, requeue, forget): log lines from here on are
 * no longer about it (the subject borrows from d). */
static void hand_over(void)
{
	wd_log_about(NULL);
}

static const struct wd_conf_queue *queue_of(const struct wd_delivery *d)
{
	return &d->gen->routes->conf->queues[d->queue];
}

static struct wd_queue_series *series_of(const struct wd_delivery *d)
{
	return d->gen->routes->queue_series[d->queue];
}

/* A reason's counter in `c` (an array of WD_SERIES_REASONS), or NULL for a
 * reason that is not one of the counted classes. */
static wd_counter *by_reason(wd_counter *c, const char *reason)
{
	int i = wd_reason_index(reason);
	return i < 0 ? NULL : &c[i];
}

/* Settled: its end-to-end latency (when its publish time is known), then
 * the ack. */
static int acked(struct wd_settler *s, struct wd_delivery *d)
{
	int64_t published = wd_policy_published_us(&d->env);

	if (published > 0) {
		int64_t now = wd_wall_us();
		wd_hist_observe_us(&series_of(d)->end_to_end,
		                   now > published ? (uint64_t)(now - published)
		                                   : 0);
	}
	hand_over();
	return s->ops->ack(s->arg, d);
}

/* ---- confirms ------------------------------------------------------------ */

void wd_settle_confirmed(struct wd_settler *s, struct wd_delivery *d, bool ok,
                         const char *why)
{
	if (!ok && !d->publish_failed) {
		d->publish_failed = true;
		snprintf(d->publish_why, sizeof(d->publish_why), "%s", why);
	}
	if (--d->unconfirmed == 0) {
		d->next_ready = s->ready;
		s->ready = d;
	}
}

/* The connection failed (or memory ran out) while d was on its way: d is
 * forgotten, the broker redelivers it. */
static int failed(struct wd_settler *s, struct wd_delivery *d)
{
	hand_over();
	s->ops->forget(s->arg, d);
	return -1;
}

static int wait_for_confirms(struct wd_settler *s, struct wd_delivery *d,
                             enum wd_stage stage)
{
	if (WD_GROW(s->waiting, s->capwaiting, s->nwaiting + 1, 64) < 0)
		return failed(s, d);
	d->stage = stage;
	d->waiting_at = s->nwaiting;
	s->waiting[s->nwaiting++] = d;
	wd_delivery_enter(d, WD_INFLIGHT_WAITING_CONFIRM);
	return 0;
}

static void stop_waiting(struct wd_settler *s, struct wd_delivery *d)
{
	struct wd_delivery *last = s->waiting[--s->nwaiting];

	wd_delivery_leave(d, WD_INFLIGHT_WAITING_CONFIRM);

	s->waiting[d->waiting_at] = last;
	last->waiting_at = d->waiting_at;
}

/* ---- a refused copy: hold, then requeue ---------------------------------- */

static int hold(struct wd_settler *s, struct wd_delivery *d, int64_t ms)
{
	if (WD_GROW(s->held, s->capheld, s->nheld + 1, 16) < 0)
		return -1;
	d->due_ms = wd_now_ms() + ms;
	s->held[s->nheld++] = d;
	return 0;
}

/* A republish was refused: the copy may not exist, so the delivery must
 * stay with the broker. Held, then requeued: its next delivery tries
 * again. */
static int republish_failed(struct wd_settler *s, struct wd_delivery *d,
                            const char *why)
{
	int n = wd_refusals_add(wd_refusal_key(queue_of(d)->name, &d->env),
	                        wd_now_ms());
	int64_t ms = WD_REQUEUE_HOLD_MS;

	for (int i = 1; i < n && ms < WD_REQUEUE_HOLD_MAX_MS; i++)
		ms *= 2;
	if (ms > WD_REQUEUE_HOLD_MAX_MS)
		ms = WD_REQUEUE_HOLD_MAX_MS;
	wd_metric_inc(republish_failed);
	wd_count(series_of(d)->republish_failed);
	wd_log_error(AREA,
	             "slot %d: queue \"%s\" tag %ju: cannot %s: %s: "
	             "requeued in %jd ms (refused %d time%s)",
	             s->slot, queue_of(d)->name, (uintmax_t)d->env.delivery_tag,
	             d->verdict.action == WD_ACTION_RETRY ? "schedule its retry"
	                                                  : "dead-letter it",
	             why, (intmax_t)ms, n, n == 1 ? "" : "s");
	if (!s->stopping && hold(s, d, ms) == 0)
		return 0;
	hand_over();
	return s->ops->requeue(s->arg, d);
}

/* ---- the copies and the follow-ups --------------------------------------- */

/* Publish the copy of d to exchange/rk with warren's failure headers (and,
 * for a retry, a per-message expiration: the jittered delay). */
static int republish(struct wd_settler *s, struct wd_delivery *d,
                     amqp_bytes_t exchange, amqp_bytes_t rk, const char *reason,
                     long expiration_ms)
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
	    .now_ms = wd_wall_ms(),
	    .drop_headers = d->verdict.drop_headers,
	};
	struct wd_header_scratch scratch;
	char exp[32], why[256];
	int rc;

	if (wd_policy_headers(&d->env, q->name, &f, &scratch, &props.headers) <
	    0)
		return republish_failed(s, d, "out of memory");
	props._flags |= AMQP_BASIC_HEADERS_FLAG;
	/* Another user's user_id would be refused under warrend's login; it
	 * travels as x-warren-original-user-id (wd_policy_headers). */
	props._flags &= ~(AMQP_BASIC_EXPIRATION_FLAG | AMQP_BASIC_USER_ID_FLAG);
	if (expiration_ms > 0) {
		snprintf(exp, sizeof(exp), "%ld", expiration_ms);
		props.expiration = amqp_cstring_bytes(exp);
		props._flags |= AMQP_BASIC_EXPIRATION_FLAG;
	}
	d->unconfirmed = 1;
	d->publish_failed = false;
	rc = s->ops->publish(s->arg, d, exchange, rk, &props,
	                     d->env.message.body, why, sizeof(why));
	free(props.headers.entries);
	if (rc < 0)
		return failed(s, d);
	if (rc > 0)
		return republish_failed(s, d, why);
	return wait_for_confirms(s, d, WD_STAGE_REPUBLISH);
}

static int dead_letter(struct wd_settler *s, struct wd_delivery *d,
                       const char *reason)
{
	const struct wd_conf_queue *q = queue_of(d);
	amqp_bytes_t rk = q->dead_letter_routing_key
	                      ? amqp_cstring_bytes(q->dead_letter_routing_key)
	                      : wd_policy_original_routing_key(&d->env);

	d->verdict.action = WD_ACTION_DEAD_LETTER;
	d->verdict.reason = reason;
	return republish(s, d, amqp_cstring_bytes(q->dead_letter_exchange), rk,
	                 reason, 0);
}

static int retry(struct wd_settler *s, struct wd_delivery *d)
{
	const struct wd_route *r = d->verdict.route;
	char name[300];
	long delay;
	int attempt;

	/* Its copies refused before (it came back unchanged) count as
	 * attempts, on a queue that does not count deliveries itself (a
	 * quorum queue's x-delivery-count has counted each requeue). */
	if (d->env.redelivered && !queue_of(d)->quorum)
		d->parsed.attempts.attempt += wd_refusals_get(
		    wd_refusal_key(queue_of(d)->name, &d->env), wd_now_ms());
	attempt = d->parsed.attempts.attempt;

	if (attempt >= r->policy->max_attempts) {
		wd_metric_inc(max_attempts);
		wd_log_warnx(AREA,
		             WD_ROUTE_FMT " tag %ju: attempt %d of %d "
		                          "failed (%s%s%s): dead-lettered",
		             WD_ROUTE_ARGS(r), (uintmax_t)d->env.delivery_tag,
		             attempt, r->policy->max_attempts,
		             d->verdict.reason, d->verdict.text[0] ? ": " : "",
		             d->verdict.text);
		return dead_letter(s, d, WD_R_MAX_ATTEMPTS);
	}
	delay = wd_policy_delay_ms(r->policy, attempt);
	wd_policy_retry_queue(name, sizeof(name), queue_of(d)->name, delay);
	return republish(
	    s, d, amqp_empty_bytes, amqp_cstring_bytes(name), d->verdict.reason,
	    wd_policy_jittered_ms(r->policy, attempt,
	                          rand_r(&s->rnd) / (RAND_MAX + 1.0)));
}

static int send_followups(struct wd_settler *s, struct wd_delivery *d)
{
	char why[256];

	d->unconfirmed = 0;
	d->publish_failed = false;
	for (struct wd_followup *f = d->verdict.outbox.head; f; f = f->next) {
		int rc = s->ops->publish(s->arg, d, f->exchange, f->routing_key,
		                         &f->props, f->body, why, sizeof(why));
		if (rc < 0)
			return failed(s, d);
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
		return wait_for_confirms(s, d, WD_STAGE_FOLLOWUPS);
	d->stage = WD_STAGE_FOLLOWUPS;
	return wd_settle(s, d); /* refused before anything went out */
}

/* ---- settling ------------------------------------------------------------ */

/* Its follow-ups are all confirmed or one was refused. */
static int followups_done(struct wd_settler *s, struct wd_delivery *d)
{
	const struct wd_route *r = d->verdict.route;

	if (!d->publish_failed) {
		wd_metric_add(followups, d->verdict.outbox.n);
		wd_count_n(r->series->followups, d->verdict.outbox.n);
		wd_metric_inc(acked);
		return acked(s, d);
	}
	wd_metric_inc(followups_failed);
	wd_count(r->series->followups_failed);
	wd_log_warnx(AREA,
	             WD_ROUTE_FMT " tag %ju: follow-up publish failed: "
	                          "%s: the input goes the retry way",
	             WD_ROUTE_ARGS(r), (uintmax_t)d->env.delivery_tag,
	             d->publish_why);
	wd_outbox_clear(&d->verdict.outbox);
	d->verdict.action = WD_ACTION_RETRY;
	d->verdict.reason = WD_R_FOLLOWUP_FAILED;
	snprintf(d->verdict.text, sizeof(d->verdict.text),
	         "follow-up publish failed: %s", d->publish_why);
	return retry(s, d);
}

/* Its copy to a retry queue or the dead-letter exchange is confirmed or
 * refused. */
static int republish_done(struct wd_settler *s, struct wd_delivery *d)
{
	if (d->publish_failed)
		return republish_failed(s, d, d->publish_why);
	if (d->env.redelivered) /* only a requeued one has refusals */
		wd_refusals_clear(wd_refusal_key(queue_of(d)->name, &d->env));
	if (d->verdict.action == WD_ACTION_RETRY) {
		wd_metric_inc(retry_published);
		wd_count(series_of(d)->retry_published);
	} else {
		wd_counter *c =
		    by_reason(series_of(d)->dead_lettered, d->verdict.reason);
		wd_metric_inc(dead_lettered);
		if (c)
			wd_count(*c);
	}
	return acked(s, d);
}

/* ---- publishing blocked: parked ------------------------------------------ */

/* Whether settling d now would publish: follow-ups, a retry or dead-letter
 * copy, or the retry copy of an input whose follow-ups failed (the table
 * settle_stage() follows). */
static bool will_publish(const struct wd_delivery *d)
{
	if (d->stage == WD_STAGE_FOLLOWUPS)
		return d->publish_failed;
	if (d->stage == WD_STAGE_REPUBLISH)
		return false;
	switch (d->verdict.action) {
	case WD_ACTION_ACK:
		return d->verdict.outbox.n > 0;
	case WD_ACTION_RETRY:
	case WD_ACTION_DEAD_LETTER:
		return true;
	case WD_ACTION_DROP:
		return false;
	}
	return false;
}

static void park(struct wd_settler *s, struct wd_delivery *d)
{
	d->next_ready = NULL;
	if (s->parked_tail)
		s->parked_tail->next_ready = d;
	else
		s->parked_head = d;
	s->parked_tail = d;
	s->nparked++;
	wd_delivery_enter(d, WD_INFLIGHT_WAITING_UNBLOCK);
}

static struct wd_delivery *unpark(struct wd_settler *s)
{
	struct wd_delivery *d = s->parked_head;

	if (!d)
		return NULL;
	s->parked_head = d->next_ready;
	if (!s->parked_head)
		s->parked_tail = NULL;
	s->nparked--;
	wd_delivery_leave(d, WD_INFLIGHT_WAITING_UNBLOCK);
	return d;
}

void wd_settle_block(struct wd_settler *s, bool blocked)
{
	s->publish_blocked = blocked;
}

int wd_settle_unpark(struct wd_settler *s)
{
	struct wd_delivery *d;
	int rc = 0;

	if (s->publish_blocked && !s->stopping)
		return 0;
	/* Settled in turn: one parked again (blocked again meanwhile) ends
	 * the pass, as it went back to the end. */
	for (size_t n = s->nparked; n > 0 && (d = unpark(s)); n--) {
		if (rc < 0) {
			s->ops->forget(s->arg, d);
		} else if (s->publish_blocked) { /* and stopping */
			hand_over();
			rc = s->ops->requeue(s->arg, d);
		} else {
			rc = wd_settle(s, d);
		}
	}
	return rc;
}

static int settle_stage(struct wd_settler *s, struct wd_delivery *d);

int wd_settle(struct wd_settler *s, struct wd_delivery *d)
{
	struct wd_log_subject about;
	int rc = 0;

	/* What is logged from here on is about d; the subject borrows from
	 * d, so it is cleared wherever d is handed over (hand_over). */
	wd_delivery_subject(d, s->slot, &about);
	wd_log_about(&about);
	if (s->publish_blocked && will_publish(d))
		park(s, d);
	else
		rc = settle_stage(s, d);
	wd_log_about(NULL);
	return rc;
}

static int settle_stage(struct wd_settler *s, struct wd_delivery *d)
{
	enum wd_stage stage = d->stage;

	d->stage = WD_STAGE_NONE;
	if (stage == WD_STAGE_FOLLOWUPS)
		return followups_done(s, d);
	if (stage == WD_STAGE_REPUBLISH)
		return republish_done(s, d);
	switch (d->verdict.action) {
	case WD_ACTION_ACK:
		if (d->verdict.outbox.n > 0)
			return send_followups(s, d);
		wd_metric_inc(acked);
		return acked(s, d);
	case WD_ACTION_RETRY:
		return retry(s, d);
	case WD_ACTION_DEAD_LETTER:
		return dead_letter(s, d, d->verdict.reason);
	case WD_ACTION_DROP: {
		wd_counter *c =
		    by_reason(series_of(d)->dropped, d->verdict.reason);
		wd_metric_inc(dropped);
		if (c)
			wd_count(*c);
		return acked(s, d);
	}
	}
	return acked(s, d);
}

int wd_settle_ready(struct wd_settler *s)
{
	while (s->ready) {
		struct wd_delivery *d = s->ready;
		s->ready = d->next_ready;
		stop_waiting(s, d);
		if (wd_settle(s, d) < 0)
			return -1;
	}
	return 0;
}

int wd_settle_requeue_due(struct wd_settler *s, int64_t now_ms,
                          int64_t *next_due_ms)
{
	size_t keep = 0;
	int rc = 0;

	for (size_t i = 0; i < s->nheld; i++) {
		struct wd_delivery *d = s->held[i];
		if (!s->stopping && d->due_ms > now_ms) {
			if (*next_due_ms < 0 || d->due_ms < *next_due_ms)
				*next_due_ms = d->due_ms;
			s->held[keep++] = d;
			continue;
		}
		if (rc == 0)
			rc = s->ops->requeue(s->arg, d);
		else
			s->ops->forget(s->arg, d);
	}
	s->nheld = keep;
	return rc;
}

void wd_settle_forget(struct wd_settler *s)
{
	for (size_t i = 0; i < s->nwaiting; i++) {
		wd_delivery_leave(s->waiting[i], WD_INFLIGHT_WAITING_CONFIRM);
		s->ops->forget(s->arg, s->waiting[i]);
	}
	s->nwaiting = 0;
	s->ready = NULL; /* its deliveries were in waiting */
	for (size_t i = 0; i < s->nheld; i++)
		s->ops->forget(s->arg, s->held[i]);
	s->nheld = 0;
	for (struct wd_delivery *d; (d = unpark(s));)
		s->ops->forget(s->arg, d);
	/* A new connection starts unblocked. */
	s->publish_blocked = false;
}

void wd_settle_free(struct wd_settler *s)
{
	wd_settle_forget(s);
	free(s->waiting);
	free(s->held);
	s->waiting = s->held = NULL;
	s->capwaiting = s->capheld = 0;
}
