/* The poison guard: a message whose handler kills warrend must not crash-
 * loop it forever. On a quorum queue with `delivery_limit` (x-delivery-
 * limit) the broker counts every delivery, including those whose consumer
 * died before acking, and past the limit dead-letters the message with
 * x-death reason "delivery_limit". The test plays systemd: it restarts
 * warrend each time it dies (bounded), and checks that the poison ends in
 * the dead-letter queue unchanged, that every good message was handled,
 * that the restarts stopped after a bounded number, and that the last
 * warrend still serves and stops cleanly.
 *
 * Classic queues have no delivery limit: the broker requeues the poison
 * message each time the consumer dies (redelivered=1, no count), so every
 * restart receives it again and crashes again, forever. There only the
 * supervisor's restart limit (systemd StartLimitBurst) stops the loop, and
 * it stops the daemon, not the message: use a quorum queue with
 * delivery_limit for anything a handler might crash on.
 *
 * One connection and prefetch 1, on purpose: when the process dies, the
 * broker returns every unacked delivery with its count raised, not only the
 * poison. With a wider window, good messages prefetched next to the poison
 * (or handled, but with their acks still being coalesced) share its fate:
 * redelivered after each crash and dead-lettered with it. With pool_size 2
 * and prefetch 10, 9 to 19 of the 20 good messages ended in the dead-letter
 * queue (7 runs), and the test would be a race. With prefetch 1 the poison
 * is the only unacked message when the process dies.
 *
 * No Criterion .timeout (see test_it_cli.c); every wait here is bounded. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define DELIVERY_LIMIT      2
#define NMSG                21 /* ids 1..21 */
#define POISON_ID           11 /* in the middle; the other 20 are good */
#define STR_(v)             #v
#define STR(v)              STR_(v)
#define POISON_CRASH_LINE   "crashing on id=" STR(POISON_ID) " "
#define POISON_HANDLED_LINE "handled id=" STR(POISON_ID) " "
#define LATE_ID             100 /* published after the poison is dead-lettered */
#define MAX_RESTARTS        10
#define TOTAL_MS            120000 /* the whole supervised crash loop */
#define RESTART_DELAY_MS    200    /* systemd's RestartSec, roughly */
#define WAIT_MS             20000

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* acc (malloc'd or NULL) with s appended: a new malloc'd string. */
static char *append(char *acc, const char *s)
{
	size_t a = acc ? strlen(acc) : 0, n = strlen(s);
	char *p = realloc(acc, a + n + 1);
	cr_assert(p);
	memcpy(p + a, s, n + 1);
	return p;
}

/* The logs of the runs that ended plus the current run's log, malloc'd. */
static char *all_logs(const char *ended, const struct it_daemon *d)
{
	char *cur = it_log_read(d);
	char *all = append(NULL, ended ? ended : "");
	all = append(all, cur);
	free(cur);
	return all;
}

static bool all_good_handled(const char *logs)
{
	char needle[64];
	for (int id = 1; id <= NMSG; id++) {
		if (id == POISON_ID)
			continue;
		snprintf(needle, sizeof(needle), "handled id=%d ", id);
		if (!strstr(logs, needle))
			return false;
	}
	return true;
}

/* A field of an AMQP table, or NULL. */
static const amqp_field_value_t *table_get(const amqp_table_t *t,
                                           const char *key)
{
	size_t klen = strlen(key);
	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];
		if (e->key.len == klen && memcmp(e->key.bytes, key, klen) == 0)
			return &e->value;
	}
	return NULL;
}

/* The newest entry of m's x-death header (an array of tables), or NULL. */
static const amqp_table_t *newest_x_death(const struct it_msg *m)
{
	const amqp_field_value_t *xd = it_msg_header(m, "x-death");

	if (!xd || xd->kind != AMQP_FIELD_KIND_ARRAY ||
	    xd->value.array.num_entries < 1 ||
	    xd->value.array.entries[0].kind != AMQP_FIELD_KIND_TABLE)
		return NULL;
	return &xd->value.array.entries[0].value.table;
}

/* A string field of t (rabbitmq-c decodes longstr as UTF8) copied into
 * buf; "" if absent or not a string. */
static const char *table_str(const amqp_table_t *t, const char *key, char *buf,
                             size_t len)
{
	const amqp_field_value_t *v = table_get(t, key);

	buf[0] = '\0';
	if (v && (v->kind == AMQP_FIELD_KIND_UTF8 ||
	          v->kind == AMQP_FIELD_KIND_BYTES))
		snprintf(buf, len, "%.*s", (int)v->value.bytes.len,
		         (const char *)v->value.bytes.bytes);
	return buf;
}

