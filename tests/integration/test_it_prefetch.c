/* prefetch = "auto" against the real broker (README: Adaptive prefetch).
 *
 * One warrend, pool 1, 2 workers, the flow fixture: a backlog of messages
 * whose handler does nothing raises the window from prefetch_min (the
 * handlers starve for deliveries while the queue has more); then messages
 * whose handler sleeps 20 ms lower it (deliveries wait behind busy
 * handlers), and the broker then holds the consumer to the new window:
 * the consumer's prefetch_count is the metric's value, the channel has no
 * limit of its own (a channel-wide one costs the broker), and the
 * channel's unacked count comes down to the window and stays there. A
 * reload that switches the queue between a number and auto applies each.
 *
 * Observed through warren_consumer_prefetch on /metrics and rabbitmqctl;
 * no timing is asserted, every wait is bounded. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 60000
/* Handler no-ops: a backlog the window holds back, published in rounds
 * until the window has grown (how many it takes depends on the machine's
 * speed). */
#define FAST_N      10000
#define FAST_ROUNDS 30
#define SLOW_N      300 /* 20 ms handlers on 2 workers: 3 s of work */
#define MIN         5
#define MAX         400

struct names {
	char x[128], q[128];
};

static void names_init(struct names *n)
{
	it_unique(n->x, sizeof(n->x), "pf.x");
	it_unique(n->q, sizeof(n->q), "pf.q");
}

static void names_delete(const struct names *n)
{
	char dlx[160], dlq[160];

	snprintf(dlx, sizeof(dlx), "%s.dlx", n->x);
	snprintf(dlq, sizeof(dlq), "%s.dlq", n->q);
	it_delete_queue(n->q);
	it_delete_queue(dlq);
	it_delete_exchange(n->x);
	it_delete_exchange(dlx);
}

/* prefetch: "auto" or a number, as the queue's own key. */
static char *conf_text(const struct names *n, const char *prefetch)
{
	char *conf;
	size_t len;
	FILE *f = open_memstream(&conf, &len);

	fprintf(f,
	        "workers = 2\n"
	        "metrics_interval = 0\n"
	        "broker { pool_size = 1 }\n"
	        "exchange \"%s\" { type = \"topic\" }\n"
	        "exchange \"%s.dlx\" { type = \"fanout\" }\n"
	        "queue \"%s\" { dead_letter_exchange = \"%s.dlx\"\n"
	        "  prefetch = %s prefetch_min = %d prefetch_max = %d }\n"
	        "queue \"%s.dlq\" { }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"#\" }\n"
	        "binding { exchange = \"%s.dlx\" queue = \"%s.dlq\" }\n"
	        "plugin \"p\" { path = \"%s/tests/fixtures/fx_flow.so\" }\n"
	        "route \"t\" { queue = \"%s\" plugin = \"p\" handler = "
	        "\"flow\" }\n",
	        n->x, n->x, n->q, n->x, prefetch, MIN, MAX, n->q, n->x, n->q,
	        n->x, n->q, it_build_dir(), n->q);
	fclose(f);
	return conf;
}

/* warren_consumer_prefetch of q's consumer on slot 0 in `mode` ("auto",
 * "static"), or -1 if /metrics has no such line. */
static long prefetch_metric(int port, const char *q, const char *mode)
{
	char *metrics = NULL, series[400];
	const char *p;
	long v = -1;

	snprintf(
	    series, sizeof(series),
	    "warren_consumer_prefetch{queue=\"%s\",slot=\"0\",mode=\"%s\"} ", q,
	    mode);
	cr_assert_eq(it_http_get(port, "/metrics", &metrics), 200);
	p = strstr(metrics, series);
	if (p)
		v = strtol(p + strlen(series), NULL, 10);
	free(metrics);
	return v;
}

/* Poll the metric until want(value) holds (bounded); the last value. */
static long wait_metric(int port, const char *q, const char *mode,
                        bool (*want)(long v, long arg), long arg)
{
	int64_t end = it_now_ms() + WAIT_MS;
	long v;

	do {
		v = prefetch_metric(port, q, mode);
		if (want(v, arg))
			return v;
		usleep(100 * 1000);
	} while (it_now_ms() < end);
	return v;
}

static bool at_least(long v, long arg)
{
	return v >= arg;
}

static bool at_most(long v, long arg)
{
	return v > 0 && v <= arg;
}

static bool equal(long v, long arg)
{
	return v == arg;
}

/* The consumer channel's (channel 3 of the consuming connection; with
 * pool 1 there is one) limit and unacked count, as rabbitmqctl
 * list_channels shows them; false if no such channel is listed. */
