/* Follow-ups and publisher confirms: a handler's follow-ups (api->publish)
 * go out only with an ACK, confirmed and mandatory, and the input is acked
 * only once every follow-up is confirmed. A confirm that never comes
 * (broker->client traffic frozen by the proxy) must leave the input unacked,
 * so that a lost connection brings it back: at-least-once, never zero. An
 * unroutable follow-up sends the input the retry way; a confirm that does
 * not come within publish_timeout makes warrend reconnect.
 *
 * No Criterion .timeout (see test_it_cli.c); every wait here is bounded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "it_proxy.h"

#define WAIT_MS 20000

/* One test's names: the daemon's exchange X and queue Q (it_conf declares
 * X, X.dlx, Q, Q.dlq), and a direct exchange XF for follow-ups with queue
 * F1 bound by key "one" and F2 by key "two". */
struct names {
	char x[128], q[128], dlq[160], xf[160], f1[160], f2[160];
};

static void names_init(struct names *n, const char *prefix)
{
	char p[64];

	snprintf(p, sizeof(p), "%s.x", prefix);
	it_unique(n->x, sizeof(n->x), p);
	snprintf(p, sizeof(p), "%s.q", prefix);
	it_unique(n->q, sizeof(n->q), p);
	snprintf(n->dlq, sizeof(n->dlq), "%s.dlq", n->q);
	snprintf(n->xf, sizeof(n->xf), "%s.fu", n->x);
	snprintf(n->f1, sizeof(n->f1), "%s.one", n->q);
	snprintf(n->f2, sizeof(n->f2), "%s.two", n->q);
}

/* it_conf with the follow-up exchange and queues, the given policy section
 * and broker keys, and route "flow" -> fx_flow's handler "flow". */
static char *flow_conf(const struct names *n, const char *policy,
                       const char *broker)
{
	char path[512], *global = NULL, *conf;
	size_t len = 0;
	FILE *f = open_memstream(&global, &len);

	fprintf(f,
	        "%s\n"
	        "exchange \"%s\" { type = \"direct\" }\n"
	        "queue \"%s\" { }\n"
	        "queue \"%s\" { }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"one\" }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"two\" }\n",
	        policy, n->xf, n->f1, n->f2, n->xf, n->f1, n->xf, n->f2);
	fclose(f);
	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	conf =
	    it_conf(n->x, n->q, path, "flow=flow", global, broker, NULL, NULL);
	free(global);
	return conf;
}

static void cleanup(const struct names *n, const char *retry_queue)
{
	it_delete_queue(n->q);
	it_delete_queue(n->dlq);
	it_delete_queue(n->f1);
	it_delete_queue(n->f2);
	if (retry_queue)
		it_delete_queue(retry_queue);
	it_delete_exchange(n->xf);
	it_delete_exchange(n->x);
	char dlx[160];
	snprintf(dlx, sizeof(dlx), "%s.dlx", n->x);
	it_delete_exchange(dlx);
}

/* it_get_msg without the ack: the message is read with its properties and
 * goes back to the queue when the channel closes. */
static bool peek_msg(const char *queue, struct it_msg *out)
{
	amqp_connection_state_t c = it_connect();
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 0);

	memset(out, 0, sizeof(*out));
	cr_assert(r.reply_type == AMQP_RESPONSE_NORMAL, "basic.get %s failed",
	          queue);
	if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
		cr_assert(amqp_read_message(c, 1, &out->m, 0).reply_type ==
		          AMQP_RESPONSE_NORMAL);
		out->got = true;
		out->body = out->m.body.bytes;
		out->len = out->m.body.len;
	}
	it_close(c); /* not acked: requeued */
	return out->got;
}

/* A string header of m, or "" if absent. */
static const char *hdr(const struct it_msg *m, const char *name, char *buf,
                       size_t len)
{
	const char *v = it_msg_str(m, name, buf, len);
	return v ? v : "";
}

static bool body_is(const struct it_msg *m, const char *want)
{
	return m->got && m->len == strlen(want) &&
	       memcmp(m->body, want, m->len) == 0;
}

static bool content_type_is(const struct it_msg *m, const char *want)
{
	const amqp_basic_properties_t *p = &m->m.properties;
	return m->got && (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG) &&
	       p->content_type.len == strlen(want) &&
	       memcmp(p->content_type.bytes, want, p->content_type.len) == 0;
}

/* Messages unacknowledged in queue q per rabbitmqctl, or -2 if there is no
 * broker dir to ask (an external broker), -1 if the query failed. */
