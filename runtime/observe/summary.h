/* summary.h - the periodic metrics log line and the memory watch.
 *
 * Every metrics_interval seconds the main loop writes the metrics line
 * with what happened since the previous one: rates, error share, handler
 * and end-to-end p50 / p99 (from the histograms' difference), resident
 * memory. The same tick samples memory: a warning when it passes
 * memory_warn_mb, and when it grew by more than memory_warn_growth_kb at
 * each of memory_warn_samples lines in a row (the tutorial's leak
 * detector). Main thread only. */
#ifndef WD_SUMMARY_H
#define WD_SUMMARY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/histogram.h"
#include "conf/conf.h"

/* What every series adds up to at one moment. */
struct wd_summary_totals {
	uint64_t received, handled, failed;
	struct wd_hist_snap handler, end_to_end;
};

struct wd_summary {
	int64_t last_ms;               /* the previous line (monotonic) */
	struct wd_summary_totals last; /* at the previous line */
	uint64_t rss;                  /* at the previous line */
	int grew;           /* lines in a row memory grew by the threshold */
	uint64_t grew_from; /* resident memory where the run began */
	bool over;          /* over memory_warn_mb at the previous line */
};

void wd_summary_init(struct wd_summary *s, int64_t now_ms);

/* Write the line and check memory if metrics_interval has passed. */
void wd_summary_tick(struct wd_summary *s, const struct wd_conf *conf,
                     int64_t now_ms);

#endif
