/* metrics.c - the counters and their summary line. */
#include "metrics.h"

#include "log.h"

struct wd_metrics wd_metrics;

void wd_metrics_log(const char *when)
{
	wd_log_info("metrics",
	            "%s: received=%ju acked=%ju retried=%ju dead_lettered=%ju "
	            "(unparseable=%ju unknown_type=%ju rejected=%ju "
	            "invalid_outcome=%ju) connections_opened=%ju "
	            "connections_lost=%ju",
	            when, (uintmax_t)wd_metric_get(received),
	            (uintmax_t)wd_metric_get(acked),
	            (uintmax_t)wd_metric_get(retried),
	            (uintmax_t)wd_metric_get(dead_lettered),
	            (uintmax_t)wd_metric_get(unparseable),
	            (uintmax_t)wd_metric_get(unknown_type),
	            (uintmax_t)wd_metric_get(rejected),
	            (uintmax_t)wd_metric_get(invalid_outcome),
	            (uintmax_t)wd_metric_get(connections_opened),
	            (uintmax_t)wd_metric_get(connections_lost));
}
