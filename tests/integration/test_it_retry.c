/* The retry policy against a real broker: a handler's RETRY sends the
 * message through "<queue>.retry.<delay_ms>" (TTL, then dead-lettered back
 * to the queue), with exponential delays that really elapse and do not
 * block other messages; the attempt count (msg->attempt) is exact, survives
 * a restart of warrend and ignores a forged header of the wrong type; past
 * max_attempts, or on REJECT, the message goes to the dead-letter exchange
 * unchanged with warren's x-warren-* headers; route-level policy keys
 * override the `policy` section. Handler: fx_flow's "flow" (the message
 * says how often it fails; every call logs "flow id=I attempt=A ... rk=K
 * exchange=X").
 *
 * No Criterion .timeout (see test_it_cli.c); every wait here is bounded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 20000
/* How far an observed gap between two attempts may be from the configured
 * delay: never (much) shorter -- the TTL runs from the republish, which
 * follows the handler's log line -- and longer by the round trips (confirm,
 * expiry, dead-lettering, delivery) on a loaded machine. */
#define GAP_EARLY_MS 50
#define GAP_LATE_MS  900

struct fixture {
	char x[128], q[128], dlq[160];
	char path[512];
};

static void fixture_init(struct fixture *f, const char *prefix)
{
	char px[32], pq[32];

	snprintf(px, sizeof(px), "%s.x", prefix);
	snprintf(pq, sizeof(pq), "%s.q", prefix);
	it_unique(f->x, sizeof(f->x), px);
	it_unique(f->q, sizeof(f->q), pq);
	snprintf(f->dlq, sizeof(f->dlq), "%s.dlq", f->q);
	snprintf(f->path, sizeof(f->path), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
}

/* Delete the queues of f, its retry queues included. */
static void fixture_cleanup(struct fixture *f, const long *delays, int n)
{
	char name[300];

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "%s.retry.%ld", f->q, delays[i]);
		it_delete_queue(name);
	}
	it_delete_queue(f->q);
	it_delete_queue(f->dlq);
}

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When the handler was called for attempt `attempt` of message `id`
 * (ms since the epoch, from the log), or -1 if it was not. */
static int64_t attempt_ms(const struct it_daemon *d, const char *id,
                          int attempt)
{
	char needle[96], line[1024];
	char *log = it_log_read(d);
	int64_t t = -1;

	snprintf(needle, sizeof(needle), "flow id=%s attempt=%d ", id, attempt);
	if (it_log_line(log, needle, line, sizeof(line)))
		t = it_line_ms(line);
	free(log);
	return t;
}

/* Fail the test with the daemon's log (and stop it). */
#define FAIL_LOG(d, ...)                                                       \
	do {                                                                   \
		char *log_ = it_log_read(d);                                   \
		it_daemon_stop(d);                                             \
		cr_log_error("warrend log:\n%s", log_);                        \
		free(log_);                                                    \
		cr_assert_fail(__VA_ARGS__);                                   \
	} while (0)

/* Wait (bounded) for the handler's call for attempt `attempt` of `id`. */
static void wait_attempt(const struct it_daemon *d, const char *id, int attempt,
                         int timeout_ms)
{
	char needle[96];

	snprintf(needle, sizeof(needle), "flow id=%s attempt=%d ", id, attempt);
	if (it_log_wait(d, needle, 1, timeout_ms) < 1)
		FAIL_LOG((struct it_daemon *)d, "no \"%s\" within %d ms",
		         needle, timeout_ms);
}

/* Handler calls for `id` so far. */
static int calls(const struct it_daemon *d, const char *id)
{
	char needle[64];

	snprintf(needle, sizeof(needle), "flow id=%s attempt=", id);
	return it_log_count(d, needle);
}

/* SIGTERM, expect exit 0; the metrics line must hold every `expect`
 * ("acked=2 " style fragments, NULL-terminated). */
static void stop_and_check_metrics(struct it_daemon *d,
                                   const char *const *expect)
{
	char line[2048], *log;

	it_daemon_signal(d, SIGTERM);
	if (it_daemon_wait(d, 30000) != 0)
		FAIL_LOG(d, "warrend did not exit 0 on SIGTERM");
	log = it_log_read(d);
	if (!it_log_line(log, "[metrics] at exit:", line, sizeof(line))) {
		cr_log_error("warrend log:\n%s", log);
		cr_assert_fail("no metrics line at exit");
	}
	/* " acked=" etc.: a fragment must start at a word. */
	for (int i = 0; expect[i]; i++)
		cr_expect(strstr(line, expect[i]) != NULL, "\"%s\" not in: %s",
		          expect[i], line);
	free(log);
}

static const amqp_field_value_t *table_get(const amqp_table_t *t,
                                           const char *key)
{
	size_t klen = strlen(key);
	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];
		if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0)
			return &e->value;
	}
	return NULL;
}

