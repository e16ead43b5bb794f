/* consumers.c - a slot's consumers: open, change in place, drain, cancel. */
#include "slot/consumers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/broker.h"
#include "slot/conn.h"
#include "base/log.h"
#include "slot/pool.h"

static const char AREA[] = "conn";

/* Acks coalesced per frame: ack_batch, but at most half the prefetch
 * window, so the broker always has credit to send the next deliveries
 * while the first half's acks are on their way (waiting for a full
 * window would stall the consumer until the time bound). */
static int ack_batch(const struct wd_conf *conf, const struct wd_conf_queue *q)
{
	int half = q->prefetch / 2 > 0 ? q->prefetch / 2 : 1;
	return conf->broker.ack_batch < half ? conf->broker.ack_batch : half;
}

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
	const struct wd_conf *conf = g->routes->conf;
	const struct wd_conf_queue *a = queue_conf(k), *b = &conf->queues[q];

	return k->nth == nth && strcmp(a->name, b->name) == 0 &&
	       a->prefetch == b->prefetch &&
	       k->acks.batch == ack_batch(conf, b) &&
	       k->acks.delay_ms == conf->broker.ack_delay_ms;
}

struct wd_consumer *wd_consumer_of(struct wd_conn *c, amqp_channel_t ch)
{
	for (size_t i = 0; i < c->nconsumers; i++)
		if (c->consumers[i].channel == ch)
			return &c->consumers[i];
	return NULL;
}

/* The lowest consumer channel no consumer of this connection uses. */
static amqp_channel_t free_channel(struct wd_conn *c)
{
	amqp_channel_t ch = WD_CHANNEL_FIRST_CONSUMER;

	while (wd_consumer_of(c, ch))
		ch++;
	return ch;
}

/* Open channel, qos and consume for queue q of g as its nth consumer. */
static int add(struct wd_conn *c, struct wd_gen *g, size_t q, int nth,
               char *err, size_t errlen)
{
	const struct wd_conf *conf = g->routes->conf;
	const struct wd_conf_queue *qc = &conf->queues[q];
	struct wd_consumer *k, *cs;
	amqp_rpc_reply_t r;
	char why[512];

	cs = realloc(c->consumers, (c->nconsumers + 1) * sizeof(*cs));
	if (!cs) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->consumers = cs;
	k = &cs[c->nconsumers];
	memset(k, 0, sizeof(*k));
	k->queue = q;
	k->nth = nth;
	k->gen = g;
	k->channel = free_channel(c);
	wd_acks_init(&k->acks, ack_batch(conf, qc), conf->broker.ack_delay_ms);
	wd_gen_ref(g);
	c->nconsumers++;
	if (wd_broker_channel_open(c->amqp, k->channel, err, errlen) < 0)
		return -1;
	amqp_basic_qos(c->amqp, k->channel, 0, (uint16_t)qc->prefetch, 0);
	r = amqp_get_rpc_reply(c->amqp);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		amqp_basic_consume_ok_t *ok = amqp_basic_consume(
		    c->amqp, k->channel, amqp_cstring_bytes(qc->name),
		    amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
		r = amqp_get_rpc_reply(c->amqp);
		if (ok)
			snprintf(k->tag, sizeof(k->tag), "%.*s",
			         (int)ok->consumer_tag.len,
			         (const char *)ok->consumer_tag.bytes);
	}
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "%s:%d: cannot consume queue \"%s\": %s",
		         conf->file, qc->line, qc->name,
		         wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	wd_log_info(AREA, "slot %d: consuming queue \"%s\" (prefetch %d, "
	            "channel %u)", c->id, qc->name, qc->prefetch, k->channel);
	return 0;
}

/* Calls fn for each (queue, nth) that g assigns to this slot; stops at
 * the first non-zero return. */
static int each_assigned(struct wd_conn *c, struct wd_gen *g,
                         int (*fn)(struct wd_conn *, struct wd_gen *, size_t,
                                   int, void *),
                         void *arg)
{
	const struct wd_conf *conf = g->routes->conf;
	int rc;

	for (size_t q = 0; q < conf->nqueues; q++) {
		if (!conf->queues[q].consumed)
			continue;
		for (int n = 0; n < conf->queues[q].consumers; n++)
			if (slot_of(conf->queues[q].name, n, c->pool->nconns) ==
			        c->id &&
			    (rc = fn(c, g, q, n, arg)) != 0)
				return rc;
	}
	return 0;
}

struct open_arg {
	char *err;
	size_t errlen;
};

static int open_one(struct wd_conn *c, struct wd_gen *g, size_t q, int nth,
                    void *arg)
{
	struct open_arg *a = arg;
	return add(c, g, q, nth, a->err, a->errlen);
}

