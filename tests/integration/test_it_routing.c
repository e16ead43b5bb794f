/* The three example types are each handled once by the right plugin and
 * acked; routes by the AMQP type property and by routing key work too. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

static char *shipped_like_conf(const char *x, const char *q)
{
	char *conf;
	const char *plugins = WARREN_DEFAULT_BUILD_DIR "/plugins";
	size_t n;
	FILE *f = open_memstream(&conf, &n);

	fprintf(f,
	        "plugin_dir = \"%s\"\n"
	        "exchange \"%s\" { type = \"topic\" }\n"
	        "exchange \"%s.dlx\" { type = \"fanout\" }\n"
	        "queue \"%s\" { dead_letter_exchange = \"%s.dlx\" }\n"
	        "queue \"%s.dlq\" { }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"#\" }\n"
	        "binding { exchange = \"%s.dlx\" queue = \"%s.dlq\" }\n"
	        "plugin \"user_signup\" { path = \"user_signup.so\" }\n"
	        "plugin \"order_created\" { path = \"order_created.so\" }\n"
	        "plugin \"email_send\" { path = \"email_send.so\" }\n"
	        "route \"user:signup\" { queue = \"%s\" plugin = "
	        "\"user_signup\" handler = \"signup\" }\n"
	        "route \"order:created\" { queue = \"%s\" plugin = "
	        "\"order_created\" handler = \"created\" }\n"
	        "route \"email:send\" { queue = \"%s\" plugin = \"email_send\" "
	        "handler = \"send\" }\n",
	        plugins, x, x, q, x, q, x, q, x, q, q, q, q);
	fclose(f);
	return conf;
}

Test(routing, three_types_each_handled_once_and_acked, .timeout = 90)
{
	char x[128], q[128], dlq[160];
	struct it_daemon d;

	it_unique(x, sizeof(x), "rt.x");
	it_unique(q, sizeof(q), "rt.q");
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	char *conf = shipped_like_conf(x, q);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "user.signup",
	               "{\"type\":\"user:signup\",\"userId\":41,\"email\":\"a@"
	               "example.com\"}");
	it_publish_str(
	    c, x, "order.created",
	    "{\"type\":\"order:created\",\"orderId\":\"o-42\",\"userId\":1,"
	    "\"items\":[{\"sku\":\"a\",\"qty\":1}],\"totalAmount\":9.5}");
	it_publish_str(c, x, "email.send",
	               "{\"type\":\"email:send\",\"to\":\"b@example.com\"}");
	it_close(c);

	cr_assert_eq(
	    it_log_wait(&d,
	                "[plugin:user_signup] handled user:signup userId=41", 1,
	                WAIT_MS),
	    1);
	cr_assert_eq(
	    it_log_wait(
	        &d, "[plugin:order_created] handled order:created orderId=o-42",
	        1, WAIT_MS),
	    1);
	cr_assert_eq(
	    it_log_wait(
	        &d, "[plugin:email_send] handled email:send to=b@example.com",
	        1, WAIT_MS),
	    1);
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0, "warrend did not exit 0");

	/* Each handled exactly once (no redelivery), none dead-lettered, and
	 * the queue is empty: everything was acked before the close. */
	cr_assert_eq(it_log_count(&d, "handled "), 3);
	cr_assert_eq(it_log_count(&d, "acked=3 "), 1);
	cr_assert_eq(it_queue_ready(q), 0);
	cr_assert_eq(it_queue_ready(dlq), 0);
	it_delete_queue(q);
	it_delete_queue(dlq);
	free(conf);
}

Test(routing, type_from_property_and_routing_key, .timeout = 90)
{
	char x[128], q[128], path[512];
	struct it_daemon d;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_record.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "rt.x");
	it_unique(q, sizeof(q), "rt.q");
	char *conf = it_conf(x, q, path, "t.prop=record", NULL, NULL,
	                     "type_from = \"property\"", NULL);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	/* The JSON type field is ignored: the property decides. */
	const char *body = "{\"type\":\"not.this\",\"id\":7}";
	it_publish(c, x, "any", body, strlen(body), "t.prop");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "record type=t.prop id=7 ", 1, WAIT_MS),
	             1);
	it_daemon_stop(&d);
	cr_assert_eq(it_queue_ready(q), 0);
	free(conf);

	it_unique(q, sizeof(q), "rt.q");
	conf = it_conf(x, q, path, "orders.eu=record", NULL, NULL,
	               "type_from = \"routing_key\"", NULL);
	it_daemon_start(&d, conf, true);
	c = it_connect();
	it_publish_str(c, x, "orders.eu", "{\"id\":8}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "record type=orders.eu id=8 ", 1, WAIT_MS),
	             1);
	it_daemon_stop(&d);
	cr_assert_eq(it_queue_ready(q), 0);
	free(conf);
}
