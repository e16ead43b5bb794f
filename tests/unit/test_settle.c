/*
 * test_settle.c - runtime/slot/settle.c without a broker: every row of the
 * README's outcome table (what warrend does with each outcome) turned into
 * broker operations through recording wd_settle_ops: acks, follow-ups and
 * their confirms, retry copies (queue, expiration, headers), dead-letter
 * copies with their reason, drops, refused copies held and then requeued,
 * and what is forgotten when the connection goes.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "exec/generation.h"
#include "slot/refusals.h"
#include "slot/settle.h"

/* ---- a hand-built generation: one queue, one route ----------------------- */

static struct wd_conf_queue queue;
static struct wd_conf conf;
static struct wd_routes routes;
static struct wd_queue_series *queue_series;
static struct wd_gen gen;
static struct wd_conf_plugin plugin_conf = {.name = "orders-plugin"};
static struct wd_plugin plugin = {.conf = &plugin_conf};
static struct wd_policy policy;
static struct wd_route route;

/* ---- what the ops were asked to do --------------------------------------- */

enum op { OP_ACK, OP_REQUEUE, OP_FORGET };

struct published {
	char exchange[256], routing_key[256];
	char expiration[32]; /* "" if none */
	char reason[64], reason_text[512];
	int64_t attempts;
	bool has_plugin;
};

static struct {
	enum op op[32];
	uint64_t tag[32];
	int n;
	struct published pub[32];
	int npub;
	/* What publish() answers: 0 sent, 1 refused, -1 connection failed. */
	int publish_rc[32];
	int ack_rc;
} rec;

static struct wd_settler settler;

static void done(enum op op, struct wd_delivery *d)
{
	cr_assert_lt(rec.n, 32);
	rec.op[rec.n] = op;
	rec.tag[rec.n] = d->env.delivery_tag;
	rec.n++;
	wd_verdict_clear(&d->verdict);
	free(d);
}

static int op_ack(void *arg, struct wd_delivery *d)
{
	cr_assert_eq(arg, &rec);
	done(OP_ACK, d);
	return rec.ack_rc;
}

static int op_requeue(void *arg, struct wd_delivery *d)
{
	(void)arg;
	done(OP_REQUEUE, d);
	return 0;
}

static void op_forget(void *arg, struct wd_delivery *d)
{
	(void)arg;
	done(OP_FORGET, d);
}

static void copy_bytes(char *buf, size_t len, amqp_bytes_t b)
{
	snprintf(buf, len, "%.*s", (int)b.len, b.len ? (char *)b.bytes : "");
}

static int op_publish(void *arg, struct wd_delivery *d, amqp_bytes_t exchange,
                      amqp_bytes_t rk, const amqp_basic_properties_t *props,
                      amqp_bytes_t body, char *why, size_t whylen)
{
	struct published *p = &rec.pub[rec.npub];
	int rc = rec.publish_rc[rec.npub];

	(void)arg;
	(void)d;
	(void)body;
	cr_assert_lt(rec.npub, 32);
	memset(p, 0, sizeof(*p));
	p->attempts = -1;
	copy_bytes(p->exchange, sizeof(p->exchange), exchange);
	copy_bytes(p->routing_key, sizeof(p->routing_key), rk);
	if (props->_flags & AMQP_BASIC_EXPIRATION_FLAG)
		copy_bytes(p->expiration, sizeof(p->expiration),
		           props->expiration);
	if (props->_flags & AMQP_BASIC_HEADERS_FLAG) {
		const amqp_table_t *t = &props->headers;
		const amqp_field_value_t *v;
		if ((v = wd_table_get(t, WD_H_REASON)))
			copy_bytes(p->reason, sizeof(p->reason),
			           v->value.bytes);
		if ((v = wd_table_get(t, WD_H_REASON_TEXT)))
			copy_bytes(p->reason_text, sizeof(p->reason_text),
			           v->value.bytes);
		wd_field_int(wd_table_get(t, WD_H_ATTEMPTS), &p->attempts);
		p->has_plugin = wd_table_get(t, WD_H_PLUGIN) != NULL;
	}
	rec.npub++;
	if (rc > 0)
		snprintf(why, whylen, "exchange \"x\" does not exist");
	return rc;
}

