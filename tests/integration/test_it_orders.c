/* The order application (conf/examples/orders.conf, plugins/orders) as
 * shipped, on a vhost of its own: a good order goes through payment,
 * inventory and notification, each handled once and acked; a bad or
 * out-of-stock order is rejected to order.created.dlq with the reason; a
 * payment that fails is retried with a delay, then paid; a declined one
 * and one that keeps failing land in payment.process.dlq. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_apps.h"

#define WAIT_MS 20000

/* The tutorial's order, as its client publishes it. */
static void publish_order(amqp_connection_state_t c, const char *id,
                          const char *items, const char *total)
{
	char body[1024], mid[64];

	snprintf(body, sizeof(body),
	         "{\"type\":\"order.created\",\"orderId\":\"%s\",\"userId\":"
	         "\"u-7\",\"items\":%s,\"totalAmount\":%s,\"timestamp\":"
	         "\"2026-01-01T10:00:00.000Z\"}",
	         id, items, total);
	snprintf(mid, sizeof(mid), "msg-%s", id);
	it_apps_publish(c, "", "order.created", mid, 0, body);
}

#define ONE_ITEM                                                               \
	"[{\"productId\":\"p-1\",\"productName\":\"Laptop\",\"quantity\":1,"   \
	"\"price\":999.99}]"

static const char *const queues[] = {"order.created", "payment.process",
                                     "inventory.update", "notification.send"};

/* Every work queue and dead-letter queue empty except `dlq` (NULL: none),
 * which holds `n`. */
static void expect_queues(const char *dlq, long n)
{
	char name[64];

	for (size_t i = 0; i < 4; i++) {
		cr_expect_eq(it_wait_queue(queues[i], 0, 5000), 0,
		             "%s not empty", queues[i]);
		snprintf(name, sizeof(name), "%s.dlq", queues[i]);
		long want = dlq && strcmp(dlq, name) == 0 ? n : 0;
		cr_expect_eq(it_wait_queue(name, want, 5000), want,
		             "%s holds %ld, want %ld", name,
		             it_queue_ready(name), want);
	}
}

Test(orders, good_order_flows_through_every_queue_once, .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	char *conf = it_apps_conf("orders.conf", "payment_fail_rate = \"0\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	publish_order(c, "o-1",
	              "[{\"productId\":\"p-1\",\"productName\":\"Laptop\","
	              "\"quantity\":1,\"price\":999.99},{\"productId\":\"p-2\","
	              "\"productName\":\"Mouse\",\"quantity\":2,\"price\":"
	              "25.5}]",
	              "1050.99");
	it_close(c);

	cr_assert_eq(
	    it_log_wait(&d,
	                "[plugin:orders] notification.send orderId=o-1 "
	                "userId=u-7 event=payment.succeeded",
	                1, WAIT_MS),
	    1);
	cr_assert_eq(it_log_wait(&d,
	                         "inventory.reserve orderId=o-1 reserved 2 "
	                         "item(s)",
	                         1, WAIT_MS),
	             1);
	char *log = it_stop_and_log(&d);
	/* Each message handled once: no redelivery, no retry. */
	cr_expect_eq(it_count(log, "order.created orderId=o-1 accepted: "
	                           "payment.process and inventory.reserve "
	                           "queued"),
	             1, "%s", log);
	cr_expect_eq(it_count(log, "payment.process orderId=o-1 amount=1050.99 "
	                           "paid (attempt 1)"),
	             1);
	cr_expect_eq(it_count(log, "inventory.reserve orderId=o-1"), 1);
	cr_expect_eq(it_count(log, "notification.send orderId=o-1"), 1);
	IT_EXPECT_METRIC(log, "acked", 4);
	IT_EXPECT_METRIC(log, "retried", 0);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	expect_queues(NULL, 0);
	free(log);
	free(conf);
}

