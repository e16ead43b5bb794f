/* prefetch.c - the adaptive prefetch's rule (prefetch.h). */
#include "broker/prefetch.h"

#include <string.h>

/* Handlers busy less than this (percent) starve. */
#define BUSY_PCT 80
/* The broker's round trip, in the window's estimate (loopback to LAN). */
#define RTT_US 1000

void wd_prefetch_init(struct wd_prefetch *p, int min, int max, int64_t now_us)
{
	memset(p, 0, sizeof(*p));
	p->min = min;
	p->max = max > min ? max : min;
	p->value = min;
	p->since_us = now_us;
	p->interval_ms = WD_PREFETCH_GROW_MS;
}

void wd_prefetch_decided(struct wd_prefetch *p, const struct wd_prefetch_obs *o,
                         int was, int next)
{
	if (next == was && o->settled == 0)
		return; /* nothing measured: as soon as before */
	p->interval_ms =
	    next > was ? WD_PREFETCH_GROW_MS : WD_PREFETCH_INTERVAL_MS;
}

bool wd_prefetch_due(const struct wd_prefetch *p, int64_t now_us)
{
	return now_us - p->since_us >= (int64_t)p->interval_ms * 1000;
}

void wd_prefetch_take(struct wd_prefetch *p, int64_t now_us,
                      struct wd_prefetch_obs *o)
{
	*o = (struct wd_prefetch_obs){.interval_us = now_us - p->since_us,
	                              .settled = p->settled,
	                              .timed = p->timed,
	                              .wait_us = p->wait_us,
	                              .handler_us = p->handler_us,
	                              .handlers = 1,
	                              .backlog = -1};
	p->since_us = now_us;
	p->settled = p->timed = 0;
	p->wait_us = p->handler_us = 0;
}

static int clamp(double v, int min, int max)
{
	if (v < min)
		return min;
	if (v > max)
		return max;
	return (int)v;
}

int wd_prefetch_next(int current, int min, int max,
                     const struct wd_prefetch_obs *o, const char **why)
{
	const char *ignore;
	double rate, handler_us = 0, wait_us = 0, busy, window;
	int handlers = o->handlers > 0 ? o->handlers : 1;
	/* Hoarding is a wait past two handler calls and the ack delay (1 ms
	 * at least): a shorter one holds a delivery no longer than its ack
	 * holds it anyway. A no-op handler's burst of hundreds waits a
	 * millisecond or two for a worker; a 1 ms bound shrank a drain for
	 * that, only to grow it again (810 -> 222 -> 444 in the debug log). */
	int ack_ms = o->ack_delay_ms > 1 ? o->ack_delay_ms : 1;

	if (!why)
		why = &ignore;
	*why = "idle";
	if (o->settled == 0 || o->interval_us <= 0)
		return current;
	rate = (double)o->settled / (double)o->interval_us; /* per us */
	if (o->timed > 0) {
		handler_us = (double)o->handler_us / (double)o->timed;
		wait_us = (double)o->wait_us / (double)o->timed;
	}
	/* Little's law: what the handlers get through, held for as long as a
	 * delivery stays unacked, plus one per handler. */
	window = rate * (handler_us + o->ack_delay_ms * 1000.0 + RTT_US) +
	         handlers + 0.999;
	if (wait_us > 2 * handler_us + 1000.0 * ack_ms) {
		int next = clamp(window, min, max);
		*why = "hoarding";
		/* Within an eighth: not worth a qos. */
		if (next < current)
			return current - next >= 1 + current / 8 ? next
			                                         : current;
		/* Else the window is not bigger than what the handlers get
		 * through: the wait came from elsewhere (this thread, the
		 * workers' wake-up), and a bigger window may still help. */
	}
	if (current >= max) {
		*why = "balanced";
		return current;
	}
	if (current < (int)window) {
		/* Below what is in flight at this rate: the next stall of the
		 * broker or of this process leaves the window full and the
		 * stream waiting in the broker, whether or not the queue has a
		 * backlog now. No question to the broker needed. Twice the
		 * estimate, in one step (each step costs a cancel and a
		 * consume): headroom for a rate the smaller window held down,
		 * and for those stalls. The hoarding rule takes it back to
		 * the estimate only if deliveries wait. */
		*why = "lean";
		return clamp(window * 2, min, max);
	}
	busy = rate * handler_us / handlers;
	*why = "balanced";
	if (busy * 100 >= BUSY_PCT)
		return current;
	if (o->backlog < 0)
		return WD_PREFETCH_ASK_BACKLOG;
	if (o->backlog == 0) {
		*why = "no backlog";
		return current;
	}
	*why = "starving";
	return clamp((double)current * 2, min, max);
}
