/* histogram.c - fixed-bucket latency histograms. */
#include "base/histogram.h"

#include <string.h>

const uint64_t wd_hist_bounds_us[WD_HIST_BOUNDS] = {
    50,      100,     250,      500,      1000,     2500,   5000,
    10000,   25000,   50000,    100000,   250000,   500000, 1000000,
    2500000, 5000000, 10000000, 25000000, 60000000,
};

void wd_hist_observe_us(struct wd_hist *h, uint64_t us)
{
	size_t lo = 0, hi = WD_HIST_BOUNDS;

	/* The first bound >= us (a bucket's bound is inclusive: le). */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (wd_hist_bounds_us[mid] < us)
			lo = mid + 1;
		else
			hi = mid;
	}
	atomic_fetch_add_explicit(&h->bucket[lo], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
}

void wd_hist_read(const struct wd_hist *h, struct wd_hist_snap *s)
{
	s->count = 0;
	for (size_t i = 0; i <= WD_HIST_BOUNDS; i++) {
		s->bucket[i] =
		    atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		s->count += s->bucket[i];
	}
	s->sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
}

double wd_hist_quantile(const struct wd_hist_snap *s, double q)
{
	double rank = q * (double)s->count, seen = 0;

	if (s->count == 0)
		return 0;
	for (size_t i = 0; i <= WD_HIST_BOUNDS; i++) {
		double lo, hi;

		if (seen + (double)s->bucket[i] < rank || s->bucket[i] == 0) {
			seen += (double)s->bucket[i];
			continue;
		}
		if (i == WD_HIST_BOUNDS)
			return (double)wd_hist_bounds_us[WD_HIST_BOUNDS - 1] /
			       1e6;
		lo = i ? (double)wd_hist_bounds_us[i - 1] : 0;
		hi = (double)wd_hist_bounds_us[i];
		return (lo + (hi - lo) * (rank - seen) / (double)s->bucket[i]) /
		       1e6;
	}
	return (double)wd_hist_bounds_us[WD_HIST_BOUNDS - 1] / 1e6;
}

void wd_hist_diff(const struct wd_hist_snap *a, const struct wd_hist_snap *b,
                  struct wd_hist_snap *out)
{
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i <= WD_HIST_BOUNDS; i++) {
		out->bucket[i] = b->bucket[i] >= a->bucket[i]
		                     ? b->bucket[i] - a->bucket[i]
		                     : 0;
		out->count += out->bucket[i];
	}
	out->sum_us = b->sum_us >= a->sum_us ? b->sum_us - a->sum_us : 0;
}
