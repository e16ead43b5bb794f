/* consumers.c - a slot's consumers: open, change in place, drain, cancel;
 * and their acks on the wire. */
#include "slot/consumers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "broker/broker.h"
#include "conf/conf_diff.h"

static const char AREA[] = "conn";

/* The slot of a queue's nth consumer. From the queue's name, not its place
 * in the conf, so that a reload which adds or moves queues leaves the
 * others' consumers where they are. */
static int slot_of(const char *queue, int nth, int nslots)
{
	unsigned h = 2166136261u; /* FNV-1a */

	for (const unsigned char *s = (const unsigned char *)queue; *s; s++)
		h = (h ^ *s) * 16777619u;
	return (int)((h + (unsigned)nth) % (unsigned)nslots);
}

static const struct wd_conf_queue *queue_conf(const struct wd_consumer *k)
{
	return &k->gen->routes->conf->queues[k->queue];
}

/* Whether consumer k would be consumer `nth` of queue q of g unchanged. */
static bool same_consumer(const struct wd_consumer *k, const struct wd_gen *g,
                          size_t q, int nth)
{
	return k->nth == nth &&
	       wd_conf_same_consumer(k->gen->routes->conf, k->queue,
	                             g->routes->conf, q);
}

struct wd_consumer *wd_consumer_of(struct wd_consumers *cs, amqp_channel_t ch)
{
	for (size_t i = 0; i < cs->n; i++)
		if (cs->v[i].channel == ch)
			return &cs->v[i];
	return NULL;
}

void wd_consumers_closed(struct wd_consumers *cs, amqp_channel_t ch,
                         const amqp_channel_close_t *m)
{
	const struct wd_consumer *k = wd_consumer_of(cs, ch);
	const char *queue =
	    k ? k->gen->routes->conf->queues[k->queue].name : NULL;
	int len = (int)(m->reply_text.len > 512 ? 512 : m->reply_text.len);
	const char *text = (const char *)m->reply_text.bytes;

	if (!k ||
	    !wd_broker_is_consumer_timeout(m->reply_code, m->reply_text)) {
		wd_log_warnx(AREA,
		             "slot %d: the broker closed channel %u%s%s%s: "
		             "%.*s (%u)",
		             cs->slot, ch, queue ? " (queue \"" : "",
		             queue ? queue : "", queue ? "\")" : "", len, text,
		             m->reply_code);
		return;
	}
	wd_count(k->gen->routes->queue_series[k->queue]->consumer_timeouts);
	wd_metric_inc(consumer_timeouts);
	wd_log_error(AREA,
	             "slot %d: the broker closed channel %u (queue \"%s\"): a "
	             "delivery was not acked within the broker's "
	             "consumer_timeout: %.*s (%u). A handler ran longer than "
	             "that (see the handler_timeout_warn warnings before this "
	             "line): make it faster, or raise consumer_timeout in the "
	             "broker's rabbitmq.conf (ms; RabbitMQ 3.10 has no "
	             "per-queue setting, later versions take the queue "
	             "argument x-consumer-timeout or a consumer-timeout "
	             "policy). "
	             "Reconnecting: the channel's unacked deliveries come "
	             "again, a late handler's result is dropped",
	             cs->slot, ch, queue, len, text, m->reply_code);
}

/* ---- the prefetch gauge -------------------------------------------------- */

static void show_prefetch(struct wd_consumers *cs, struct wd_consumer *k,
                          int prefetch)
{
	struct wd_queue_series *s = k->gen->routes->queue_series[k->queue];

	if (cs->slot < 0 || cs->slot >= WD_SERIES_MAX_SLOTS)
		return;
	atomic_store_explicit(&s->prefetch[cs->slot], prefetch,
	                      memory_order_relaxed);
	atomic_store_explicit(&s->prefetch_auto[cs->slot], k->adaptive,
	                      memory_order_relaxed);
}

/* k goes: its gauge too, unless a consumer of the same queue that stays
 * (a reload's replacement) has taken it over. */
static void hide_prefetch(struct wd_consumers *cs, struct wd_consumer *k)
{
	const char *name = queue_conf(k)->name;

	for (size_t i = 0; i < cs->n; i++)
		if (&cs->v[i] != k && !cs->v[i].draining && cs->v[i].gen &&
		    strcmp(queue_conf(&cs->v[i])->name, name) == 0)
			return;
	show_prefetch(cs, k, 0);
}

