/* The HTTP endpoint against a real warrend and broker: /metrics counts a
 * known mix of messages per queue and route and passes promtool; handler
 * and end-to-end histograms; /healthz, /readyz (503 while the broker is
 * down, 200 once consuming), /status; and hostile clients (unknown paths,
 * wrong methods, huge headers, a slow client, a thousand connections)
 * that never stall the message path. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "it_proxy.h"

#define WAIT_MS 30000

static char *fixture(const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/tests/fixtures/%s", it_build_dir(), name);
	return strdup(p);
}

/* The value of the first /metrics sample line that starts with `series`
 * (the name and labels, exactly), or -1. */
static double sample(const char *metrics, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = metrics; p && *p;) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return -1;
}

static void expect_sample(const char *metrics, const char *series, double want)
{
	double got = sample(metrics, series);
	cr_expect_eq(got, want, "%s = %g, want %g", series, got, want);
}

/* Poll path until it answers `code` (bounded); returns the last body. */
static char *wait_status(int port, const char *path, int code, int ms)
{
	int64_t end = it_now_ms() + ms;
	char *body = NULL;
	int got = 0;

	while (it_now_ms() < end) {
		free(body);
		got = it_http_get(port, path, &body);
		if (got == code)
			return body;
		usleep(50 * 1000);
	}
	cr_assert_fail("%s answered %d, not %d, for %d ms: %s", path, got, code,
	               ms, body);
	return body;
}

static void promtool_check(const char *metrics)
{
	char path[512], cmd[1100], *out = NULL;
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/metrics.txt", it_tmp_dir());
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(metrics, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s' 2>&1", path);
	f = popen(cmd, "r");
	cr_assert_not_null(f, "cannot run promtool");
	size_t len = 0;
	FILE *o = open_memstream(&out, &len);
	char buf[512];
	while (fgets(buf, sizeof(buf), f))
		fputs(buf, o);
	fclose(o);
	rc = pclose(f);
	cr_expect_eq(rc, 0, "promtool check metrics failed (%d): %s", rc, out);
	cr_expect_eq(len, 0, "promtool says: %s", out);
	free(out);
}

Test(http, metrics_count_a_known_mix, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char series[512], pub[600], *metrics;
	amqp_basic_properties_t props = {0};
	char *plugin = fixture("fx_flow.so");

	it_names_init(&n, "http.mix");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow",
	            "policy { retry_delay_ms = 200 }", NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	free(wait_status(port, "/readyz", 200, WAIT_MS));

	amqp_connection_state_t c = it_connect();
	for (int i = 1; i <= 3; i++) {
		char body[64];
		snprintf(body, sizeof(body), "{\"type\":\"t:flow\",\"id\":%d}",
		         i);
		it_publish_str(c, n.x, "k", body);
	}
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":4,\"fail_until\":2}");
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":5,\"reject\":"
	               "true}");
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":6,\"outcome\":99}");
	it_publish_str(c, n.x, "k", "not json");
	it_publish_str(c, n.x, "k", "{\"type\":\"t:none\",\"id\":8}");
	snprintf(
	    pub, sizeof(pub),
	    "{\"type\":\"t:flow\",\"id\":9,\"publish\":[{\"exchange\":\"\","
	    "\"rk\":\"%s\",\"body\":\"f\"}]}",
	    n.dlq);
	it_publish_str(c, n.x, "k", pub);
	/* A millisecond AMQP timestamp (Date.now()), 2 s in the past: its
	 * end-to-end latency lands in the (1 s, 2.5 s] bucket, not far off
	 * as seconds would put it. */
	props._flags = AMQP_BASIC_TIMESTAMP_FLAG;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	props.timestamp = (uint64_t)now.tv_sec * 1000 +
	                  (uint64_t)now.tv_nsec / 1000000 - 2000;
	it_publish_props(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":10}",
	                 &props);
	it_close(c);

	/* Reject, invalid, unparseable, unknown type: dead-lettered; and the
	 * follow-up of id 9. id 4 comes back from its retry queue. */
	cr_assert_eq(it_wait_queue(n.dlq, 5, WAIT_MS), 5);
	cr_assert_eq(it_log_wait(&d, "flow id=4 attempt=2", 1, WAIT_MS), 1);
	cr_assert_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);

	int64_t end = it_now_ms() + WAIT_MS;
	snprintf(series, sizeof(series),
	         "warren_handled_total{queue=\"%s\",type=\"t:flow\",plugin="
	         "\"p\",handler=\"flow\",outcome=\"ack\"}",
	         n.q);
	for (;;) { /* the acks of the last ones may still be on their way */
		cr_assert_eq(it_http_get(port, "/metrics", &metrics), 200);
		if (sample(metrics, series) == 6 || it_now_ms() > end)
			break;
		free(metrics);
		usleep(50 * 1000);
	}
	promtool_check(metrics);

