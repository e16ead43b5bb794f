/* The notification application (conf/examples/notifications.conf,
 * plugins/notifications) as shipped, on a vhost of its own: notifications
 * published as the tutorial's sendNotification does are routed by channel
 * to their priority queues and sent once each; a failed send is retried
 * after a delay (never requeued at once), then dead-lettered once
 * maxAttempts (3) is spent; a malformed one is rejected with the reason. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_apps.h"

#define WAIT_MS 20000

/* No latency, no random failure: each test sets what it needs. */
#define QUIET                                                                  \
	"email_latency_ms = \"0\"\nsms_latency_ms = \"0\"\n"                   \
	"push_latency_ms = \"0\"\nwebsocket_latency_ms = \"0\"\n"              \
	"email_fail_rate = \"0\"\nsms_fail_rate = \"0\"\n"                     \
	"push_fail_rate = \"0\"\nwebsocket_fail_rate = \"0\"\n"

static const char *const channels[] = {"email", "sms", "push", "websocket"};

/* What the tutorial's sendNotification publishes: routing key
 * notification.<type>.<priority>, AMQP priority 10 for high, else 1. */
static void send_notification(amqp_connection_state_t c, const char *type,
                              const char *id, const char *priority)
{
	char body[1024], rk[128];

	snprintf(body, sizeof(body),
	         "{\"id\":\"%s\",\"type\":\"%s\",\"recipient\":\"%s\","
	         "\"message\":\"Your order shipped\",\"priority\":\"%s\","
	         "\"timestamp\":\"2026-01-01T10:00:00.000Z\",\"attempts\":0,"
	         "\"maxAttempts\":3}",
	         id, type,
	         strcmp(type, "email") == 0 ? "ada@example.com" : "user-1",
	         priority);
	snprintf(rk, sizeof(rk), "notification.%s.%s", type, priority);
	it_apps_publish(c, "notifications", rk, id,
	                strcmp(priority, "high") == 0 ? 10 : 1, body);
}

Test(notifications, routed_by_channel_each_sent_once, .timeout = 120)
{
	struct it_daemon d;
	char needle[256], id[64];

	it_apps_vhost();
	char *conf = it_apps_conf("notifications.conf", QUIET);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	for (size_t i = 0; i < 4; i++) {
		snprintf(id, sizeof(id), "%s-high", channels[i]);
		send_notification(c, channels[i], id, "high");
		snprintf(id, sizeof(id), "%s-normal", channels[i]);
		send_notification(c, channels[i], id, "normal");
	}
	it_close(c);
	cr_assert_eq(
	    it_log_wait(&d, "[plugin:notifications] sent ", 8, WAIT_MS), 8);
	char *log = it_stop_and_log(&d);
	/* Each by its own channel's handler, once, with its message id. */
	for (size_t i = 0; i < 4; i++)
		for (int h = 0; h < 2; h++) {
			const char *p = h ? "high" : "normal";
			/* The handler sees the AMQP priority (ABI 1.4). */
			snprintf(
			    needle, sizeof(needle),
			    "sent %s id=%s-%s to=%s priority=%s "
			    "amqp_priority=%d message_id=%s-%s (attempt 1)",
			    channels[i], channels[i], p,
			    i == 0 ? "ada@example.com" : "user-1", p,
			    h ? 10 : 1, channels[i], p);
			cr_expect_eq(it_count(log, needle), 1, "%s in\n%s",
			             needle, log);
		}
	IT_EXPECT_METRIC(log, "acked", 8);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	/* Nothing went to the alternate exchange. */
	cr_expect_eq(it_queue_ready("notification.unrouted"), 0);
	free(log);
	free(conf);
}

Test(notifications, priority_queues_deliver_high_first, .timeout = 120)
{
	struct it_daemon d;
	struct it_msg m;

	it_apps_vhost();
	char *conf = it_apps_conf("notifications.conf", QUIET);
	/* warrend declares the topology; then no one consumes. */
	it_daemon_start(&d, conf, true);
	it_daemon_stop(&d);
	amqp_connection_state_t c = it_connect();
	send_notification(c, "sms", "n-1", "normal");
	send_notification(c, "sms", "n-2", "normal");
	send_notification(c, "sms", "n-3", "high");
	it_close(c);
	cr_assert_eq(it_wait_queue("notification.sms", 3, WAIT_MS), 3);
	cr_assert(it_get_msg("notification.sms", &m));
	cr_expect(strstr(m.body, "\"id\":\"n-3\"") != NULL,
	          "first out is not the high one: %.*s", (int)m.len, m.body);
	cr_expect_eq(m.m.properties.priority, 10);
	it_msg_free(&m);
	free(conf);
}

