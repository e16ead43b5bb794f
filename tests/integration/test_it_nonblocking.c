/* WARREN_HANDLER_NONBLOCKING against the real broker: such a handler is
 * called on the connection's thread (wd-conn-N), a plain one on a worker
 * (wd-worker); a call past the limit (20 ms) moves the route to the
 * workers for good, with a warning, and nothing is lost on the way. The
 * fx_flow fixture logs the name of the thread it runs on. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 20000

struct setup {
	struct it_names n;
	char *conf;
	struct it_daemon d;
};

/* Routes: type "nb" to flow_nb (non-blocking), "flow" to flow. */
static void start(struct setup *s, const char *prefix)
{
	char path[512];

	it_names_init(&s->n, prefix);
	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	s->conf = it_conf(s->n.x, s->n.q, path, "nb=flow_nb;flow=flow",
	                  "workers = 2", NULL, NULL, NULL);
	it_daemon_start(&s->d, s->conf, true);
}

static void finish(struct setup *s)
{
	it_names_delete(&s->n);
	free(s->conf);
}

static void publish(const struct setup *s, const char *type, const char *id,
                    int sleep_ms)
{
	amqp_connection_state_t c = it_connect();
	char body[128];

	snprintf(body, sizeof(body),
	         "{\"type\":\"%s\",\"id\":\"%s\",\"sleep_ms\":%d}", type, id,
	         sleep_ms);
	it_publish_str(c, s->n.x, "k", body);
	it_close(c);
}

/* The thread the handler ran on for message `id` ("" if not handled yet,
 * within WAIT_MS). */
static void thread_of(const struct setup *s, const char *id, char *out,
                      size_t len)
{
	char needle[96], line[1024];
	const char *t;

	snprintf(needle, sizeof(needle), "flow id=%s ", id);
	out[0] = '\0';
	if (it_log_wait(&s->d, needle, 1, WAIT_MS) < 1)
		return;
	char *log = it_log_read(&s->d);
	if (it_log_line(log, needle, line, sizeof(line)) &&
	    (t = strstr(line, " thread=")) != NULL)
		snprintf(out, len, "%s", t + strlen(" thread="));
	free(log);
}

/* A connection thread: wd-conn-N (the pool has 2). */
static bool on_conn(const char *thread)
{
	return strncmp(thread, "wd-conn-", 8) == 0;
}

Test(nonblocking, runs_on_the_connection_thread)
{
	struct setup s;
	char t[64];

	start(&s, "nb.here");
	publish(&s, "nb", "n1", 0);
	publish(&s, "flow", "w1", 0);
	publish(&s, "nb", "n2", 0);

	thread_of(&s, "n1", t, sizeof(t));
	cr_expect(on_conn(t), "n1 ran on \"%s\"", t);
	thread_of(&s, "n2", t, sizeof(t));
	cr_expect(on_conn(t), "n2 ran on \"%s\"", t);
	thread_of(&s, "w1", t, sizeof(t));
	cr_expect_str_eq(t, "wd-worker", "w1 ran on \"%s\"", t);

	char *log = it_stop_and_log(&s.d);
	cr_expect_eq(it_exit_metric(log, "acked"), 3, "%s", log);
	cr_expect_eq(it_queue_ready(s.n.q), 0, "not acked:\n%s", log);
	cr_expect_eq(it_queue_ready(s.n.dlq), 0);
	cr_expect_null(strstr(log, "declared non-blocking"), "%s", log);
	free(log);
	finish(&s);
}

Test(nonblocking, a_slow_call_moves_the_route_to_the_workers)
{
	struct setup s;
	char t[64];

	start(&s, "nb.slow");
	publish(&s, "nb", "fast", 0);
	thread_of(&s, "fast", t, sizeof(t));
	cr_expect(on_conn(t), "fast ran on \"%s\"", t);

	/* It promised not to block, then sleeps 200 ms: one stall, logged. */
	publish(&s, "nb", "slow", 200);
	cr_assert_eq(it_log_wait(&s.d, "declared non-blocking", 1, WAIT_MS), 1);
	publish(&s, "nb", "after", 0);
	thread_of(&s, "after", t, sizeof(t));
	cr_expect_str_eq(t, "wd-worker", "after ran on \"%s\"", t);

	char *log = it_stop_and_log(&s.d);
	cr_expect_eq(it_log_count(&s.d, "declared non-blocking"), 1,
	             "warned once:\n%s", log);
	cr_expect(strstr(log, "p/flow_nb: type \"nb\": a call took "), "%s",
	          log);
	cr_expect_eq(it_exit_metric(log, "acked"), 3, "%s", log);
	cr_expect_eq(it_queue_ready(s.n.q), 0, "not acked:\n%s", log);
	free(log);
	finish(&s);
}
