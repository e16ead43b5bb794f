/*
 * test_metrics.c - the metrics without a broker: histogram buckets and
 * quantiles, the series registry (one series per label set, rates), the
 * publish time of a message (header, seconds, milliseconds), listen
 * addresses, and the exposition's escaping and shape.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "base/amqp_fields.h"
#include "base/histogram.h"
#include "base/listen.h"
#include "base/series.h"
#include "base/strbuf.h"
#include "message/policy.h"
#include "observe/prometheus.h"

Test(histogram, bounds_are_inclusive_and_ascending)
{
	struct wd_hist h = {0};
	struct wd_hist_snap s;

	for (size_t i = 1; i < WD_HIST_BOUNDS; i++)
		cr_assert_lt(wd_hist_bounds_us[i - 1], wd_hist_bounds_us[i]);
	cr_expect_eq(wd_hist_bounds_us[0], 50, "from 50 us");
	cr_expect_eq(wd_hist_bounds_us[WD_HIST_BOUNDS - 1], 60000000,
	             "to 60 s");
	wd_hist_observe_us(&h, 0);
	wd_hist_observe_us(&h, 50);       /* le 50 us */
	wd_hist_observe_us(&h, 51);       /* le 100 us */
	wd_hist_observe_us(&h, 20000);    /* le 25 ms */
	wd_hist_observe_us(&h, 61000000); /* +Inf */
	wd_hist_read(&h, &s);
	cr_expect_eq(s.count, 5);
	cr_expect_eq(s.bucket[0], 2);
	cr_expect_eq(s.bucket[1], 1);
	cr_expect_eq(s.bucket[8], 1, "25 ms is bound 8");
	cr_expect_eq(s.bucket[WD_HIST_BOUNDS], 1);
	cr_expect_eq(s.sum_us, 0 + 50 + 51 + 20000 + 61000000);
}

Test(histogram, quantiles_interpolate_inside_the_bucket)
{
	struct wd_hist h = {0};
	struct wd_hist_snap s, empty = {0};

	cr_expect_eq(wd_hist_quantile(&empty, 0.5), 0);
	/* 100 observations in (10 ms, 25 ms]. */
	for (int i = 0; i < 100; i++)
		wd_hist_observe_us(&h, 20000);
	wd_hist_read(&h, &s);
	double p50 = wd_hist_quantile(&s, 0.5);
	cr_expect(p50 > 0.010 && p50 <= 0.025, "p50 %g", p50);
	cr_expect_float_eq(p50, 0.0175, 1e-9, "half way: %g", p50);
	cr_expect_leq(wd_hist_quantile(&s, 0.99), 0.025);
}

Test(histogram, diff_of_snapshots)
{
	struct wd_hist h = {0};
	struct wd_hist_snap a, b, d;

	wd_hist_observe_us(&h, 1000);
	wd_hist_read(&h, &a);
	wd_hist_observe_us(&h, 1000);
	wd_hist_observe_us(&h, 2000000);
	wd_hist_read(&h, &b);
	wd_hist_diff(&a, &b, &d);
	cr_expect_eq(d.count, 2);
	cr_expect_eq(d.sum_us, 2001000);
}

Test(series, one_series_per_label_set)
{
	struct wd_queue_series *a = wd_series_queue("orders");
	struct wd_route_series *r, *r2;

	cr_assert_not_null(a);
	cr_expect_eq(wd_series_queue("orders"), a, "found, not made again");
	cr_expect_neq(wd_series_queue("orders2"), a);
	r = wd_series_route("orders", "t", "p", "h");
	r2 = wd_series_route("orders", "t", "p", "h2");
	cr_assert_not_null(r);
	cr_expect_neq(r, r2, "another handler, another series");
	cr_expect_eq(wd_series_route("orders", "t", "p", "h"), r);
	wd_count(a->received);
	wd_count_n(a->received, 2);
	cr_expect_eq(wd_counted(a->received), 3);
}

static double rate_seen;
static void read_rate(const struct wd_series_view *v, void *arg)
{
	rate_seen =
	    wd_series_rate(v, &((struct wd_queue_series *)arg)->received_rate);
}

Test(series, rates_over_the_samples)
{
	struct wd_queue_series *q = wd_series_queue("rated");

	wd_series_sample(1000);
	wd_series_visit(read_rate, q);
	cr_expect_eq(rate_seen, 0, "one sample: no rate yet");
	wd_count_n(q->received, 50);
	wd_series_sample(2000);
	wd_count_n(q->received, 50);
	wd_series_sample(3000);
	wd_series_visit(read_rate, q);
	cr_expect_float_eq(rate_seen, 50.0, 1e-9, "100 in 2 s: %g", rate_seen);
}

Test(series, reasons_are_the_policy_classes)
{
	cr_expect_eq(wd_reason_index(WD_R_HANDLER_REJECT), 0);
	cr_expect_geq(wd_reason_index(WD_R_TOO_LARGE), 0);
	cr_expect_geq(wd_reason_index(WD_R_MAX_ATTEMPTS), 0);
	cr_expect_eq(wd_reason_index(WD_R_HANDLER_RETRY), -1,
	             "a retry reason is not a dead-letter class");
	cr_expect_eq(wd_reason_index(NULL), -1);
	for (int i = 0; i < WD_SERIES_REASONS; i++)
		cr_expect_eq(wd_reason_index(wd_reasons[i]), i);
}