Test(notifications, failed_send_retried_after_a_delay, .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	char *conf =
	    it_apps_conf("notifications.conf", QUIET "fail_attempts = \"1\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	int64_t t0 = it_now_ms();
	send_notification(c, "sms", "s-1", "high");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "sent sms id=s-1", 1, WAIT_MS), 1);
	int64_t dt = it_now_ms() - t0;
	char *log = it_stop_and_log(&d);
	/* Not requeued at once (the tutorial's nack(msg, false, true)): the
	 * route's 1 s delay, less at most 10 % jitter. */
	cr_expect_eq(it_count(log, "sent sms id=s-1 to=user-1 priority=high "
	                           "amqp_priority=10 message_id=s-1 (attempt "
	                           "2)"),
	             1, "%s", log);
	cr_expect_geq(dt, 900, "sent after %lld ms", (long long)dt);
	IT_EXPECT_METRIC(log, "retried", 1);
	IT_EXPECT_METRIC(log, "retry_published", 1);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	free(log);
	free(conf);
}

Test(notifications, failing_send_dead_lettered_after_max_attempts,
     .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	char *conf =
	    it_apps_conf("notifications.conf", QUIET "push_fail_rate = \"1\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	send_notification(c, "push", "p-1", "normal");
	it_close(c);
	/* Attempts after 0, 1 and 2 s (the tutorial's maxAttempts: 3). */
	cr_assert_eq(it_wait_queue("notification.push.dlq", 1, 30000), 1);
	char *log = it_stop_and_log(&d);
	char *dead = it_apps_drain_dead("notification.push.dlq");
	it_apps_expect_dead(dead, "max-attempts",
	                    "notification.push: the push provider failed "
	                    "(simulated, attempt 3)");
	cr_expect_eq(it_count(log, "sent push"), 0);
	IT_EXPECT_METRIC(log, "retried", 3);
	IT_EXPECT_METRIC(log, "retry_published", 2);
	free(dead);
	free(log);
	free(conf);
}

Test(notifications, malformed_rejected_with_the_reason, .timeout = 120)
{
	struct it_daemon d;

	it_apps_vhost();
	char *conf = it_apps_conf("notifications.conf", QUIET);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_apps_publish(c, "notifications", "notification.email.high", "m-1",
	                10,
	                "{\"id\":\"m-1\",\"type\":\"email\",\"recipient\":"
	                "\"ada@example.com\",\"message\":\"x\",\"priority\":"
	                "\"urgent\",\"timestamp\":\"t\"}");
	it_apps_publish(c, "notifications", "notification.email.normal", "m-2",
	                1,
	                "{\"id\":\"m-2\",\"type\":\"email\",\"recipient\":"
	                "\"nobody\",\"message\":\"x\",\"priority\":\"normal\","
	                "\"timestamp\":\"t\"}");
	it_apps_publish(c, "notifications", "notification.email.normal", "m-3",
	                1, "not json");
	/* An sms on the email queue: that queue routes no type "sms". */
	it_apps_publish(c, "notifications", "notification.email.normal", "m-4",
	                1,
	                "{\"id\":\"m-4\",\"type\":\"sms\",\"recipient\":\"u\","
	                "\"message\":\"x\",\"priority\":\"normal\","
	                "\"timestamp\":\"t\"}");
	it_close(c);
	cr_assert_eq(it_wait_queue("notification.email.dlq", 4, WAIT_MS), 4);
	char *log = it_stop_and_log(&d);
	char *dead = it_apps_drain_dead("notification.email.dlq");
	it_apps_expect_dead(dead, "handler-reject",
	                    "notification.email: priority must be \"high\" or "
	                    "\"normal\"");
	it_apps_expect_dead(dead, "handler-reject",
	                    "notification.email: recipient must be an e-mail "
	                    "address");
	it_apps_expect_dead(dead, "unparseable", "");
	it_apps_expect_dead(dead, "unknown-type", "");
	/* Rejected at once: no retry. */
	IT_EXPECT_METRIC(log, "retried", 0);
	IT_EXPECT_METRIC(log, "dead_lettered", 4);
	free(dead);
	free(log);
	free(conf);
}

Test(notifications, conf_passes_t_and_declares_priority_queues, .timeout = 120)
{
	struct it_daemon d;
	char *out = NULL, line[512];

	const char *vhost = it_apps_vhost();
	char *conf = it_apps_conf("notifications.conf", NULL);
	cr_assert_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
	cr_expect_not_null(strstr(out, "is ok: 1 plugin(s), 4 route(s)"), "%s",
	                   out);
	free(out);
	it_daemon_start(&d, conf, true);
	it_daemon_stop(&d);
	char *args = it_apps_queue_arguments(vhost);
	for (size_t i = 0; i < 4; i++) {
		snprintf(
		    line, sizeof(line),
		    "notification.%s\t[{\"x-dead-letter-exchange\","
		    "\"notifications.dlx\"},{\"x-dead-letter-routing-key\","
		    "\"notification.%s\"},{\"x-max-priority\",10}]\n",
		    channels[i], channels[i]);
		cr_expect_not_null(strstr(args, line), "no %s in\n%s", line,
		                   args);
	}
	free(args);
	free(conf);
}

Test(notifications, unknown_channel_kept_by_the_alternate_exchange,
     .timeout = 120)
{
	struct it_daemon d;
	struct it_msg m;

	it_apps_vhost();
	char *conf = it_apps_conf("notifications.conf", QUIET);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	/* No queue is bound for channel "fax": the topic exchange cannot
	 * route it, its alternate exchange takes it. */
	send_notification(c, "fax", "f-1", "high");
	send_notification(c, "email", "e-1", "normal");
	it_close(c);
	cr_assert_eq(it_wait_queue("notification.unrouted", 1, WAIT_MS), 1);
	cr_assert_eq(it_log_wait(&d, "sent email id=e-1", 1, WAIT_MS), 1);
	char *log = it_stop_and_log(&d);
	cr_assert(it_get_msg("notification.unrouted", &m));
	cr_expect_str_eq(m.routing_key, "notification.fax.high");
	cr_expect(strstr(m.body, "\"id\":\"f-1\"") != NULL, "%.*s", (int)m.len,
	          m.body);
	it_msg_free(&m);
	/* warrend never saw it (nothing consumes the alternate queue). */
	cr_expect_eq(it_count(log, "f-1"), 0);
	IT_EXPECT_METRIC(log, "received", 1);
	free(log);
	free(conf);
}

Test(notifications, slow_email_does_not_starve_websocket, .timeout = 120)
{
	struct it_daemon d;
	char id[64];

	it_apps_vhost();
	/* The tutorial's latencies (email 1 s, websocket 100 ms), no random
	 * failure, the conf's concurrency (email 4, websocket 1). */
	char *conf =
	    it_apps_conf("notifications.conf", "email_fail_rate = \"0\"\n"
	                                       "websocket_fail_rate = \"0\"\n");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "e-%d", i);
		send_notification(c, "email", id, "normal");
	}
	for (int i = 0; i < 10; i++) {
		snprintf(id, sizeof(id), "w-%d", i);
		send_notification(c, "websocket", id, "normal");
	}
	it_close(c);
	/* 10 websocket sends take about 1 s one after the other; 20 e-mails
	 * 5 s, 4 at a time. Had e-mail all 8 workers, the websockets would
	 * wait for most of them (2.5 s). */
	cr_assert_eq(it_log_wait(&d, "sent websocket", 10, 20000), 10);
	int emails = it_log_count(&d, "sent email");
	cr_log_info("e-mails sent before the 10th websocket one: %d of 20",
	            emails);
	cr_expect_leq(emails, 12,
	              "%d e-mails were sent before the 10 websocket ones",
	              emails);
	cr_assert_eq(it_log_wait(&d, "sent email", 20, 30000), 20);
	char *log = it_stop_and_log(&d);
	IT_EXPECT_METRIC(log, "acked", 30);
	free(log);
	free(conf);
}