void wd_consumer_set_window(struct wd_consumers *cs, struct wd_consumer *k,
                            int prefetch)
{
	int half = prefetch / 2 > 0 ? prefetch / 2 : 1;

	k->pf.value = prefetch;
	/* At most half the window, as wd_conf_ack_batch says why. */
	k->acks.batch = k->ack_cap < half ? k->ack_cap : half;
	show_prefetch(cs, k, prefetch);
}

/* The lowest consumer channel no consumer of this connection uses. */
static amqp_channel_t free_channel(struct wd_consumers *cs)
{
	amqp_channel_t ch = WD_CHANNEL_FIRST_CONSUMER;

	while (wd_consumer_of(cs, ch))
		ch++;
	return ch;
}

amqp_rpc_reply_t wd_consumer_start(amqp_connection_state_t amqp,
                                   struct wd_consumer *k, int prefetch)
{
	amqp_rpc_reply_t r;

	amqp_basic_qos(amqp, k->channel, 0, (uint16_t)prefetch, 0);
	r = amqp_get_rpc_reply(amqp);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		amqp_basic_consume_ok_t *ok = amqp_basic_consume(
		    amqp, k->channel, amqp_cstring_bytes(queue_conf(k)->name),
		    amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
		r = amqp_get_rpc_reply(amqp);
		if (ok)
			snprintf(k->tag, sizeof(k->tag), "%.*s",
			         (int)ok->consumer_tag.len,
			         (const char *)ok->consumer_tag.bytes);
	}
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		k->paused = false;
	return r;
}

amqp_rpc_reply_t wd_consumer_stop(amqp_connection_state_t amqp,
                                  struct wd_consumer *k)
{
	amqp_rpc_reply_t r;

	amqp_basic_cancel(amqp, k->channel, amqp_cstring_bytes(k->tag));
	r = amqp_get_rpc_reply(amqp);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		k->paused = true;
	return r;
}

/* Open channel, qos and consume for queue q of g as its nth consumer. */
static int add(struct wd_consumers *cs, amqp_connection_state_t amqp,
               struct wd_gen *g, size_t q, int nth, char *err, size_t errlen)
{
	const struct wd_conf *conf = g->routes->conf;
	const struct wd_conf_queue *qc = &conf->queues[q];
	struct wd_consumer *k, *v;
	amqp_rpc_reply_t r;
	char why[512];

	v = realloc(cs->v, (cs->n + 1) * sizeof(*v));
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	cs->v = v;
	k = &v[cs->n];
	memset(k, 0, sizeof(*k));
	k->queue = q;
	k->nth = nth;
	k->gen = g;
	k->channel = free_channel(cs);
	wd_acks_init(&k->acks, wd_conf_ack_batch(conf, qc),
	             conf->broker.ack_delay_ms);
	k->adaptive = qc->prefetch == WD_PREFETCH_AUTO;
	k->ack_cap = k->acks.batch;
	if (k->adaptive) {
		wd_prefetch_init(&k->pf, qc->prefetch_min, qc->prefetch_max,
		                 wd_now_us());
		wd_consumer_set_window(cs, k, k->pf.value);
	} else {
		show_prefetch(cs, k, qc->prefetch);
	}
	wd_gen_ref(g);
	cs->n++;
	if (wd_broker_channel_open(amqp, k->channel, err, errlen) < 0)
		return -1;
	r = wd_consumer_start(amqp, k,
	                      k->adaptive ? k->pf.value : qc->prefetch);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "%s:%d: cannot consume queue \"%s\": %s",
		         conf->file, qc->line, qc->name,
		         wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	if (k->adaptive)
		wd_log_info(AREA,
		            "slot %d: consuming queue \"%s\" (prefetch auto "
		            "%d..%d, from %d; channel %u)",
		            cs->slot, qc->name, k->pf.min, k->pf.max,
		            k->pf.value, k->channel);
	else
		wd_log_info(AREA,
		            "slot %d: consuming queue \"%s\" (prefetch %d, "
		            "channel %u)",
		            cs->slot, qc->name, qc->prefetch, k->channel);
	return 0;
}

/* What each_assigned() calls: for the connection `amqp` of cs. */
struct assigned {
	struct wd_consumers *cs;
	amqp_connection_state_t amqp;
};