static bool field_is(const amqp_field_value_t *v, const char *s)
{
	return v &&
	       (v->kind == AMQP_FIELD_KIND_UTF8 ||
	        v->kind == AMQP_FIELD_KIND_BYTES) &&
	       v->value.bytes.len == strlen(s) &&
	       memcmp(v->value.bytes.bytes, s, v->value.bytes.len) == 0;
}

/* The count of x-death's entry for (queue, reason), or -1 if there is
 * none (or no x-death at all). */
static int64_t xdeath_count(const struct it_msg *m, const char *queue,
                            const char *reason)
{
	const amqp_field_value_t *xd = it_msg_header(m, "x-death");

	if (!xd || xd->kind != AMQP_FIELD_KIND_ARRAY)
		return -1;
	for (int i = 0; i < xd->value.array.num_entries; i++) {
		const amqp_field_value_t *e = &xd->value.array.entries[i], *c;
		if (e->kind != AMQP_FIELD_KIND_TABLE ||
		    !field_is(table_get(&e->value.table, "queue"), queue) ||
		    !field_is(table_get(&e->value.table, "reason"), reason))
			continue;
		c = table_get(&e->value.table, "count");
		if (c && c->kind == AMQP_FIELD_KIND_I64)
			return c->value.i64;
		return 0;
	}
	return -1;
}

/* Whether body (not NUL-terminated) holds s. */
static bool body_has(const struct it_msg *m, const char *s)
{
	size_t n = strlen(s);

	for (size_t i = 0; n <= m->len && i <= m->len - n; i++)
		if (memcmp(m->body + i, s, n) == 0)
			return true;
	return false;
}