/* Publish bodies[0..n) to x on a confirm-mode channel and wait (bounded)
 * for the broker to confirm them all. Without confirms the tail of a burst
 * published just before the connection closes was sometimes never enqueued
 * on the quorum queue here (3 in 45 ASan runs lost 3 to 12 messages). */
static void publish_confirmed(const char *x, char *const *bodies, int n)
{
	amqp_connection_state_t c = it_connect();
	bool *ok = calloc((size_t)n, sizeof(*ok));
	int64_t end = it_now_ms() + WAIT_MS;
	int left = n;

	cr_assert(ok);
	amqp_confirm_select(c, 1);
	cr_assert(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL,
	          "confirm.select failed");
	for (int i = 0; i < n; i++)
		it_publish_str(c, x, "k", bodies[i]);
	while (left > 0) {
		struct timeval tv = {0, 200000};
		amqp_frame_t f;
		int rc;

		cr_assert(it_now_ms() < end,
		          "%d of %d publishes not confirmed "
		          "within %d s",
		          left, n, WAIT_MS / 1000);
		amqp_maybe_release_buffers(c);
		rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			continue;
		cr_assert(rc == AMQP_STATUS_OK, "waiting for confirms: %s",
		          amqp_error_string2(rc));
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		cr_assert(f.payload.method.id == AMQP_BASIC_ACK_METHOD,
		          "not a confirm: method 0x%08x",
		          (unsigned)f.payload.method.id);
		amqp_basic_ack_t *a = f.payload.method.decoded;
		cr_assert(a->delivery_tag >= 1 &&
		          a->delivery_tag <= (uint64_t)n);
		for (uint64_t t = a->multiple ? 1 : a->delivery_tag;
		     t <= a->delivery_tag; t++)
			if (!ok[t - 1]) {
				ok[t - 1] = true;
				left--;
			}
	}
	free(ok);
	it_close(c);
}

/* Stop the daemon (if it runs) and fail with every run's log; frees what
 * the test holds, so that LeakSanitizer only speaks of real leaks. */
#define FAIL_WITH_LOGS(d, ended, conf, ...)                                    \
	do {                                                                   \
		char *logs_ = all_logs((ended), (d));                          \
		it_daemon_stop(d);                                             \
		cr_log_error("%s", logs_);                                     \
		free(logs_);                                                   \
		free(ended);                                                   \
		free(conf);                                                    \
		cr_assert_fail(__VA_ARGS__);                                   \
	} while (0)

