/* prometheus.c - the exposition, family by family. */
#include "observe/prometheus.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/series.h"
#include "base/strbuf.h"
#include "message/policy.h"
#include "observe/process.h"
#include "warren.h"

#ifndef WARREN_VERSION
#define WARREN_VERSION "unknown"
#endif

static void family(struct wd_strbuf *b, const char *name, const char *type,
                   const char *help)
{
	wd_strbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	                 type);
}

/* `name{labels}` without the closing brace's contents: the caller adds
 * labels with label() and closes with value(). */
static void label(struct wd_strbuf *b, const char *key, const char *v,
                  bool first)
{
	wd_strbuf_printf(b, "%s%s=\"", first ? "{" : ",", key);
	wd_strbuf_escaped(b, v);
	wd_strbuf_printf(b, "\"");
}

static void queue_labels(struct wd_strbuf *b, const char *name,
                         const struct wd_queue_series *q)
{
	wd_strbuf_printf(b, "%s", name);
	label(b, "queue", q->queue, true);
}

static void route_labels(struct wd_strbuf *b, const char *name,
                         const struct wd_route_series *r)
{
	wd_strbuf_printf(b, "%s", name);
	label(b, "queue", r->queue, true);
	label(b, "type", r->type, false);
	label(b, "plugin", r->plugin, false);
	label(b, "handler", r->handler, false);
}

static void count_line(struct wd_strbuf *b, uint64_t v)
{
	wd_strbuf_printf(b, "} %ju\n", (uintmax_t)v);
}

/* A histogram's series; `labels` writes name and labels (unclosed). */
static void
histogram(struct wd_strbuf *b, const char *name, const struct wd_hist *h,
          void (*labels)(struct wd_strbuf *, const char *, const void *),
          const void *arg)
{
	struct wd_hist_snap s;
	char bucket[128], le[32];
	uint64_t cum = 0;

	wd_hist_read(h, &s);
	snprintf(bucket, sizeof(bucket), "%s_bucket", name);
	for (size_t i = 0; i <= WD_HIST_BOUNDS; i++) {
		cum += s.bucket[i];
		if (i < WD_HIST_BOUNDS)
			snprintf(le, sizeof(le), "%g",
			         (double)wd_hist_bounds_us[i] / 1e6);
		else
			snprintf(le, sizeof(le), "+Inf");
		labels(b, bucket, arg);
		label(b, "le", le, false);
		count_line(b, cum);
	}
	snprintf(bucket, sizeof(bucket), "%s_sum", name);
	labels(b, bucket, arg);
	wd_strbuf_printf(b, "} %.6f\n", (double)s.sum_us / 1e6);
	snprintf(bucket, sizeof(bucket), "%s_count", name);
	labels(b, bucket, arg);
	count_line(b, cum);
}

static void queue_labels_v(struct wd_strbuf *b, const char *name, const void *q)
{
	queue_labels(b, name, q);
}

static void route_labels_v(struct wd_strbuf *b, const char *name, const void *r)
{
	route_labels(b, name, r);
}

/* Whether a message can be dropped for reason i (on_* = "drop" covers
 * only input no handler saw). */
static bool droppable(int i)
{
	const char *r = wd_reasons[i];
	return strcmp(r, WD_R_TOO_LARGE) == 0 ||
	       strcmp(r, WD_R_UNPARSEABLE) == 0 ||
	       strcmp(r, WD_R_BAD_TYPE) == 0 ||
	       strcmp(r, WD_R_UNKNOWN_TYPE) == 0;
}

