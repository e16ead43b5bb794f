/* prefetch_qos.c - the adaptive prefetch's RPCs (prefetch_qos.h). */
#include "slot/prefetch_qos.h"

#include <stdint.h>

#include "base/clock.h"
#include "base/log.h"
#include "broker/broker.h"

static const char AREA[] = "prefetch";

/* How often a paused consumer (a smaller window, waiting for the old one
 * to drain to half of it) is looked at: on an idle connection the loop
 * would otherwise sleep up to a second before consuming again. */
#define PAUSED_LOOK_US 10000

/* The ready messages of k's queue (a passive declare on the declaring
 * channel: a failure there does not close the consumer's), or -1 if the
 * connection failed. */
static long backlog(struct wd_consumers *cs, amqp_connection_state_t amqp,
                    const struct wd_consumer *k, const char *queue)
{
	amqp_queue_declare_ok_t *ok;
	amqp_rpc_reply_t r;
	char why[256];

	ok = amqp_queue_declare(amqp, WD_CHANNEL_DECLARE,
	                        amqp_cstring_bytes(queue), 1, 0, 0, 0,
	                        amqp_empty_table);
	r = amqp_get_rpc_reply(amqp);
	if (!ok || r.reply_type != AMQP_RESPONSE_NORMAL) {
		wd_log_warnx(AREA,
		             "slot %d: cannot look at queue \"%s\" (channel %u "
		             "consumes it): %s",
		             cs->slot, queue, k->channel,
		             wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	return (long)ok->message_count;
}

/* Consume again with k's window as its own limit. */
static int resume(struct wd_consumers *cs, amqp_connection_state_t amqp,
                  struct wd_consumer *k)
{
	struct wd_prefetch_obs discard;
	amqp_rpc_reply_t r = wd_consumer_start(amqp, k, k->pf.value);
	char why[256];

	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		wd_log_warnx(
		    AREA,
		    "slot %d: cannot consume queue \"%s\" again on "
		    "channel %u: %s",
		    cs->slot, k->gen->routes->conf->queues[k->queue].name,
		    k->channel, wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	/* What was measured while it held too much, or waited for the
	 * RPCs (the broker's basic.cancel took up to half a second at the
	 * start of a drain here), is not the new window's. */
	wd_prefetch_take(&k->pf, wd_now_us(), &discard);
	return 0;
}

/* A new window: the consumer is cancelled (the deliveries it holds stay
 * unacked on the channel); a bigger window consumes again at once, a
 * smaller one once the consumer holds at most half of it (the broker
 * counts only the new consumer's deliveries against its limit: this way
 * the channel holds at most 1.5 windows while the old ones drain). */
static int set_window(struct wd_consumers *cs, amqp_connection_state_t amqp,
                      struct wd_consumer *k, int prefetch)
{
	amqp_rpc_reply_t r;
	bool grow = prefetch > k->pf.value;
	char why[256];

	r = wd_consumer_stop(amqp, k);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		wd_log_warnx(AREA, "slot %d: basic.cancel on channel %u: %s",
		             cs->slot, k->channel,
		             wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	wd_consumer_set_window(cs, k, prefetch);
	return grow ? resume(cs, amqp, k) : 0;
}

/* One consumer's interval is over. */
static int adapt(struct wd_consumers *cs, amqp_connection_state_t amqp,
                 struct wd_consumer *k, int64_t now_us)
{
	const struct wd_conf *conf = k->gen->routes->conf;
	const char *queue = conf->queues[k->queue].name;
	struct wd_prefetch_obs o;
	const char *why;
	int next, was = k->pf.value;

	wd_prefetch_take(&k->pf, now_us, &o);
	o.ack_delay_ms = conf->broker.ack_delay_ms;
	o.handlers = conf->workers;
	next = wd_prefetch_next(was, k->pf.min, k->pf.max, &o, &why);
	if (next == WD_PREFETCH_ASK_BACKLOG) {
		o.backlog = backlog(cs, amqp, k, queue);
		if (o.backlog < 0)
			return -1;
		next = wd_prefetch_next(was, k->pf.min, k->pf.max, &o, &why);
	}
	wd_prefetch_decided(&k->pf, &o, was, next);
	if (next == was)
		return 0;
	if (set_window(cs, amqp, k, next) < 0)
		return -1;
	wd_log_debug(AREA,
	             "slot %d: queue \"%s\": prefetch %d -> %d (%s: %ju "
	             "settled in %jd ms, wait %jd us, handler %jd us, backlog "
	             "%ld)",
	             cs->slot, queue, was, next, why, (uintmax_t)o.settled,
	             (intmax_t)(o.interval_us / 1000),
	             (intmax_t)(o.timed ? o.wait_us / (int64_t)o.timed : 0),
	             (intmax_t)(o.timed ? o.handler_us / (int64_t)o.timed : 0),
	             o.backlog);
	return 0;
}

int wd_prefetch_qos_tick(struct wd_consumers *cs, amqp_connection_state_t amqp,
                         int64_t now_us)
{
	int64_t due = -1;

	if (now_us < cs->adapt_due_us) /* the one test per turn */
		return 0;
	for (size_t i = 0; i < cs->n; i++) {
		struct wd_consumer *k = &cs->v[i];
		int64_t at;

		if (!k->adaptive || k->draining)
			continue;
		if (k->paused) {
			if (k->unsettled <= (size_t)k->pf.value / 2 &&
			    resume(cs, amqp, k) < 0)
				return -1;
		} else if (wd_prefetch_due(&k->pf, now_us) &&
		           adapt(cs, amqp, k, now_us) < 0) {
			return -1;
		}
		/* Paused: look again soon (the loop sleeps no longer than
		 * that), until it consumes again. */
		at = k->paused
		         ? now_us + PAUSED_LOOK_US
		         : k->pf.since_us + (int64_t)k->pf.interval_ms * 1000;
		if (due < 0 || at < due)
			due = at;
	}
	/* None adaptive: look again in an interval (a reload may add one). */
	cs->adapt_due_us =
	    due >= 0 ? due : now_us + (int64_t)WD_PREFETCH_INTERVAL_MS * 1000;
	return 0;
}