static bool amqp_str_is(amqp_bytes_t b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

static void expect_str_header(const struct it_msg *m, const char *name,
                              const char *want)
{
	char buf[1024];
	const char *got = it_msg_str(m, name, buf, sizeof(buf));

	cr_expect(got != NULL, "header %s missing or not a string", name);
	if (got)
		cr_expect_str_eq(got, want, "header %s", name);
}

static int64_t int_header(const struct it_msg *m, const char *name)
{
	int64_t v = -1;

	cr_expect(it_msg_int(m, name, &v),
	          "header %s missing or not an "
	          "integer",
	          name);
	return v;
}

/* ---- 1 ------------------------------------------------------------------- */

Test(retry, delays_observed_and_attempts_exact)
{
	static const long delays[] = {400, 800, 1600};
	static const char *const metrics[] = {" acked=3 ", " retried=3 ",
	                                      " retry_published=3 ",
	                                      " dead_lettered=0 ", NULL};
	struct fixture f;
	struct it_daemon d;
	int64_t t[5], probe_ms;
	char *conf;

	fixture_init(&f, "rty1");
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 4\n  retry_delay_ms = 400\n"
	               "  retry_multiplier = 2\n  retry_jitter = 0\n}\n",
	               NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	it_publish_str(c, f.x, "flow.slow",
	               "{\"type\":\"flow\",\"id\":\"slow\",\"fail_until\":4}");
	wait_attempt(&d, "slow", 1, WAIT_MS);
	/* While "slow" waits out its first retry (400 ms), another message
	 * is handled at once. */
	probe_ms = it_now_ms();
	it_publish_str(c, f.x, "flow.fast",
	               "{\"type\":\"flow\",\"id\":\"fast1\"}");
	wait_attempt(&d, "fast1", 1, WAIT_MS);
	probe_ms = it_now_ms() - probe_ms;
	/* And again during the longest wait (1600 ms, after attempt 3). */
	wait_attempt(&d, "slow", 3, WAIT_MS);
	it_publish_str(c, f.x, "flow.fast",
	               "{\"type\":\"flow\",\"id\":\"fast2\"}");
	wait_attempt(&d, "fast2", 1, WAIT_MS);
	wait_attempt(&d, "slow", 4, WAIT_MS);
	it_close(c);

	/* Exactly four calls, attempts 1..4 in order, at the configured
	 * delays. */
	for (int a = 1; a <= 4; a++) {
		t[a] = attempt_ms(&d, "slow", a);
		cr_assert(t[a] > 0, "no time for attempt %d", a);
	}
	for (int a = 1; a <= 3; a++) {
		int64_t gap = t[a + 1] - t[a];
		cr_log_info("retry: attempt %d -> %d: %lld ms (delay %ld)", a,
		            a + 1, (long long)gap, delays[a - 1]);
		cr_expect(gap >= delays[a - 1] - GAP_EARLY_MS,
		          "attempt %d came %lld ms after attempt %d: the "
		          "delay is %ld ms",
		          a + 1, (long long)gap, a, delays[a - 1]);
		cr_expect(gap <= delays[a - 1] + GAP_LATE_MS,
		          "attempt %d came %lld ms after attempt %d: the "
		          "delay is %ld ms",
		          a + 1, (long long)gap, a, delays[a - 1]);
	}
	/* The other messages did not wait behind the retrying one. */
	int64_t f1 = attempt_ms(&d, "fast1", 1),
	        f2 = attempt_ms(&d, "fast2", 1);
	cr_expect(f1 > 0 && f1 < t[2],
	          "fast1 (%lld) was not handled before "
	          "slow's attempt 2 (%lld)",
	          (long long)f1, (long long)t[2]);
	cr_expect(f2 > 0 && f2 < t[4],
	          "fast2 (%lld) was not handled before "
	          "slow's attempt 4 (%lld)",
	          (long long)f2, (long long)t[4]);
	cr_log_info("retry: a message published during a retry wait was "
	            "handled %lld ms later",
	            (long long)probe_ms);

	stop_and_check_metrics(&d, metrics);
	cr_expect_eq(calls(&d, "slow"), 4);
	cr_expect_eq(calls(&d, "fast1"), 1);
	cr_expect_eq(calls(&d, "fast2"), 1);
	cr_expect_eq(it_log_count(&d, "redelivered=1"), 0);
	cr_expect_eq(it_queue_ready(f.q), 0, "messages left in %s", f.q);
	cr_expect_eq(it_queue_ready(f.dlq), 0, "messages in %s", f.dlq);
	for (int i = 0; i < 3; i++) {
		char name[300];
		snprintf(name, sizeof(name), "%s.retry.%ld", f.q, delays[i]);
		cr_expect_eq(it_queue_ready(name), 0, "%s missing or not empty",
		             name);
	}
	fixture_cleanup(&f, delays, 3);
	free(conf);
}

/* ---- 2 ------------------------------------------------------------------- */

Test(retry, max_attempts_dead_letters_with_headers)
{
	static const long delays[] = {200};
	static const char *const metrics[] = {
	    " acked=0 ",         " retried=3 ",      " retry_published=2 ",
	    " dead_lettered=1 ", " max_attempts=1)", NULL};
	static const char body[] =
	    "{\"type\":\"flow\",\"id\":\"dl\",\"fail_until\":99}";
	const char *rk = "orders.eu.created";
	struct fixture f;
	struct it_daemon d;
	struct it_msg m;
	amqp_basic_properties_t props = {0};
	amqp_table_entry_t hdr[1];
	char *conf, *log, buf[512], line[1024], want[512];
	int64_t t0, t1, first, last;

	fixture_init(&f, "rty2");
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 3\n  retry_delay_ms = 200\n"
	               "  retry_multiplier = 1\n  retry_jitter = 0\n}\n",
	               NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	hdr[0].key = amqp_cstring_bytes("x-custom");
	hdr[0].value.kind = AMQP_FIELD_KIND_UTF8;
	hdr[0].value.value.bytes = amqp_cstring_bytes("keep-me");
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
	               AMQP_BASIC_MESSAGE_ID_FLAG |
	               AMQP_BASIC_CORRELATION_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
	props.content_type = amqp_cstring_bytes("application/json");
	props.message_id = amqp_cstring_bytes("mid-42");
	props.correlation_id = amqp_cstring_bytes("cid-42");
	props.headers.num_entries = 1;
	props.headers.entries = hdr;

	t0 = wall_ms();
	amqp_connection_state_t c = it_connect();
	it_publish_props(c, f.x, rk, body, &props);
	it_close(c);
	if (it_wait_queue(f.dlq, 1, WAIT_MS) != 1)
		FAIL_LOG(&d, "nothing dead-lettered to %s", f.dlq);
	t1 = wall_ms();

	stop_and_check_metrics(&d, metrics);
	/* Exactly three attempts, each seeing the original exchange and
	 * routing key (not the retry queue's). */
	log = it_log_read(&d);
	cr_expect_eq(it_count(log, "flow id=dl attempt="), 3, "calls:\n%s",
	             log);
	for (int a = 1; a <= 3; a++) {
		snprintf(want, sizeof(want), "flow id=dl attempt=%d ", a);
		cr_expect(it_log_line(log, want, line, sizeof(line)),
		          "no attempt %d", a);
		snprintf(want, sizeof(want), " rk=%s exchange=%s", rk, f.x);
		cr_expect(strstr(line, want) != NULL,
		          "attempt %d: not \"%s\" "
		          "in: %s",
		          a, want, line);
	}
	cr_expect_eq(it_count(log, "flow id=dl attempt=4 "), 0);
	free(log);

	cr_assert(it_get_msg(f.dlq, &m), "%s is empty", f.dlq);
	/* Routed by the dead-letter exchange with the original key. */
	cr_expect_str_eq(m.routing_key, rk);
	snprintf(want, sizeof(want), "%s.dlx", f.x);
	cr_expect_str_eq(m.exchange, want);
	/* The message as published. */
	cr_expect_eq(m.len, strlen(body));
	cr_expect(m.len == strlen(body) && memcmp(m.body, body, m.len) == 0,
	          "body changed: %.*s", (int)m.len, m.body);
	cr_expect(m.m.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG);
	cr_expect(amqp_str_is(m.m.properties.content_type, "application/json"));
	cr_expect(m.m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG);
	cr_expect(amqp_str_is(m.m.properties.message_id, "mid-42"));
	cr_expect(m.m.properties._flags & AMQP_BASIC_CORRELATION_ID_FLAG);
	cr_expect(amqp_str_is(m.m.properties.correlation_id, "cid-42"));
	cr_expect(!(m.m.properties._flags & AMQP_BASIC_EXPIRATION_FLAG),
	          "the dead-lettered copy has an expiration");
	expect_str_header(&m, "x-custom", "keep-me");
	/* Why, where, who, how often and when. */
	expect_str_header(&m, "x-warren-reason", "max-attempts");
	cr_expect(it_msg_str(&m, "x-warren-reason-text", buf, sizeof(buf)) &&
	              strstr(buf, "not yet") != NULL,
	          "x-warren-reason-text: \"%s\"", buf);
	expect_str_header(&m, "x-warren-plugin", "p");
	expect_str_header(&m, "x-warren-handler", "flow");
	cr_expect_eq(int_header(&m, "x-warren-attempts"), 3);
	expect_str_header(&m, "x-warren-original-exchange", f.x);
	expect_str_header(&m, "x-warren-original-routing-key", rk);
	expect_str_header(&m, "x-warren-queue", f.q);
	first = int_header(&m, "x-warren-first-failure-ms");
	last = int_header(&m, "x-warren-last-failure-ms");
	cr_expect(first >= t0 && first <= t1,
	          "first failure %lld not in "
	          "[%lld, %lld]",
	          (long long)first, (long long)t0, (long long)t1);
	cr_expect(last >= t0 && last <= t1,
	          "last failure %lld not in "
	          "[%lld, %lld]",
	          (long long)last, (long long)t0, (long long)t1);
	/* Two retry waits of 200 ms lie between the first and the last. */
	cr_expect(last - first >= 2 * 200 - GAP_EARLY_MS,
	          "first failure "
	          "%lld, last %lld",
	          (long long)first, (long long)last);
	/* The broker's record of the two trips through the retry queue. */
	cr_expect(it_msg_header(&m, "x-death") != NULL, "no x-death");
	snprintf(want, sizeof(want), "%s.retry.200", f.q);
	cr_expect_eq(xdeath_count(&m, want, "expired"), 2);
	it_msg_free(&m);

	cr_expect_eq(it_queue_ready(f.dlq), 0, "more than one dead letter");
	cr_expect_eq(it_queue_ready(f.q), 0);
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

/* ---- 3 ------------------------------------------------------------------- */

Test(retry, reject_dead_letters_at_once)
{
	static const long delays[] = {200};
	static const char *const metrics[] = {
	    " acked=0 ",         " retried=0 ",  " retry_published=0 ",
	    " dead_lettered=1 ", " rejected=1 ", NULL};
	static const char body[] = "{\"type\":\"flow\",\"id\":\"rj\","
	                           "\"reject\":true,\"fail_until\":5}";
	struct fixture f;
	struct it_daemon d;
	struct it_msg m;
	char *conf, buf[512];

	fixture_init(&f, "rty3");
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 5\n  retry_delay_ms = 200\n"
	               "  retry_multiplier = 1\n  retry_jitter = 0\n}\n",
	               NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, f.x, "r.k", body);
	it_close(c);
	if (it_wait_queue(f.dlq, 1, WAIT_MS) != 1)
		FAIL_LOG(&d, "nothing dead-lettered to %s", f.dlq);
	stop_and_check_metrics(&d, metrics);
	cr_expect_eq(calls(&d, "rj"), 1);
	cr_expect_eq(it_log_count(&d, "flow id=rj attempt=1 "), 1);

	cr_assert(it_get_msg(f.dlq, &m));
	cr_expect(m.len == strlen(body) && memcmp(m.body, body, m.len) == 0);
	expect_str_header(&m, "x-warren-reason", "handler-reject");
	cr_expect(it_msg_str(&m, "x-warren-reason-text", buf, sizeof(buf)) &&
	              strstr(buf, "rejected id=rj") != NULL,
	          "x-warren-reason-text: \"%s\"", buf);
	expect_str_header(&m, "x-warren-plugin", "p");
	expect_str_header(&m, "x-warren-handler", "flow");
	cr_expect_eq(int_header(&m, "x-warren-attempts"), 1);
	expect_str_header(&m, "x-warren-original-routing-key", "r.k");
	cr_expect_str_eq(m.routing_key, "r.k");
	/* Never went through a retry queue. */
	snprintf(buf, sizeof(buf), "%s.retry.200", f.q);
	cr_expect_eq(xdeath_count(&m, buf, "expired"), -1);
	it_msg_free(&m);
	cr_expect_eq(it_queue_ready(f.q), 0);
	cr_expect_eq(it_queue_ready(buf), 0);
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

/* ---- 4 ------------------------------------------------------------------- */

Test(retry, attempts_survive_a_restart)
{
	static const long delays[] = {2000};
	static const char *const metrics1[] = {" acked=0 ", " retried=1 ",
	                                       " retry_published=1 ", NULL};
	static const char *const metrics2[] = {" acked=1 ", " retried=1 ",
	                                       " retry_published=1 ",
	                                       " dead_lettered=0 ", NULL};
	struct fixture f;
	struct it_daemon d1, d2;
	char *conf, retryq[300];
	long waiting;

	fixture_init(&f, "rty4");
	snprintf(retryq, sizeof(retryq), "%s.retry.2000", f.q);
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 4\n  retry_delay_ms = 2000\n"
	               "  retry_multiplier = 1\n  retry_jitter = 0\n}\n",
	               NULL, NULL, NULL);
	it_daemon_start(&d1, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, f.x, "re.start",
	               "{\"type\":\"flow\",\"id\":\"rs\",\"fail_until\":3}");
	it_close(c);
	wait_attempt(&d1, "rs", 1, WAIT_MS);
	/* The copy is in the retry queue (confirmed before the input was
	 * acked); stop warrend while it waits there. */
	if (it_wait_queue(retryq, 1, WAIT_MS) != 1)
		FAIL_LOG(&d1, "no copy in %s", retryq);
	stop_and_check_metrics(&d1, metrics1);
	cr_assert_eq(calls(&d1, "rs"), 1);
	/* Nothing lost while no warrend runs: still waiting, or back in the
	 * queue if the wait is over. */
	waiting = it_queue_ready(retryq) + it_queue_ready(f.q);
	cr_assert_eq(waiting, 1, "%ld copies in %s + %s", waiting, retryq, f.q);

	it_daemon_start(&d2, conf, true);
	wait_attempt(&d2, "rs", 2, WAIT_MS);
	wait_attempt(&d2, "rs", 3, WAIT_MS);
	stop_and_check_metrics(&d2, metrics2);
	cr_expect_eq(calls(&d2, "rs"), 2);
	cr_expect_eq(it_log_count(&d2, "flow id=rs attempt=1 "), 0);
	/* The second gap, all in d2's run, is the configured delay. */
	int64_t gap = attempt_ms(&d2, "rs", 3) - attempt_ms(&d2, "rs", 2);
	cr_expect(gap >= 2000 - GAP_EARLY_MS && gap <= 2000 + GAP_LATE_MS,
	          "attempt 3 came %lld ms after attempt 2", (long long)gap);
	cr_expect_eq(it_queue_ready(f.q), 0);
	cr_expect_eq(it_queue_ready(retryq), 0);
	cr_expect_eq(it_queue_ready(f.dlq), 0);
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

/* ---- 5 ------------------------------------------------------------------- */

/* Publish body with one x-warren-attempts header of the given value. */
static void publish_with_attempts(const struct fixture *f, const char *body,
                                  const amqp_field_value_t *attempts)
{
	amqp_basic_properties_t props = {0};
	amqp_table_entry_t hdr[1];

	hdr[0].key = amqp_cstring_bytes("x-warren-attempts");
	hdr[0].value = *attempts;
	props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG;
	props.content_type = amqp_cstring_bytes("application/json");
	props.headers.num_entries = 1;
	props.headers.entries = hdr;
	amqp_connection_state_t c = it_connect();
	it_publish_props(c, f->x, "h.k", body, &props);
	it_close(c);
}

Test(retry, attempt_header_of_wrong_type)
{
	static const long delays[] = {200};
	static const char *const metrics[] = {
	    " acked=1 ",         " retried=2 ",      " retry_published=1 ",
	    " dead_lettered=1 ", " max_attempts=1)", NULL};
	struct fixture f;
	struct it_daemon d;
	struct it_msg m;
	amqp_field_value_t v;
	char *conf;

	fixture_init(&f, "rty5");
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 2\n  retry_delay_ms = 200\n"
	               "  retry_multiplier = 1\n  retry_jitter = 0\n}\n",
	               NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	/* A string: not a count. Ignored (with a warning); x-death and
	 * warren's own header on the retried copy count instead. */
	v.kind = AMQP_FIELD_KIND_UTF8;
	v.value.bytes = amqp_cstring_bytes("lots");
	publish_with_attempts(&f,
	                      "{\"type\":\"flow\",\"id\":\"str\","
	                      "\"fail_until\":2}",
	                      &v);
	wait_attempt(&d, "str", 1, WAIT_MS);
	wait_attempt(&d, "str", 2, WAIT_MS);

	/* A count far beyond max_attempts: believed. The first failure is
	 * the last attempt. (fail_until above 1001: the handler sees attempt
	 * 1001 and must still fail.) */
	v.kind = AMQP_FIELD_KIND_I32;
	v.value.i32 = 1000;
	publish_with_attempts(&f,
	                      "{\"type\":\"flow\",\"id\":\"big\","
	                      "\"fail_until\":100000}",
	                      &v);
	if (it_wait_queue(f.dlq, 1, WAIT_MS) != 1)
		FAIL_LOG(&d, "nothing dead-lettered to %s", f.dlq);

	stop_and_check_metrics(&d, metrics);
	cr_expect_eq(it_log_count(&d, "header x-warren-attempts is not a "
	                              "count"),
	             1);
	cr_expect_eq(calls(&d, "str"), 2);
	/* Attempt 2 succeeded (fail_until 2), so no third call. */
	cr_expect_eq(it_log_count(&d, "flow id=str attempt=3 "), 0);
	cr_expect_eq(calls(&d, "big"), 1);
	cr_expect_eq(it_log_count(&d, "flow id=big attempt=1001 "), 1);

	cr_assert(it_get_msg(f.dlq, &m));
	cr_expect(body_has(&m, "\"big\""), "not the right dead letter: %.*s",
	          (int)m.len, m.body);
	expect_str_header(&m, "x-warren-reason", "max-attempts");
	cr_expect_eq(int_header(&m, "x-warren-attempts"), 1001);
	it_msg_free(&m);
	cr_expect_eq(it_queue_ready(f.dlq), 0, "\"str\" was dead-lettered too");
	cr_expect_eq(it_queue_ready(f.q), 0);
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

/* ---- 6 ------------------------------------------------------------------- */

Test(retry, retry_policy_per_route)
{
	static const long delays[] = {200, 300};
	static const char *const metrics[] = {
	    " acked=0 ",         " retried=9 ",      " retry_published=6 ",
	    " dead_lettered=3 ", " max_attempts=3)", NULL};
	struct fixture f;
	struct it_daemon d;
	char *base, *conf, name[300];
	size_t n;
	/* Route, its max_attempts (3: the `policy` section's). */
	static const struct {
		const char *type;
		int max;
	} routes[] = {{"two", 2}, {"four", 4}, {"dflt", 3}};

	fixture_init(&f, "rty6");
	/* No routes from it_conf; three written here, two with their own
	 * retry keys, one with the policy section's. */
	base = it_conf(f.x, f.q, f.path, "",
	               "policy {\n  max_attempts = 3\n  retry_delay_ms = 200\n"
	               "  retry_multiplier = 1\n  retry_jitter = 0\n}\n",
	               NULL, NULL, NULL);
	FILE *cf = open_memstream(&conf, &n);
	fprintf(
	    cf,
	    "%s"
	    "route \"two\" { queue = \"%s\" plugin = \"p\" handler = \"flow\"\n"
	    "  max_attempts = 2 }\n"
	    "route \"four\" { queue = \"%s\" plugin = \"p\" handler = "
	    "\"flow\"\n"
	    "  max_attempts = 4  retry_delay_ms = 300 }\n"
	    "route \"dflt\" { queue = \"%s\" plugin = \"p\" handler = \"flow\" "
	    "}\n",
	    base, f.q, f.q, f.q);
	fclose(cf);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		char body[128];
		snprintf(body, sizeof(body),
		         "{\"type\":\"%s\",\"id\":\"%s\","
		         "\"fail_until\":99}",
		         routes[i].type, routes[i].type);
		it_publish_str(c, f.x, routes[i].type, body);
	}
	it_close(c);
	if (it_wait_queue(f.dlq, 3, WAIT_MS) != 3)
		FAIL_LOG(&d, "not 3 dead letters in %s", f.dlq);
	stop_and_check_metrics(&d, metrics);

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		cr_expect_eq(calls(&d, routes[i].type), routes[i].max,
		             "type %s: %d calls, max_attempts %d",
		             routes[i].type, calls(&d, routes[i].type),
		             routes[i].max);
	/* "four" waits 300 ms between its attempts, the others 200 ms. */
	for (int a = 1; a < 4; a++) {
		int64_t gap =
		    attempt_ms(&d, "four", a + 1) - attempt_ms(&d, "four", a);
		cr_expect(gap >= 300 - GAP_EARLY_MS && gap <= 300 + GAP_LATE_MS,
		          "four: attempt %d -> %d: %lld ms", a, a + 1,
		          (long long)gap);
	}
	snprintf(name, sizeof(name), "%s.retry.300", f.q);
	cr_expect_eq(it_queue_ready(name), 0, "%s missing or not empty", name);

	int seen = 0;
	for (int k = 0; k < 3; k++) {
		struct it_msg m;
		char want[128];

		cr_assert(it_get_msg(f.dlq, &m), "dead letter %d missing", k);
		expect_str_header(&m, "x-warren-reason", "max-attempts");
		for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]);
		     i++) {
			snprintf(want, sizeof(want), "\"id\":\"%s\"",
			         routes[i].type);
			if (!body_has(&m, want))
				continue;
			seen |= 1 << i;
			cr_expect_eq(int_header(&m, "x-warren-attempts"),
			             routes[i].max, "type %s", routes[i].type);
		}
		it_msg_free(&m);
	}
	cr_expect_eq(seen, 7, "dead letters of the three types: mask %d", seen);
	cr_expect_eq(it_queue_ready(f.q), 0);
	fixture_cleanup(&f, delays, 2);
	free(base);
	free(conf);
}