static void queues(struct wd_strbuf *b, const struct wd_queue_series *qs)
{
	const struct wd_queue_series *q;

	family(b, "warren_received_total", "counter",
	       "Deliveries read from the queue.");
	for (q = qs; q; q = q->next) {
		queue_labels(b, "warren_received_total", q);
		count_line(b, wd_counted(q->received));
	}
	family(b, "warren_dead_lettered_total", "counter",
	       "Copies published (and confirmed) to the dead-letter exchange, "
	       "by reason.");
	for (q = qs; q; q = q->next)
		for (int i = 0; i < WD_SERIES_REASONS; i++) {
			queue_labels(b, "warren_dead_lettered_total", q);
			label(b, "reason", wd_reasons[i], false);
			count_line(b, wd_counted(q->dead_lettered[i]));
		}
	family(b, "warren_dropped_total", "counter",
	       "Deliveries acked away by an on_* = \"drop\" policy, by "
	       "reason.");
	for (q = qs; q; q = q->next)
		for (int i = 0; i < WD_SERIES_REASONS; i++) {
			if (!droppable(i))
				continue;
			queue_labels(b, "warren_dropped_total", q);
			label(b, "reason", wd_reasons[i], false);
			count_line(b, wd_counted(q->dropped[i]));
		}
	family(b, "warren_retry_published_total", "counter",
	       "Copies published (and confirmed) to a retry queue.");
	for (q = qs; q; q = q->next) {
		queue_labels(b, "warren_retry_published_total", q);
		count_line(b, wd_counted(q->retry_published));
	}
	family(b, "warren_republish_failed_total", "counter",
	       "Retry or dead-letter copies the broker refused: the delivery "
	       "was held and requeued.");
	for (q = qs; q; q = q->next) {
		queue_labels(b, "warren_republish_failed_total", q);
		count_line(b, wd_counted(q->republish_failed));
	}
	family(b, "warren_consumer_timeouts_total", "counter",
	       "Consumer channels the broker closed because a delivery was not "
	       "acked within its consumer_timeout.");
	for (q = qs; q; q = q->next) {
		queue_labels(b, "warren_consumer_timeouts_total", q);
		count_line(b, wd_counted(q->consumer_timeouts));
	}
	family(b, "warren_inflight", "gauge",
	       "Deliveries read from the queue and not settled, by where they "
	       "are.");
	for (q = qs; q; q = q->next)
		for (int i = 0; i < WD_INFLIGHT_STAGES; i++) {
			int64_t v = atomic_load(&q->inflight[i]);
			queue_labels(b, "warren_inflight", q);
			label(b, "stage", wd_inflight_names[i], false);
			count_line(b, v > 0 ? (uint64_t)v : 0);
		}
	family(b, "warren_consumer_prefetch", "gauge",
	       "Each consumer's prefetch (basic.qos): the configured number, "
	       "or where prefetch = \"auto\" has moved it; mode says which.");
	for (q = qs; q; q = q->next)
		for (int i = 0; i < WD_SERIES_MAX_SLOTS; i++) {
			int v = atomic_load_explicit(&q->prefetch[i],
			                             memory_order_relaxed);
			char slot[16];
			if (v <= 0)
				continue;
			snprintf(slot, sizeof(slot), "%d", i);
			queue_labels(b, "warren_consumer_prefetch", q);
			label(b, "slot", slot, false);
			label(b, "mode",
			      atomic_load(&q->prefetch_auto[i]) ? "auto"
			                                        : "static",
			      false);
			count_line(b, (uint64_t)v);
		}
	family(b, "warren_end_to_end_latency_seconds", "histogram",
	       "From publish (x-warren-published-us, else the AMQP timestamp) "
	       "to settle.");
	for (q = qs; q; q = q->next)
		histogram(b, "warren_end_to_end_latency_seconds",
		          &q->end_to_end, queue_labels_v, q);
}

static void routes(struct wd_strbuf *b, const struct wd_route_series *rs)
{
	const struct wd_route_series *r;

	family(b, "warren_handled_total", "counter",
	       "Handler calls by outcome (a batch counts each message).");
	for (r = rs; r; r = r->next)
		for (int i = 0; i < WD_OUTCOMES; i++) {
			route_labels(b, "warren_handled_total", r);
			label(b, "outcome", wd_outcome_names[i], false);
			count_line(b, wd_counted(r->handled[i]));
		}
	family(b, "warren_followups_total", "counter",
	       "Follow-up messages published and confirmed.");
	for (r = rs; r; r = r->next) {
		route_labels(b, "warren_followups_total", r);
		count_line(b, wd_counted(r->followups));
	}
	family(b, "warren_followups_failed_total", "counter",
	       "Inputs whose follow-ups could not all be published (they go "
	       "the retry way).");
	for (r = rs; r; r = r->next) {
		route_labels(b, "warren_followups_failed_total", r);
		count_line(b, wd_counted(r->followups_failed));
	}
	family(b, "warren_batches_total", "counter", "Batch handler calls.");
	for (r = rs; r; r = r->next) {
		route_labels(b, "warren_batches_total", r);
		count_line(b, wd_counted(r->batches));
	}
	family(b, "warren_handler_timeout_warnings_total", "counter",
	       "Handler calls that ran past the route's handler_timeout_warn "
	       "(a batch call once).");
	for (r = rs; r; r = r->next) {
		route_labels(b, "warren_handler_timeout_warnings_total", r);
		count_line(b, wd_counted(r->handler_timeout_warnings));
	}
	family(b, "warren_handler_duration_seconds", "histogram",
	       "How long a handler call took (a batch call once).");
	for (r = rs; r; r = r->next)
		histogram(b, "warren_handler_duration_seconds",
		          &r->handler_seconds, route_labels_v, r);
}