#define ROUTE_LABELS(outcome)                                                  \
	"{queue=\"%s\",type=\"t:flow\",plugin=\"p\",handler=\"flow\"" outcome  \
	"}"
	snprintf(series, sizeof(series), "warren_received_total{queue=\"%s\"}",
	         n.q);
	expect_sample(metrics, series, 11); /* 10 published, 1 retried */
	const char *outcomes[] = {"ack", "retry", "reject", "invalid"};
	const double want[] = {6, 1, 1, 1}; /* ids 1-3, 4 (2nd), 9, 10 */
	for (int i = 0; i < 4; i++) {
		char o[64];
		snprintf(o, sizeof(o), ",outcome=\"%s\"", outcomes[i]);
		snprintf(series, sizeof(series),
		         "warren_handled_total{queue=\"%s\",type=\"t:flow\","
		         "plugin=\"p\",handler=\"flow\"%s}",
		         n.q, o);
		expect_sample(metrics, series, want[i]);
	}
	const char *reasons[] = {
	    "handler-reject", "invalid-outcome", "unparseable", "unknown-type",
	    "max-attempts",   "too-large",       "bad-type"};
	const double dl[] = {1, 1, 1, 1, 0, 0, 0};
	for (int i = 0; i < 7; i++) {
		snprintf(
		    series, sizeof(series),
		    "warren_dead_lettered_total{queue=\"%s\",reason=\"%s\"}",
		    n.q, reasons[i]);
		expect_sample(metrics, series, dl[i]);
	}
	snprintf(series, sizeof(series),
	         "warren_retry_published_total{queue=\"%s\"}", n.q);
	expect_sample(metrics, series, 1);
	snprintf(series, sizeof(series),
	         "warren_followups_total" ROUTE_LABELS(""), n.q);
	expect_sample(metrics, series, 1);
	snprintf(series, sizeof(series),
	         "warren_handler_duration_seconds_count" ROUTE_LABELS(""), n.q);
	expect_sample(metrics, series, 9); /* every handler call */
	/* Only id 10 says when it was published. */
	snprintf(series, sizeof(series),
	         "warren_end_to_end_latency_seconds_count{queue=\"%s\"}", n.q);
	expect_sample(metrics, series, 1);
	snprintf(series, sizeof(series),
	         "warren_end_to_end_latency_seconds_bucket{queue=\"%s\",le="
	         "\"1\"}",
	         n.q);
	expect_sample(metrics, series, 0);
	snprintf(series, sizeof(series),
	         "warren_end_to_end_latency_seconds_bucket{queue=\"%s\",le="
	         "\"2.5\"}",
	         n.q);
	expect_sample(metrics, series, 1);
	expect_sample(metrics,
	              "warren_plugin_info{plugin=\"p\",version=\"1.0.0\","
	              "generation=\"1\"}",
	              1);
	expect_sample(metrics,
	              "warren_slot_state{slot=\"0\",state=\"consuming\"}", 1);
	const char *stages[] = {"waiting_worker", "in_handler",
	                        "waiting_confirm", "waiting_concurrency"};
	for (int i = 0; i < 4; i++) {
		snprintf(series, sizeof(series),
		         "warren_inflight{queue=\"%s\",stage=\"%s\"}", n.q,
		         stages[i]);
		expect_sample(metrics, series, 0); /* all settled */
	}
	cr_expect_gt(sample(metrics, "process_resident_memory_bytes"), 1e6);
	cr_expect_gt(sample(metrics, "process_open_fds"), 3);
	free(metrics);

	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, handler_duration_lands_in_its_bucket, .timeout = 90)
{
	struct it_names n;
	struct it_daemon d;
	char series[512], *metrics;
	char *plugin = fixture("fx_flow.so");

	it_names_init(&n, "http.hist");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < 3; i++)
		it_publish_str(
		    c, n.x, "k",
		    "{\"type\":\"t:flow\",\"id\":1,\"sleep_ms\":20}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "flow id=1", 3, WAIT_MS), 3);
	snprintf(series, sizeof(series),
	         "warren_handler_duration_seconds_count" ROUTE_LABELS(""), n.q);
	int64_t end = it_now_ms() + WAIT_MS;
	do {
		cr_assert_eq(it_http_get(port, "/metrics", &metrics), 200);
		if (sample(metrics, series) == 3)
			break;
		free(metrics);
		metrics = NULL;
		usleep(50 * 1000);
	} while (it_now_ms() < end);
	cr_assert_not_null(metrics);
	/* 20 ms sleeps: none at or under 10 ms, all under 50 ms. */
	snprintf(series, sizeof(series),
	         "warren_handler_duration_seconds_bucket{queue=\"%s\",type="
	         "\"t:flow\",plugin=\"p\",handler=\"flow\",le=\"0.01\"}",
	         n.q);
	expect_sample(metrics, series, 0);
	snprintf(series, sizeof(series),
	         "warren_handler_duration_seconds_bucket{queue=\"%s\",type="
	         "\"t:flow\",plugin=\"p\",handler=\"flow\",le=\"0.05\"}",
	         n.q);
	expect_sample(metrics, series, 3);
	snprintf(series, sizeof(series),
	         "warren_handler_duration_seconds_sum" ROUTE_LABELS(""), n.q);
	double sum = sample(metrics, series);
	cr_expect(sum >= 0.06 && sum < 0.15, "sum %g s for three 20 ms calls",
	          sum);
	free(metrics);

	/* A handler that takes its time shows in the in-flight gauge. */
	c = it_connect();
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":2,\"sleep_ms\":1500}");
	it_close(c);
	snprintf(series, sizeof(series),
	         "warren_inflight{queue=\"%s\",stage=\"in_handler\"}", n.q);
	double seen = 0;
	end = it_now_ms() + WAIT_MS;
	while (seen != 1 && it_now_ms() < end) {
		cr_assert_eq(it_http_get(port, "/metrics", &metrics), 200);
		seen = sample(metrics, series);
		free(metrics);
		usleep(20 * 1000);
	}
	cr_expect_eq(seen, 1, "in_handler never showed the sleeping call");
	cr_assert_eq(it_log_wait(&d, "flow id=2", 1, WAIT_MS), 1);
	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, health_ready_and_status, .timeout = 90)
{
	struct it_names n;
	struct it_daemon d;
	char *body;
	json_error_t jerr;
	char *plugin = fixture("fx_flow.so");

	it_names_init(&n, "http.health");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	body = wait_status(port, "/readyz", 200, WAIT_MS);
	cr_expect(strstr(body, "\"status\":\"ok\"") != NULL, "%s", body);
	free(body);
	cr_expect_eq(it_http_get(port, "/healthz", &body), 200, "%s", body);
	free(body);

	amqp_connection_state_t c = it_connect();
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":1}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "flow id=1", 1, WAIT_MS), 1);
	cr_assert_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);

	cr_assert_eq(it_http_get(port, "/status", &body), 200);
	json_t *doc = json_loads(body, 0, &jerr);
	cr_assert_not_null(doc, "not JSON (%s): %s", jerr.text, body);
	json_t *queues = json_object_get(doc, "queues");
	json_t *mine = NULL;
	for (size_t i = 0; i < json_array_size(queues); i++) {
		json_t *q = json_array_get(queues, i);
		if (strcmp(json_string_value(json_object_get(q, "queue")),
		           n.q) == 0)
			mine = q;
	}
	cr_assert_not_null(mine, "no queue %s in %s", n.q, body);
	cr_expect_eq(json_integer_value(json_object_get(mine, "received")), 1);
	json_t *route = json_array_get(json_object_get(mine, "routes"), 0);
	cr_expect_eq(json_integer_value(json_object_get(
	                 json_object_get(route, "handled"), "ack")),
	             1, "%s", body);
	cr_expect_eq(json_array_size(json_object_get(doc, "slots")), 2);
	json_decref(doc);
	free(body);

	/* Stopping: the endpoint answers until the pool is down. */
	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, readyz_is_503_while_the_broker_is_down, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char *body;
	char *plugin = fixture("fx_flow.so");

	if (!it_url_is_loopback())
		cr_skip_test("the proxy forwards to 127.0.0.1 only");
	struct it_proxy *p = it_proxy_start(it_url_port());
	char *url = it_proxy_url(p);
	it_url_override = url;
	it_names_init(&n, "http.down");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	free(wait_status(port, "/readyz", 200, WAIT_MS));

	/* The broker goes away: connections drop, new ones are refused. */
	it_proxy_refuse(p, true);
	it_proxy_cut(p);
	body = wait_status(port, "/readyz", 503, WAIT_MS);
	cr_expect(strstr(body, "\"state\":\"reconnecting\"") ||
	              strstr(body, "\"state\":\"connecting\""),
	          "%s", body);
	free(body);
	/* Still alive: only not ready. */
	cr_expect_eq(it_http_get(port, "/healthz", &body), 200, "%s", body);
	free(body);

	/* Back: ready again once every slot consumes. */
	it_proxy_refuse(p, false);
	free(wait_status(port, "/readyz", 200, 60000));

	free(it_stop_and_log(&d));
	it_url_override = NULL;
	it_proxy_stop(p);
	it_names_delete(&n);
	free(url);
	free(conf);
	free(plugin);
}