static long ctl_unacked(const char *q)
{
	const char *dir = getenv("WARREN_TEST_BROKER_DIR");
	char cmd[1024], line[512];
	long n = -1;
	FILE *f;

	if (!dir || !*dir)
		return -2;
	snprintf(cmd, sizeof(cmd),
	         "bash '%s/tests/harness/broker.sh' ctl '%s' list_queues -q "
	         "--no-table-headers name messages_unacknowledged 2>/dev/null",
	         WARREN_SOURCE_DIR, dir);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char name[300];
		long v;
		if (sscanf(line, "%299s %ld", name, &v) == 2 &&
		    strcmp(name, q) == 0)
			n = v;
	}
	pclose(f);
	return n;
}

static struct it_proxy *start_proxy(char **url)
{
	if (!it_url_is_loopback())
		cr_skip_test("the proxy forwards to 127.0.0.1 only; the "
		             "broker (%s) is elsewhere",
		             it_url());
	struct it_proxy *p = it_proxy_start(it_url_port());
	*url = it_proxy_url(p);
	return p;
}

/* An input that asks fx_flow to sleep, then publish one follow-up to F1. */
static void publish_sleepy_input(const struct names *n, int sleep_ms,
                                 const char *fu_body)
{
	char body[512];
	amqp_connection_state_t c = it_connect();

	snprintf(body, sizeof(body),
	         "{\"type\":\"flow\",\"id\":1,\"sleep_ms\":%d,\"publish\":"
	         "[{\"exchange\":\"%s\",\"rk\":\"one\",\"body\":\"%s\"}]}",
	         sleep_ms, n->xf, fu_body);
	it_publish_str(c, n->x, "in", body);
	it_close(c);
}

Test(confirm, followups_published_then_acked)
{
	struct names n;
	struct it_daemon d;
	struct it_msg m;
	char body[1024], *log;

	names_init(&n, "cf.ok");
	char *conf = flow_conf(&n, "policy { max_attempts = 1 }", NULL);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	snprintf(body, sizeof(body),
	         "{\"type\":\"flow\",\"id\":1,\"publish\":["
	         "{\"exchange\":\"%s\",\"rk\":\"one\",\"body\":\"first\"},"
	         "{\"exchange\":\"%s\",\"rk\":\"two\",\"body\":\"second\"}]}",
	         n.xf, n.xf);
	it_publish_str(c, n.x, "in", body);
	it_close(c);

	cr_assert_eq(it_log_wait(&d, "flow id=1 attempt=1 ", 1, WAIT_MS), 1,
	             "the handler did not run");
	cr_assert_eq(it_wait_queue(n.f1, 1, WAIT_MS), 1, "no follow-up in %s",
	             n.f1);
	cr_assert_eq(it_wait_queue(n.f2, 1, WAIT_MS), 1, "no follow-up in %s",
	             n.f2);

	log = it_stop_and_log(&d);
	/* Acked: not requeued when the daemon's connections closed. */
	cr_expect_eq(it_queue_ready(n.q), 0, "the input came back: not acked");
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	IT_EXPECT_METRIC(log, "acked", 1);
	IT_EXPECT_METRIC(log, "followups", 2);
	IT_EXPECT_METRIC(log, "followups_failed", 0);
	IT_EXPECT_METRIC(log, "retry_published", 0);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	cr_expect_eq(it_log_count(&d, "flow id=1 "), 1,
	             "handled more than once");

	cr_assert(it_get_msg(n.f1, &m));
	cr_expect(body_is(&m, "first"), "F1 body %.*s", (int)m.len, m.body);
	cr_expect(content_type_is(&m, "application/json"));
	it_msg_free(&m);
	cr_assert(it_get_msg(n.f2, &m));
	cr_expect(body_is(&m, "second"), "F2 body %.*s", (int)m.len, m.body);
	cr_expect(content_type_is(&m, "application/json"));
	it_msg_free(&m);
	cr_expect_eq(it_queue_ready(n.f1), 0);
	cr_expect_eq(it_queue_ready(n.f2), 0);

	free(log);
	cleanup(&n, NULL);
	free(conf);
}

/* The key test: the follow-up reaches its queue, but its confirm cannot
 * reach warrend. An ack sent before the confirm would let the input go; the
 * connection is then cut, and the input must come back (redelivered=1), be
 * handled again and only then be acked. */
