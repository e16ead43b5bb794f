/* Ack coalescing (issue 3, point 7) against the real broker: finished
 * deliveries wait for company and go out as one multiple-ack, at most
 * ack_batch of them or after ack_delay_ms, whichever comes first. The
 * connection thread is not woken for each plain ack (connection.c), so
 * these also check that its own timer still sends a lone ack in time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 20000

static void cleanup(const struct it_names *n, char *conf)
{
	it_names_delete(n);
	free(conf);
}

/* fx_flow acking everything on one connection, with these ack settings. */
static char *acks_conf(const struct it_names *n, const char *broker)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	return it_conf(n->x, n->q, path, "flow=flow", "workers = 2", broker,
	               NULL, NULL);
}

static void publish_n(const struct it_names *n, int count)
{
	amqp_connection_state_t c = it_connect();
	char body[64];

	for (int id = 1; id <= count; id++) {
		snprintf(body, sizeof(body), "{\"type\":\"flow\",\"id\":%d}",
		         id);
		it_publish_str(c, n->x, "k", body);
	}
	it_close(c);
}

/* One message and nothing after it: its ack waits ack_delay_ms for others
 * to join it, then goes out on its own, with no worker waking the
 * connection thread for it. */
Test(acks, lone_ack_goes_out_after_ack_delay)
{
	struct it_names n;
	struct it_daemon d;
	char line[1024];

	it_names_init(&n, "ack.lone");
	char *conf = acks_conf(&n, "  pool_size = 1\n  prefetch = 100\n"
	                           "  ack_batch = 100\n  ack_delay_ms = 400");
	it_daemon_start(&d, conf, true);
	publish_n(&n, 1);

	if (it_log_wait(&d, ": ack sent: tag 1 ", 1, WAIT_MS) != 1) {
		char *log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("no ack sent:\n%s", log);
	}
	char *log = it_log_read(&d);
	cr_assert(it_log_line(log, "flow id=1 ", line, sizeof(line)), "%s",
	          log);
	int64_t handled = it_line_ms(line);
	cr_assert(it_log_line(log, ": ack sent: tag 1 ", line, sizeof(line)));
	int64_t acked = it_line_ms(line);
	free(log);
	/* It waited (coalescing), but not much past the delay: the thread's
	 * own timer came back for it. The slack covers a loaded machine and
	 * ASan; without the timer it would wait for the next heartbeat tick
	 * or message. */
	cr_expect_geq(acked - handled, 350, "acked %lld ms after the handler",
	              (long long)(acked - handled));
	cr_expect_leq(acked - handled, 400 + 300,
	              "acked %lld ms after the handler (ack_delay_ms 400)",
	              (long long)(acked - handled));

	log = it_stop_and_log(&d);
	cr_expect_eq(it_exit_metric(log, "acked"), 1);
	cr_expect_eq(it_exit_metric(log, "ack_frames"), 1, "%s", log);
	cr_expect_eq(it_queue_ready(n.q), 0, "not acked:\n%s", log);
	free(log);
	cleanup(&n, conf);
}

/* A stream of messages with a long delay: acks go out when ack_batch of
 * them are finished, as multiple-acks, each covering a run of at least a
 * batch, never one frame per message. */
Test(acks, full_batches_go_out_as_multiple_acks)
{
	struct it_names n;
	struct it_daemon d;
	enum { COUNT = 300, BATCH = 25 };

	it_names_init(&n, "ack.batch");
	/* ack_batch is capped at half the prefetch: 25 of prefetch 50. */
	char *conf = acks_conf(&n, "  pool_size = 1\n  prefetch = 50\n"
	                           "  ack_batch = 100\n  ack_delay_ms = 10000");
	it_daemon_start(&d, conf, true);
	publish_n(&n, COUNT);

	/* All but the last partial batch are acked long before the delay:
	 * the broker only sends more as acks free the prefetch window. */
	if (it_log_wait(&d, "flow id=", COUNT, WAIT_MS) != COUNT) {
		char *log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("not all %d handled:\n%s", COUNT, log);
	}
	int frames = it_log_count(&d, ": ack sent: ");
	int multi = it_log_count(&d, " and below on channel ");
	cr_expect_geq(frames, 1);
	cr_expect_leq(frames, COUNT / BATCH, "%d ack frames for %d messages",
	              frames, COUNT);
	/* Handlers finish out of order: a run that is one tag long when its
	 * batch fills goes out as a plain ack (seen once in 11 frames). */
	cr_expect_geq(multi, frames - frames / 4,
	              "%d of %d ack frames were multiple-acks", multi, frames);

	/* The stop sends what still waits. */
	char *log = it_stop_and_log(&d);
	cr_expect_eq(it_exit_metric(log, "acked"), COUNT);
	cr_expect_leq(it_exit_metric(log, "ack_frames"), COUNT / BATCH + 1);
	cr_expect_eq(it_queue_ready(n.q), 0, "not acked:\n%s", log);
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	free(log);
	cleanup(&n, conf);
}