int wd_consumers_open(struct wd_conn *c, char *err, size_t errlen)
{
	struct open_arg a = {err, errlen};

	wd_consumers_clear(c);
	return each_assigned(c, c->gen, open_one, &a);
}

static void forget(struct wd_consumer *k)
{
	wd_acks_free(&k->acks);
	wd_gen_unref(k->gen);
	k->gen = NULL;
}

/* Stop consumer k; its channel stays open until what it delivered is
 * settled (wd_consumers_close_drained). */
static int cancel(struct wd_conn *c, struct wd_consumer *k)
{
	amqp_rpc_reply_t r;
	char why[256];

	amqp_basic_cancel(c->amqp, k->channel, amqp_cstring_bytes(k->tag));
	r = amqp_get_rpc_reply(c->amqp);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		wd_log_warnx(AREA, "slot %d: cannot cancel consumer of queue "
		             "\"%s\" on channel %u: %s", c->id,
		             queue_conf(k)->name, k->channel,
		             wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	k->draining = true;
	return 0;
}

/* A consumer of the new generation that no kept consumer stands for. */
static int add_missing(struct wd_conn *c, struct wd_gen *g, size_t q, int nth,
                       void *arg)
{
	char err[1024];

	(void)arg;
	for (size_t i = 0; i < c->nconsumers; i++) {
		struct wd_consumer *k = &c->consumers[i];
		if (!k->draining && k->gen == g && k->queue == q && k->nth == nth)
			return 0;
	}
	if (add(c, g, q, nth, err, sizeof(err)) < 0) {
		wd_log_warnx(AREA, "slot %d: %s", c->id, err);
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

static int find_same(struct wd_conn *c, struct wd_gen *g, size_t q, int nth,
                     void *arg)
{
	struct keep_arg *a = arg;

	(void)c;
	if (!same_consumer(a->k, g, q, nth))
		return 0;
	a->q = q;
	return 1;
}

int wd_consumers_update(struct wd_conn *c, struct wd_gen *g)
{
	struct wd_gen *old = c->gen;

	/* Kept consumers move over to g: what they deliver from now on is
	 * parsed under it. The others stop. */
	for (size_t i = 0; i < c->nconsumers; i++) {
		struct wd_consumer *k = &c->consumers[i];
		struct keep_arg a = {k, 0};

		if (k->draining)
			continue;
		if (each_assigned(c, g, find_same, &a) == 1) {
			wd_gen_ref(g);
			wd_gen_unref(k->gen);
			k->gen = g;
			k->queue = a.q;
			continue;
		}
		if (cancel(c, k) < 0)
			goto fail;
		c->ndraining++;
		wd_log_info(AREA, "slot %d: stopped consuming queue \"%s\" "
		            "(channel %u) for generation %ju; it closes once "
		            "what it delivered is settled", c->id,
		            queue_conf(k)->name, k->channel,
		            (uintmax_t)g->number);
	}
	c->gen = g;
	wd_gen_unref(old);
	return each_assigned(c, g, add_missing, NULL) != 0 ? -1 : 0;
fail:
	c->gen = g;
	wd_gen_unref(old);
	return -1;
}

int wd_consumers_close_drained(struct wd_conn *c)
{
	char err[512];

	/* Frames already read may hold deliveries of a draining consumer:
	 * they are seen first. */
	if (c->ndraining == 0 || amqp_frames_enqueued(c->amqp))
		return 0;
	for (size_t i = 0; i < c->nconsumers;) {
		struct wd_consumer *k = &c->consumers[i];
		amqp_rpc_reply_t r;

		if (!k->draining || !wd_acks_idle(&k->acks)) {
			i++;
			continue;
		}
		r = amqp_channel_close(c->amqp, k->channel, AMQP_REPLY_SUCCESS);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			wd_log_warnx(AREA, "slot %d: cannot close channel %u: %s",
			             c->id, k->channel,
			             wd_broker_reply_str(r, err, sizeof(err)));
			return -1;
		}
		wd_log_info(AREA, "slot %d: channel %u of queue \"%s\" closed: "
		            "everything it delivered is settled", c->id,
		            k->channel, queue_conf(k)->name);
		forget(k);
		c->consumers[i] = c->consumers[--c->nconsumers];
		c->ndraining--;
	}
	return 0;
}

int wd_consumers_cancel(struct wd_conn *c)
{
	for (size_t i = 0; i < c->nconsumers; i++) {
		struct wd_consumer *k = &c->consumers[i];
		if (k->draining)
			continue;
		if (cancel(c, k) < 0)
			return -1;
	}
	return 0;
}

void wd_consumers_clear(struct wd_conn *c)
{
	for (size_t i = 0; i < c->nconsumers; i++)
		forget(&c->consumers[i]);
	free(c->consumers);
	c->consumers = NULL;
	c->nconsumers = 0;
	c->ndraining = 0;
}
