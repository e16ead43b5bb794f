/* prefetch.h - `prefetch = "auto"`: the decision that moves one consumer's
 * window (basic.qos) after what it measured, kept free of I/O so that it
 * can be tested alone. slot/consumers.c measures and sends the qos.
 *
 * The rule (README: Adaptive prefetch), once per interval (below) at
 * most, from the deliveries settled in the interval:
 *
 *   - hoarding: a delivery waited for a handler longer than two handler
 *     calls plus the ack delay (1 ms at least). Those deliveries could
 *     have gone to another consumer. Shrink to Little's law's window for what
 * the handlers get through: throughput x (handler time + the ack delay + 1 ms
 * for the broker's round trip), plus one delivery per handler so that none
 * idles while its next one is on the way. (A window below that estimate is not
 * what holds them: the next rule applies.)
 *   - lean: the window is below that same estimate for the rate it
 *     settled: a stream keeps more than the window in flight, so the
 *     next stall (of the broker, or of this process) fills the window
 *     and leaves the stream waiting in the broker, backlog or not. Go
 *     to twice the estimate at once (headroom for a rate the small
 *     window held down, and for the stalls; one step, since each costs
 *     a cancel and a consume). Hoarding takes it back to the estimate
 *     only if deliveries wait, so the two do not swing.
 *   - starving: the handlers were busy less than 80 % of the time (busy
 *     handlers, by Little's law: throughput x handler time, out of
 *     `handlers`), and the queue has ready messages (a passive declare,
 *     asked only then): the window, not the handlers, bounds the rate.
 *     Double it (multiplicative increase: 10 to 1000 in 7 steps).
 *   - otherwise, or with nothing settled: keep it.
 *
 * Doubling (or the estimate) up and the estimate down, not AIMD's
 * additive increase: an
 * additive step of a few messages per interval would take minutes to
 * reach a window of hundreds, and an overshoot costs only memory until
 * the next interval's estimate takes it back. */
#ifndef WD_PREFETCH_H
#define WD_PREFETCH_H

#include <stdbool.h>
#include <stdint.h>

/* The time between two decisions (and two basic.qos): after a growth,
 * and for the first, WD_PREFETCH_GROW_MS, so that a drain reaches the
 * window it needs in a few tenths of a second (10 to 80 in 0.3 s: at 500
 * ms a step, the ramp cost a 4 s drain a tenth of its rate); otherwise
 * WD_PREFETCH_INTERVAL_MS. */
#define WD_PREFETCH_INTERVAL_MS 500
#define WD_PREFETCH_GROW_MS     100

/* What one consumer measured over one interval. */
struct wd_prefetch_obs {
	int64_t interval_us; /* since the previous decision */
	uint64_t settled;    /* deliveries settled in it */
	uint64_t timed;      /* of those, with a timed handler call */
	int64_t wait_us;     /* summed over `timed`: read -> handler start */
	int64_t handler_us;  /* summed over `timed`: the handler call */
	int ack_delay_ms;    /* broker.ack_delay_ms: the longest ack wait */
	int handlers;        /* handler calls that may run at once: workers */
	long backlog;        /* the queue's ready messages; -1: not asked */
};

/* One consumer's controller: its window, bounds and what it measures. */
struct wd_prefetch {
	int value, min, max;
	int64_t since_us; /* the interval began */
	int interval_ms;  /* and lasts this long */
	uint64_t settled, timed;
	int64_t wait_us, handler_us;
};

/* wd_prefetch_next's answer when it would grow, but only if the queue has
 * ready messages: ask the broker, set obs->backlog, call again. */
#define WD_PREFETCH_ASK_BACKLOG (-1)

/* Start at min: nothing is hoarded before anything is measured. */
void wd_prefetch_init(struct wd_prefetch *p, int min, int max, int64_t now_us);

/* A delivery was settled; read_us, start_us, handler_us: when it was
 * read, when its handler call began (0: no call timed) and how long the
 * call took. The hot path: a few additions. */
static inline void wd_prefetch_note(struct wd_prefetch *p, int64_t read_us,
                                    int64_t start_us, int64_t handler_us)
{
	p->settled++;
	if (start_us > 0) {
		p->timed++;
		p->wait_us += start_us > read_us ? start_us - read_us : 0;
		p->handler_us += handler_us;
	}
}

/* Whether a decision is due: the interval is over. */
bool wd_prefetch_due(const struct wd_prefetch *p, int64_t now_us);

/* Close the interval: its measurements into *o (ack_delay_ms, handlers
 * and backlog left to the caller: set to 0, 1 and -1), and a new one
 * begins at now_us. */
void wd_prefetch_take(struct wd_prefetch *p, int64_t now_us,
                      struct wd_prefetch_obs *o);

/* A decision after *o took the window from `was` to `next`: set the
 * interval before the next (WD_PREFETCH_GROW_MS after a growth; the one
 * before after an interval that settled nothing, such as one a slow
 * basic.cancel of the broker's took up). */
void wd_prefetch_decided(struct wd_prefetch *p, const struct wd_prefetch_obs *o,
                         int was, int next);

/* The window after an interval that measured *o, for a consumer at
 * `current` within min..max; `current` to keep it, or
 * WD_PREFETCH_ASK_BACKLOG. *why (unless NULL) says which rule decided. */
int wd_prefetch_next(int current, int min, int max,
                     const struct wd_prefetch_obs *o, const char **why);

#endif
