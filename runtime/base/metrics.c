/* metrics.c - the counters and their summary line. */
#include "base/metrics.h"

#include "base/log.h"

struct wd_metrics wd_metrics;

#define M(name) (uintmax_t) wd_metric_get(name)

void wd_metrics_log(const char *when, const char *extra)
{
	wd_log_info("metrics",
	            "%s: received=%ju acked=%ju retried=%ju dead_lettered=%ju "
	            "(unparseable=%ju unknown_type=%ju rejected=%ju "
	            "invalid_outcome=%ju too_large=%ju max_attempts=%ju) "
	            "dropped=%ju retry_published=%ju followups=%ju "
	            "followups_failed=%ju republish_failed=%ju ack_frames=%ju "
	            "batches=%ju connections_opened=%ju connections_lost=%ju "
	            "reloads=%ju reload_failures=%ju generation=%ju "
	            "publishes_nacked=%ju publishes_returned=%ju "
	            "publishes_refused=%ju publish_blocks=%ju "
	            "publish_blocked_ms=%ju handler_timeout_warnings=%ju "
	            "consumer_timeouts=%ju%s",
	            when, M(received), M(acked), M(retried), M(dead_lettered),
	            M(unparseable), M(unknown_type), M(rejected),
	            M(invalid_outcome), M(too_large), M(max_attempts),
	            M(dropped), M(retry_published), M(followups),
	            M(followups_failed), M(republish_failed), M(ack_frames),
	            M(batches), M(connections_opened), M(connections_lost),
	            M(reloads), M(reload_failures), M(generation),
	            M(publishes_nacked), M(publishes_returned),
	            M(publishes_refused), M(publish_blocks),
	            M(publish_blocked_ms), M(handler_timeout_warnings),
	            M(consumer_timeouts), extra ? extra : "");
}