static bool consumer_channel(int ch, long *global, long *unacked)
{
	char *out, *line, *save = NULL, suffix[16];
	bool found = false;

	snprintf(suffix, sizeof(suffix), "(%d)", ch);
	cr_assert_eq(it_broker_ctl_out("list_channels -q --no-table-headers "
	                               "name global_prefetch_count "
	                               "messages_unacknowledged",
	                               &out),
	             0, "rabbitmqctl list_channels failed");
	for (line = strtok_r(out, "\n", &save); line && !found;
	     line = strtok_r(NULL, "\n", &save)) {
		char *t1 = strchr(line, '\t'), *t2;
		if (!t1 || !(t2 = strchr(t1 + 1, '\t')))
			continue;
		*t1 = '\0';
		if (strlen(line) < strlen(suffix) ||
		    strcmp(line + strlen(line) - strlen(suffix), suffix) != 0)
			continue;
		*global = strtol(t1 + 1, NULL, 10);
		*unacked = strtol(t2 + 1, NULL, 10);
		found = true;
	}
	free(out);
	return found;
}

/* The prefetch_count of q's consumer of its own (list_consumers), or -1 if
 * q has no consumer. */
static long consumer_prefetch(const char *q)
{
	char *out, *line, *save = NULL;
	long v = -1;

	cr_assert_eq(it_broker_ctl_out("list_consumers -q --no-table-headers "
	                               "queue_name prefetch_count",
	                               &out),
	             0, "rabbitmqctl list_consumers failed");
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');
		if (!tab)
			continue;
		*tab = '\0';
		if (strcmp(line, q) == 0)
			v = strtol(tab + 1, NULL, 10);
	}
	free(out);
	return v;
}

static long wait_consumer_prefetch(const char *q, long want);

static void publish(const struct names *n, int from, int count, int sleep_ms)
{
	amqp_connection_state_t c = it_connect();
	char body[128];

	for (int i = from; i < from + count; i++) {
		if (sleep_ms)
			snprintf(body, sizeof(body),
			         "{\"type\":\"t\",\"id\":%d,\"sleep_ms\":%d}",
			         i, sleep_ms);
		else
			snprintf(body, sizeof(body),
			         "{\"type\":\"t\",\"id\":%d}", i);
		it_publish_str(c, n->x, "k", body);
	}
	it_close(c);
}

Test(prefetch, auto_grows_when_starving_and_shrinks_when_hoarding,
     .timeout = 300)
{
	struct names n;
	struct it_daemon d;
	char *conf, *log;
	long high, low, global = -1, unacked = -1, own = -1;
	int port, rounds = 0;
	bool seen = false;

	if (it_broker_ctl("status") < 0)
		cr_skip_test("an external broker: rabbitmqctl cannot reach it");
	names_init(&n);
	conf = conf_text(&n, "auto");
	it_daemon_start(&d, conf, true);
	port = it_http_port(&d);
	cr_assert_eq(wait_metric(port, n.q, "auto", equal, MIN), MIN,
	             "auto starts at prefetch_min");

	/* Starving: no-op handlers, and the queue has more. */
	do {
		publish(&n, rounds * FAST_N, FAST_N, 0);
		rounds++;
		high = prefetch_metric(port, n.q, "auto");
	} while (high < 16 * MIN && rounds < FAST_ROUNDS);
	high = wait_metric(port, n.q, "auto", at_least, 16 * MIN);
	cr_assert_geq(high, 16 * MIN,
	              "the window of a consumer whose handlers starve stayed "
	              "at %ld after %d messages",
	              high, rounds * FAST_N);
	cr_assert_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);
	high = prefetch_metric(port, n.q, "auto");
	cr_log_info("prefetch after %d no-op messages: %ld (from %d)",
	            rounds * FAST_N, high, MIN);
	/* The broker's consumer has it as its own limit (it started at
	 * MIN: the window went out as a new consumer). */
	cr_expect_eq(wait_consumer_prefetch(n.q, high), high,
	             "the broker's consumer is not at the window %ld", high);

	/* Hoarding: 20 ms handlers, 2 workers, deliveries waiting behind
	 * them. */
	publish(&n, rounds * FAST_N, SLOW_N, 20);
	low = wait_metric(port, n.q, "auto", at_most, high / 2);
	cr_assert(low > 0 && low <= high / 2,
	          "the window of a consumer whose deliveries wait for busy "
	          "handlers stayed at %ld (was %ld)",
	          low, high);
	cr_log_info("prefetch with 20 ms handlers: %ld", low);

	/* The broker holds the consumer to it: its own limit is the new
	 * window, and what the channel has out unacked comes down to it (it
	 * was up to the old one). */
	for (int64_t end = it_now_ms() + WAIT_MS; !seen && it_now_ms() < end;) {
		long now = prefetch_metric(port, n.q, "auto");
		own = consumer_prefetch(n.q);
		if (own == now && consumer_channel(3, &global, &unacked) &&
		    unacked <= own)
			seen = true;
		else
			usleep(200 * 1000);
	}
	cr_assert(seen,
	          "the consumer's limit %ld, its channel's unacked %ld; the "
	          "metric %ld",
	          own, unacked, prefetch_metric(port, n.q, "auto"));
	cr_expect_eq(global, 0, "a channel-wide limit: %ld", global);
	/* A later change may re-consume: the channel then holds at most
	 * 1.5 windows while the old consumer's deliveries drain. */
	for (int i = 0; i < 3; i++) {
		own = consumer_prefetch(n.q);
		if (!consumer_channel(3, &global, &unacked))
			break; /* done: nothing left to hold */
		if (own < 0)
			continue; /* paused between two consumers: a smaller
			             window waits for the old one to drain */
		cr_expect_leq(unacked, own + own / 2,
		              "the broker has %ld unacked out to a consumer "
		              "limited to %ld",
		              unacked, own);
	}
	cr_expect_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);
	log = it_stop_and_log(&d);
	/* Each message once (counted by warrend: a strstr count of the
	 * log's lines is quadratic under ASan). */
	IT_EXPECT_METRIC(log, "received", rounds * FAST_N + SLOW_N);
	IT_EXPECT_METRIC(log, "acked", rounds * FAST_N + SLOW_N);
	free(log);
	free(conf);
	names_delete(&n);
}

