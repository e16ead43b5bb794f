/* conn.c - a pool slot's connection and its deliveries: allocated and
 * parsed here, run by a worker, given back, settled through the
 * operations below on the live connection; open, drop, read. */
#include "slot/conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "broker/topology.h"
#include "host/targets.h"

static const char AREA[] = "conn";

void wd_conn_wake(struct wd_conn *c)
{
	uint64_t one = 1;
	ssize_t w = write(c->wakefd, &one, sizeof(one));
	(void)w; /* EAGAIN: the counter is already non-zero, it will wake */
}

/* ---- the worker's side ------------------------------------------------ */

/* A call of a route with a concurrency limit is over: its place goes to
 * the route's oldest parked delivery (of whichever slot), which goes to
 * the workers' queue now. */
static void pass_place(struct wd_gate *gate)
{
	struct wd_task *t = wd_gate_leave(gate);
	struct wd_delivery *next = (struct wd_delivery *)t;

	if (!next)
		return;
	wd_delivery_leave(next, WD_INFLIGHT_WAITING_CONCURRENCY);
	wd_delivery_enter(next, WD_INFLIGHT_WAITING_WORKER);
	wd_workers_submit(next->conn->env->workers, t, t, 1);
}

static void run_delivery(struct wd_task *t)
{
	struct wd_delivery *d = (struct wd_delivery *)t;

	/* A delivery of a connection that is gone will be redelivered: do not
	 * run its handler now, the redelivery will. */
	wd_delivery_leave(d, WD_INFLIGHT_WAITING_WORKER);
	if (wd_delivery_live(d)) {
		struct wd_log_subject about;
		wd_delivery_subject(d, d->conn->id, &about);
		wd_log_about(&about);
		wd_delivery_enter(d, WD_INFLIGHT_IN_HANDLER);
		wd_workers_busy(d->conn, d, 1); /* for wd_delivery_watch */
		wd_dispatch_run(&d->parsed, &d->verdict);
		wd_workers_idle();
		wd_delivery_leave(d, WD_INFLIGHT_IN_HANDLER);
		wd_log_about(NULL);
	}
	if (d->gate)
		pass_place(d->gate);
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
		atomic_store(&c->wake_due,
		             true); /* seq_cst: pairs with the loop */
	pthread_mutex_unlock(&c->lock);
	/* A busy connection thread finds the list on its next turn; a
	 * sleeping one needs one wake-up (the exchange makes it one), and
	 * only once the list is worth it: until then its timer comes back
	 * for plain acks within ack_delay_ms. Pairs with the
	 * store-then-check before the loop's poll(). */
	if (wake && atomic_exchange(&c->sleeping, false))
		wd_conn_wake(c);
}

/* ---- deliveries ---------------------------------------------------------- */

/* Deliveries are allocated and freed on their connection's thread only,
 * so a few spares are kept for the next ones: at some 2 KiB each they are
 * past malloc's per-thread cache, and the heap's locked path showed in
 * profiles. */
#define SPARE_MAX 256

void wd_conn_trim_spares(struct wd_conn *c, size_t keep)
{
	while (c->nspare > keep) {
		struct wd_task *t = c->spare;
		c->spare = t->next;
		c->nspare--;
		free(t);
	}
}

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

void wd_conn_forget(struct wd_delivery *d)
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
	memset(&d->stage, 0, sizeof(*d) - offsetof(struct wd_delivery, stage));
	d->parsed.json = NULL;
	wd_verdict_init(&d->verdict);
	return d;
}

/* ---- settling on the live connection (settle.h) -------------------------- */

/* Done: ack (coalesced) and free. A full ack batch is flushed once the
 * pass over finished deliveries is over (the loop's flush_full_acks), so
 * that what one pass settles -- a whole handler batch, say -- goes out
 * together. */