/* The message path keeps flowing while clients misbehave. */
static void expect_messages_flow(struct it_daemon *d, struct it_names *n,
                                 int first, int count)
{
	amqp_connection_state_t c = it_connect();
	char body[64], needle[64];

	for (int i = 0; i < count; i++) {
		snprintf(body, sizeof(body), "{\"type\":\"t:flow\",\"id\":%d}",
		         first + i);
		it_publish_str(c, n->x, "k", body);
	}
	it_close(c);
	snprintf(needle, sizeof(needle), "flow id=%d ", first + count - 1);
	cr_expect_eq(it_log_wait(d, needle, 1, 10000), 1,
	             "message %d not handled within 10 s", first + count - 1);
}

Test(http, hostile_clients_get_4xx_or_are_cut, .timeout = 180)
{
	struct it_names n;
	struct it_daemon d;
	char *resp, *body;
	char *plugin = fixture("fx_flow.so");
	struct rlimit rl;
	int st;

	/* A thousand sockets of our own, and the broker's. */
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < 4096 && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	it_names_init(&n, "http.hostile");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);

	cr_expect_eq(it_http_get(port, "/nope", &body), 404);
	free(body);
	cr_expect_eq(it_http_get(port, "/metrics/../etc/passwd", &body), 404);
	free(body);
	cr_expect_eq(it_http_raw(port,
	                         "POST /metrics HTTP/1.1\r\nHost: x\r\n"
	                         "Content-Length: 5\r\nConnection: close\r\n"
	                         "\r\nhello",
	                         &resp, 10000),
	             405, "%s", resp);
	cr_expect(resp && strstr(resp, "Allow: GET, HEAD"), "%s", resp);
	free(resp);
	cr_expect_eq(it_http_raw(port,
	                         "DELETE / HTTP/1.1\r\nHost: x\r\n"
	                         "Connection: close\r\n\r\n",
	                         NULL, 10000),
	             405);
	st = it_http_raw(port, "garbage\r\n\r\n", &resp, 10000);
	cr_expect(st == 400 || st == 0, "garbage answered %d: %s", st, resp);
	free(resp);

	/* 100 KiB of headers: refused with a 4xx, or the connection cut. */
	size_t big = 100 * 1024;
	char *huge = malloc(big + 128);
	cr_assert_not_null(huge);
	int off = snprintf(huge, 128, "GET /metrics HTTP/1.1\r\nX-Big: ");
	memset(huge + off, 'a', big);
	strcpy(huge + off + big, "\r\nConnection: close\r\n\r\n");
	st = it_http_raw(port, huge, NULL, 15000);
	cr_expect(st == 0 || (st >= 400 && st < 500),
	          "huge headers answered %d", st);
	free(huge);

	/* A slow client: half a request line, then nothing. The server cuts
	 * it after its idle timeout (10 s), well before ours. */
	int64_t t0 = it_now_ms();
	st = it_http_raw(port, "GET /metr", NULL, 20000);
	int64_t took = it_now_ms() - t0;
	cr_expect_eq(st, 0);
	cr_expect(took < 15000, "a slow client held its connection %jd ms",
	          (intmax_t)took);

	/* A thousand connections at once, idle: the endpoint takes what it
	 * allows and cuts the rest; messages keep flowing meanwhile, and a
	 * scrape works once they are gone. */
	enum { N = 1000 };
	int fds[N], opened = 0;
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (int i = 0; i < N; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0)
			break;
		if (connect(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0) {
			close(fds[i]);
			break;
		}
		opened++;
	}
	cr_expect_gt(opened, 100, "only %d connections opened", opened);
	expect_messages_flow(&d, &n, 1000, 50);
	for (int i = 0; i < opened; i++)
		close(fds[i]);
	body = wait_status(port, "/metrics", 200, WAIT_MS);
	cr_expect(strstr(body, "warren_received_total") != NULL);
	free(body);
	cr_expect_eq(it_http_get(port, "/healthz", &body), 200, "%s", body);
	free(body);

	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, plugin_counters, .timeout = 90)
{
	struct it_names n;
	struct it_daemon d;
	char *metrics;
	char *plugin = fixture("fx_flow.so");

	it_names_init(&n, "http.count");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	amqp_connection_state_t c = it_connect();
	for (int i = 1; i <= 3; i++)
		it_publish_str(
		    c, n.x, "k",
		    "{\"type\":\"t:flow\",\"id\":1,\"count\":{\"name\":"
		    "\"emails_sent\",\"n\":2}}");
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":2,\"count\":{\"name\":"
	               "\"9 bad\",\"n\":1}}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "count refused id=2", 1, WAIT_MS), 1);
	cr_assert_eq(it_log_wait(&d, "flow id=1", 3, WAIT_MS), 3);
	cr_expect_eq(it_log_count(&d, "counter_add(\"9 bad\") refused"), 1);
	cr_assert_eq(it_http_get(port, "/metrics", &metrics), 200);
	expect_sample(metrics,
	              "warren_plugin_events_total{plugin=\"p\",name=\"emails_"
	              "sent\"}",
	              6);
	cr_expect(strstr(metrics, "9 bad") == NULL, "a refused name shows");
	promtool_check(metrics);
	free(metrics);
	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, periodic_metrics_line_and_memory_watch, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char *plugin = fixture("fx_flow.so"), line[2048], *log;

	it_names_init(&n, "http.mem");
	char *conf = it_conf(n.x, n.q, plugin, "t:flow=flow",
	                     "metrics_interval = 1\n"
	                     "memory_warn_mb = 1\n"
	                     "memory_warn_samples = 3\n"
	                     "memory_warn_growth_kb = 512",
	                     NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	cr_assert_geq(it_log_wait(&d, "[metrics] every 1 s:", 1, WAIT_MS), 1);
	/* Far over 1 MiB from the start: said once, not every second. */
	cr_assert_eq(
	    it_log_wait(&d, "is over memory_warn_mb (1 MiB)", 1, WAIT_MS), 1);

	/* 2 MiB kept per message, a message every 200 ms: memory grows at
	 * every line until the watch says so. */
	amqp_connection_state_t c = it_connect();
	int64_t end = it_now_ms() + 20000;
	int sent = 0;
	while (it_now_ms() < end &&
	       it_log_count(&d, "resident memory grew at each of the last 3") ==
	           0) {
		it_publish_str(
		    c, n.x, "k",
		    "{\"type\":\"t:flow\",\"id\":3,\"leak_kb\":2048}");
		sent++;
		usleep(200 * 1000);
	}
	it_close(c);
	cr_expect_eq(
	    it_log_count(&d, "resident memory grew at each of the last 3"), 1,
	    "no growth warning after %d messages", sent);
	cr_expect_eq(it_log_count(&d, "is over memory_warn_mb"), 1);
	log = it_log_read(&d);
	cr_assert(it_log_line(log, "handled_per_s=", line, sizeof(line)));
	cr_expect(strstr(line, "received_per_s=") && strstr(line, "rss_mb=") &&
	              strstr(line, "handler_p99_ms="),
	          "%s", line);
	free(log);
	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, json_log_lines_name_the_message, .timeout = 90)
{
	struct it_names n;
	struct it_daemon d;
	amqp_basic_properties_t props = {0};
	char *plugin = fixture("fx_flow.so"), *log;
	int lines = 0, about = 0;

	it_names_init(&n, "http.json");
	char *conf = it_conf(n.x, n.q, plugin, "t:flow=flow",
	                     "log_format = \"json\"", NULL, NULL, NULL);
	it_daemon_start(&d, conf, false);
	cr_assert_geq(it_log_wait(&d, "\"text\":\"warrend ", 1, WAIT_MS), 1);
	amqp_connection_state_t c = it_connect();
	props._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
	props.message_id = amqp_cstring_bytes("m-\"42\"");
	it_publish_props(c, n.x, "k",
	                 "{\"type\":\"t:flow\",\"id\":7,\"reject\":true}",
	                 &props);
	it_close(c);
	cr_assert_eq(it_wait_queue(n.dlq, 1, WAIT_MS), 1);
	free(it_stop_and_log(&d));
	log = it_log_read(&d);
	for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
		json_error_t err;
		json_t *j = json_loads(line, 0, &err);
		lines++;
		cr_expect_not_null(j, "not JSON (%s): %s", err.text, line);
		if (!j)
			continue;
		cr_expect(json_is_string(json_object_get(j, "time")) &&
		              json_is_string(json_object_get(j, "level")) &&
		              json_is_string(json_object_get(j, "area")) &&
		              json_is_string(json_object_get(j, "text")),
		          "%s", line);
		const char *text =
		    json_string_value(json_object_get(j, "text"));
		if (text && strstr(text, "rejected: rejected id=7")) {
			about++;
			cr_expect_str_eq(
			    json_string_value(json_object_get(j, "queue")),
			    n.q);
			cr_expect_str_eq(
			    json_string_value(json_object_get(j, "message_id")),
			    "m-\"42\"");
			cr_expect(json_is_integer(json_object_get(j, "slot")));
			cr_expect_gt(
			    json_integer_value(json_object_get(j, "tag")), 0);
		}
		json_decref(j);
	}
	cr_expect_gt(lines, 5);
	cr_expect_eq(about, 1, "the reject line, with its message");
	free(log);
	it_names_delete(&n);
	free(conf);
	free(plugin);
}