static void slots(struct wd_strbuf *b, const struct wd_series_view *v)
{
	family(b, "warren_slot_state", "gauge",
	       "Each connection slot's state: 1 for the one it is in.");
	for (int i = 0; i < v->nslots; i++) {
		int state = atomic_load(&v->slots[i].state);
		char slot[16];
		snprintf(slot, sizeof(slot), "%d", i);
		for (int k = 0; k < WD_SLOT_STATES; k++) {
			wd_strbuf_printf(b, "warren_slot_state");
			label(b, "slot", slot, true);
			label(b, "state", wd_slot_state_names[k], false);
			count_line(b, state == k);
		}
	}
	family(b, "warren_slot_inflight", "gauge",
	       "Deliveries a slot has read and not settled yet.");
	for (int i = 0; i < v->nslots; i++) {
		char slot[16];
		snprintf(slot, sizeof(slot), "%d", i);
		wd_strbuf_printf(b, "warren_slot_inflight");
		label(b, "slot", slot, true);
		count_line(b, atomic_load(&v->slots[i].inflight));
	}
	family(b, "warren_slot_node", "gauge",
	       "The broker address (a cluster's node) each connected slot "
	       "is on: 1, one line per slot.");
	for (int i = 0; i < v->nslots; i++) {
		int node = atomic_load(&v->slots[i].node);
		char slot[16];
		if (node < 0 || node >= v->nnodes)
			continue;
		snprintf(slot, sizeof(slot), "%d", i);
		wd_strbuf_printf(b, "warren_slot_node");
		label(b, "slot", slot, true);
		label(b, "node", v->nodes[node], false);
		count_line(b, 1);
	}
}

/* A process-wide counter of wd_metrics. */
#define TOTAL(b, name, field, help)                                            \
	do {                                                                   \
		family(b, name, "counter", help);                              \
		wd_strbuf_printf(b, "%s %ju\n", name,                          \
		                 (uintmax_t)wd_metric_get(field));             \
	} while (0)

static void totals(struct wd_strbuf *b)
{
	TOTAL(b, "warren_ack_frames_total", ack_frames,
	      "basic.ack frames sent (one may ack many deliveries).");
	TOTAL(b, "warren_connections_opened_total", connections_opened,
	      "Broker connections opened.");
	TOTAL(b, "warren_connections_lost_total", connections_lost,
	      "Broker connections lost (each is reopened).");
	TOTAL(b, "warren_reloads_total", reloads, "Generations swapped in.");
	TOTAL(b, "warren_reload_failures_total", reload_failures,
	      "Reloads refused (the serving generation kept serving).");
	TOTAL(b, "warren_publishes_nacked_total", publishes_nacked,
	      "Publishes the broker refused with basic.nack.");
	TOTAL(b, "warren_publishes_returned_total", publishes_returned,
	      "Publishes returned unroutable (basic.return).");
	TOTAL(b, "warren_publishes_refused_total", publishes_refused,
	      "Publishes not sent: their exchange does not exist.");
	TOTAL(b, "warren_publish_blocks_total", publish_blocks,
	      "Times the broker blocked a publishing connection (a memory or "
	      "disk alarm).");
	family(b, "warren_publish_blocked_seconds_total", "counter",
	       "Time publishing connections spent blocked, summed over the "
	       "slots (consuming and acking go on meanwhile).");
	wd_strbuf_printf(b, "warren_publish_blocked_seconds_total %.3f\n",
	                 (double)wd_metric_get(publish_blocked_ms) / 1000.0);
	family(b, "warren_generation", "gauge",
	       "The serving generation: 1 at start, +1 per reload attempt.");
	wd_strbuf_printf(b, "warren_generation %ju\n",
	                 (uintmax_t)wd_metric_get(generation));
}