/* ---- retry queues of a quorum queue; refused retry copies -------------- */

/* The broker's "type" of queue q (quorum, classic), or "" if not listed. */
static void queue_type(const char *q, char *type, size_t len)
{
	const char *dir = getenv("WARREN_TEST_BROKER_DIR");
	char cmd[1200], line[600];
	FILE *f;

	type[0] = '\0';
	if (!dir || !*dir)
		cr_skip_test("WARREN_TEST_BROKER_DIR not set: external broker");
	snprintf(cmd, sizeof(cmd),
	         "bash '%s/tests/harness/broker.sh' ctl '%s' list_queues -q "
	         "--no-table-headers name type 2>/dev/null",
	         WARREN_SOURCE_DIR, dir);
	f = popen(cmd, "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f)) {
		char name[300], t[32];
		if (sscanf(line, "%299s %31s", name, t) == 2 &&
		    strcmp(name, q) == 0)
			snprintf(type, len, "%s", t);
	}
	pclose(f);
}

Test(retry, a_quorum_queue_gets_quorum_retry_queues)
{
	static const long delays[] = {300};
	struct fixture f;
	struct it_daemon d;
	char *conf, retry_q[300], type[32];
	const char *body =
	    "{\"type\":\"flow\",\"id\":\"qr1\",\"fail_until\":3}";

	fixture_init(&f, "rt.qq");
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 4\n  retry_delay_ms = 300\n"
	               "  retry_multiplier = 1\n}\n",
	               NULL, "  type = \"quorum\"", NULL);
	it_daemon_start(&d, conf, true);
	snprintf(retry_q, sizeof(retry_q), "%s.retry.300", f.q);
	/* Replicated like the queue it serves: it survives its node. */
	queue_type(retry_q, type, sizeof(type));
	cr_expect_str_eq(type, "quorum");
	queue_type(f.q, type, sizeof(type));
	cr_expect_str_eq(type, "quorum");
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, f.x, "r.k", body);
	it_close(c);
	/* Through the quorum retry queue (its TTL, the per-message jitter,
	 * the at-least-once expiry) and back, twice. */
	wait_attempt(&d, "qr1", 3, WAIT_MS);
	stop_and_check_metrics(
	    &d,
	    (const char *const[]){" acked=1 ", " retry_published=2 ", NULL});
	cr_expect_eq(calls(&d, "qr1"), 3);
	cr_expect_eq(it_queue_ready(f.q), 0);
	cr_expect_eq(it_queue_ready(retry_q), 0);
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

