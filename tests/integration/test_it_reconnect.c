/* The broker closes every connection (rabbitmqctl close_all_connections):
 * warrend reconnects and goes on consuming. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

Test(reconnect, after_broker_closes_connections, .timeout = 120)
{
	char x[128], q[128], path[512], *conf;
	struct it_daemon d;

	if (it_broker_ctl("status") < 0)
		cr_skip_test("WARREN_TEST_BROKER_DIR not set: external broker");
	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_record.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "rc.x");
	it_unique(q, sizeof(q), "rc.q");
	conf = it_conf(x, q, path, "r=record", NULL, "  pool_size = 1", NULL,
	               NULL);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "k", "{\"type\":\"r\",\"id\":1}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "record type=r id=1 ", 1, 20000), 1);

	cr_assert_eq(it_broker_ctl("close_all_connections test-reconnect"), 0);
	cr_assert_eq(it_log_wait(&d, "reconnected to", 1, 20000), 1,
	             "no reconnect:\n%s", it_log_read(&d));
	c = it_connect();
	it_publish_str(c, x, "k", "{\"type\":\"r\",\"id\":2}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "record type=r id=2 ", 1, 20000), 1);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	cr_assert_eq(it_queue_ready(q), 0);
	free(conf);
}
