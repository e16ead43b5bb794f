/* status.c - /status with jansson. */
#include "observe/status.h"

#include <jansson.h>
#include <string.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "base/series.h"
#include "message/policy.h"
#include "observe/process.h"
#include "warren.h"

#ifndef WARREN_VERSION
#define WARREN_VERSION "unknown"
#endif

static json_t *latency(const struct wd_hist *h)
{
	struct wd_hist_snap s;

	wd_hist_read(h, &s);
	return json_pack("{s:I,s:f,s:f,s:f}", "count", (json_int_t)s.count,
	                 "sum_s", (double)s.sum_us / 1e6, "p50_s",
	                 wd_hist_quantile(&s, 0.5), "p99_s",
	                 wd_hist_quantile(&s, 0.99));
}

static json_t *by_reason(const wd_counter *c)
{
	json_t *o = json_object();

	for (int i = 0; o && i < WD_SERIES_REASONS; i++)
		if (wd_counted(c[i]))
			json_object_set_new(
			    o, wd_reasons[i],
			    json_integer((json_int_t)wd_counted(c[i])));
	return o;
}

static json_t *route(const struct wd_series_view *v,
                     const struct wd_route_series *r)
{
	json_t *handled = json_object();

	for (int i = 0; handled && i < WD_OUTCOMES; i++)
		json_object_set_new(
		    handled, wd_outcome_names[i],
		    json_integer((json_int_t)wd_counted(r->handled[i])));
	return json_pack(
	    "{s:s,s:s,s:s,s:o,s:I,s:I,s:I,s:I,s:f,s:f,s:o}", "type", r->type,
	    "plugin", r->plugin, "handler", r->handler, "handled", handled,
	    "followups", (json_int_t)wd_counted(r->followups),
	    "followups_failed", (json_int_t)wd_counted(r->followups_failed),
	    "batches", (json_int_t)wd_counted(r->batches),
	    "handler_timeout_warnings",
	    (json_int_t)wd_counted(r->handler_timeout_warnings),
	    "handled_per_s", wd_series_rate(v, &r->handled_rate),
	    "failed_per_s", wd_series_rate(v, &r->failed_rate),
	    "handler_latency", latency(&r->handler_seconds));
}

static json_t *inflight(const struct wd_queue_series *q)
{
	json_t *o = json_object();

	for (int i = 0; o && i < WD_INFLIGHT_STAGES; i++)
		json_object_set_new(o, wd_inflight_names[i],
		                    json_integer(atomic_load(&q->inflight[i])));
	return o;
}

/* Its consumers' prefetch, one per slot that has one. */
static json_t *consumers(const struct wd_queue_series *q)
{
	json_t *a = json_array();

	for (int i = 0; a && i < WD_SERIES_MAX_SLOTS; i++) {
		int v =
		    atomic_load_explicit(&q->prefetch[i], memory_order_relaxed);
		if (v > 0)
			json_array_append_new(
			    a, json_pack("{s:i,s:i,s:b}", "slot", i, "prefetch",
			                 v, "auto",
			                 atomic_load(&q->prefetch_auto[i])));
	}
	return a;
}

static json_t *queue(const struct wd_series_view *v,
                     const struct wd_queue_series *q)
{
	json_t *routes = json_array();

	for (const struct wd_route_series *r = v->routes; routes && r;
	     r = r->next)
		if (strcmp(r->queue, q->queue) == 0)
			json_array_append_new(routes, route(v, r));
	return json_pack(
	    "{s:s,s:I,s:f,s:o,s:o,s:I,s:I,s:I,s:o,s:o,s:o,s:o}", "queue",
	    q->queue, "received", (json_int_t)wd_counted(q->received),
	    "received_per_s", wd_series_rate(v, &q->received_rate),
	    "dead_lettered", by_reason(q->dead_lettered), "dropped",
	    by_reason(q->dropped), "retry_published",
	    (json_int_t)wd_counted(q->retry_published), "republish_failed",
	    (json_int_t)wd_counted(q->republish_failed), "consumer_timeouts",
	    (json_int_t)wd_counted(q->consumer_timeouts), "end_to_end_latency",
	    latency(&q->end_to_end), "routes", routes, "inflight", inflight(q),
	    "consumers", consumers(q));
}