Test(retry, an_older_classic_retry_queue_is_kept_with_a_warning)
{
	static const long delays[] = {300};
	struct fixture f;
	struct it_daemon d;
	char *conf, retry_q[300], type[32];
	amqp_table_entry_t e[3];
	amqp_table_t args = {.entries = e, .num_entries = 3};

	fixture_init(&f, "rt.old");
	snprintf(retry_q, sizeof(retry_q), "%s.retry.300", f.q);
	/* As warren declared them before: classic. */
	e[0] = (amqp_table_entry_t){
	    .key = amqp_cstring_bytes("x-message-ttl"),
	    .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 300}};
	e[1] = (amqp_table_entry_t){
	    .key = amqp_cstring_bytes("x-dead-letter-exchange"),
	    .value = {.kind = AMQP_FIELD_KIND_UTF8,
	              .value.bytes = amqp_cstring_bytes("")}};
	e[2] = (amqp_table_entry_t){
	    .key = amqp_cstring_bytes("x-dead-letter-routing-key"),
	    .value = {.kind = AMQP_FIELD_KIND_UTF8,
	              .value.bytes = amqp_cstring_bytes(f.q)}};
	amqp_connection_state_t c = it_connect();
	cr_assert(amqp_queue_declare(c, 1, amqp_cstring_bytes(retry_q), 0, 1, 0,
	                             0, args));
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 4\n  retry_delay_ms = 300\n"
	               "  retry_multiplier = 1\n}\n",
	               NULL, "  type = \"quorum\"", NULL);
	it_daemon_start(&d, conf, true);
	cr_expect_geq(it_log_count(&d, "exists with other arguments"), 1);
	queue_type(retry_q, type, sizeof(type));
	cr_expect_str_eq(type, "classic");
	it_publish_str(c, f.x, "r.k",
	               "{\"type\":\"flow\",\"id\":\"old1\",\"fail_until\":2}");
	it_close(c);
	wait_attempt(&d, "old1", 2, WAIT_MS);
	stop_and_check_metrics(&d, (const char *const[]){" acked=1 ", NULL});
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

