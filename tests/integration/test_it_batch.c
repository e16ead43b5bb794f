/* Batch handlers: a route with batch_size / batch_timeout_ms hands its
 * messages to the handler in batches, flushed when full, when the oldest
 * has waited batch_timeout_ms, or at shutdown; each message of a batch gets
 * its own outcome (ack, reject, retry, none = retry); the acks of a batch
 * are coalesced into one multiple-ack.
 *
 * fx_flow's handler "batch" logs "batch n=N" per call and
 * "batch-item id=I attempt=A" per message.
 *
 * No Criterion .timeout (see test_it_cli.c); every wait here is bounded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 20000
/* Nothing is retried here: no retry queues to declare and delete. */
#define NO_RETRY "policy { max_attempts = 1 }"

/* it_conf's text (no routes) with route "batch" -> fx_flow's "batch" and
 * the given route keys (batch_size, batch_timeout_ms, ...). */
static char *batch_conf(const struct it_names *n, const char *global,
                        const char *broker, const char *route_keys)
{
	char path[512], *base, *conf = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	base = it_conf(n->x, n->q, path, "", global, broker, NULL, NULL);
	f = open_memstream(&conf, &len);
	fprintf(f,
	        "%sroute \"batch\" {\n  queue = \"%s\"\n  plugin = \"p\"\n"
	        "  handler = \"batch\"\n  %s\n}\n",
	        base, n->q, route_keys);
	fclose(f);
	free(base);
	return conf;
}

static void cleanup(const struct it_names *n, const char *retry_queue)
{
	it_names_delete(n);
	if (retry_queue)
		it_delete_queue(retry_queue);
}

/* Publish ids first..last, each with the given outcome (NULL: none). */
static void publish_ids(const struct it_names *n, int first, int last,
                        const char *outcome)
{
	amqp_connection_state_t c = it_connect();
	char body[256];

	for (int id = first; id <= last; id++) {
		if (outcome)
			snprintf(body, sizeof(body),
			         "{\"type\":\"batch\",\"id\":%d,\"outcome\":"
			         "\"%s\"}",
			         id, outcome);
		else
			snprintf(body, sizeof(body),
			         "{\"type\":\"batch\",\"id\":%d}", id);
		it_publish_str(c, n->x, "in", body);
	}
	it_close(c);
}

/* Every id in first..last logged as a batch item exactly once. */
static void expect_items_once(const char *log, int first, int last)
{
	char needle[64];

	for (int id = first; id <= last; id++) {
		snprintf(needle, sizeof(needle), "batch-item id=%d attempt=1",
		         id);
		cr_expect_eq(it_count(log, needle), 1, "id %d seen %d times",
		             id, it_count(log, needle));
	}
}

Test(batch, flush_by_size)
{
	struct it_names n;
	struct it_daemon d;
	char *log;
	int64_t t0, took;

	it_names_init(&n, "bt.size");
	char *conf = batch_conf(&n, NO_RETRY, NULL,
	                        "batch_size = 5\n  batch_timeout_ms = 10000");
	it_daemon_start(&d, conf, true);

	t0 = it_now_ms();
	publish_ids(&n, 1, 10, "ack");
	if (it_log_wait(&d, "batch n=5\n", 2, WAIT_MS) != 2) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("no two batches of 5:\n%s", log);
	}
	took = it_now_ms() - t0;
	/* Full batches go at once, not at the 10 s timeout. */
	cr_expect_lt(took, 5000, "two full batches took %lld ms",
	             (long long)took);
	cr_expect_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "not acked:\n%s", log);
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	cr_expect_eq(it_count(log, "batch n="), 2, "batches:\n%s", log);
	expect_items_once(log, 1, 10);
	IT_EXPECT_METRIC(log, "acked", 10);
	IT_EXPECT_METRIC(log, "batches", 2);
	IT_EXPECT_METRIC(log, "retried", 0);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);

	free(log);
	cleanup(&n, NULL);
	free(conf);
}