Test(orders, bad_and_out_of_stock_orders_rejected_with_the_reason,
     .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	char *conf = it_apps_conf("orders.conf", "stock = \"p-1:10,p-5:10\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	/* One per rule, in this order (the dead-letter queue keeps it). */
	publish_order(c, "", ONE_ITEM, "1");
	publish_order(c, "o-2", "[]", "1");
	publish_order(c, "o-3", ONE_ITEM, "\"12\"");
	publish_order(c, "o-4",
	              "[{\"productId\":\"p-9\",\"quantity\":1},{\"productId\":"
	              "\"p-1\",\"quantity\":2},{\"productId\":\"p-5\","
	              "\"quantity\":11}]",
	              "30");
	publish_order(c, "o-5", "[{\"productId\":\"p-1\",\"quantity\":0}]",
	              "1");
	it_close(c);

	cr_assert_eq(it_wait_queue("order.created.dlq", 5, WAIT_MS), 5);
	char *log = it_stop_and_log(&d);
	char *dead = it_apps_drain_dead("order.created.dlq");
	it_apps_expect_dead(dead, "handler-reject",
	                    "order.created: orderId must be");
	it_apps_expect_dead(dead, "handler-reject",
	                    "order.created: items must be a non-empty array");
	it_apps_expect_dead(dead, "handler-reject",
	                    "order.created: totalAmount must be a number");
	/* Only the missing ones named, each with what it wanted and had. */
	it_apps_expect_dead(dead, "handler-reject",
	                    "order.created: out of stock: p-9 (want 1, have "
	                    "0), p-5 (want 11, have 10)");
	it_apps_expect_dead(dead, "handler-reject",
	                    "items[0].quantity must be a positive integer");
	/* No follow-up of a rejected order. */
	cr_expect_eq(it_count(log, "accepted"), 0);
	cr_expect_eq(it_count(log, "paid"), 0);
	IT_EXPECT_METRIC(log, "dead_lettered", 5);
	expect_queues(NULL, 0);
	free(dead);
	free(log);
	free(conf);
}

Test(orders, payment_retried_after_a_delay_then_paid, .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	char *conf =
	    it_apps_conf("orders.conf", "payment_fail_rate = \"0\"\n"
	                                "payment_fail_attempts = \"1\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	int64_t t0 = it_now_ms();
	publish_order(c, "o-10", ONE_ITEM, "999.99");
	it_close(c);

	cr_assert_eq(
	    it_log_wait(&d, "notification.send orderId=o-10", 1, WAIT_MS), 1);
	int64_t dt = it_now_ms() - t0;
	char *log = it_stop_and_log(&d);
	/* Attempt 1 failed, attempt 2 paid: once, after the route's 1 s
	 * retry delay (less up to 10 % jitter), not at once. */
	cr_expect_eq(it_count(log, "paid (attempt 2)"), 1, "%s", log);
	cr_expect_eq(it_count(log, "paid (attempt 1)"), 0);
	cr_expect_geq(dt, 900, "paid after %lld ms: retried without a delay",
	              (long long)dt);
	IT_EXPECT_METRIC(log, "retried", 1);
	IT_EXPECT_METRIC(log, "retry_published", 1);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	expect_queues(NULL, 0);
	free(log);
	free(conf);
}

Test(orders, declined_payment_rejected_failing_one_dead_lettered,
     .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	/* Every attempt of every payment fails... */
	char *conf = it_apps_conf("orders.conf", "payment_fail_rate = \"1\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	/* ...but a declined one is rejected at its first attempt. */
	publish_order(c, "o-20",
	              "[{\"productId\":\"p-1\",\"quantity\":11,\"price\":"
	              "1000}]",
	              "11000");
	it_close(c);
	cr_assert_eq(it_wait_queue("payment.process.dlq", 1, WAIT_MS), 1);
	char *dead = it_apps_drain_dead("payment.process.dlq");
	it_apps_expect_dead(dead, "handler-reject",
	                    "payment.process: declined by the gateway: amount "
	                    "11000.00 over the limit 10000");

	c = it_connect();
	publish_order(c, "o-21", ONE_ITEM, "999.99");
	it_close(c);
	/* 4 attempts, retried after 1, 2 and 4 s (less jitter). */
	cr_assert_eq(it_wait_queue("payment.process.dlq", 1, 30000), 1);
	char *log = it_stop_and_log(&d);
	free(dead);
	dead = it_apps_drain_dead("payment.process.dlq");
	it_apps_expect_dead(dead, "max-attempts",
	                    "payment.process: gateway unavailable (simulated "
	                    "failure, attempt 4)");
	cr_expect_eq(it_count(log, "paid"), 0);
	cr_expect_eq(it_count(log, "notification.send orderId"), 0);
	/* The orders themselves went through, and their stock was taken. */
	cr_expect_eq(it_count(log, "inventory.reserve orderId=o-2"), 2);
	/* Four retry answers, three retry copies, then the dead-letter. */
	IT_EXPECT_METRIC(log, "retried", 4);
	IT_EXPECT_METRIC(log, "retry_published", 3);
	IT_EXPECT_METRIC(log, "dead_lettered", 2);
	expect_queues(NULL, 0);
	free(dead);
	free(log);
	free(conf);
}

Test(orders, conf_passes_t_and_declares_the_tutorials_queues, .timeout = 120)
{
	struct it_daemon d;
	char *out = NULL, line[512];

	const char *vhost = it_apps_vhost();
	char *conf = it_apps_conf("orders.conf", NULL);
	cr_assert_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
	cr_expect_not_null(strstr(out, "is ok: 1 plugin(s), 4 route(s), 8 "
	                               "queue(s)"),
	                   "%s", out);
	free(out);
	it_daemon_start(&d, conf, true);
	it_daemon_stop(&d);
	/* Each work queue: the 5-minute TTL, dead-lettering by its own name
	 * through order.dlx (so into its own .dlq). */
	char *args = it_apps_queue_arguments(vhost);
	for (size_t i = 0; i < 4; i++) {
		snprintf(line, sizeof(line),
		         "%s\t[{\"x-dead-letter-exchange\",\"order.dlx\"},"
		         "{\"x-dead-letter-routing-key\",\"%s\"},"
		         "{\"x-message-ttl\",300000}]\n",
		         queues[i], queues[i]);
		cr_expect_not_null(strstr(args, line), "no %s in\n%s", line,
		                   args);
	}
	free(args);
	free(conf);
}

Test(orders, followup_exchange_typo_refuses_the_start, .timeout = 120)
{
	char *out = NULL;

	it_apps_vhost();
	/* The plugin names its follow-up exchange at init (publishes_to,
	 * ABI 1.4): warrend checks it on the broker before any order runs,
	 * instead of each order failing its attempts. */
	char *conf =
	    it_apps_conf("orders.conf", "followup_exchange = \"ordres\"");
	int rc = it_warrend_run(conf, NULL, &out);
	cr_expect_neq(rc, 0, "warrend started with a missing exchange:\n%s",
	              out);
	cr_expect_not_null(strstr(out, "publishes to exchange \"ordres\""),
	                   "the refusal does not name the exchange:\n%s", out);
	cr_expect_eq(it_count(out, "order.created orderId="), 0);
	free(out);
	free(conf);
}