/* The retry queue disappears (its node is gone, say): every retry copy
 * is unroutable. The input is held (2 s, then 4 s: doubling), requeued,
 * and the refusals count as attempts: it ends in the dead-letter queue
 * instead of looping. */
Test(retry, refused_retry_copies_back_off_and_end_dead_lettered)
{
	static const long delays[] = {200};
	struct fixture f;
	struct it_daemon d;
	char *conf, retry_q[300];
	struct it_msg m;

	fixture_init(&f, "rt.ref");
	conf = it_conf(f.x, f.q, f.path, "flow=flow",
	               "policy {\n  max_attempts = 3\n  retry_delay_ms = 200\n"
	               "  retry_multiplier = 1\n}\n",
	               NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	snprintf(retry_q, sizeof(retry_q), "%s.retry.200", f.q);
	it_delete_queue(retry_q);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, f.x, "r.k",
	               "{\"type\":\"flow\",\"id\":\"ref1\",\"fail_until\":9}");
	it_close(c);
	cr_assert_eq(it_wait_queue(f.dlq, 1, WAIT_MS), 1, "%s",
	             it_log_read(&d));
	cr_expect_eq(it_log_count(&d, "requeued in 2000 ms (refused 1 time)"),
	             1);
	cr_expect_eq(it_log_count(&d, "requeued in 4000 ms (refused 2 times)"),
	             1);
	/* Three handler calls: attempt 1, and twice more as it came back. */
	cr_expect_eq(calls(&d, "ref1"), 3, "%s", it_log_read(&d));
	cr_assert(it_get_msg(f.dlq, &m));
	char reason[64];
	cr_expect_str_eq(
	    it_msg_str(&m, "x-warren-reason", reason, sizeof(reason)),
	    "max-attempts");
	it_msg_free(&m);
	stop_and_check_metrics(&d, (const char *const[]){" dead_lettered=1 ",
	                                                 " republish_failed=2 ",
	                                                 NULL});
	cr_expect_eq(it_queue_ready(f.q), 0);
	fixture_cleanup(&f, delays, 1);
	free(conf);
}