/* ---- when a message was published ---------------------------------------- */

static amqp_table_entry_t hdrs[2];
static amqp_envelope_t env;

static void with_timestamp(uint64_t ts)
{
	memset(&env, 0, sizeof(env));
	env.message.properties._flags = AMQP_BASIC_TIMESTAMP_FLAG;
	env.message.properties.timestamp = ts;
}

Test(published, timestamp_in_seconds_or_milliseconds)
{
	with_timestamp(1764590000); /* seconds, as the spec says */
	cr_expect_eq(wd_policy_published_us(&env), 1764590000LL * 1000000);
	with_timestamp(1764590000123ULL); /* Date.now() */
	cr_expect_eq(wd_policy_published_us(&env), 1764590000123LL * 1000);
	with_timestamp(0);
	cr_expect_eq(wd_policy_published_us(&env), -1);
	memset(&env, 0, sizeof(env));
	cr_expect_eq(wd_policy_published_us(&env), -1, "nothing says");
}

Test(published, the_header_wins)
{
	with_timestamp(1764590000);
	env.message.properties._flags |= AMQP_BASIC_HEADERS_FLAG;
	env.message.properties.headers.entries = hdrs;
	env.message.properties.headers.num_entries = 0;
	wd_table_add_i64(&env.message.properties.headers, WD_H_PUBLISHED_US,
	                 1764590000654321LL);
	cr_expect_eq(wd_policy_published_us(&env), 1764590000654321LL);
}

/* ---- listen addresses ------------------------------------------------------
 */

Test(listen, addresses)
{
	struct sockaddr_storage ss;
	socklen_t len;

	cr_expect_eq(wd_listen_parse("127.0.0.1:9466", &ss, &len), 0);
	cr_expect_eq(ss.ss_family, AF_INET);
	cr_expect_eq(wd_listen_parse("localhost:0", &ss, &len), 0);
	cr_expect_eq(wd_listen_parse("[::1]:9466", &ss, &len), 0);
	cr_expect_eq(ss.ss_family, AF_INET6);
	cr_expect_eq(wd_listen_parse("0.0.0.0:65535", &ss, &len), 0);
	cr_expect_eq(wd_listen_parse("127.0.0.1", &ss, &len), -1);
	cr_expect_eq(wd_listen_parse("127.0.0.1:", &ss, &len), -1);
	cr_expect_eq(wd_listen_parse(":9466", &ss, &len), -1);
	cr_expect_eq(wd_listen_parse("127.0.0.1:65536", &ss, &len), -1);
	cr_expect_eq(wd_listen_parse("127.0.0.1:-1", &ss, &len), -1);
	cr_expect_eq(wd_listen_parse("example.com:80", &ss, &len), -1,
	             "names are not looked up");
	cr_expect_eq(wd_listen_parse("[::1:9466", &ss, &len), -1);
}

/* ---- the exposition --------------------------------------------------------
 */

Test(exposition, label_values_are_escaped)
{
	struct wd_strbuf b = {0};
	size_t len;
	char *s;

	wd_strbuf_escaped(&b, "a\"b\\c\nd");
	s = wd_strbuf_take(&b, &len);
	cr_assert_not_null(s);
	cr_expect_str_eq(s, "a\\\"b\\\\c\\nd");
	free(s);

	cr_assert_not_null(wd_series_queue("odd \"queue\"\nname\\"));
	s = wd_prometheus_text(&len);
	cr_assert_not_null(s);
	cr_expect(strstr(s, "warren_received_total{queue=\"odd \\\"queue\\\"\\n"
	                    "name\\\\\"} 0\n") != NULL,
	          "%s", s);
	free(s);
}

Test(exposition, every_family_has_help_and_type)
{
	size_t len;
	char *s;
	int help = 0, type = 0;

	wd_series_route("q", "t", "p", "h");
	s = wd_prometheus_text(&len);
	cr_assert_not_null(s);
	cr_expect_eq(strlen(s), len);
	for (char *p = s; (p = strstr(p, "\n# HELP ")); p++)
		help++;
	for (char *p = s; (p = strstr(p, "\n# TYPE ")); p++)
		type++;
	cr_expect_gt(help, 20);
	cr_expect_eq(help + 1, type,
	             "a TYPE for each HELP (the first HELP opens the text)");
	cr_expect(strncmp(s, "# HELP warren_build_info", 24) == 0, "%.60s", s);
	cr_expect(
	    strstr(s, "warren_handler_duration_seconds_bucket{queue=\"q\","
	              "type=\"t\",plugin=\"p\",handler=\"h\",le=\"+Inf\"} 0") !=
	        NULL,
	    "%s", s);
	cr_expect(strstr(s, "\n# TYPE process_cpu_seconds_total counter\n"));
	free(s);
}
