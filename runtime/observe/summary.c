/* summary.c - the periodic line and the memory watch. */
#include "observe/summary.h"

#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/metrics.h"
#include "base/series.h"
#include "observe/process.h"

static void add_snap(struct wd_hist_snap *to, const struct wd_hist *h)
{
	struct wd_hist_snap s;

	wd_hist_read(h, &s);
	for (size_t i = 0; i <= WD_HIST_BOUNDS; i++)
		to->bucket[i] += s.bucket[i];
	to->count += s.count;
	to->sum_us += s.sum_us;
}

static void sum_all(const struct wd_series_view *v, void *arg)
{
	struct wd_summary_totals *t = arg;

	for (const struct wd_queue_series *q = v->queues; q; q = q->next) {
		t->received += wd_counted(q->received);
		add_snap(&t->end_to_end, &q->end_to_end);
	}
	for (const struct wd_route_series *r = v->routes; r; r = r->next) {
		for (int i = 0; i < WD_OUTCOMES; i++)
			t->handled += wd_counted(r->handled[i]);
		t->failed += wd_counted(r->handled[WD_OUTCOME_RETRY]) +
		             wd_counted(r->handled[WD_OUTCOME_REJECT]) +
		             wd_counted(r->handled[WD_OUTCOME_INVALID]);
		add_snap(&t->handler, &r->handler_seconds);
	}
}

static void read_totals(struct wd_summary_totals *t)
{
	memset(t, 0, sizeof(*t));
	wd_series_visit(sum_all, t);
}

void wd_summary_init(struct wd_summary *s, int64_t now_ms)
{
	struct wd_summary_totals t;
	struct wd_process p;

	memset(s, 0, sizeof(*s));
	read_totals(&t);
	s->last_ms = now_ms;
	s->last = t;
	wd_process_read(&p);
	s->rss = p.rss_bytes;
}

static double mib(uint64_t bytes)
{
	return (double)bytes / (1024.0 * 1024.0);
}

static void watch_memory(struct wd_summary *s, const struct wd_conf *conf,
                         uint64_t rss, int64_t interval_s)
{
	uint64_t limit = (uint64_t)conf->memory_warn_mb * 1024 * 1024;
	uint64_t step = (uint64_t)conf->memory_warn_growth_kb * 1024;

	if (limit > 0 && rss > limit && !s->over)
		wd_log_warnx("memory",
		             "resident memory %.1f MiB is over memory_warn_mb "
		             "(%ld MiB)",
		             mib(rss), conf->memory_warn_mb);
	s->over = limit > 0 && rss > limit;
	if (rss > s->rss && rss - s->rss > step) {
		if (s->grew++ == 0)
			s->grew_from = s->rss;
	} else {
		s->grew = 0;
	}
	if (s->grew >= conf->memory_warn_samples) {
		wd_log_warnx("memory",
		             "resident memory grew at each of the last %d "
		             "samples (%jd s apart), from %.1f to %.1f MiB: a "
		             "leak? (memory_warn_samples, "
		             "memory_warn_growth_kb)",
		             s->grew, (intmax_t)interval_s, mib(s->grew_from),
		             mib(rss));
		s->grew = 0;
	}
	s->rss = rss;
}

void wd_summary_tick(struct wd_summary *s, const struct wd_conf *conf,
                     int64_t now_ms)
{
	struct wd_summary_totals t;
	struct wd_hist_snap handler, e2e;
	struct wd_process p;
	char when[64], extra[512];
	double dt = (double)(now_ms - s->last_ms) / 1000.0;
	uint64_t handled;

	if (conf->metrics_interval <= 0 ||
	    now_ms - s->last_ms < (int64_t)conf->metrics_interval * 1000)
		return;
	read_totals(&t);
	wd_process_read(&p);
	wd_hist_diff(&s->last.handler, &t.handler, &handler);
	wd_hist_diff(&s->last.end_to_end, &t.end_to_end, &e2e);
	handled = t.handled - s->last.handled;
	snprintf(when, sizeof(when), "every %d s", conf->metrics_interval);
	snprintf(extra, sizeof(extra),
	         "; last %.0f s: received_per_s=%.1f handled_per_s=%.1f "
	         "errors_pct=%.1f handler_p50_ms=%.2f handler_p99_ms=%.2f "
	         "e2e_p50_ms=%.2f e2e_p99_ms=%.2f rss_mb=%.1f",
	         dt, (double)(t.received - s->last.received) / dt,
	         (double)handled / dt,
	         handled ? 100.0 * (double)(t.failed - s->last.failed) /
	                       (double)handled
	                 : 0.0,
	         wd_hist_quantile(&handler, 0.5) * 1000,
	         wd_hist_quantile(&handler, 0.99) * 1000,
	         wd_hist_quantile(&e2e, 0.5) * 1000,
	         wd_hist_quantile(&e2e, 0.99) * 1000, mib(p.rss_bytes));
	wd_metrics_log(when, extra);
	watch_memory(s, conf, p.rss_bytes, (int64_t)dt);
	s->last_ms = now_ms;
	s->last = t;
}
