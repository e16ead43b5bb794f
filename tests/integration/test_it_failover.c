/* Several broker addresses (broker.url = {...}, or WARREN_AMQP_URL with
 * several): the slots spread over them, a lost address is left at once for
 * the next one, an address that is down at start is skipped, and only when
 * every address failed does a slot back off. Each address here is a proxy
 * (it_proxy) in front of the one test broker: a node that goes away is a
 * proxy that refuses and cuts its connections. The 3-node cluster cases
 * are in tests/chaos/. */
#define _GNU_SOURCE /* asprintf() */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "it_proxy.h"

#define WAIT_MS 20000

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static struct it_proxy *proxy(void)
{
	if (!it_url_is_loopback())
		cr_skip_test("the proxy forwards to 127.0.0.1 only; the "
		             "broker (%s) is elsewhere",
		             it_url());
	struct it_proxy *p = it_proxy_start(it_url_port());
	cr_assert_gt(it_proxy_port(p), 0);
	return p;
}

/* Wait until p has at least n connections open. */
static int wait_open_at_least(const struct it_proxy *p, int n, int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	int seen;

	while ((seen = it_proxy_open(p)) < n && it_now_ms() < end)
		nap_ms(10);
	return seen;
}

/* WARREN_AMQP_URL for warrend: the proxies' URLs, space-separated. */
static char *urls(struct it_proxy *a, struct it_proxy *b)
{
	char *ua = it_proxy_url(a), *ub = it_proxy_url(b), *both;

	cr_assert(asprintf(&both, "%s %s", ua, ub) > 0);
	free(ua);
	free(ub);
	return both;
}

/* The node /metrics says slot `slot` is on ("127.0.0.1:PORT"), copied into
 * buf; waited for (bounded). False if none. */
static bool slot_node(const struct it_daemon *d, int slot, char *buf,
                      size_t len)
{
	char needle[64];
	int64_t end = it_now_ms() + WAIT_MS;

	snprintf(needle, sizeof(needle), "warren_slot_node{slot=\"%d\",node=\"",
	         slot);
	while (it_now_ms() < end) {
		char *body = NULL, *at;
		int status = it_http_get(it_http_port(d), "/metrics", &body);
		if (status == 200 && body && (at = strstr(body, needle))) {
			at += strlen(needle);
			size_t n = strcspn(at, "\"");
			snprintf(buf, len, "%.*s", (int)n, at);
			free(body);
			return true;
		}
		free(body);
		nap_ms(50);
	}
	return false;
}

static char *start(struct it_daemon *d, const char *pool, const char *extra,
                   char *x, char *q)
{
	char path[512], broker[256];
	char *conf;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_record.so",
	         it_build_dir());
	snprintf(broker, sizeof(broker), "  pool_size = %s\n%s", pool,
	         extra ? extra : "");
	it_unique(x, 128, "fo.x");
	it_unique(q, 128, "fo.q");
	conf = it_conf(x, q, path, "r=record", NULL, broker, NULL, NULL);
	it_daemon_start(d, conf, true);
	return conf;
}

static void publish(const char *x, int id)
{
	char body[64];
	amqp_connection_state_t c = it_connect();

	snprintf(body, sizeof(body), "{\"type\":\"r\",\"id\":%d}", id);
	it_publish_str(c, x, "k", body);
	it_close(c);
}

static void expect_handled(const struct it_daemon *d, int id)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "record type=r id=%d ", id);
	cr_assert_eq(it_log_wait(d, needle, 1, WAIT_MS), 1,
	             "message %d not handled:\n%s", id, it_log_read(d));
}

Test(failover, slots_spread_over_the_addresses, .timeout = 120)
{
	struct it_proxy *a = proxy(), *b = proxy();
	char x[128], q[128], n0[64], n1[64], want_a[64], want_b[64];
	struct it_daemon d;

	it_url_override = urls(a, b);
	char *conf = start(&d, "2", NULL, x, q);
	snprintf(want_a, sizeof(want_a), "127.0.0.1:%d", it_proxy_port(a));
	snprintf(want_b, sizeof(want_b), "127.0.0.1:%d", it_proxy_port(b));
	/* Each slot starts at its own place in one shuffled order. */
	cr_assert(slot_node(&d, 0, n0, sizeof(n0)));
	cr_assert(slot_node(&d, 1, n1, sizeof(n1)));
	cr_expect_str_neq(n0, n1, "both slots on %s", n0);
	cr_expect(strcmp(n0, want_a) == 0 || strcmp(n0, want_b) == 0, "%s", n0);
	cr_expect(strcmp(n1, want_a) == 0 || strcmp(n1, want_b) == 0, "%s", n1);
	cr_expect_geq(wait_open_at_least(a, 1, WAIT_MS), 1);
	cr_expect_geq(wait_open_at_least(b, 1, WAIT_MS), 1);
	/* /status says it too. */
	char *body = NULL;
	cr_assert_eq(it_http_get(it_http_port(&d), "/status", &body), 200);
	cr_expect(strstr(body, want_a) && strstr(body, want_b), "%s", body);
	free(body);
	publish(x, 1);
	expect_handled(&d, 1);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	it_proxy_stop(a);
	it_proxy_stop(b);
	free(conf);
	free((char *)it_url_override);
	it_url_override = NULL;
}

