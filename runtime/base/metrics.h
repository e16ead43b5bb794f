/* metrics.h - process-wide counters, updated with relaxed atomics from any
 * thread; read for the periodic and the final summary log lines. */
#ifndef WD_METRICS_H
#define WD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

struct wd_metrics {
	atomic_uint_fast64_t received;
	atomic_uint_fast64_t acked; /* handled: the handler returned ack */
	atomic_uint_fast64_t retried;
	atomic_uint_fast64_t dead_lettered;
	atomic_uint_fast64_t unparseable;
	atomic_uint_fast64_t unknown_type;
	atomic_uint_fast64_t rejected; /* by a handler */
	atomic_uint_fast64_t invalid_outcome;
	atomic_uint_fast64_t too_large;
	atomic_uint_fast64_t dropped;         /* by an on_* = "drop" policy */
	atomic_uint_fast64_t retry_published; /* sent to a retry queue */
	atomic_uint_fast64_t max_attempts;    /* retries exhausted */
	atomic_uint_fast64_t followups;       /* confirmed follow-ups */
	atomic_uint_fast64_t followups_failed;
	atomic_uint_fast64_t republish_failed; /* retry / dead-letter refused */
	atomic_uint_fast64_t ack_frames;       /* basic.ack frames sent */
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t connections_opened;
	atomic_uint_fast64_t connections_lost;
	atomic_uint_fast64_t reloads;          /* generations swapped in */
	atomic_uint_fast64_t reload_failures;  /* reloads refused */
	atomic_uint_fast64_t generation;       /* the serving generation */
	atomic_uint_fast64_t publishes_nacked; /* basic.nack from the broker */
	atomic_uint_fast64_t publishes_returned; /* basic.return: unroutable */
	atomic_uint_fast64_t publishes_refused;  /* to an exchange not there */
	atomic_uint_fast64_t publish_blocks;     /* connection.blocked */
	atomic_uint_fast64_t publish_blocked_ms; /* summed over the slots */
	/* Handler calls past their route's handler_timeout_warn. */
	atomic_uint_fast64_t handler_timeout_warnings;
	/* Channels the broker closed: a delivery not acked within its
	 * consumer_timeout. */
	atomic_uint_fast64_t consumer_timeouts;
};

extern struct wd_metrics wd_metrics;

#define wd_metric_inc(name)                                                    \
	atomic_fetch_add_explicit(&wd_metrics.name, 1, memory_order_relaxed)
#define wd_metric_add(name, n)                                                 \
	atomic_fetch_add_explicit(&wd_metrics.name, (n), memory_order_relaxed)
#define wd_metric_get(name)                                                    \
	atomic_load_explicit(&wd_metrics.name, memory_order_relaxed)

/* One log line with every counter, e.g. at shutdown: "WHEN: key=N ...",
 * then `extra` (NULL: nothing; the periodic line's rates). */
void wd_metrics_log(const char *when, const char *extra);

#endif