static const struct wd_settle_ops ops = {
    .ack = op_ack,
    .requeue = op_requeue,
    .publish = op_publish,
    .forget = op_forget,
};

static void setup(void)
{
	memset(&rec, 0, sizeof(rec));
	queue = (struct wd_conf_queue){.name = "orders",
	                               .dead_letter_exchange = "orders.dlx"};
	conf = (struct wd_conf){.queues = &queue, .nqueues = 1};
	queue_series = wd_series_queue(queue.name);
	cr_assert_not_null(queue_series);
	routes =
	    (struct wd_routes){.conf = &conf, .queue_series = &queue_series};
	gen = (struct wd_gen){.routes = &routes};
	atomic_init(&gen.refs, 1);
	policy = (struct wd_policy){.max_attempts = 3,
	                            .retry_delay_ms = 1000,
	                            .retry_multiplier = 2.0,
	                            .retry_max_delay_ms = 60000,
	                            .retry_jitter = 0.1};
	route = (struct wd_route){
	    .type = "order:created",
	    .plugin = &plugin,
	    .handler_name = "created",
	    .policy = &policy,
	    .series = wd_series_route("orders", "order:created",
	                              "orders-plugin", "created")};
	cr_assert_not_null(route.series);
	wd_settle_init(&settler, &ops, &rec, 0, 12345);
}

static void teardown(void)
{
	wd_settle_free(&settler);
}

TestSuite(settle, .init = setup, .fini = teardown);

/* A delivery of queue "orders" whose handler gave `action`. */
static struct wd_delivery *delivery(uint64_t tag, enum wd_action action,
                                    int attempt)
{
	struct wd_delivery *d = calloc(1, sizeof(*d));

	cr_assert_not_null(d);
	d->gen = &gen;
	d->queue = 0;
	d->env.delivery_tag = tag;
	d->env.channel = 3;
	d->env.exchange = amqp_cstring_bytes("events");
	d->env.routing_key = amqp_cstring_bytes("order.created");
	d->env.message.body =
	    amqp_cstring_bytes("{\"type\":\"order:created\"}");
	d->parsed.attempts.attempt = attempt;
	wd_verdict_init(&d->verdict);
	d->verdict.action = action;
	d->verdict.route = &route;
	if (action == WD_ACTION_RETRY)
		d->verdict.reason = WD_R_HANDLER_RETRY;
	return d;
}

static void add_followup(struct wd_delivery *d, const char *exchange,
                         const char *rk)
{
	warren_publish p = {.size = sizeof(p),
	                    .exchange = exchange,
	                    .routing_key = rk,
	                    .body = {"{}", 2}};
	char why[256];

	cr_assert_eq(wd_outbox_add(&d->verdict.outbox, &p, why, sizeof(why)), 0,
	             "%s", why);
}

/* The publisher's confirm of publish `d`, then the loop's settle pass. */
static void confirm(struct wd_delivery *d, bool ok)
{
	wd_settle_confirmed(&settler, d, ok,
	                    ok ? NULL
	                       : "the broker refused it "
	                         "(basic.nack)");
	cr_assert_eq(wd_settle_ready(&settler), 0);
}

/* ---- handler returns WARREN_ACK ------------------------------------------ */