Test(poison, crash_loop_ends_in_dead_letter_queue_on_quorum_delivery_limit)
{
	char x[128], q[128], dlq[160], path[512], body[128], extra[128];
	char *conf, *ended = NULL, *logs, *bodies[NMSG];
	struct it_daemon d;
	struct it_msg dl;
	const amqp_table_t *xd;
	char buf[300];
	struct rlimit nocore = {0, 0};
	int restarts = 0;
	int64_t end;

	/* Crashes on purpose: no core files (like LimitCORE=0). */
	setrlimit(RLIMIT_CORE, &nocore);

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_crash.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "po.x");
	it_unique(q, sizeof(q), "po.q");
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	snprintf(extra, sizeof(extra),
	         "  type = \"quorum\"\n  delivery_limit = %d\n  prefetch = 1",
	         DELIVERY_LIMIT);
	conf = it_conf(x, q, path, "t=handle", NULL, "  pool_size = 1", extra,
	               NULL);

	/* The first run declares the topology, then gets the messages. */
	it_daemon_start(&d, conf, true);
	for (int id = 1; id <= NMSG; id++) {
		bodies[id - 1] = malloc(64);
		cr_assert(bodies[id - 1]);
		snprintf(bodies[id - 1], 64, "{\"type\":\"t\",\"id\":%d%s}", id,
		         id == POISON_ID ? ",\"crash\":true" : "");
	}
	publish_confirmed(x, bodies, NMSG);
	for (int i = 0; i < NMSG; i++)
		free(bodies[i]);

	/* The supervisor: restart warrend whenever it dies, until the poison
	 * is dead-lettered and every good message was handled. */
	end = it_now_ms() + TOTAL_MS;
	for (int polls = 0;; polls++) {
		int st;

		if (waitpid(d.pid, &st, WNOHANG) == d.pid) {
			char *log = it_log_read(&d);
			bool poisoned = strstr(log, POISON_CRASH_LINE) != NULL;

			d.exited = true;
			d.status = st;
			ended = append(ended, log);
			free(log);
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				FAIL_WITH_LOGS(&d, ended, conf,
				               "warrend exited 0 on its own");
			if (!poisoned)
				FAIL_WITH_LOGS(&d, ended, conf,
				               "warrend died, "
				               "but not in the poison handler");
			/* Each run has a conf and log file of its own; the
			 * harness keeps them all if the test fails. */
			if (restarts >= MAX_RESTARTS || it_now_ms() > end)
				FAIL_WITH_LOGS(&d, ended, conf,
				               "still "
				               "crashing after %d restarts",
				               restarts);
			nap_ms(RESTART_DELAY_MS);
			it_daemon_start(&d, conf, false);
			restarts++;
			continue;
		}
		if (polls % 4 == 0 && it_queue_ready(dlq) == 1) {
			logs = all_logs(ended, &d);
			bool done = all_good_handled(logs);
			free(logs);
			if (done)
				break;
		}
		if (it_now_ms() > end)
			FAIL_WITH_LOGS(&d, ended, conf,
			               "poison not "
			               "dead-lettered, or good messages not "
			               "handled, within %d s (%d restarts)",
			               TOTAL_MS / 1000, restarts);
		nap_ms(50);
	}
	cr_log_info("poison: %d restart(s) before the poison was "
	            "dead-lettered (delivery_limit %d)",
	            restarts, DELIVERY_LIMIT);
	cr_assert(restarts >= 1, "warrend never crashed on the poison");
	cr_assert(restarts <= DELIVERY_LIMIT + 2,
	          "%d restarts for delivery_limit %d", restarts,
	          DELIVERY_LIMIT);

	/* The last run still serves, then stops cleanly. */
	snprintf(body, sizeof(body), "{\"type\":\"t\",\"id\":%d}", LATE_ID);
	bodies[0] = body;
	publish_confirmed(x, bodies, 1);
	snprintf(body, sizeof(body), "handled id=%d ", LATE_ID);
	if (it_log_wait(&d, body, 1, WAIT_MS) != 1)
		FAIL_WITH_LOGS(&d, ended, conf,
		               "the last warrend did not "
		               "handle a new message");
	it_daemon_signal(&d, SIGTERM);
	if (it_daemon_wait(&d, 30000) != 0)
		FAIL_WITH_LOGS(&d, ended, conf,
		               "the last warrend did not exit 0");

	/* Every good message handled exactly once: with prefetch 1 none was
	 * in flight when a run crashed, so none was redelivered. The poison
	 * was delivered once per crash. */
	logs = all_logs(ended, &d);
	for (int id = 1; id <= NMSG; id++) {
		char needle[64];
		if (id == POISON_ID)
			continue;
		snprintf(needle, sizeof(needle), "handled id=%d ", id);
		cr_expect_eq(it_count(logs, needle), 1,
		             "id %d handled %d "
		             "times",
		             id, it_count(logs, needle));
	}
	cr_expect_eq(it_count(logs, POISON_HANDLED_LINE), 0);
	cr_expect_eq(it_count(logs, POISON_CRASH_LINE), restarts);
	free(logs);

	/* The poison is in the dead-letter queue, unchanged, and says why. */
	cr_assert_eq(it_queue_ready(q), 0, "messages left in %s", q);
	cr_assert(it_get_msg(dlq, &dl), "nothing in %s", dlq);
	snprintf(body, sizeof(body),
	         "{\"type\":\"t\",\"id\":%d,\"crash\":true}", POISON_ID);
	cr_expect_eq(dl.len, strlen(body));
	cr_expect(dl.len == strlen(body) && memcmp(dl.body, body, dl.len) == 0,
	          "dead-lettered body changed: %.*s", (int)dl.len, dl.body);
	xd = newest_x_death(&dl);
	cr_assert(xd, "no x-death on the dead-lettered poison");
	cr_expect_str_eq(table_str(xd, "reason", buf, sizeof(buf)),
	                 "delivery_limit");
	cr_expect_str_eq(table_str(xd, "queue", buf, sizeof(buf)), q);
	it_msg_free(&dl);
	cr_expect_eq(it_queue_ready(dlq), 0, "more than the poison in %s", dlq);

	it_delete_queue(q);
	it_delete_queue(dlq);
	/* The retry queues warrend declares for q (default policy: 5, 10 and
	 * 20 s); deleting an absent queue is fine. */
	for (int i = 0; i < 3; i++) {
		snprintf(buf, sizeof(buf), "%s.retry.%d", q, 5000 << i);
		it_delete_queue(buf);
	}
	free(ended);
	free(conf);
}
