/* A memory alarm on the broker (rabbitmqctl set_vm_memory_high_watermark 0,
 * on a node of the test's own): the broker stops reading the connections
 * that publish. warrend publishes on a connection of its own per slot, so
 * deliveries that need no publish are still handled and acked through the
 * alarm; those that need one (here a retry copy) wait unacked, past
 * publish_timeout without a drop, and go on when the alarm clears. Nothing
 * is lost, nothing is handled twice, no connection is dropped.
 *
 * Handler: fx_flow's "flow" ("fail_until": 2 asks for one retry). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 30000
#define NPLAIN  200 /* type "a": acked at once, never publish */
/* Type "b": a retry copy first, acked on attempt 2; each call takes 100 ms,
 * so that most finish after the broker has said it blocks (the first
 * ones' copies go out before it does, and wait for their confirms). */
#define NRETRY 20
/* How long the alarm is held once warrend is blocked: past
 * publish_timeout (2 s below) and past two heartbeat intervals (2 s). */
#define ALARM_MS 6000

static struct it_node node;

static void stop_node(void)
{
	it_node_stop(&node);
}

/* The broker's ready and unacked counts of queue q (-1 if not listed). */
static void queue_counts(const char *q, long *ready, long *unacked)
{
	char cmd[1400], line[512];
	FILE *f;

	*ready = *unacked = -1;
	snprintf(cmd, sizeof(cmd),
	         "bash '%s/tests/harness/broker.sh' ctl '%s' list_queues -q "
	         "--no-table-headers name messages_ready "
	         "messages_unacknowledged 2>/dev/null",
	         WARREN_SOURCE_DIR, node.dir);
	f = popen(cmd, "r");
	cr_assert(f);
	while (fgets(line, sizeof(line), f)) {
		char name[300];
		long r, u;
		if (sscanf(line, "%299s %ld %ld", name, &r, &u) == 3 &&
		    strcmp(name, q) == 0) {
			*ready = r;
			*unacked = u;
		}
	}
	pclose(f);
}

/* Wait until the broker says q holds `ready` ready and `unacked` unacked
 * messages; false if it does not within timeout_ms. */
static bool wait_counts(const char *q, long ready, long unacked, int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	long r, u;

	do {
		queue_counts(q, &r, &u);
		if (r == ready && u == unacked)
			return true;
	} while (it_now_ms() < end);
	cr_log_warn("queue %s: %ld ready, %ld unacked", q, r, u);
	return false;
}

/* Handler calls for message id at attempt a. */
static int calls(const char *log, char kind, int id, int a)
{
	char needle[64];
	snprintf(needle, sizeof(needle), "flow id=%c%d attempt=%d ", kind, id,
	         a);
	return it_count(log, needle);
}