Test(confirm, no_ack_before_confirm)
{
	struct names n;
	struct it_daemon d;
	char *url, *log;
	long unacked;

	names_init(&n, "cf.wait");
	struct it_proxy *p = start_proxy(&url);
	it_url_override = url;
	/* heartbeat 0: the frozen link is not dropped by heartbeats; a
	 * publish_timeout well beyond the test's waits. */
	char *conf = flow_conf(&n, "policy { max_attempts = 1 }",
	                       "  heartbeat = 0\n  pool_size = 1\n"
	                       "  publish_timeout = 30");
	it_daemon_start(&d, conf, true);
	/* One slot: its consuming and its publishing connection. */
	cr_assert_eq(it_proxy_open(p), 2, "warrend is not behind the proxy");

	publish_sleepy_input(&n, 1500, "fu");
	cr_assert_eq(
	    it_log_wait(&d, "flow id=1 attempt=1 redelivered=0 ", 1, WAIT_MS),
	    1, "the handler did not run");
	/* The handler sleeps 1.5 s before publishing: its confirm will be
	 * held. */
	it_proxy_freeze_down(p, true);
	cr_assert_eq(it_wait_queue(n.f1, 1, WAIT_MS), 1,
	             "the follow-up did not reach %s", n.f1);
	/* The broker has the follow-up but warrend has no confirm: the input
	 * must still be unacked (the first check takes rabbitmqctl's ~0.5 s,
	 * time enough for an early ack to land). */
	unacked = ctl_unacked(n.q);
	if (unacked != -2)
		cr_expect_eq(unacked, 1,
		             "input unacked count %ld while its "
		             "follow-up is unconfirmed",
		             unacked);
	cr_expect_eq(it_queue_ready(n.q), 0);
	cr_expect_eq(it_log_count(&d, "reconnect"), 0);

	/* Drop the connection: whatever was not acked comes back. */
	it_proxy_cut(p);
	it_proxy_freeze_down(p, false);
	if (it_log_wait(&d, "reconnected", 1, WAIT_MS) != 1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("warrend did not reconnect:\n%s", log);
	}
	if (it_log_wait(&d, "flow id=1 attempt=1 redelivered=1 ", 1, WAIT_MS) !=
	    1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("the input was not redelivered: it was acked "
		               "before its follow-up was confirmed:\n%s",
		               log);
	}
	/* Handled again: its follow-up published again and confirmed. */
	cr_assert_eq(it_wait_queue(n.f1, 2, WAIT_MS), 2,
	             "the second follow-up did not arrive");

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "the input was never acked:\n%s",
	             log);
	cr_expect_eq(it_queue_ready(n.f1), 2, "at-least-once: two copies");
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	cr_expect_eq(it_log_count(&d, "flow id=1 "), 2);
	IT_EXPECT_METRIC(log, "acked", 1);
	IT_EXPECT_METRIC(log, "followups", 1);
	IT_EXPECT_METRIC(log, "connections_lost", 1);

	free(log);
	it_url_override = NULL;
	it_proxy_stop(p);
	free(url);
	cleanup(&n, NULL);
	free(conf);
}

