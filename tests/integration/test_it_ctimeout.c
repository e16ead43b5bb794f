/* A handler that runs past the broker's consumer_timeout: warrend warns
 * about it at the route's handler_timeout_warn, names the broker's 406 with
 * what to change, counts both, and the message is handled again after the
 * reconnect (at-least-once). And a handler under its threshold is never
 * warned about.
 *
 * The first test runs its own RabbitMQ node (it_node_start, with
 * BROKER_ERL_ARGS for broker.sh): consumer_timeout 3000 ms, and the channels'
 * tick, which is when RabbitMQ 3.10 checks that timeout (channel_tick_interval,
 * 60 s by default), every 500 ms. Changing those on the shared test node would
 * change them for every other test. */
#define _GNU_SOURCE /* asprintf() */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct it_node node;

static void stop_node(void)
{
	it_node_stop(&node);
}

/* A counter's value on /metrics (the first line starting with `series`),
 * or -1. */
static long metric(int port, const char *series)
{
	char *body = NULL;
	long v = -1;

	cr_assert_eq(it_http_get(port, "/metrics", &body), 200);
	for (const char *l = body; l && *l;) {
		const char *end = strchr(l, '\n');
		if (strncmp(l, series, strlen(series)) == 0) {
			v = strtol(l + strlen(series), NULL, 10);
			break;
		}
		l = end ? end + 1 : NULL;
	}
	free(body);
	return v;
}

static void publish_with_id(const char *x, const char *body, const char *id)
{
	amqp_basic_properties_t props = {
	    ._flags = AMQP_BASIC_MESSAGE_ID_FLAG,
	    .message_id = amqp_cstring_bytes(id),
	};
	amqp_connection_state_t c = it_connect();

	it_publish_props(c, x, "k", body, &props);
	it_close(c);
}

/* it_conf's with routes of our own (their keys), appended. */
static char *conf_with(const char *x, const char *q, const char *global,
                       const char *broker, const char *params,
                       const char *routes)
{
	char path[512], *base, *out;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_slow.so",
	         it_build_dir());
	base = it_conf(x, q, path, "", global, broker, NULL, params);
	cr_assert(asprintf(&out, "%s%s", base, routes) > 0);
	free(base);
	return out;
}

TestSuite(ctimeout);