Test(settle, ack_without_followups_is_acked_at_once)
{
	uint64_t acked = wd_metric_get(acked);

	cr_assert_eq(wd_settle(&settler, delivery(7, WD_ACTION_ACK, 1)), 0);
	cr_assert_eq(rec.npub, 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(rec.tag[0], 7);
	cr_expect_eq(wd_metric_get(acked), acked + 1);
}

Test(settle, followups_are_confirmed_before_the_ack)
{
	struct wd_delivery *d = delivery(8, WD_ACTION_ACK, 1);
	uint64_t followups = wd_metric_get(followups);

	add_followup(d, "billing", "invoice.create");
	add_followup(d, "", "audit");
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 2);
	cr_expect_str_eq(rec.pub[0].exchange, "billing");
	cr_expect_str_eq(rec.pub[0].routing_key, "invoice.create");
	cr_expect_str_eq(rec.pub[1].exchange, "");
	cr_expect_str_eq(rec.pub[1].routing_key, "audit");
	cr_expect_str_eq(rec.pub[0].reason, "", "follow-ups carry no failure");
	cr_expect_eq(rec.n, 0, "no ack before the confirms");
	confirm(d, true);
	cr_expect_eq(rec.n, 0, "one of two confirms is not enough");
	confirm(d, true);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(rec.tag[0], 8);
	cr_expect_eq(wd_metric_get(followups), followups + 2);
}

/* ---- a follow-up of an ack cannot be delivered: the retry way ----------- */

Test(settle, followup_refused_at_once_goes_the_retry_way)
{
	struct wd_delivery *d = delivery(9, WD_ACTION_ACK, 1);

	add_followup(d, "nowhere", "a");
	add_followup(d, "billing", "b");
	rec.publish_rc[0] = 1; /* the exchange does not exist */
	cr_assert_eq(wd_settle(&settler, d), 0);
	/* The second follow-up is not sent: on the retry it would be a
	 * duplicate. The retry copy is. */
	cr_assert_eq(rec.npub, 2);
	cr_expect_str_eq(rec.pub[1].exchange, "");
	cr_expect_str_eq(rec.pub[1].routing_key, "orders.retry.1000");
	cr_expect_str_eq(rec.pub[1].reason, WD_R_FOLLOWUP_FAILED);
	cr_expect(strstr(rec.pub[1].reason_text, "follow-up publish failed: "
	                                         "exchange \"x\" does not "
	                                         "exist") != NULL,
	          "text: %s", rec.pub[1].reason_text);
	cr_expect_eq(rec.n, 0);
	confirm(d, true);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
}

Test(settle, followup_nacked_goes_the_retry_way)
{
	struct wd_delivery *d = delivery(10, WD_ACTION_ACK, 1);
	uint64_t failed = wd_metric_get(followups_failed);

	add_followup(d, "billing", "a");
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 1);
	confirm(d, false);
	cr_expect_eq(wd_metric_get(followups_failed), failed + 1);
	cr_assert_eq(rec.npub, 2, "a retry copy after the nack");
	cr_expect_str_eq(rec.pub[1].routing_key, "orders.retry.1000");
	cr_expect_str_eq(rec.pub[1].reason, WD_R_FOLLOWUP_FAILED);
	cr_expect_eq(rec.n, 0, "the input is not acked yet");
	confirm(d, true);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(rec.tag[0], 10);
}

/* ---- handler returns WARREN_RETRY ---------------------------------------- */

Test(settle, retry_goes_to_its_delay_queue_with_jitter_then_ack)
{
	struct wd_delivery *d = delivery(11, WD_ACTION_RETRY, 1);
	uint64_t published = wd_metric_get(retry_published);
	long exp;

	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 1);
	cr_expect_str_eq(rec.pub[0].exchange, "", "the default exchange");
	cr_expect_str_eq(rec.pub[0].routing_key, "orders.retry.1000");
	exp = atol(rec.pub[0].expiration);
	cr_expect(exp >= 900 && exp <= 1000,
	          "expiration %ld: jitter only "
	          "shortens, by up to 10%%",
	          exp);
	cr_expect_str_eq(rec.pub[0].reason, WD_R_HANDLER_RETRY);
	cr_expect_eq(rec.pub[0].attempts, 1);
	cr_expect(rec.pub[0].has_plugin);
	cr_expect_eq(rec.n, 0, "no ack before the copy is confirmed");
	confirm(d, true);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(wd_metric_get(retry_published), published + 1);
}