Test(http, start_while_the_broker_is_down, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char *body;
	char *plugin = fixture("fx_flow.so");

	if (!it_url_is_loopback())
		cr_skip_test("the proxy forwards to 127.0.0.1 only");
	/* A port where the broker will be: nothing listens there yet. */
	struct it_proxy *p = it_proxy_start(it_url_port());
	int port = it_proxy_port(p);
	char *url = it_proxy_url(p);
	it_proxy_stop(p);
	it_url_override = url;
	it_names_init(&n, "http.boot");
	char *conf = it_conf(n.x, n.q, plugin, "t:flow=flow", NULL,
	                     "  connect_timeout = 2", NULL, NULL);
	it_daemon_start(&d, conf, false);
	int http = it_http_port(&d);
	/* It waits, saying why, and is alive but not ready. */
	cr_assert_geq(it_log_wait(&d,
	                          "the broker is not reachable yet (attempt 2)",
	                          1, WAIT_MS),
	              1);
	cr_expect_geq(it_log_count(&d, "Connection refused"), 2);
	body = wait_status(http, "/readyz", 503, WAIT_MS);
	cr_expect(strstr(body, "starting") != NULL, "%s", body);
	free(body);
	cr_expect_eq(it_http_get(http, "/healthz", &body), 200, "%s", body);
	free(body);

	/* The broker comes up where it was: consuming, ready. */
	p = it_proxy_start_at(it_url_port(), port);
	free(wait_status(http, "/readyz", 200, 60000));
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":1}");
	it_close(c);
	cr_expect_eq(it_log_wait(&d, "flow id=1 ", 1, WAIT_MS), 1);
	free(it_stop_and_log(&d));
	it_url_override = NULL;
	it_proxy_stop(p);
	it_names_delete(&n);
	free(url);
	free(conf);
	free(plugin);
}