static int ack_op(void *arg, struct wd_delivery *d)
{
	struct wd_conn *c = arg;
	struct wd_consumer *k = wd_consumer_of(&c->consumers, d->env.channel);
	uint64_t tag = d->env.delivery_tag;
	/* Its wait for the ack batch began when its handler returned,
	 * which may be a little before this thread came round to it. */
	int64_t since = d->done_ms ? d->done_ms : c->now_ms;

	if (k) {
		k->unsettled--;
		if (k->adaptive)
			wd_prefetch_note(&k->pf, d->read_us,
			                 d->verdict.started_us,
			                 d->verdict.handler_us);
	}
	wd_conn_forget(d);
	c->inflight--;
	if (k && wd_acks_queue(&k->acks, tag, since)) {
		if (k->acks.batch == 1) /* ack_batch = 1: at once */
			return wd_consumer_flush_acks(&c->consumers, k, c->amqp,
			                              c->now_ms, true);
		c->acks_full = true;
	}
	return 0;
}

/* Give it back to the broker unacked (requeue) and free it. */
static int requeue_op(void *arg, struct wd_delivery *d)
{
	struct wd_conn *c = arg;
	struct wd_consumer *k = wd_consumer_of(&c->consumers, d->env.channel);
	int rc =
	    amqp_basic_nack(c->amqp, d->env.channel, d->env.delivery_tag, 0, 1);

	if (k) {
		wd_acks_settled(&k->acks, d->env.delivery_tag);
		k->unsettled--;
		if (k->adaptive)
			wd_prefetch_note(&k->pf, d->read_us,
			                 d->verdict.started_us,
			                 d->verdict.handler_us);
	}
	wd_conn_forget(d);
	c->inflight--;
	return rc == AMQP_STATUS_OK ? 0 : -1;
}

static int publish_op(void *arg, struct wd_delivery *d, amqp_bytes_t exchange,
                      amqp_bytes_t routing_key,
                      const amqp_basic_properties_t *props, amqp_bytes_t body,
                      char *why, size_t whylen)
{
	struct wd_conn *c = arg;

	return wd_pub_send(&c->pub, d, exchange, routing_key, props, body,
	                   wd_now_ms(), why, whylen);
}

static void forget_op(void *arg, struct wd_delivery *d)
{
	(void)arg;
	wd_conn_forget(d);
}

static const struct wd_settle_ops settle_ops = {
    .ack = ack_op,
    .requeue = requeue_op,
    .publish = publish_op,
    .forget = forget_op,
};

/* The publisher's callback, from inside wd_pub_confirm(): only count here;
 * the loop settles the delivery once all its confirms are in. */
static void on_confirm(void *owner, bool ok, const char *why)
{
	struct wd_delivery *d = owner;

	wd_settle_confirmed(&d->conn->settler, d, ok, why);
}

/* ---- opening and dropping ------------------------------------------------ */

int wd_conn_init(struct wd_conn *c, int id, const struct wd_slot_env *env,
                 char *err, size_t errlen)
{
	memset(c, 0, sizeof(*c));
	c->id = id;
	c->env = env;
	c->wakefd = -1;
	pthread_mutex_init(&c->lock, NULL);
	c->series = &env->series[id];
	c->consumers.slot = id;
	c->consumers.nslots = env->nslots;
	wd_settle_init(&c->settler, &settle_ops, c, id,
	               (unsigned)getpid() ^ (unsigned)(id * 2654435761u) ^
	                   (unsigned)wd_now_ms());
	c->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (c->wakefd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		pthread_mutex_destroy(
		    &c->lock); /* the pool frees only the rest */
		return -1;
	}
	return 0;
}

void wd_conn_know_exchanges(struct wd_conn *c)
{
	const struct wd_conf *conf = c->consumers.gen->routes->conf;

	for (size_t i = 0; i < conf->nexchanges; i++)
		wd_pub_known(&c->pub, conf->exchanges[i].name);
}