Test(batch, flush_by_time)
{
	struct it_names n;
	struct it_daemon d;
	char *log;
	int64_t t0, took;

	it_names_init(&n, "bt.time");
	char *conf = batch_conf(&n, NO_RETRY, NULL,
	                        "batch_size = 100\n  batch_timeout_ms = 500");
	it_daemon_start(&d, conf, true);

	t0 = it_now_ms();
	publish_ids(&n, 1, 3, "ack");
	if (it_log_wait(&d, "batch n=3\n", 1, WAIT_MS) != 1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("no batch of 3:\n%s", log);
	}
	took = it_now_ms() - t0;
	/* The first message arrived after t0: its 500 ms run from then. */
	cr_expect_geq(took, 400, "flushed after %lld ms, before the timeout",
	              (long long)took);
	cr_expect_lt(took, 5000, "flushed after %lld ms", (long long)took);

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "not acked:\n%s", log);
	cr_expect_eq(it_count(log, "batch n="), 1, "batches:\n%s", log);
	expect_items_once(log, 1, 3);
	IT_EXPECT_METRIC(log, "acked", 3);
	IT_EXPECT_METRIC(log, "batches", 1);

	free(log);
	cleanup(&n, NULL);
	free(conf);
}

Test(batch, flush_at_shutdown)
{
	struct it_names n;
	struct it_daemon d;
	char *log;

	it_names_init(&n, "bt.stop");
	char *conf = batch_conf(&n, NO_RETRY, NULL,
	                        "batch_size = 100\n  batch_timeout_ms = 60000");
	it_daemon_start(&d, conf, true);

	publish_ids(&n, 1, 4, "ack");
	/* All four read by warrend (its debug log says so), none handled
	 * yet. The queue's ready count alone is not enough: the broker has
	 * sent them, but warrend may not have read them yet. */
	cr_assert_eq(it_log_wait(&d, ": read delivery ", 4, WAIT_MS), 4);
	cr_assert_eq(it_log_count(&d, "batch n="), 0,
	             "flushed before shutdown");

	log = it_stop_and_log(&d);
	cr_expect_eq(it_count(log, "batch n=4\n"), 1, "no batch of 4:\n%s",
	             log);
	cr_expect_eq(it_count(log, "batch n="), 1, "batches:\n%s", log);
	/* Acked: not requeued when the connections closed. */
	cr_expect_eq(it_queue_ready(n.q), 0, "not acked:\n%s", log);
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	expect_items_once(log, 1, 4);
	IT_EXPECT_METRIC(log, "acked", 4);
	IT_EXPECT_METRIC(log, "batches", 1);

	free(log);
	cleanup(&n, NULL);
	free(conf);
}

/* The id in a DLQ message's body, or -1. */
static int body_id(const struct it_msg *m)
{
	char buf[256];
	const char *p;

	snprintf(buf, sizeof(buf), "%.*s", (int)m->len, m->body);
	p = strstr(buf, "\"id\":");
	return p ? atoi(p + 5) : -1;
}