static void info(struct wd_strbuf *b, const struct wd_series_view *v)
{
	char abi[32], gen[32];

	snprintf(abi, sizeof(abi), "%d.%d", WARREN_ABI_MAJOR, WARREN_ABI_MINOR);
	family(b, "warren_build_info", "gauge",
	       "warrend's version and plugin ABI (always 1).");
	wd_strbuf_printf(b, "warren_build_info");
	label(b, "version", WARREN_VERSION, true);
	label(b, "abi", abi, false);
	wd_strbuf_printf(b, "} 1\n");
	family(b, "warren_plugin_info", "gauge",
	       "The plugins of the serving generation (always 1).");
	for (size_t i = 0; i < v->nplugins; i++) {
		snprintf(gen, sizeof(gen), "%ju",
		         (uintmax_t)v->plugins[i].generation);
		wd_strbuf_printf(b, "warren_plugin_info");
		label(b, "plugin", v->plugins[i].plugin, true);
		label(b, "version", v->plugins[i].version, false);
		label(b, "generation", gen, false);
		wd_strbuf_printf(b, "} 1\n");
	}
}

static void process(struct wd_strbuf *b)
{
	struct wd_process p;

	wd_process_read(&p);
	family(b, "process_cpu_seconds_total", "counter",
	       "User and system CPU time spent in seconds.");
	wd_strbuf_printf(b, "process_cpu_seconds_total %.2f\n", p.cpu_seconds);
	family(b, "process_resident_memory_bytes", "gauge",
	       "Resident memory size in bytes.");
	wd_strbuf_printf(b, "process_resident_memory_bytes %ju\n",
	                 (uintmax_t)p.rss_bytes);
	family(b, "process_virtual_memory_bytes", "gauge",
	       "Virtual memory size in bytes.");
	wd_strbuf_printf(b, "process_virtual_memory_bytes %ju\n",
	                 (uintmax_t)p.vsize_bytes);
	family(b, "process_open_fds", "gauge",
	       "Number of open file descriptors.");
	wd_strbuf_printf(b, "process_open_fds %ld\n", p.open_fds);
	family(b, "process_max_fds", "gauge",
	       "Maximum number of open file descriptors.");
	wd_strbuf_printf(b, "process_max_fds %ld\n", p.max_fds);
	family(b, "process_start_time_seconds", "gauge",
	       "Start time of the process since unix epoch in seconds.");
	wd_strbuf_printf(b, "process_start_time_seconds %.2f\n",
	                 p.start_time_s);
}

static void plugin_counters(struct wd_strbuf *b, const struct wd_series_view *v)
{
	family(b, "warren_plugin_events_total", "counter",
	       "A plugin's own counters (warren_api.counter_add).");
	for (size_t i = 0; i < WD_SERIES_PLUGIN_COUNTERS; i++) {
		const struct wd_plugin_counter *c =
		    atomic_load(&v->plugin_counters[i]);
		if (!c)
			continue;
		wd_strbuf_printf(b, "warren_plugin_events_total");
		label(b, "plugin", c->plugin, true);
		label(b, "name", c->name, false);
		count_line(b, wd_counted(c->value));
	}
}

static void all(const struct wd_series_view *v, void *arg)
{
	struct wd_strbuf *b = arg;

	info(b, v);
	queues(b, v->queues);
	routes(b, v->routes);
	plugin_counters(b, v);
	slots(b, v);
}

char *wd_prometheus_text(size_t *len)
{
	struct wd_strbuf b = {0};

	/* The series are walked under the registry's lock: only their
	 * atomics are read there; the process figures come after. */
	wd_series_visit(all, &b);
	totals(&b);
	process(&b);
	return wd_strbuf_take(&b, len);
}