/* Whether /status lists q's consumer on slot 0 with this prefetch and
 * mode. */
static bool status_shows(int port, const char *q, long prefetch, bool is_auto)
{
	char *body = NULL, want[128];
	const char *p;
	bool ok;

	cr_assert_eq(it_http_get(port, "/status", &body), 200);
	snprintf(want, sizeof(want), "\"queue\":\"%s\"", q);
	p = strstr(body, want);
	snprintf(want, sizeof(want),
	         "\"consumers\":[{\"slot\":0,\"prefetch\":%ld,\"auto\":%s}]",
	         prefetch, is_auto ? "true" : "false");
	ok = p && strstr(p, want);
	if (!ok)
		cr_log_error("/status: %s", body);
	free(body);
	return ok;
}

/* SIGHUP, then wait for generation `gen` to be ready. */
static void reload_to(struct it_daemon *d, const char *conf, int gen)
{
	char needle[96];
	FILE *f = fopen(d->conf, "w");

	cr_assert_not_null(f);
	fputs(conf, f);
	fclose(f);
	snprintf(needle, sizeof(needle), "reload: generation %d ready", gen);
	it_daemon_signal(d, SIGHUP);
	cr_assert_eq(it_log_wait(d, needle, 1, WAIT_MS), 1, "no \"%s\"",
	             needle);
}

/* Wait until q's consumer on the broker has prefetch_count `want`. */
static long wait_consumer_prefetch(const char *q, long want)
{
	int64_t end = it_now_ms() + WAIT_MS;
	long v;

	while ((v = consumer_prefetch(q)) != want && it_now_ms() < end)
		usleep(200 * 1000);
	return v;
}

Test(prefetch, reload_switches_between_a_number_and_auto, .timeout = 300)
{
	struct names n;
	struct it_daemon d;
	char *fixed, *automatic;
	long global = -1, unacked = -1;
	int port;

	if (it_broker_ctl("status") < 0)
		cr_skip_test("an external broker: rabbitmqctl cannot reach it");
	names_init(&n);
	fixed = conf_text(&n, "7");
	automatic = conf_text(&n, "\"auto\"");
	it_daemon_start(&d, fixed, true);
	port = it_http_port(&d);
	cr_assert_eq(wait_metric(port, n.q, "static", equal, 7), 7);
	cr_assert_eq(wait_consumer_prefetch(n.q, 7), 7);
	cr_expect(status_shows(port, n.q, 7, false));

	/* To auto: a new consumer, at prefetch_min, on a new channel
	 * without a channel-wide limit. */
	reload_to(&d, automatic, 2);
	cr_assert_eq(wait_metric(port, n.q, "auto", equal, MIN), MIN);
	cr_expect_eq(prefetch_metric(port, n.q, "static"), -1);
	cr_assert_eq(wait_consumer_prefetch(n.q, MIN), MIN);
	cr_assert(consumer_channel(4, &global, &unacked),
	          "no consumer channel 4 (the reload's new one)");
	cr_expect_eq(global, 0);
	cr_expect(status_shows(port, n.q, MIN, true));

	/* And back. */
	reload_to(&d, fixed, 3);
	cr_assert_eq(wait_metric(port, n.q, "static", equal, 7), 7);
	cr_expect_eq(prefetch_metric(port, n.q, "auto"), -1);
	cr_assert_eq(wait_consumer_prefetch(n.q, 7), 7);

	/* It still consumes. */
	publish(&n, 0, 20, 0);
	cr_expect_eq(it_log_wait(&d, "flow id=", 20, WAIT_MS), 20);
	free(it_stop_and_log(&d));
	free(fixed);
	free(automatic);
	names_delete(&n);
}