/* One address: connect both, declare, set up publishing, consume. */
static int open_at(struct wd_conn *c, size_t addr, char *err, size_t errlen,
                   bool *outage)
{
	const struct wd_slot_env *env = c->env;
	struct wd_gen *g = wd_gen_slot_get(env->current);
	char name[64];

	/* A failed attempt clears the consumers, and their reference. */
	if (c->consumers.gen)
		wd_gen_unref(c->consumers.gen);
	c->consumers.gen = g;
	snprintf(name, sizeof(name), "warrend pid %d slot %d", (int)getpid(),
	         c->id);
	c->amqp =
	    wd_broker_connect(env->broker, addr, name, err, errlen, outage);
	if (!c->amqp)
		return -1;
	snprintf(name, sizeof(name), "warrend pid %d slot %d publish",
	         (int)getpid(), c->id);
	c->pub_amqp =
	    wd_broker_connect(env->broker, addr, name, err, errlen, outage);
	if (!c->pub_amqp)
		goto fail;
	if (wd_broker_channel_open(c->amqp, WD_CHANNEL_DECLARE, err, errlen) <
	        0 ||
	    wd_topology_declare(c->amqp, WD_CHANNEL_DECLARE, g->routes->conf,
	                        err, errlen) < 0 ||
	    (c->check_targets &&
	     wd_targets_check_broker(g->routes, c->amqp, WD_CHANNEL_DECLARE,
	                             err, errlen) < 0) ||
	    wd_broker_channel_open(c->pub_amqp, WD_CHANNEL_PUBLISH, err,
	                           errlen) < 0 ||
	    wd_pub_open(&c->pub, c->pub_amqp, WD_CHANNEL_PUBLISH,
	                WD_CHANNEL_PROBE, on_confirm,
	                env->publish_timeout * 1000, err, errlen) < 0)
		goto fail;
	wd_conn_know_exchanges(c);
	if (wd_consumers_open(&c->consumers, c->amqp, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	wd_consumers_clear(&c->consumers);
	wd_pub_reset(&c->pub);
	amqp_destroy_connection(c->amqp);
	if (c->pub_amqp)
		amqp_destroy_connection(c->pub_amqp);
	c->amqp = c->pub_amqp = NULL;
	return -1;
}

int wd_conn_open(struct wd_conn *c, char *err, size_t errlen)
{
	const struct wd_broker *b = c->env->broker;
	bool all_outage = true;

	for (size_t i = 0; i < b->naddrs; i++) {
		unsigned k = c->addr_k + (unsigned)i;
		size_t addr = wd_broker_addr_at(b, c->id, k);
		bool outage = false;

		if (open_at(c, addr, err, errlen, &outage) == 0) {
			c->addr = addr;
			c->addr_k = k + 1; /* after a loss: the next one */
			c->open_outage = false;
			c->cancelled = false;
			c->settler.stopping = false;
			atomic_store_explicit(&c->series->node, (int)addr,
			                      memory_order_relaxed);
			wd_slot_set(c->series, WD_SLOT_CONSUMING);
			c->last_rx_ms = c->pub_read_ms = wd_now_ms();
			c->pub_readable = false;
			c->blocked_since_ms = 0;
			wd_metric_inc(connections_opened);
			wd_log_info(AREA, "slot %d: consuming on %s", c->id,
			            b->addrs[addr].redacted);
			return 0;
		}
		all_outage = all_outage && outage;
		if (i + 1 < b->naddrs)
			wd_log_warnx(AREA,
			             "slot %d: %s; trying the next address",
			             c->id, err);
	}
	c->open_outage = all_outage;
	return -1;
}

/* Everything the thread owns that belongs to the connection: freed, not
 * settled (the broker redelivers every unacked delivery). */
static void forget_owned(struct wd_conn *c)
{
	wd_pub_reset(&c->pub);
	wd_settle_forget(&c->settler);
}

void wd_conn_drop(struct wd_conn *c, bool polite)
{
	atomic_fetch_add(&c->epoch, 1);
	atomic_store_explicit(&c->series->node, -1, memory_order_relaxed);
	bool blocked = c->blocked_since_ms != 0;

	c->inflight = 0;
	wd_conn_unblocked(c, wd_now_ms(), false);
	forget_owned(c);
	if (polite) {
		wd_broker_close(c->amqp);
		/* The broker does not read a blocked connection: its close
		 * would wait out the RPC timeout. */
		if (blocked)
			amqp_destroy_connection(c->pub_amqp);
		else
			wd_broker_close(c->pub_amqp);
	} else {
		amqp_destroy_connection(c->amqp);
		amqp_destroy_connection(c->pub_amqp);
	}
	c->amqp = c->pub_amqp = NULL;
}

void wd_conn_free(struct wd_conn *c)
{
	struct wd_delivery *d, *next;

	forget_owned(c);
	/* Deliveries a worker handed back after the thread ended (a batch
	 * flushed at stop whose connection had dropped). */
	for (d = c->done_head; d; d = next) {
		next = (struct wd_delivery *)d->task.next;
		wd_conn_forget(d);
	}
	c->done_head = c->done_tail = NULL;
	wd_conn_trim_spares(c, 0);
	wd_consumers_clear(&c->consumers); /* and its generation reference */
	wd_settle_free(&c->settler);
	if (c->amqp)
		amqp_destroy_connection(c->amqp);
	if (c->pub_amqp)
		amqp_destroy_connection(c->pub_amqp);
	c->amqp = c->pub_amqp = NULL;
	if (c->wakefd >= 0)
		close(c->wakefd);
	c->wakefd = -1;
	pthread_mutex_destroy(&c->lock);
}

/* ---- reading ------------------------------------------------------------- */

/* ---- blocked publishing ------------------------------------------------ */

static void blocked(struct wd_conn *c, amqp_bytes_t reason)
{
	if (c->blocked_since_ms)
		return;
	c->blocked_since_ms = wd_now_ms();
	wd_metric_inc(publish_blocks);
	wd_settle_block(&c->settler, true);
	wd_slot_set(c->series, WD_SLOT_BLOCKED);
	wd_log_warnx(AREA,
	             "slot %d: the broker blocked publishing (%.*s): consuming "
	             "and acking go on; deliveries that need a publish wait, "
	             "unacked, without a confirm timeout",
	             c->id, (int)(reason.len > 200 ? 200 : reason.len),
	             (const char *)reason.bytes);
}

void wd_conn_unblocked(struct wd_conn *c, int64_t now, bool told)
{
	int64_t ms;

	if (!c->blocked_since_ms)
		return;
	ms = now - c->blocked_since_ms;
	c->blocked_since_ms = 0;
	wd_metric_add(publish_blocked_ms, (uint64_t)(ms > 0 ? ms : 0));
	wd_pub_pause(&c->pub, ms);
	wd_settle_block(&c->settler, false);
	if (!told)
		return;
	wd_slot_set(c->series,
	            c->cancelled ? WD_SLOT_STOPPING : WD_SLOT_CONSUMING);
	wd_log_info(AREA,
	            "slot %d: the broker unblocked publishing after %jd ms; "
	            "%zu deliveries waited for it",
	            c->id, (intmax_t)ms, c->settler.nparked);
}

/* ---- reading ------------------------------------------------------------- */

static int closed(struct wd_conn *c, amqp_connection_state_t conn,
                  const char *which, amqp_channel_t ch, uint16_t code,
                  amqp_bytes_t text, bool channel)
{
	if (channel) {
		amqp_channel_close_ok_t ok;
		wd_log_warnx(AREA,
		             "slot %d: the broker closed channel %u of the %s "
		             "connection: %.*s (%u)",
		             c->id, ch, which, (int)text.len,
		             (const char *)text.bytes, code);
		amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
	} else {
		amqp_connection_close_ok_t ok;
		wd_log_warnx(AREA,
		             "slot %d: the broker closed the %s connection: "
		             "%.*s (%u)",
		             c->id, which, (int)text.len,
		             (const char *)text.bytes, code);
		amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
	}
	/* Reconnect: consumers, tags and confirms are reset together, and
	 * whatever was not acked comes back. */
	return -1;
}

/* A method other than a delivery, on either connection (pub: the
 * publishing one): confirms, returns, closes, cancels, flow control.
 * Returns 0 to go on, -1 if the connections must be dropped. */
static int handle_frame(struct wd_conn *c, bool pub, amqp_frame_t *f)
{
	amqp_connection_state_t conn = pub ? c->pub_amqp : c->amqp;
	const char *which = pub ? "publishing" : "consuming";

	if (f->frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f->payload.method.id) {
	case AMQP_BASIC_ACK_METHOD: {
		amqp_basic_ack_t *m = f->payload.method.decoded;
		if (pub)
			wd_pub_confirm(&c->pub, m->delivery_tag, m->multiple,
			               true);
		return 0;
	}
	case AMQP_BASIC_NACK_METHOD: {
		amqp_basic_nack_t *m = f->payload.method.decoded;
		if (pub)
			wd_pub_confirm(&c->pub, m->delivery_tag, m->multiple,
			               false);
		return 0;
	}
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_basic_return_t *m = f->payload.method.decoded;
		amqp_message_t msg;
		/* Before reading the content: m lives in the same pool. */
		if (pub)
			wd_pub_returned(&c->pub, m->exchange, m->routing_key,
			                m->reply_code, m->reply_text);
		if (amqp_read_message(conn, f->channel, &msg, 0).reply_type !=
		    AMQP_RESPONSE_NORMAL)
			return -1;
		amqp_destroy_message(&msg);
		return 0;
	}
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *m = f->payload.method.decoded;
		return closed(c, conn, which, 0, m->reply_code, m->reply_text,
		              false);
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f->payload.method.decoded;
		if (pub)
			return closed(c, conn, which, f->channel, m->reply_code,
			              m->reply_text, true);
		/* A consumer's channel: the line names its queue, and
		 * explains a consumer_timeout. */
		amqp_channel_close_ok_t ok;
		wd_consumers_closed(&c->consumers, f->channel, m);
		amqp_send_method(conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD,
		                 &ok);
		return -1;
	}
	case AMQP_BASIC_CANCEL_METHOD:
		wd_log_warnx(AREA,
		             "slot %d: the broker cancelled the consumer "
		             "on channel %u (queue deleted?): reconnecting",
		             c->id, f->channel);
		return -1;
	case AMQP_CONNECTION_BLOCKED_METHOD:
		/* Only a connection that publishes is held back. */
		if (pub) {
			amqp_connection_blocked_t *m =
			    f->payload.method.decoded;
			blocked(c, m->reason);
		}
		return 0;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		if (pub)
			wd_conn_unblocked(c, wd_now_ms(), true);
		return 0;
	default:
		wd_log_debug(
		    AREA,
		    "slot %d: ignored method 0x%08x on channel %u of the "
		    "%s connection",
		    c->id, f->payload.method.id, f->channel, which);
		return 0;
	}
}