Test(failover, a_lost_address_is_left_at_once, .timeout = 120)
{
	struct it_proxy *a = proxy(), *b = proxy();
	char x[128], q[128], node[64], want[160], other[64];
	struct it_daemon d;

	it_url_override = urls(a, b);
	char *conf = start(&d, "1", NULL, x, q);
	publish(x, 1);
	expect_handled(&d, 1);
	cr_assert(slot_node(&d, 0, node, sizeof(node)));
	struct it_proxy *on =
	    strstr(node, ":") && atoi(strchr(node, ':') + 1) == it_proxy_port(a)
	        ? a
	        : b;
	struct it_proxy *off = on == a ? b : a;
	snprintf(other, sizeof(other), "127.0.0.1:%d", it_proxy_port(off));

	/* The node goes away: nothing answers there any more. */
	it_proxy_refuse(on, true);
	it_proxy_cut(on);
	snprintf(want, sizeof(want), "reconnected to amqp://guest@%s", other);
	cr_assert_eq(it_log_wait(&d, want, 1, WAIT_MS), 1,
	             "no reconnect to %s:\n%s", other, it_log_read(&d));
	/* At once: the other address answered, so there was no backoff. */
	cr_expect_eq(it_log_count(&d, "retrying in"), 0, "%s", it_log_read(&d));
	cr_assert(slot_node(&d, 0, node, sizeof(node)));
	cr_expect_str_eq(node, other);
	publish(x, 2);
	expect_handled(&d, 2);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	cr_assert_eq(it_queue_ready(q), 0);
	it_proxy_stop(a);
	it_proxy_stop(b);
	free(conf);
	free((char *)it_url_override);
	it_url_override = NULL;
}

Test(failover, an_address_down_at_start_is_skipped, .timeout = 120)
{
	struct it_proxy *dead = proxy(), *a = proxy();
	char x[128], q[128], n0[64], n1[64], want[64];
	struct it_daemon d;

	it_proxy_refuse(dead, true);
	it_url_override = urls(dead, a);
	/* "fail": without the other address, this start would exit. */
	char *conf = start(&d, "2", "  startup = \"fail\"\n", x, q);
	snprintf(want, sizeof(want), "127.0.0.1:%d", it_proxy_port(a));
	cr_assert(slot_node(&d, 0, n0, sizeof(n0)));
	cr_assert(slot_node(&d, 1, n1, sizeof(n1)));
	cr_expect_str_eq(n0, want);
	cr_expect_str_eq(n1, want);
	/* Exactly one of the two slots has the dead address first. */
	cr_expect_eq(it_log_count(&d, "trying the next address"), 1, "%s",
	             it_log_read(&d));
	cr_expect_geq(it_proxy_accepted(dead), 1);
	publish(x, 1);
	expect_handled(&d, 1);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	it_proxy_stop(dead);
	it_proxy_stop(a);
	free(conf);
	free((char *)it_url_override);
	it_url_override = NULL;
}

Test(failover, backs_off_only_when_every_address_failed, .timeout = 120)
{
	struct it_proxy *a = proxy(), *b = proxy();
	char x[128], q[128];
	struct it_daemon d;

	it_url_override = urls(a, b);
	char *conf = start(&d, "1", NULL, x, q);
	publish(x, 1);
	expect_handled(&d, 1);
	int accepted = it_proxy_accepted(a) + it_proxy_accepted(b);

	it_proxy_refuse(a, true);
	it_proxy_refuse(b, true);
	it_proxy_cut(a);
	it_proxy_cut(b);
	/* A round over both addresses, then a wait. */
	cr_assert_geq(it_log_wait(&d, "retrying in", 1, WAIT_MS), 1, "%s",
	              it_log_read(&d));
	cr_expect_geq(it_log_count(&d, "trying the next address"), 1);
	cr_expect_geq(it_proxy_accepted(a) + it_proxy_accepted(b), accepted + 2,
	              "both addresses tried before the wait");
	/* The cluster comes back: consuming resumes. */
	it_proxy_refuse(a, false);
	it_proxy_refuse(b, false);
	cr_assert_eq(it_log_wait(&d, "reconnected to", 1, 60000), 1, "%s",
	             it_log_read(&d));
	publish(x, 2);
	expect_handled(&d, 2);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	it_proxy_stop(a);
	it_proxy_stop(b);
	free(conf);
	free((char *)it_url_override);
	it_url_override = NULL;
}