Test(settle, second_retry_waits_longer)
{
	cr_assert_eq(wd_settle(&settler, delivery(12, WD_ACTION_RETRY, 2)), 0);
	cr_assert_eq(rec.npub, 1);
	cr_expect_str_eq(rec.pub[0].routing_key, "orders.retry.2000");
	cr_expect_eq(rec.pub[0].attempts, 2);
}

Test(settle, retry_after_max_attempts_is_dead_lettered)
{
	struct wd_delivery *d = delivery(13, WD_ACTION_RETRY, 3);
	uint64_t max = wd_metric_get(max_attempts);
	uint64_t dl = wd_metric_get(dead_lettered);

	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 1);
	cr_expect_str_eq(rec.pub[0].exchange, "orders.dlx");
	cr_expect_str_eq(rec.pub[0].routing_key, "order.created",
	                 "the original routing key");
	cr_expect_str_eq(rec.pub[0].expiration, "");
	cr_expect_str_eq(rec.pub[0].reason, WD_R_MAX_ATTEMPTS);
	cr_expect_eq(wd_metric_get(max_attempts), max + 1);
	confirm(d, true);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(wd_metric_get(dead_lettered), dl + 1);
}

/* ---- dead-letters: a handler's reject, an invalid outcome, bad input ----- */

Test(settle, every_dead_letter_reason_is_published_to_the_dlx)
{
	static const char *const reasons[] = {
	    WD_R_HANDLER_REJECT, WD_R_INVALID_OUTCOME, WD_R_TOO_LARGE,
	    WD_R_UNPARSEABLE,    WD_R_BAD_TYPE,        WD_R_UNKNOWN_TYPE};
	size_t n = sizeof(reasons) / sizeof(reasons[0]);

	for (size_t i = 0; i < n; i++) {
		struct wd_delivery *d =
		    delivery(20 + i, WD_ACTION_DEAD_LETTER, 1);
		/* Bad input never reached a handler. */
		bool handled = i < 2;
		if (!handled)
			d->verdict.route = NULL;
		d->verdict.reason = reasons[i];
		snprintf(d->verdict.text, sizeof(d->verdict.text), "why %zu",
		         i);
		cr_assert_eq(wd_settle(&settler, d), 0);
		cr_assert_eq(rec.npub, (int)i + 1);
		cr_expect_str_eq(rec.pub[i].exchange, "orders.dlx");
		cr_expect_str_eq(rec.pub[i].routing_key, "order.created");
		cr_expect_str_eq(rec.pub[i].reason, reasons[i]);
		cr_expect_eq(rec.pub[i].has_plugin, handled, "%s", reasons[i]);
		cr_expect_eq(rec.n, (int)i, "%s: acked before its confirm",
		             reasons[i]);
		confirm(d, true);
		cr_assert_eq(rec.n, (int)i + 1);
		cr_expect_eq(rec.op[i], OP_ACK);
		cr_expect_eq(rec.tag[i], 20 + i);
	}
}

Test(settle, dead_letter_routing_key_from_the_queue)
{
	queue.dead_letter_routing_key = "orders.dead";
	struct wd_delivery *d = delivery(30, WD_ACTION_DEAD_LETTER, 1);
	d->verdict.reason = WD_R_HANDLER_REJECT;
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 1);
	cr_expect_str_eq(rec.pub[0].routing_key, "orders.dead");
	confirm(d, true);
}