int wd_conn_read_pub(struct wd_conn *c)
{
	struct timeval zero = {0, 0};
	amqp_frame_t f;
	int rc;

	c->pub_readable = false;
	c->pub_read_ms = c->now_ms;
	for (;;) {
		amqp_maybe_release_buffers(c->pub_amqp);
		rc = amqp_simple_wait_frame_noblock(c->pub_amqp, &f, &zero);
		if (rc == AMQP_STATUS_TIMEOUT)
			return 0;
		if (rc != AMQP_STATUS_OK) {
			wd_log_warnx(AREA,
			             "slot %d: publishing connection lost: %s",
			             c->id, amqp_error_string2(rc));
			return -1;
		}
		if (handle_frame(c, true, &f) < 0)
			return -1;
	}
}

int wd_conn_read(struct wd_conn *c, struct wd_delivery **out)
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
		d->conn_epoch = &c->epoch;
		d->epoch = atomic_load(&c->epoch);
		k = wd_consumer_of(&c->consumers, d->env.channel);
		if (!k || wd_acks_seen(&k->acks, d->env.delivery_tag) < 0) {
			wd_log_error(AREA,
			             "slot %d: delivery on unknown channel "
			             "%u (or out of memory)",
			             c->id, d->env.channel);
			wd_conn_forget(d);
			return -1;
		}
		d->queue = k->queue;
		d->read_us = c->now_us;
		k->unsettled++;
		d->gen = k->gen;
		wd_gen_ref(d->gen);
		/* The one parse of the body, here: bounded work, and it
		 * keeps this thread busy rather than waking per message. */
		struct wd_log_subject about;
		wd_delivery_subject(d, c->id, &about);
		wd_log_about(&about);
		if (wd_dispatch_parse(d->gen->routes, d->queue, &d->env,
		                      &d->parsed, &d->verdict) < 0)
			d->task.run = NULL; /* no handler: settle here */
		wd_log_about(NULL);
		*out = d;
		return 1;
	}
	release(c, d); /* nothing was read into it */
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		if (r.library_error == AMQP_STATUS_TIMEOUT)
			return 0;
		if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			amqp_frame_t f;
			if (amqp_simple_wait_frame(c->amqp, &f) !=
			    AMQP_STATUS_OK)
				return -1;
			return handle_frame(c, false, &f);
		}
		wd_log_warnx(AREA, "slot %d: connection lost: %s", c->id,
		             amqp_error_string2(r.library_error));
	}
	return -1;
}
