/* Messages published by the tutorial's own client code (Node amqplib, a
 * confirm channel: persistent, messageId, priority, timestamp: Date.now(),
 * contentType application/json; tests/node/tutorial_publish.js) are
 * handled like any others by both applications: once each, acked, with
 * the message id and the AMQP priority visible to the handler. Skips, saying
 * so, where node is not installed; the test's own npm ci installs amqplib into
 * tests/node (package-lock.json) when it is not there yet. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_apps.h"

#define NODE_DIR WARREN_SOURCE_DIR "/tests/node"
#define ORDERS   3
#define NOTES    8

static void need_amqplib(void)
{
	char cmd[1024];

	if (it_sh("command -v node >/dev/null 2>&1 && "
	          "command -v npm >/dev/null 2>&1") != 0)
		cr_skip_test("node and npm are not installed (./dev.sh deps "
		             "installs them): the amqplib test is skipped");
	if (it_sh("test -f '" NODE_DIR "/node_modules/amqplib/package.json'") ==
	    0)
		return;
	snprintf(cmd, sizeof(cmd),
	         "cd '%s' && timeout 300 npm ci --no-audit --no-fund "
	         ">'%s/npm.log' 2>&1",
	         NODE_DIR, it_tmp_dir());
	cr_assert_eq(it_sh(cmd), 0,
	             "npm ci in tests/node failed (see %s/npm.log)",
	             it_tmp_dir());
}

Test(amqplib, tutorial_client_messages_handled_once_each, .timeout = 180)
{
	struct it_daemon d;
	char cmd[2048], out[512], needle[256];

	need_amqplib();
	it_apps_vhost();
	/* No random failure: every message is handled once. */
	char *conf = it_apps_conf2(
	    "orders.conf", "payment_fail_rate = \"0\"", "notifications.conf",
	    "email_latency_ms = \"0\"\nsms_latency_ms = \"0\"\n"
	    "push_latency_ms = \"0\"\nwebsocket_latency_ms = \"0\"\n"
	    "email_fail_rate = \"0\"\nsms_fail_rate = \"0\"\n"
	    "push_fail_rate = \"0\"\nwebsocket_fail_rate = \"0\"\n");
	it_daemon_start(&d, conf, true);

	snprintf(out, sizeof(out), "%s/node.out", it_tmp_dir());
	snprintf(cmd, sizeof(cmd),
	         "timeout 60 node '%s/tutorial_publish.js' '%s' %d %d "
	         ">'%s' 2>&1",
	         NODE_DIR, it_url(), ORDERS, NOTES, out);
	cr_assert_eq(it_sh(cmd), 0, "tutorial_publish.js failed (see %s)", out);
	snprintf(cmd, sizeof(cmd), "grep -qx 'confirmed %d' '%s'",
	         ORDERS + NOTES, out);
	cr_assert_eq(it_sh(cmd), 0, "not every publish was confirmed (%s)",
	             out);

	/* An order makes 4 handler calls (order, payment, inventory,
	 * notification.send); a notification one. */
	cr_assert_eq(it_log_wait(&d, "notification.send orderId=js-order-",
	                         ORDERS, 20000),
	             ORDERS);
	cr_assert_eq(
	    it_log_wait(&d, "[plugin:notifications] sent ", NOTES, 20000),
	    NOTES);
	char *log = it_stop_and_log(&d);
	for (int i = 1; i <= ORDERS; i++) {
		/* amqplib's messageId and priority, seen by the handler. */
		snprintf(needle, sizeof(needle),
		         "order.created orderId=js-order-%d accepted: "
		         "payment.process and inventory.reserve queued "
		         "(message_id=js-msg-order-%d priority=5)",
		         i, i);
		cr_expect_eq(it_count(log, needle), 1, "%s", needle);
		snprintf(needle, sizeof(needle),
		         "payment.process orderId=js-order-%d amount=999.99 "
		         "paid (attempt 1)",
		         i);
		cr_expect_eq(it_count(log, needle), 1, "%s", needle);
	}
	for (int i = 1; i <= NOTES; i++) {
		/* The handler sees amqplib's messageId and priority. */
		snprintf(needle, sizeof(needle),
		         " id=js-note-%d to=%s%d%s priority=%s "
		         "amqp_priority=%d message_id=js-msg-note-%d (attempt "
		         "1)",
		         i, (i - 1) % 4 == 0 ? "user" : "user-", i,
		         (i - 1) % 4 == 0 ? "@example.com" : "",
		         i % 2 ? "high" : "normal", i % 2 ? 10 : 1, i);
		cr_expect_eq(it_count(log, needle), 1, "%s in\n%s", needle,
		             log);
	}
	IT_EXPECT_METRIC(log, "acked", ORDERS * 4 + NOTES);
	IT_EXPECT_METRIC(log, "retried", 0);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	free(log);
	free(conf);
}