Test(batch, partial_outcomes)
{
	struct it_names n;
	struct it_daemon d;
	struct it_msg m;
	char retry_q[200], s[256] = "", *log;
	bool seen[5] = {false};
	amqp_connection_state_t c;

	it_names_init(&n, "bt.part");
	snprintf(retry_q, sizeof(retry_q), "%s.retry.200", n.q);
	char *conf =
	    batch_conf(&n,
	               "policy { max_attempts = 2 retry_delay_ms = 200 "
	               "retry_jitter = 0 }",
	               NULL, "batch_size = 4\n  batch_timeout_ms = 300");
	it_daemon_start(&d, conf, true);

	c = it_connect();
	it_publish_str(c, n.x, "in",
	               "{\"type\":\"batch\",\"id\":1,\"outcome\":\"ack\"}");
	it_publish_str(c, n.x, "in",
	               "{\"type\":\"batch\",\"id\":2,\"outcome\":\"reject\"}");
	it_publish_str(c, n.x, "in",
	               "{\"type\":\"batch\",\"id\":3,\"outcome\":\"retry\"}");
	it_publish_str(c, n.x, "in", "{\"type\":\"batch\",\"id\":4}");
	it_close(c);

	cr_assert_eq(it_log_wait(&d, "batch n=4\n", 1, WAIT_MS), 1,
	             "no batch of 4");
	/* 3 and 4 come back for attempt 2 (one batch, flushed by time),
	 * fail again and are dead-lettered with 2. */
	if (it_log_wait(&d, "batch-item id=3 attempt=2", 1, WAIT_MS) != 1 ||
	    it_log_wait(&d, "batch-item id=4 attempt=2", 1, WAIT_MS) != 1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("3 and 4 not retried:\n%s", log);
	}
	cr_assert_eq(it_wait_queue(n.dlq, 3, WAIT_MS), 3, "not 3 dead letters");

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "input left:\n%s", log);
	cr_expect_eq(it_queue_ready(retry_q), 0);
	expect_items_once(log, 1, 4);
	cr_expect_eq(it_count(log, "batch-item id=1 "), 1, "1 seen again");
	cr_expect_eq(it_count(log, "batch-item id=2 "), 1, "2 seen again");
	cr_expect_eq(it_count(log, "batch-item id=3 attempt=2"), 1);
	cr_expect_eq(it_count(log, "batch-item id=4 attempt=2"), 1);
	IT_EXPECT_METRIC(log, "acked", 1);
	IT_EXPECT_METRIC(log, "rejected", 1);
	IT_EXPECT_METRIC(log, "retried", 4);
	IT_EXPECT_METRIC(log, "retry_published", 2);
	IT_EXPECT_METRIC(log, "max_attempts", 2);
	IT_EXPECT_METRIC(log, "dead_lettered", 3);
	IT_EXPECT_METRIC(log, "batches", 2);

	for (int i = 0; i < 3; i++) {
		int64_t v = 0;
		int id;

		cr_assert(it_get_msg(n.dlq, &m), "dead letter %d missing", i);
		id = body_id(&m);
		cr_assert(id >= 2 && id <= 4 && !seen[id],
		          "unexpected dead letter %.*s", (int)m.len, m.body);
		seen[id] = true;
		cr_expect_str_eq(
		    it_msg_str(&m, "x-warren-handler", s, sizeof(s)) ? s : "",
		    "batch");
		if (!it_msg_str(&m, "x-warren-reason", s, sizeof(s)))
			s[0] = '\0';
		if (id == 2) {
			cr_expect_str_eq(s, "handler-reject");
			cr_expect(it_msg_str(&m, "x-warren-reason-text", s,
			                     sizeof(s)) &&
			              strstr(s, "batch rejected id=2"),
			          "reason text %s", s);
			cr_expect(it_msg_int(&m, "x-warren-attempts", &v) &&
			          v == 1);
		} else {
			cr_expect_str_eq(s, "max-attempts", "id %d", id);
			cr_expect(it_msg_int(&m, "x-warren-attempts", &v) &&
			              v == 2,
			          "id %d attempts %lld", id, (long long)v);
		}
		it_msg_free(&m);
	}
	cr_expect_eq(it_queue_ready(n.dlq), 0);

	free(log);
	cleanup(&n, retry_q);
	free(conf);
}

Test(batch, all_ack_batch_one_multiple_ack)
{
	struct it_names n;
	struct it_daemon d;
	char *log;

	it_names_init(&n, "bt.ack");
	/* The acks coalesced per frame are min(ack_batch, prefetch / 2)
	 * (pool.c): prefetch 20 lets all 10 go in one multiple-ack. */
	char *conf = batch_conf(&n, NO_RETRY,
	                        "  pool_size = 1\n  prefetch = 20\n"
	                        "  ack_batch = 100",
	                        "batch_size = 10\n  batch_timeout_ms = 10000");
	it_daemon_start(&d, conf, true);

	publish_ids(&n, 1, 10, "ack");
	if (it_log_wait(&d, "batch n=10\n", 1, WAIT_MS) != 1) {
		log = it_log_read(&d);
		it_daemon_stop(&d);
		cr_assert_fail("no batch of 10:\n%s", log);
	}

	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "not acked:\n%s", log);
	expect_items_once(log, 1, 10);
	IT_EXPECT_METRIC(log, "acked", 10);
	IT_EXPECT_METRIC(log, "batches", 1);
	IT_EXPECT_METRIC(log, "ack_frames", 1);
	IT_EXPECT_METRIC(log, "connections_opened", 1);

	free(log);
	cleanup(&n, NULL);
	free(conf);
}