/* A message another user published with its user_id set (RabbitMQ checks
 * it against the publisher's login): warrend, logged in as guest, could
 * not publish a copy that claims that user. Its retry copies and its
 * dead-letter go out without the property, with x-warren-original-user-id,
 * and the message is retried and dead-lettered like any other. */
Test(retry, another_users_message_is_retried_and_dead_lettered)
{
	static const long delays[] = {100};
	static const char *const metrics[] = {" retried=2 ",
	                                      " dead_lettered=1 ", NULL};
	struct fixture f;
	struct it_daemon d;
	struct it_msg m;
	amqp_basic_properties_t props = {0};
	char buf[128];

	if (it_broker_ctl("status") < 0)
		cr_skip_test("needs the test's own broker (rabbitmqctl)");
	/* Whether it exists already (an earlier run) does not matter. */
	it_broker_ctl("add_user warren_it_alice alice-pw");
	cr_assert_eq(it_broker_ctl("set_permissions -p / warren_it_alice "
	                           "'.*' '.*' '.*'"),
	             0);
	fixture_init(&f, "rtyu");
	char *conf = it_conf(f.x, f.q, f.path, "flow=flow",
	                     "policy {\n  max_attempts = 2\n  retry_delay_ms = "
	                     "100\n  retry_jitter = 0\n}\n",
	                     NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	props._flags = AMQP_BASIC_USER_ID_FLAG;
	props.user_id = amqp_cstring_bytes("warren_it_alice");
	amqp_connection_state_t c =
	    it_connect_as("warren_it_alice", "alice-pw");
	it_publish_props(c, f.x, "k",
	                 "{\"type\":\"flow\",\"id\":\"u\",\"fail_until\":9}",
	                 &props);
	it_close(c);
	if (it_wait_queue(f.dlq, 1, WAIT_MS) != 1)
		FAIL_LOG(&d, "nothing dead-lettered to %s", f.dlq);
	cr_expect_eq(calls(&d, "u"), 2);
	cr_expect_eq(it_log_count(&d, "user_id"), 0, "%s", it_log_read(&d));
	stop_and_check_metrics(&d, metrics);

	cr_assert(it_get_msg(f.dlq, &m));
	cr_expect(!(m.m.properties._flags & AMQP_BASIC_USER_ID_FLAG),
	          "the dead-letter claims a user_id");
	cr_expect_str_eq(
	    it_msg_str(&m, "x-warren-original-user-id", buf, sizeof(buf))
	        ? buf
	        : "(none)",
	    "warren_it_alice");
	it_msg_free(&m);
	it_broker_ctl("delete_user warren_it_alice");
	fixture_cleanup(&f, delays, 1);
	free(conf);
}