Test(alarm, consuming_and_acking_go_on, .fini = stop_node, .timeout = 240)
{
	char x[128], q[128], path[512], body[96], metrics_needle[400];
	struct it_daemon d;
	char *conf, *log, *metrics = NULL;

	it_node_start(&node, "alarm");
	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "al.x");
	it_unique(q, sizeof(q), "al.q");
	conf = it_conf(x, q, path, "a=flow;b=flow",
	               "policy { max_attempts = 3\n retry_delay_ms = 200 }",
	               "  heartbeat = 2\n  pool_size = 1\n  prefetch = 300\n"
	               "  publish_timeout = 2",
	               NULL, NULL);
	/* Declared by a first run; the messages wait in the queue. */
	it_daemon_start(&d, conf, true);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	amqp_connection_state_t c = it_connect();
	for (int i = 1; i <= NRETRY; i++) {
		snprintf(body, sizeof(body),
		         "{\"type\":\"b\",\"id\":\"b%d\",\"fail_until\":2,"
		         "\"sleep_ms\":100}",
		         i);
		it_publish_str(c, x, "k", body);
	}
	for (int i = 1; i <= NPLAIN; i++) {
		snprintf(body, sizeof(body), "{\"type\":\"a\",\"id\":\"a%d\"}",
		         i);
		it_publish_str(c, x, "k", body);
	}
	it_close(c);
	cr_assert_eq(it_wait_queue(q, NPLAIN + NRETRY, WAIT_MS),
	             NPLAIN + NRETRY);

	/* The alarm: every connection that publishes is blocked. */
	cr_assert_eq(it_node_ctl(&node, "set_vm_memory_high_watermark 0"), 0);
	it_daemon_start(&d, conf, true);
	cr_assert_eq(
	    it_log_wait(&d, "the broker blocked publishing", 1, WAIT_MS), 1,
	    "not blocked:\n%s", it_log_read(&d));
	int64_t blocked_at = it_now_ms();
	/* Every "b" handled once (it asked for its retry), then acks flow:
	 * only the messages waiting to publish stay unacked. */
	cr_assert_eq(it_log_wait(&d, "retry: not yet id=b", NRETRY, WAIT_MS),
	             NRETRY);
	cr_assert(wait_counts(q, 0, NRETRY, WAIT_MS), "%s", it_log_read(&d));
	log = it_log_read(&d);
	for (int i = 1; i <= NPLAIN; i++)
		cr_expect_eq(calls(log, 'a', i, 1), 1, "a%d", i);
	for (int i = 1; i <= NRETRY; i++)
		cr_expect_eq(calls(log, 'b', i, 1), 1, "b%d", i);
	free(log);
	/* /metrics shows them waiting for the unblock (but for those sent
	 * before the broker said it blocks). */
	cr_assert_eq(it_http_get(it_http_port(&d), "/metrics", &metrics), 200);
	snprintf(metrics_needle, sizeof(metrics_needle),
	         "warren_slot_state{slot=\"0\",state=\"blocked\"} 1");
	cr_expect(strstr(metrics, metrics_needle), "%s", metrics);
	snprintf(metrics_needle, sizeof(metrics_needle),
	         "warren_inflight{queue=\"%s\",stage=\"waiting_unblock\"} ", q);
	const char *at = strstr(metrics, metrics_needle);
	cr_expect(at && atol(at + strlen(metrics_needle)) > 0, "%s", metrics);
	free(metrics);

	/* The fault lasts: past publish_timeout and two heartbeats. */
	while (it_now_ms() - blocked_at < ALARM_MS) {
		cr_assert_eq(it_log_count(&d, "no publisher confirm"), 0);
		cr_assert_eq(it_log_count(&d, "connection dropped"), 0, "%s",
		             it_log_read(&d));
		it_log_wait(&d, "connection dropped", 1, 200);
	}
	cr_assert_eq(it_node_ctl(&node, "set_vm_memory_high_watermark 0.4"), 0);
	cr_assert_eq(it_log_wait(&d, "the broker unblocked publishing after", 1,
	                         WAIT_MS),
	             1, "%s", it_log_read(&d));
	cr_assert(wait_counts(q, 0, 0, WAIT_MS), "%s", it_log_read(&d));
	log = it_stop_and_log(&d);
	char line[512];
	cr_assert(it_log_line(log, "the broker unblocked publishing after",
	                      line, sizeof(line)));
	const char *waited = strstr(line, "ms; ");
	cr_expect(waited && atoi(waited + 4) > 0,
	          "nothing waited for the unblock: %s", line);
	for (int i = 1; i <= NPLAIN; i++)
		cr_expect_eq(calls(log, 'a', i, 1), 1, "a%d", i);
	for (int i = 1; i <= NRETRY; i++) {
		cr_expect_eq(calls(log, 'b', i, 1), 1, "b%d attempt 1", i);
		cr_expect_eq(calls(log, 'b', i, 2), 1, "b%d attempt 2", i);
	}
	IT_EXPECT_METRIC(log, "connections_lost", 0);
	IT_EXPECT_METRIC(log, "retry_published", NRETRY);
	IT_EXPECT_METRIC(log, "acked", NPLAIN + NRETRY);
	cr_expect_geq(it_exit_metric(log, "publish_blocks"), 1);
	cr_expect_geq(it_exit_metric(log, "publish_blocked_ms"), ALARM_MS, "%s",
	              log);
	cr_expect_eq(it_count(log, "no publisher confirm"), 0);
	free(log);
	free(conf);
}