Test(confirm, unroutable_followup_retried)
{
	struct names n;
	struct it_daemon d;
	struct it_msg m;
	char body[512], retry_q[200], s[512] = "", *log;
	int64_t v = 0;

	names_init(&n, "cf.unr");
	snprintf(retry_q, sizeof(retry_q), "%s.retry.1500", n.q);
	/* A retry delay long enough to look at the retry copy. */
	char *conf = flow_conf(&n,
	                       "policy { max_attempts = 2 retry_delay_ms = "
	                       "1500 retry_jitter = 0 }",
	                       NULL);
	it_daemon_start(&d, conf, true);

	/* XF exists, but nothing is bound to "nobody". */
	amqp_connection_state_t c = it_connect();
	snprintf(body, sizeof(body),
	         "{\"type\":\"flow\",\"id\":1,\"publish\":[{\"exchange\":"
	         "\"%s\",\"rk\":\"nobody\",\"body\":\"lost\"}]}",
	         n.xf);
	it_publish_str(c, n.x, "in", body);
	it_close(c);

	cr_assert_eq(it_wait_queue(retry_q, 1, WAIT_MS), 1,
	             "no retry copy in %s", retry_q);
	cr_assert(peek_msg(retry_q, &m), "the retry copy went early");
	cr_expect_str_eq(hdr(&m, "x-warren-reason", s, sizeof(s)),
	                 "followup-failed");
	cr_expect(it_msg_str(&m, "x-warren-reason-text", s, sizeof(s)) &&
	              strstr(s, "unroutable"),
	          "retry copy reason text: %s", s);
	cr_expect(it_msg_int(&m, "x-warren-attempts", &v) && v == 1);
	it_msg_free(&m);

	cr_assert_eq(it_log_wait(&d, "flow id=1 attempt=2 ", 1, WAIT_MS), 1,
	             "the retry did not come back");
	cr_assert_eq(it_wait_queue(n.dlq, 1, WAIT_MS), 1,
	             "not dead-lettered after max_attempts");

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0);
	cr_expect_eq(it_queue_ready(retry_q), 0);
	cr_expect_eq(it_queue_ready(n.f1), 0);
	cr_expect_eq(it_queue_ready(n.f2), 0);
	cr_expect_eq(it_log_count(&d, "flow id=1 "), 2);
	IT_EXPECT_METRIC(log, "acked", 0);
	IT_EXPECT_METRIC(log, "followups", 0);
	IT_EXPECT_METRIC(log, "followups_failed", 2);
	IT_EXPECT_METRIC(log, "retry_published", 1);
	IT_EXPECT_METRIC(log, "dead_lettered", 1);
	IT_EXPECT_METRIC(log, "max_attempts", 1);

	cr_assert(it_get_msg(n.dlq, &m));
	cr_expect(body_is(&m, body), "DLQ body %.*s", (int)m.len, m.body);
	cr_expect_str_eq(hdr(&m, "x-warren-reason", s, sizeof(s)),
	                 "max-attempts");
	cr_expect(it_msg_str(&m, "x-warren-reason-text", s, sizeof(s)) &&
	              strstr(s, "unroutable"),
	          "dead letter reason text: %s", s);
	cr_expect(it_msg_int(&m, "x-warren-attempts", &v) && v == 2,
	          "x-warren-attempts %lld", (long long)v);
	cr_expect_str_eq(hdr(&m, "x-warren-handler", s, sizeof(s)), "flow");
	cr_expect_str_eq(hdr(&m, "x-warren-original-routing-key", s, sizeof(s)),
	                 "in");
	it_msg_free(&m);

	free(log);
	cleanup(&n, retry_q);
	free(conf);
}

Test(confirm, publish_timeout)
{
	struct names n;
	struct it_daemon d;
	char *url, *log;
	int64_t t0, waited;

	names_init(&n, "cf.pto");
	struct it_proxy *p = start_proxy(&url);
	it_url_override = url;
	char *conf = flow_conf(&n, "policy { max_attempts = 1 }",
	                       "  heartbeat = 0\n  pool_size = 1\n"
	                       "  publish_timeout = 2");
	it_daemon_start(&d, conf, true);
	/* One slot: its consuming and its publishing connection. */
	cr_assert_eq(it_proxy_open(p), 2, "warrend is not behind the proxy");

	publish_sleepy_input(&n, 500, "fu");
	cr_assert_eq(
	    it_log_wait(&d, "flow id=1 attempt=1 redelivered=0 ", 1, WAIT_MS),
	    1, "the handler did not run");
	it_proxy_freeze_down(p, true);
	t0 = it_now_ms();
	cr_assert_eq(it_wait_queue(n.f1, 1, WAIT_MS), 1,
	             "the follow-up did not reach %s", n.f1);
	if (it_log_wait(&d, "no publisher confirm within 2 s: reconnecting", 1,
	                WAIT_MS) != 1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("no publish timeout:\n%s", log);
	}
	waited = it_now_ms() - t0;
	/* Sent ~0.5 s after the freeze, then 2 s without a confirm. */
	cr_expect_geq(waited, 1900, "timed out after %lld ms",
	              (long long)waited);
	it_proxy_freeze_down(p, false);

	if (it_log_wait(&d, "flow id=1 attempt=1 redelivered=1 ", 1, WAIT_MS) !=
	    1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("the input was not redelivered:\n%s", log);
	}
	cr_assert_eq(it_wait_queue(n.f1, 2, WAIT_MS), 2,
	             "the second follow-up did not arrive");
	cr_assert_geq(it_log_count(&d, "reconnected"), 1);

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "the input was never acked:\n%s",
	             log);
	cr_expect_eq(it_queue_ready(n.f1), 2);
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	IT_EXPECT_METRIC(log, "acked", 1);
	IT_EXPECT_METRIC(log, "connections_lost", 1);

	free(log);
	it_url_override = NULL;
	it_proxy_stop(p);
	free(url);
	cleanup(&n, NULL);
	free(conf);
}