/* Calls fn for each (queue, nth) that g assigns to this slot; stops at
 * the first non-zero return. */
static int each_assigned(const struct assigned *on, struct wd_gen *g,
                         int (*fn)(const struct assigned *, struct wd_gen *,
                                   size_t, int, void *),
                         void *arg)
{
	const struct wd_conf *conf = g->routes->conf;
	int rc;

	for (size_t q = 0; q < conf->nqueues; q++) {
		if (!conf->queues[q].consumed)
			continue;
		for (int n = 0; n < conf->queues[q].consumers; n++)
			if (slot_of(conf->queues[q].name, n, on->cs->nslots) ==
			        on->cs->slot &&
			    (rc = fn(on, g, q, n, arg)) != 0)
				return rc;
	}
	return 0;
}

struct open_arg {
	char *err;
	size_t errlen;
};

static int open_one(const struct assigned *on, struct wd_gen *g, size_t q,
                    int nth, void *arg)
{
	struct open_arg *a = arg;
	return add(on->cs, on->amqp, g, q, nth, a->err, a->errlen);
}

int wd_consumers_open(struct wd_consumers *cs, amqp_connection_state_t amqp,
                      char *err, size_t errlen)
{
	struct assigned on = {cs, amqp};
	struct open_arg a = {err, errlen};
	struct wd_gen *g = cs->gen;

	cs->gen = NULL; /* kept across the clear */
	wd_consumers_clear(cs);
	cs->gen = g;
	return each_assigned(&on, g, open_one, &a);
}

static void forget(struct wd_consumer *k)
{
	wd_acks_free(&k->acks);
	wd_gen_unref(k->gen);
	k->gen = NULL;
}

/* Stop consumer k; its channel stays open until what it delivered is
 * settled (wd_consumers_close_drained). */
static int cancel(struct wd_consumers *cs, amqp_connection_state_t amqp,
                  struct wd_consumer *k)
{
	amqp_rpc_reply_t r;
	char why[256];

	/* A paused one (prefetch_qos.c) is cancelled already. */
	if (k->paused) {
		k->draining = true;
		return 0;
	}
	r = wd_consumer_stop(amqp, k);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		wd_log_warnx(AREA,
		             "slot %d: cannot cancel consumer of queue "
		             "\"%s\" on channel %u: %s",
		             cs->slot, queue_conf(k)->name, k->channel,
		             wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	k->draining = true;
	return 0;
}

/* A consumer of the new generation that no kept consumer stands for. */
static int add_missing(const struct assigned *on, struct wd_gen *g, size_t q,
                       int nth, void *arg)
{
	struct wd_consumers *cs = on->cs;
	char err[1024];

	(void)arg;
	for (size_t i = 0; i < cs->n; i++) {
		struct wd_consumer *k = &cs->v[i];
		if (!k->draining && k->gen == g && k->queue == q &&
		    k->nth == nth)
			return 0;
	}
	if (add(cs, on->amqp, g, q, nth, err, sizeof(err)) < 0) {
		wd_log_warnx(AREA, "slot %d: %s", cs->slot, err);
		return -1;
	}
	return 0;
}

/* Whether the new generation g assigns queue q as its nth consumer here,
 * unchanged from consumer k. */
struct keep_arg {
	const struct wd_consumer *k;
	size_t q; /* out: the queue's index in g */
};

static int find_same(const struct assigned *on, struct wd_gen *g, size_t q,
                     int nth, void *arg)
{
	struct keep_arg *a = arg;

	(void)on;
	if (!same_consumer(a->k, g, q, nth))
		return 0;
	a->q = q;
	return 1;
}

int wd_consumers_update(struct wd_consumers *cs, amqp_connection_state_t amqp,
                        struct wd_gen *g)
{
	struct assigned on = {cs, amqp};
	struct wd_gen *old = cs->gen;

