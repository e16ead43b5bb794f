/* A handler that runs for three heartbeat intervals (heartbeat 2 s, handler
 * 6 s) does not get its connection dropped nor its message redelivered:
 * broker I/O runs on the connection's thread, handlers on workers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

Test(slow_handler, outlives_three_heartbeats_without_redelivery, .timeout = 120)
{
	char x[128], q[128], path[512], *conf;
	struct it_daemon d;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_slow.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "slow.x");
	it_unique(q, sizeof(q), "slow.q");
	conf = it_conf(x, q, path, "slow=sleep", NULL,
	               "  heartbeat = 2\n  pool_size = 1", NULL,
	               "sleep_ms = \"6000\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "k", "{\"type\":\"slow\",\"id\":1}");
	it_close(c);

	cr_assert_eq(it_log_wait(&d, "slow handler done id=1", 1, 20000), 1);
	/* Give a late redelivery every chance to show up: one more handler
	 * length. */
	cr_assert_eq(it_log_wait(&d, "slow handler done id=1", 2, 7000), 1,
	             "the message was handled twice");
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0);
	char *log = it_log_read(&d);
	cr_assert_null(strstr(log, "connection dropped"), "%s", log);
	cr_assert_null(strstr(log, "connection lost"), "%s", log);
	cr_assert_null(strstr(log, "closed the connection"), "%s", log);
	cr_assert(strstr(log, "acked=1 "), "%s", log);
	cr_assert(strstr(log, "connections_lost=0"), "%s", log);
	cr_assert_eq(it_queue_ready(q), 0);
	free(log);
	free(conf);
}