Test(ctimeout, handler_past_consumer_timeout, .timeout = 240, .fini = stop_node)
{
	char x[128], q[128], routes[512], series[512], line[2048], *conf, *log;
	struct it_daemon d;
	int port;

	setenv("BROKER_ERL_ARGS",
	       "-rabbit consumer_timeout 3000 "
	       "-rabbit channel_tick_interval 500",
	       1);
	it_node_start(&node, "ctimeout");
	it_unique(x, sizeof(x), "cto.x");
	it_unique(q, sizeof(q), "cto.q");
	snprintf(routes, sizeof(routes),
	         "route \"slow\" { queue = \"%s\" plugin = \"p\" "
	         "handler = \"sleep\"\n  handler_timeout_warn = 1 }\n",
	         q);
	/* 7 s: past the timeout (3 s) and the tick that notices it. */
	conf = conf_with(x, q, NULL, "  pool_size = 1",
	                 "sleep_ms = \"7000\" redelivered_sleep_ms = \"0\"",
	                 routes);
	it_daemon_start(&d, conf, true);
	port = it_http_port(&d);
	publish_with_id(x, "{\"type\":\"slow\",\"id\":1}", "cto-msg-1");

	/* The warning, at 1 s: route, message id, time so far. */
	cr_assert_eq(
	    it_log_wait(&d, "past its handler_timeout_warn of 1 s", 1, 20000),
	    1, "no handler_timeout_warn warning:\n%s", it_log_read(&d));
	log = it_log_read(&d);
	cr_assert(it_log_line(log, "past its handler_timeout_warn", line,
	                      sizeof(line)));
	free(log);
	cr_expect(strstr(line, " WARN "), "%s", line);
	cr_expect(strstr(line, "p/sleep: type \"slow\""), "%s", line);
	cr_expect(strstr(line, "message-id=cto-msg-1"), "%s", line);
	const char *ran = strstr(line, "has run for ");
	cr_assert_not_null(ran, "%s", line);
	double s = strtod(ran + strlen("has run for "), NULL);
	cr_expect(s >= 1.0 && s < 3.0, "elapsed %.1f s: %s", s, line);

	/* The broker's 406, named with what to change. */
	cr_assert_eq(
	    it_log_wait(&d, "within the broker's consumer_timeout", 1, 30000),
	    1, "no consumer_timeout line:\n%s", it_log_read(&d));
	log = it_log_read(&d);
	cr_assert(it_log_line(log, "within the broker's consumer_timeout", line,
	                      sizeof(line)));
	free(log);
	cr_expect(strstr(line, " ERROR "), "%s", line);
	cr_expect(strstr(line, "slot 0"), "%s", line);
	char want[300];
	snprintf(want, sizeof(want), "(queue \"%s\")", q);
	cr_expect(strstr(line, want), "%s", line);
	cr_expect(strstr(line, "PRECONDITION_FAILED"), "%s", line);
	cr_expect(strstr(line, "(406)"), "%s", line);
	cr_expect(strstr(line, "raise consumer_timeout"), "%s", line);

	/* At-least-once: handled again after the reconnect. */
	cr_assert_eq(
	    it_log_wait(&d, "slow handler done id=1 redelivered=1", 1, 30000),
	    1, "not redelivered:\n%s", it_log_read(&d));
	snprintf(series, sizeof(series),
	         "warren_handler_timeout_warnings_total{queue=\"%s\","
	         "type=\"slow\",plugin=\"p\",handler=\"sleep\"} ",
	         q);
	cr_expect_eq(metric(port, series), 1, "%s", series);
	snprintf(series, sizeof(series),
	         "warren_consumer_timeouts_total{queue=\"%s\"} ", q);
	cr_expect_eq(metric(port, series), 1, "%s", series);
	cr_expect_eq(metric(port, "warren_connections_lost_total "), 1);

	/* The first call still runs; it is warned about again at 2 and 4 s,
	 * and counted once. */
	cr_assert_eq(
	    it_log_wait(&d, "slow handler done id=1 redelivered=0", 1, 20000),
	    1);
	log = it_stop_and_log(&d);
	cr_expect_geq(it_count(log, "past its handler_timeout_warn"), 2, "%s",
	              log);
	cr_expect(strstr(log, "(next warning at 4 s)"), "%s", log);
	IT_EXPECT_METRIC(log, "handler_timeout_warnings", 1);
	IT_EXPECT_METRIC(log, "consumer_timeouts", 1);
	cr_expect_eq(it_queue_ready(q), 0);
	free(log);
	free(conf);
}

/* Two routes, one handler of 3 s: "late" warns at 1 s (its own key), "ok"
 * never (the policy's 6 s). The warning about "late" shows the watch ran
 * while "ok" was in its handler too. The watch looks once a second, at no
 * set phase: 3 s leaves it two looks past the 1 s. */
Test(ctimeout, handler_under_threshold_is_not_warned, .timeout = 120)
{
	char x[128], q[128], routes[1024], *conf, *log;
	struct it_daemon d;

	it_unique(x, sizeof(x), "ctok.x");
	it_unique(q, sizeof(q), "ctok.q");
	snprintf(routes, sizeof(routes),
	         "route \"ok\" { queue = \"%s\" plugin = \"p\" "
	         "handler = \"sleep\" }\n"
	         "route \"late\" { queue = \"%s\" plugin = \"p\" "
	         "handler = \"sleep\"\n  handler_timeout_warn = 1 }\n",
	         q, q);
	conf = conf_with(x, q, "policy { handler_timeout_warn = 6 }", NULL,
	                 "sleep_ms = \"3000\"", routes);
	it_daemon_start(&d, conf, true);
	publish_with_id(x, "{\"type\":\"ok\",\"id\":1}", "ok-1");
	publish_with_id(x, "{\"type\":\"late\",\"id\":2}", "late-1");

	cr_assert_eq(it_log_wait(&d, "slow handler done id=1 ", 1, 20000), 1);
	cr_assert_eq(it_log_wait(&d, "slow handler done id=2 ", 1, 20000), 1);
	log = it_stop_and_log(&d); /* acks both on the way out */
	IT_EXPECT_METRIC(log, "acked", 2);
	cr_expect_geq(it_count(log, "type \"late\": a handler call has run"), 1,
	              "%s", log);
	cr_expect_eq(it_count(log, "type \"ok\": a handler call has run"), 0,
	             "%s", log);
	IT_EXPECT_METRIC(log, "handler_timeout_warnings", 1);
	cr_expect_eq(it_queue_ready(q), 0);
	free(log);
	free(conf);
}
