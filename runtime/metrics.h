/* metrics.h - process-wide counters, updated with relaxed atomics from any
 * thread; read for the periodic and the final summary log lines. */
#ifndef WD_METRICS_H
#define WD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

struct wd_metrics {
	atomic_uint_fast64_t received;
	atomic_uint_fast64_t acked;
	atomic_uint_fast64_t retried;
	atomic_uint_fast64_t dead_lettered;
	atomic_uint_fast64_t unparseable;
	atomic_uint_fast64_t unknown_type;
	atomic_uint_fast64_t rejected;      /* by a handler */
	atomic_uint_fast64_t invalid_outcome;
	atomic_uint_fast64_t connections_opened;
	atomic_uint_fast64_t connections_lost;
};

extern struct wd_metrics wd_metrics;

#define wd_metric_inc(name) \
	atomic_fetch_add_explicit(&wd_metrics.name, 1, memory_order_relaxed)
#define wd_metric_get(name) \
	atomic_load_explicit(&wd_metrics.name, memory_order_relaxed)

/* One log line with every counter, e.g. at shutdown. */
void wd_metrics_log(const char *when);

#endif