	/* Kept consumers move over to g: what they deliver from now on is
	 * parsed under it. The others stop. */
	for (size_t i = 0; i < cs->n; i++) {
		struct wd_consumer *k = &cs->v[i];
		struct keep_arg a = {k, 0};

		if (k->draining)
			continue;
		if (each_assigned(&on, g, find_same, &a) == 1) {
			wd_gen_ref(g);
			wd_gen_unref(k->gen);
			k->gen = g;
			k->queue = a.q;
			continue;
		}
		if (cancel(cs, amqp, k) < 0)
			goto fail;
		cs->ndraining++;
		wd_log_info(AREA,
		            "slot %d: stopped consuming queue \"%s\" "
		            "(channel %u) for generation %ju; it closes once "
		            "what it delivered is settled",
		            cs->slot, queue_conf(k)->name, k->channel,
		            (uintmax_t)g->number);
	}
	cs->gen = g;
	wd_gen_unref(old);
	return each_assigned(&on, g, add_missing, NULL) != 0 ? -1 : 0;
fail:
	cs->gen = g;
	wd_gen_unref(old);
	return -1;
}

int wd_consumers_close_drained(struct wd_consumers *cs,
                               amqp_connection_state_t amqp)
{
	char err[512];

	/* Frames already read may hold deliveries of a draining consumer:
	 * they are seen first. */
	if (cs->ndraining == 0 || amqp_frames_enqueued(amqp))
		return 0;
	for (size_t i = 0; i < cs->n;) {
		struct wd_consumer *k = &cs->v[i];
		amqp_rpc_reply_t r;

		if (!k->draining || !wd_acks_idle(&k->acks)) {
			i++;
			continue;
		}
		r = amqp_channel_close(amqp, k->channel, AMQP_REPLY_SUCCESS);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			wd_log_warnx(AREA,
			             "slot %d: cannot close channel %u: %s",
			             cs->slot, k->channel,
			             wd_broker_reply_str(r, err, sizeof(err)));
			return -1;
		}
		wd_log_info(AREA,
		            "slot %d: channel %u of queue \"%s\" closed: "
		            "everything it delivered is settled",
		            cs->slot, k->channel, queue_conf(k)->name);
		hide_prefetch(cs, k);
		forget(k);
		cs->v[i] = cs->v[--cs->n];
		cs->ndraining--;
	}
	return 0;
}

int wd_consumers_cancel(struct wd_consumers *cs, amqp_connection_state_t amqp)
{
	for (size_t i = 0; i < cs->n; i++) {
		struct wd_consumer *k = &cs->v[i];
		if (k->draining)
			continue;
		if (cancel(cs, amqp, k) < 0)
			return -1;
	}
	return 0;
}

void wd_consumers_clear(struct wd_consumers *cs)
{
	for (size_t i = 0; i < cs->n; i++) {
		if (cs->v[i].gen)
			show_prefetch(cs, &cs->v[i], 0);
		forget(&cs->v[i]);
	}
	free(cs->v);
	cs->v = NULL;
	cs->n = 0;
	cs->ndraining = 0;
	if (cs->gen)
		wd_gen_unref(cs->gen);
	cs->gen = NULL;
}

/* ---- acks -------------------------------------------------------------- */

struct ack_target {
	const struct wd_consumers *cs;
	amqp_connection_state_t amqp;
	amqp_channel_t ch;
};

static int ack_frame(void *arg, uint64_t tag, bool multiple)
{
	struct ack_target *t = arg;

	if (amqp_basic_ack(t->amqp, t->ch, tag, multiple) != AMQP_STATUS_OK)
		return -1;
	wd_metric_inc(ack_frames);
	wd_log_debug(AREA, "slot %d: ack sent: tag %ju%s on channel %u",
	             t->cs->slot, (uintmax_t)tag, multiple ? " and below" : "",
	             t->ch);
	return 0;
}

int wd_consumer_flush_acks(struct wd_consumers *cs, struct wd_consumer *k,
                           amqp_connection_state_t amqp, int64_t now_ms,
                           bool all)
{
	struct ack_target t = {cs, amqp, k->channel};

	return wd_acks_flush(&k->acks, now_ms, all, ack_frame, &t) < 0 ? -1 : 0;
}

int wd_consumers_flush_due(struct wd_consumers *cs,
                           amqp_connection_state_t amqp, int64_t now_ms,
                           bool all, int64_t *next_due_ms)
{
	int64_t ignore = -1;

	for (size_t i = 0; i < cs->n; i++) {
		struct wd_consumer *k = &cs->v[i];
		if ((all || wd_acks_due(&k->acks, now_ms,
		                        next_due_ms ? next_due_ms : &ignore)) &&
		    wd_consumer_flush_acks(cs, k, amqp, now_ms, all) < 0)
			return -1;
	}
	return 0;
}
