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

void wd_prefetch_decided(struct wd_prefetch *p, int was, int next)
{
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
	double rate, handler_us = 0, wait_us = 0, busy;
	int handlers = o->handlers > 0 ? o->handlers : 1;

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
	if (wait_us > 2 * handler_us + 1000) {
		double window =
		    rate * (handler_us + o->ack_delay_ms * 1000.0 + RTT_US) +
		    handlers + 0.999;
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
	busy = rate * handler_us / handlers;
	*why = "balanced";
	if (current >= max || busy * 100 >= BUSY_PCT)
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