Test(settle, drop_is_acked_without_a_copy)
{
	uint64_t dropped = wd_metric_get(dropped);
	struct wd_delivery *d = delivery(31, WD_ACTION_DROP, 1);

	d->verdict.route = NULL;
	d->verdict.reason = WD_R_UNKNOWN_TYPE;
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_expect_eq(rec.npub, 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(wd_metric_get(dropped), dropped + 1);
}

/* ---- a copy that is refused: held, then requeued ------------------------ */

Test(settle, nacked_copy_is_held_then_requeued)
{
	struct wd_delivery *d = delivery(40, WD_ACTION_RETRY, 1);
	uint64_t failed = wd_metric_get(republish_failed);
	int64_t next = -1, due;

	cr_assert_eq(wd_settle(&settler, d), 0);
	confirm(d, false);
	cr_expect_eq(wd_metric_get(republish_failed), failed + 1);
	cr_expect_eq(rec.n, 0, "neither acked nor requeued yet");
	cr_assert_eq(settler.nheld, 1);
	due = d->due_ms;
	cr_assert_eq(wd_settle_requeue_due(&settler, due - 1, &next), 0);
	cr_expect_eq(rec.n, 0, "held until its due time");
	cr_expect_eq(next, due);
	cr_assert_eq(wd_settle_requeue_due(&settler, due, &next), 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_REQUEUE);
	cr_expect_eq(rec.tag[0], 40);
	cr_expect_eq(settler.nheld, 0);
}

Test(settle, copy_refused_at_once_is_held)
{
	struct wd_delivery *d = delivery(41, WD_ACTION_DEAD_LETTER, 1);
	int64_t next = -1;

	d->verdict.reason = WD_R_HANDLER_REJECT;
	rec.publish_rc[0] = 1;
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_expect_eq(rec.n, 0);
	cr_assert_eq(settler.nheld, 1);
	cr_expect_gt(d->due_ms, 0);
	/* Stopping: what is held goes back now. */
	settler.stopping = true;
	cr_assert_eq(wd_settle_requeue_due(&settler, 0, &next), 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_REQUEUE);
}

Test(settle, refused_while_stopping_is_requeued_at_once)
{
	struct wd_delivery *d = delivery(42, WD_ACTION_RETRY, 1);

	settler.stopping = true;
	rec.publish_rc[0] = 1;
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_REQUEUE);
	cr_expect_eq(settler.nheld, 0);
}

/* ---- the connection fails or goes --------------------------------------- */

Test(settle, a_failed_publish_fails_the_connection)
{
	struct wd_delivery *d = delivery(50, WD_ACTION_RETRY, 1);

	rec.publish_rc[0] = -1;
	cr_expect_eq(wd_settle(&settler, d), -1);
	cr_assert_eq(rec.n, 1, "forgotten, not leaked");
	cr_expect_eq(rec.op[0], OP_FORGET);
}

Test(settle, a_failed_ack_fails_the_connection)
{
	rec.ack_rc = -1;
	cr_expect_eq(wd_settle(&settler, delivery(51, WD_ACTION_ACK, 1)), -1);
}

Test(settle, forget_drops_what_waits_and_what_is_held)
{
	struct wd_delivery *waiting = delivery(60, WD_ACTION_RETRY, 1);
	struct wd_delivery *held = delivery(61, WD_ACTION_RETRY, 1);

	rec.publish_rc[1] = 1;
	cr_assert_eq(wd_settle(&settler, waiting), 0);
	cr_assert_eq(wd_settle(&settler, held), 0);
	cr_assert_eq(settler.nwaiting, 1);
	cr_assert_eq(settler.nheld, 1);
	wd_settle_forget(&settler);
	cr_assert_eq(rec.n, 2);
	cr_expect_eq(rec.op[0], OP_FORGET);
	cr_expect_eq(rec.op[1], OP_FORGET);
	cr_expect_eq(rec.tag[0] + rec.tag[1], 121);
	cr_expect_eq(settler.nwaiting, 0);
	cr_expect_eq(settler.nheld, 0);
}

/* ---- the broker blocks publishing (a resource alarm) --------------------- */

