/* histogram.h - a latency histogram that any thread may add to without a
 * lock: fixed log-linear buckets (1, 2.5 and 5 per decade, from 50 us to
 * 60 s, then +Inf), each a relaxed atomic counter, and the sum in
 * microseconds. Read as a snapshot for the Prometheus exposition (the
 * bounds in seconds, cumulative counts) and for quantiles. */
#ifndef WD_HISTOGRAM_H
#define WD_HISTOGRAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define WD_HIST_BOUNDS 19 /* finite upper bounds; one more bucket: +Inf */

/* The upper bounds of the finite buckets, in microseconds, ascending. */
extern const uint64_t wd_hist_bounds_us[WD_HIST_BOUNDS];

struct wd_hist {
	atomic_uint_fast64_t bucket[WD_HIST_BOUNDS + 1]; /* not cumulative */
	atomic_uint_fast64_t sum_us;
};

/* Count one observation of `us` microseconds. Thread-safe, lock-free. */
void wd_hist_observe_us(struct wd_hist *h, uint64_t us);

struct wd_hist_snap {
	uint64_t bucket[WD_HIST_BOUNDS + 1]; /* not cumulative */
	uint64_t count, sum_us;
};

/* A copy of h (each bucket read once; concurrent adds may land in the
 * next snapshot, never half in this one). */
void wd_hist_read(const struct wd_hist *h, struct wd_hist_snap *s);

/* The q-quantile (0 < q < 1) in seconds, interpolated linearly inside its
 * bucket as Prometheus' histogram_quantile() does; 0 if empty. A value in
 * the +Inf bucket reads as the largest finite bound. */
double wd_hist_quantile(const struct wd_hist_snap *s, double q);

/* b - a, bucket by bucket (a is the older snapshot of the same series). */
void wd_hist_diff(const struct wd_hist_snap *a, const struct wd_hist_snap *b,
                  struct wd_hist_snap *out);

#endif
