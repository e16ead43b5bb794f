/* SIGTERM with messages in flight loses none: in-flight handlers finish
 * and are acked, deliveries that cross the cancel are handled too, the
 * rest stays in the queue untouched; and the stop is bounded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define N 40

Test(shutdown, sigterm_in_flight_loses_nothing, .timeout = 120)
{
	char x[128], q[128], dlq[160], path[512], *conf;
	struct it_daemon d;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_slow.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "stop.x");
	it_unique(q, sizeof(q), "stop.q");
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	conf = it_conf(x, q, path, "slow=sleep", "workers = 4", NULL, NULL,
	               "sleep_ms = \"300\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < N; i++) {
		char body[64];
		snprintf(body, sizeof(body), "{\"type\":\"slow\",\"id\":%d}",
		         i);
		it_publish_str(c, x, "k", body);
	}
	it_close(c);

	cr_assert_geq(it_log_wait(&d, "slow handler done", 1, 20000), 1);
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0, "warrend did not exit 0");

	int handled = it_log_count(&d, "slow handler done");
	long left = it_queue_ready(q);
	char *log = it_log_read(&d);
	/* Stopped early: some were handled, the others are back in the
	 * queue; none handled and still queued, none missing. */
	cr_assert_lt(handled, N, "the stop came too late to test anything");
	cr_assert_eq(handled + left, N, "handled %d + queued %ld != %d:\n%s",
	             handled, left, N, log);
	cr_assert_eq(it_queue_ready(dlq), 0);
	char acked[64];
	snprintf(acked, sizeof(acked), "acked=%d ", handled);
	cr_assert(strstr(log, acked), "every handled message is acked:\n%s",
	          log);
	free(log);
	free(conf);
	it_delete_queue(q);
	it_delete_queue(dlq);
}

Test(shutdown, bounded_by_shutdown_timeout, .timeout = 120)
{
	char x[128], q[128], path[512], *conf;
	struct it_daemon d;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_slow.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "stopt.x");
	it_unique(q, sizeof(q), "stopt.q");
	conf = it_conf(x, q, path, "slow=sleep", "shutdown_timeout = 1",
	               "  pool_size = 1", NULL, "sleep_ms = \"8000\"");
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "k", "{\"type\":\"slow\",\"id\":5}");
	it_close(c);
	/* Wait until the handler runs (the queue holds it unacked). */
	cr_assert_eq(it_wait_queue(q, 0, 20000), 0);
	int64_t t0 = it_now_ms();
	it_daemon_signal(&d, SIGTERM);
	int rc = it_daemon_wait(&d, 20000);
	int64_t took = it_now_ms() - t0;
	char *log = it_log_read(&d);
	cr_assert_eq(rc, 1, "a stop past its deadline exits 1:\n%s", log);
	cr_assert_lt(took, 4000, "the stop took %lld ms", (long long)took);
	cr_assert(strstr(log, "shutdown timeout"), "%s", log);
	/* Not acked, so the broker has it back. */
	cr_assert_eq(it_wait_queue(q, 1, 10000), 1);
	it_delete_queue(q);
	free(log);
	free(conf);
}

/* With prefetch 1 and a fast handler, the next delivery is often on the
 * wire when the cancel goes out, after the one in the handler finished.
 * warrend must read and handle it, not leave it to be requeued: after a
 * clean stop, no message in the queue was ever delivered before. */
Test(shutdown, deliveries_crossing_the_cancel_are_handled, .timeout = 180)
{
	char x[128], q[128], dlq[160], path[512], *conf;
	struct it_daemon d;
	enum { MSGS = 300, ROUNDS = 5 };

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_slow.so",
	         it_build_dir());
	for (int round = 0; round < ROUNDS; round++) {
		it_unique(x, sizeof(x), "cross.x");
		it_unique(q, sizeof(q), "cross.q");
		snprintf(dlq, sizeof(dlq), "%s.dlq", q);
		conf = it_conf(x, q, path, "slow=sleep", "workers = 2",
		               "  prefetch = 1", NULL, "sleep_ms = \"1\"");
		it_daemon_start(&d, conf, true);
		amqp_connection_state_t c = it_connect();
		for (int i = 0; i < MSGS; i++) {
			char body[64];
			snprintf(body, sizeof(body),
			         "{\"type\":\"slow\",\"id\":%d}", i);
			it_publish_str(c, x, "k", body);
		}
		it_close(c);

		cr_assert_geq(it_log_wait(&d, "slow handler done", 20, 20000),
		              20);
		it_daemon_signal(&d, SIGTERM);
		cr_assert_eq(it_daemon_wait(&d, 30000), 0,
		             "warrend did not exit 0");

		int handled = it_log_count(&d, "slow handler done");
		int read = it_log_count(&d, ": read delivery ");
		char *log = it_log_read(&d);
		cr_assert_lt(handled, MSGS, "the stop came too late");
		cr_expect_eq(read, handled, "read %d, handled %d:\n%s", read,
		             handled, log);
		long left = 0, redelivered = 0;
		struct it_msg m;
		while (it_get_msg(q, &m)) {
			left++;
			redelivered += m.redelivered;
			it_msg_free(&m);
		}
		cr_expect_eq(handled + left, MSGS, "handled %d + queued %ld",
		             handled, left);
		cr_expect_eq(redelivered, 0,
		             "round %d: %ld message(s) went back to the queue "
		             "after being delivered:\n%s",
		             round, redelivered, log);
		cr_expect_eq(it_queue_ready(dlq), 0);
		free(log);
		free(conf);
		it_delete_queue(q);
		it_delete_queue(dlq);
	}
}