Test(settle, blocked_publishing_parks_what_would_publish_and_acks_the_rest)
{
	struct wd_delivery *followup = delivery(20, WD_ACTION_ACK, 1);

	add_followup(followup, "billing", "invoice.create");
	wd_settle_block(&settler, true);
	cr_assert_eq(wd_settle(&settler, delivery(21, WD_ACTION_RETRY, 1)), 0);
	cr_assert_eq(wd_settle(&settler, followup), 0);
	cr_assert_eq(wd_settle(&settler, delivery(22, WD_ACTION_ACK, 1)), 0);
	struct wd_delivery *rejected = delivery(23, WD_ACTION_DEAD_LETTER, 1);
	rejected->verdict.reason = WD_R_HANDLER_REJECT;
	cr_assert_eq(wd_settle(&settler, rejected), 0);
	/* The plain ack went on; nothing was published, nothing else
	 * settled. */
	cr_assert_eq(rec.npub, 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_ACK);
	cr_expect_eq(rec.tag[0], 22);
	cr_expect_eq(settler.nparked, 3);
	/* Still blocked: unpark does nothing. */
	cr_assert_eq(wd_settle_unpark(&settler), 0);
	cr_expect_eq(rec.npub, 0);
	/* Unblocked: published in the order they came. */
	wd_settle_block(&settler, false);
	cr_assert_eq(wd_settle_unpark(&settler), 0);
	cr_expect_eq(settler.nparked, 0);
	cr_assert_eq(rec.npub, 3);
	cr_expect_str_eq(rec.pub[0].routing_key, "orders.retry.1000");
	cr_expect_str_eq(rec.pub[1].exchange, "billing");
	cr_expect_str_eq(rec.pub[2].exchange, "orders.dlx");
	cr_expect_eq(rec.n, 1, "acked only once confirmed");
}

Test(settle, failed_followups_wait_for_the_unblock_before_their_retry_copy)
{
	struct wd_delivery *d = delivery(24, WD_ACTION_ACK, 1);

	add_followup(d, "billing", "invoice.create");
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 1);
	/* Blocked while the follow-up waits; then the broker refuses it. */
	wd_settle_block(&settler, true);
	confirm(d, false);
	cr_expect_eq(rec.npub, 1, "the retry copy waits for the unblock");
	cr_expect_eq(settler.nparked, 1);
	wd_settle_block(&settler, false);
	cr_assert_eq(wd_settle_unpark(&settler), 0);
	cr_assert_eq(rec.npub, 2);
	cr_expect_str_eq(rec.pub[1].routing_key, "orders.retry.1000");
	cr_expect_str_eq(rec.pub[1].reason, WD_R_FOLLOWUP_FAILED);
}

Test(settle, stopping_while_blocked_requeues_the_parked)
{
	wd_settle_block(&settler, true);
	cr_assert_eq(wd_settle(&settler, delivery(25, WD_ACTION_RETRY, 1)), 0);
	settler.stopping = true;
	cr_assert_eq(wd_settle_unpark(&settler), 0);
	cr_expect_eq(rec.npub, 0);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_REQUEUE);
	cr_expect_eq(rec.tag[0], 25);
}

Test(settle, a_lost_connection_forgets_the_parked_and_starts_unblocked)
{
	wd_settle_block(&settler, true);
	cr_assert_eq(wd_settle(&settler, delivery(26, WD_ACTION_RETRY, 1)), 0);
	wd_settle_forget(&settler);
	cr_assert_eq(rec.n, 1);
	cr_expect_eq(rec.op[0], OP_FORGET);
	cr_expect_eq(settler.nparked, 0);
	cr_expect_not(settler.publish_blocked);
}

/* ---- a copy refused again and again: a growing hold, counted as attempts */

/* The hold of the (only) held delivery, as set just now. */
static int64_t held_for(void)
{
	cr_assert_eq(settler.nheld, 1);
	return settler.held[0]->due_ms - wd_now_ms();
}