static json_t *slots(const struct wd_series_view *v)
{
	json_t *a = json_array();
	int64_t now = wd_now_ms();

	for (int i = 0; a && i < v->nslots; i++) {
		const struct wd_slot_series *s = &v->slots[i];
		int state = atomic_load(&s->state);
		json_t *o = json_pack("{s:i,s:s,s:I}", "slot", i, "state",
		                      wd_slot_state_names[state], "inflight",
		                      (json_int_t)atomic_load(&s->inflight));
		int node = atomic_load(&s->node);
		if (o && node >= 0 && node < v->nnodes)
			json_object_set_new(o, "node",
			                    json_string(v->nodes[node]));
		if (o && state == WD_SLOT_RECONNECTING) {
			int64_t in = atomic_load(&s->retry_at_ms) - now;
			json_object_set_new(
			    o, "retry_in_s",
			    json_real(in > 0 ? (double)in / 1000 : 0));
		}
		json_array_append_new(a, o);
	}
	return a;
}

struct build {
	json_t *doc;
};

static void collect(const struct wd_series_view *v, void *arg)
{
	struct build *b = arg;
	json_t *queues = json_array(), *plugins = json_array();

	for (const struct wd_queue_series *q = v->queues; queues && q;
	     q = q->next)
		json_array_append_new(queues, queue(v, q));
	for (size_t i = 0; plugins && i < v->nplugins; i++)
		json_array_append_new(
		    plugins,
		    json_pack("{s:s,s:s,s:I}", "plugin", v->plugins[i].plugin,
		              "version", v->plugins[i].version, "generation",
		              (json_int_t)v->plugins[i].generation));
	json_object_set_new(b->doc, "queues", queues ? queues : json_null());
	json_object_set_new(b->doc, "plugins", plugins ? plugins : json_null());
	json_object_set_new(b->doc, "slots", slots(v));
	json_t *events = json_array();
	for (size_t i = 0; events && i < WD_SERIES_PLUGIN_COUNTERS; i++) {
		const struct wd_plugin_counter *c =
		    atomic_load(&v->plugin_counters[i]);
		if (c)
			json_array_append_new(
			    events,
			    json_pack("{s:s,s:s,s:I}", "plugin", c->plugin,
			              "name", c->name, "value",
			              (json_int_t)wd_counted(c->value)));
	}
	json_object_set_new(b->doc, "plugin_events",
	                    events ? events : json_null());
}

#define T(name) "" #name, (json_int_t)wd_metric_get(name)

char *wd_status_json(size_t *len)
{
	struct build b = {.doc = json_object()};
	struct wd_process p;
	char *text;

	if (!b.doc)
		return NULL;
	wd_process_read(&p);
	json_object_set_new(b.doc, "version", json_string(WARREN_VERSION));
	json_object_set_new(
	    b.doc, "process",
	    json_pack("{s:f,s:f,s:I,s:i}", "uptime_s",
	              (double)wd_wall_ms() / 1000 - p.start_time_s,
	              "cpu_seconds", p.cpu_seconds, "resident_bytes",
	              (json_int_t)p.rss_bytes, "open_fds", (int)p.open_fds));
	json_object_set_new(
	    b.doc, "totals",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
	              "s:I}",
	              T(received), T(acked), T(retried), T(dead_lettered),
	              T(dropped), T(retry_published), T(republish_failed),
	              T(ack_frames), T(connections_opened), T(connections_lost),
	              T(reloads), T(generation), T(handler_timeout_warnings),
	              T(consumer_timeouts)));
	wd_series_visit(collect, &b);
	text = json_dumps(b.doc, JSON_COMPACT);
	json_decref(b.doc);
	if (text)
		*len = strlen(text);
	return text;
}