Test(settle, the_hold_doubles_with_each_refusal_of_a_message)
{
	int64_t next = -1;

	for (int i = 0; i < 7; i++) {
		struct wd_delivery *d = delivery(50 + i, WD_ACTION_RETRY, 1);
		int64_t want = WD_REQUEUE_HOLD_MS << i;

		d->env.redelivered = i > 0;
		rec.publish_rc[i] = 1; /* refused: the queue is not there */
		cr_assert_eq(wd_settle(&settler, d), 0);
		if (want > WD_REQUEUE_HOLD_MAX_MS)
			want = WD_REQUEUE_HOLD_MAX_MS;
		int64_t ms = held_for();
		cr_expect(ms <= want && ms > want - 100,
		          "refusal %d: held %jd ms, want %jd", i + 1,
		          (intmax_t)ms, (intmax_t)want);
		settler.stopping = true; /* requeue it now */
		cr_assert_eq(wd_settle_requeue_due(&settler, 0, &next), 0);
		settler.stopping = false;
	}
	/* Another message starts at the first hold again. */
	struct wd_delivery *other = delivery(60, WD_ACTION_RETRY, 1);
	other->env.message.body = amqp_cstring_bytes("{\"other\":1}");
	rec.publish_rc[rec.npub] = 1;
	cr_assert_eq(wd_settle(&settler, other), 0);
	cr_expect_leq(held_for(), WD_REQUEUE_HOLD_MS);
}

Test(settle, refusals_count_as_attempts_until_the_dead_letter_queue)
{
	int64_t next = -1;

	/* max_attempts 3: refused on attempt 1, then on its redelivery. */
	for (int i = 0; i < 2; i++) {
		struct wd_delivery *d = delivery(70 + i, WD_ACTION_RETRY, 1);
		d->env.redelivered = i > 0;
		rec.publish_rc[i] = 1;
		cr_assert_eq(wd_settle(&settler, d), 0);
		cr_assert_eq(rec.npub, i + 1);
		/* The delay of its attempt, refusals counted. */
		cr_expect_str_eq(rec.pub[i].routing_key,
		                 i == 0 ? "orders.retry.1000"
		                        : "orders.retry.2000");
		settler.stopping = true;
		cr_assert_eq(wd_settle_requeue_due(&settler, 0, &next), 0);
		settler.stopping = false;
	}
	/* Back unchanged (attempt 1 by its headers), refused twice: its third
	 * attempt, the last: dead-lettered instead of looping. */
	struct wd_delivery *d = delivery(72, WD_ACTION_RETRY, 1);
	d->env.redelivered = true;
	uint64_t key = wd_refusal_key("orders", &d->env);
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 3);
	cr_expect_str_eq(rec.pub[2].exchange, "orders.dlx");
	cr_expect_str_eq(rec.pub[2].reason, WD_R_MAX_ATTEMPTS);
	cr_expect_eq(rec.pub[2].attempts, 3);
	confirm(d, true);
	cr_expect_eq(rec.op[rec.n - 1], OP_ACK);
	/* Confirmed: its refusals are forgotten. */
	cr_expect_eq(wd_refusals_get(key, 0), 0);
}

Test(settle, a_quorum_queue_counts_requeues_itself)
{
	int64_t next = -1;

	queue.quorum = true;
	struct wd_delivery *d = delivery(80, WD_ACTION_RETRY, 1);
	rec.publish_rc[0] = 1;
	cr_assert_eq(wd_settle(&settler, d), 0);
	settler.stopping = true;
	cr_assert_eq(wd_settle_requeue_due(&settler, 0, &next), 0);
	settler.stopping = false;
	/* Its x-delivery-count made this attempt 2; the refusal adds none. */
	d = delivery(81, WD_ACTION_RETRY, 2);
	d->env.redelivered = true;
	cr_assert_eq(wd_settle(&settler, d), 0);
	cr_assert_eq(rec.npub, 2);
	cr_expect_str_eq(rec.pub[1].routing_key, "orders.retry.2000");
	cr_expect_eq(rec.pub[1].attempts, 2);
}
