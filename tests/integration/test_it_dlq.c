/* warrenctl dlq against the real broker: ls counts (and leaves the queue as
 * it was, in order), show's filters and safe bodies, a redrive of 1,000
 * dead-letters made by warrend with a filter (exactly the matching ones
 * move, in order the rest stay, and warrend then handles each once, as a
 * first attempt), a redrive killed with SIGKILL mid-way (nothing lost),
 * and purge with a filter. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 60000
#define MAX_IDS 2000

/* warrenctl dlq --amqp URL ARGS (within 120 s); its exit code, and its
 * stdout+stderr in *out. */
static int dlq(const char *args, char **out)
{
	char cmd[2048], buf[4096];
	size_t len = 0;
	FILE *o = open_memstream(out, &len), *p;
	int st;

	snprintf(cmd, sizeof(cmd),
	         "timeout 120 '%s/warrenctl' dlq --amqp '%s' %s 2>&1",
	         it_build_dir(), it_url(), args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (fgets(buf, sizeof(buf), p))
		fputs(buf, o);
	fclose(o);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void declare_as(const char *queue, bool quorum)
{
	amqp_connection_state_t c = it_connect();
	amqp_table_entry_t qt = {.key = amqp_cstring_bytes("x-queue-type"),
	                         .value = {.kind = AMQP_FIELD_KIND_UTF8}};
	amqp_table_t args = {.num_entries = 1, .entries = &qt};

	qt.value.value.bytes = amqp_cstring_bytes("quorum");
	amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 0, quorum, 0, 0,
	                   quorum ? args : amqp_empty_table);
	cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL,
	             "declare %s", queue);
	it_close(c);
}

static void declare(const char *queue)
{
	declare_as(queue, false);
}

/* A dead-letter as warrend writes one, published straight to `dlq`. */
struct dl {
	const char *id, *reason, *queue, *plugin, *handler;
	int64_t failed_ms;
	const char *body;
};

static void put_dl(amqp_connection_state_t c, const char *dlq,
                   const struct dl *m)
{
	amqp_basic_properties_t p = {0};
	amqp_table_entry_t h[8];
	int n = 0;

#define STR(k, v)                                                              \
	if (v) {                                                               \
		h[n].key = amqp_cstring_bytes(k);                              \
		h[n].value.kind = AMQP_FIELD_KIND_UTF8;                        \
		h[n++].value.value.bytes = amqp_cstring_bytes(v);              \
	}
	STR("x-warren-reason", m->reason)
	STR("x-warren-queue", m->queue)
	STR("x-warren-plugin", m->plugin)
	STR("x-warren-handler", m->handler)
#undef STR
	if (m->failed_ms) {
		h[n].key = amqp_cstring_bytes("x-warren-last-failure-ms");
		h[n].value.kind = AMQP_FIELD_KIND_I64;
		h[n++].value.value.i64 = m->failed_ms;
		h[n].key = amqp_cstring_bytes("x-warren-attempts");
		h[n].value.kind = AMQP_FIELD_KIND_I64;
		h[n++].value.value.i64 = 4;
	}
	p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_HEADERS_FLAG;
	p.message_id = amqp_cstring_bytes(m->id);
	p.headers.num_entries = n;
	p.headers.entries = h;
	it_publish_props(c, "", dlq, m->body, &p);
}

/* Take every message of `queue` (acked), their message ids into ids[]
 * in order; returns how many. */
static int drain_ids(const char *queue, char ids[][32], int max)
{
	amqp_connection_state_t c = it_connect();
	int n = 0;

	for (int i = 0; i < MAX_IDS + 1000; i++) {
		amqp_rpc_reply_t r =
		    amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 1);
		amqp_message_t m;

		cr_assert_eq(r.reply_type, AMQP_RESPONSE_NORMAL);
		if (r.reply.id != AMQP_BASIC_GET_OK_METHOD)
			break;
		cr_assert_eq(amqp_read_message(c, 1, &m, 0).reply_type,
		             AMQP_RESPONSE_NORMAL);
		if (n < max)
			snprintf(ids[n], 32, "%.*s",
			         (int)m.properties.message_id.len,
			         (const char *)m.properties.message_id.bytes);
		n++;
		amqp_destroy_message(&m);
		amqp_maybe_release_buffers(c);
	}
	it_close(c);
	return n;
}

static char ids_a[MAX_IDS][32], ids_b[MAX_IDS][32];

Test(dlq, ls_counts_and_leaves_the_queue_in_order, .timeout = 120)
{
	char q[128], *out;
	int64_t t0 = 1764590400000; /* 2025-12-01T12:00:00.000Z */

	it_unique(q, sizeof(q), "dlq.ls");
	declare(q);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < 10; i++) {
		char id[16], body[64];
		struct dl m = {.id = id, .body = body};
		snprintf(id, sizeof(id), "m%d", i);
		snprintf(body, sizeof(body), "{\"type\":\"%s\",\"id\":%d}",
		         i % 2 ? "order:created" : "user:signup", i);
		m.reason = i < 6 ? "handler-reject" : "max-attempts";
		m.queue = i < 3 ? "orders" : "signups";
		m.plugin = "p";
		m.handler = i % 2 ? "order" : "signup";
		m.failed_ms = t0 + i * 1000;
		put_dl(c, q, &m);
	}
	put_dl(c, q, &(struct dl){.id = "raw", .body = "not json"});
	it_close(c);
	cr_assert_eq(it_wait_queue(q, 11, WAIT_MS), 11);

	cr_assert_eq(dlq("ls", &out), 2, "%s", out); /* no queue: usage */
	free(out);
	cr_assert_eq(dlq("list x", &out), 2, "%s", out);
	free(out);
	char args[300];
	snprintf(args, sizeof(args), "ls %s", q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, ": 11 dead-letters") != NULL, "%s", out);
	cr_expect(strstr(out, "       6  handler-reject\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       4  max-attempts\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       1  (none)\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       5  order:created\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       5  user:signup\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       5  p/order\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       7  signups\n") != NULL, "%s", out);
	cr_expect(strstr(out, "       3  orders\n") != NULL, "%s", out);
	cr_expect(strstr(out, "oldest 2025-12-01T12:00:00.000Z, newest "
	                      "2025-12-01T12:00:09.000Z") != NULL,
	          "%s", out);
	free(out);

	/* As it was: all there (once the requeue reached the queue), in
	 * order. */
	cr_assert_eq(it_wait_queue(q, 11, WAIT_MS), 11);
	cr_assert_eq(drain_ids(q, ids_a, MAX_IDS), 11);
	for (int i = 0; i < 10; i++) {
		char id[16];
		snprintf(id, sizeof(id), "m%d", i);
		cr_expect_str_eq(ids_a[i], id);
	}
	cr_expect_str_eq(ids_a[10], "raw");
	it_delete_queue(q);
}

Test(dlq, show_filters_and_escapes_bodies, .timeout = 120)
{
	char q[128], args[300], *out;

	it_unique(q, sizeof(q), "dlq.show");
	declare(q);
	amqp_connection_state_t c = it_connect();
	put_dl(c, q,
	       &(struct dl){.id = "r1",
	                    .reason = "handler-reject",
	                    .body = "{\"type\":\"a\",\"id\":1}"});
	put_dl(c, q,
	       &(struct dl){.id = "m1",
	                    .reason = "max-attempts",
	                    .body = "{\"type\":\"b\",\"id\":2}"});
	put_dl(c, q,
	       &(struct dl){.id = "r2",
	                    .reason = "handler-reject",
	                    .body = "{\"type\":\"b\",\"id\":3}"});
	/* A terminal escape, a C1 control, invalid UTF-8, a backslash. */
	put_dl(
	    c, q,
	    &(struct dl){.id = "bin",
	                 .reason = "unparseable",
	                 .body = "\x1b[31mred\xc2\x9b \xff\xc3( \\ \xc3\xa9"});
	it_close(c);
	cr_assert_eq(it_wait_queue(q, 4, WAIT_MS), 4);

	snprintf(args, sizeof(args), "show %s --reason handler-reject", q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "message-id: r1") &&
	              strstr(out, "message-id: r2"),
	          "%s", out);
	cr_expect(!strstr(out, "message-id: m1") && !strstr(out, "bin"), "%s",
	          out);
	cr_expect(strstr(out, "x-warren-reason: \"handler-reject\"") != NULL,
	          "%s", out);
	cr_expect(strstr(out, "body (19 bytes): {\"type\":\"a\",\"id\":1}") !=
	              NULL,
	          "%s", out);
	free(out);

	snprintf(args, sizeof(args), "show %s --type b --reason handler-reject",
	         q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "message-id: r2") && !strstr(out, "r1") &&
	              !strstr(out, "m1"),
	          "%s", out);
	free(out);

	snprintf(args, sizeof(args), "show %s -n 1", q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "message-id: r1") && !strstr(out, "m1"), "%s",
	          out);
	free(out);

	snprintf(args, sizeof(args), "show %s --reason unparseable", q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strchr(out, '\x1b') == NULL, "a raw ESC in: %s", out);
	cr_expect(
	    strstr(out, "\\x1b[31mred\\u009b \\xff\\xc3( \\\\ \xc3\xa9") !=
	        NULL,
	    "%s", out);
	free(out);

	/* The broker from a conf's broker section, as warrend finds it
	 * (the URL in the file, no WARREN_AMQP_URL). */
	char conf_path[600], cmd[2000], buf[4096];
	char *conf =
	    it_conf("x", "y", "/nonexistent.so", "t=h", NULL, NULL, NULL, NULL);
	char *u = strstr(conf, "broker {\n");
	cr_assert_not_null(u);
	snprintf(conf_path, sizeof(conf_path), "%s/dlq.conf", it_tmp_dir());
	FILE *cf = fopen(conf_path, "w");
	cr_assert_not_null(cf);
	fprintf(cf, "%.*sbroker {\n  url = \"%s\"\n%s", (int)(u - conf), conf,
	        it_url(), u + strlen("broker {\n"));
	fclose(cf);
	free(conf);
	snprintf(cmd, sizeof(cmd),
	         "env -u WARREN_AMQP_URL timeout 60 '%s/warrenctl' dlq -c '%s' "
	         "show %s --reason max-attempts 2>&1",
	         it_build_dir(), conf_path, q);
	FILE *pp = popen(cmd, "r");
	size_t outlen = 0;
	FILE *o = open_memstream(&out, &outlen);
	while (fgets(buf, sizeof(buf), pp))
		fputs(buf, o);
	fclose(o);
	cr_expect_eq(pclose(pp), 0, "%s", out);
	cr_expect(strstr(out, "message-id: m1") != NULL, "%s", out);
	free(out);

	/* show takes nothing away. */
	cr_expect_eq(it_wait_queue(q, 4, WAIT_MS), 4);
	it_delete_queue(q);
}

/* Whether ids (n of them) holds id. */
static bool has(char ids[][32], int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

/*
 * 1,000 messages through warrend: the even ones retried until
 * max_attempts (2) and dead-lettered "max-attempts", the odd ones
 * rejected. A redrive with --reason max-attempts moves exactly the 500
 * even ones back to the queue, the odd ones stay in order. Then warrend
 * with the handler fixed (fx_flow acks, and logs each call's attempt)
 * handles each redriven message once, as attempt 1: a copy that kept its
 * x-warren-attempts or x-death would count as attempt 3 (and one that
 * failed once more would go straight back to the dead-letters), and
 * every tenth fails its first attempt ("fail_until": 2) to show it gets
 * its retries again rather than being dead-lettered at once.
 */
Test(dlq, redrive_1000_with_a_filter_then_handled_once, .timeout = 300)
{
	struct it_names n;
	struct it_daemon d;
	char good[512], flow[512], args[400], *conf, *out, *log;
	const char *policy = "policy {\n  max_attempts = 2\n  retry_delay_ms = "
	                     "100\n  retry_multiplier = 1\n  retry_jitter = "
	                     "0\n}\n";

	snprintf(good, sizeof(good), "%s/tests/fixtures/fx_good.so",
	         it_build_dir());
	snprintf(flow, sizeof(flow), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_names_init(&n, "dlq.rd");
	conf = it_conf(n.x, n.q, good, "t:even=retry;t:odd=reject", policy,
	               NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	free(conf);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < 1000; i++) {
		amqp_basic_properties_t p = {0};
		char id[16], body[128];
		snprintf(id, sizeof(id), "%d", i);
		snprintf(body, sizeof(body), "{\"type\":\"t:%s\",\"id\":%d%s}",
		         i % 2 ? "odd" : "even", i,
		         i % 10 == 0 ? ",\"fail_until\":2" : "");
		p._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
		p.message_id = amqp_cstring_bytes(id);
		it_publish_props(c, n.x, "k", body, &p);
	}
	it_close(c);
	cr_assert_eq(it_wait_queue(n.dlq, 1000, WAIT_MS), 1000);
	log = it_stop_and_log(&d);
	IT_EXPECT_METRIC(log, "max_attempts", 500);
	free(log);

	snprintf(args, sizeof(args), "ls %s", n.dlq);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "     500  max-attempts\n") &&
	              strstr(out, "     500  handler-reject\n"),
	          "%s", out);
	free(out);

	/* The order the rejected ones are in (warrend's workers finished
	 * them in an order of their own): show lists them in it. */
	snprintf(args, sizeof(args), "show %s --reason handler-reject -n 1000",
	         n.dlq);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	int nodd = 0;
	for (char *p = strstr(out, "message-id: "); p && nodd < MAX_IDS;
	     p = strstr(p + 1, "message-id: "))
		sscanf(p, "message-id: %31s", ids_b[nodd++]);
	cr_assert_eq(nodd, 500);
	free(out);
	cr_assert_eq(it_wait_queue(n.dlq, 1000, WAIT_MS), 1000);

	snprintf(args, sizeof(args),
	         "redrive %s --reason max-attempts --dry-run", n.dlq);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect_eq(it_count(out, ", max-attempts) to queue "), 500, "%s",
	             out);
	cr_expect(strstr(out, "dry run: would move 500 of 1000 scanned") !=
	              NULL,
	          "%s", out);
	free(out);
	/* Requeued messages reach the queue process asynchronously. */
	cr_assert_eq(it_wait_queue(n.dlq, 1000, WAIT_MS), 1000);
	cr_assert_eq(it_queue_ready(n.q), 0);

	snprintf(args, sizeof(args), "redrive %s --reason max-attempts", n.dlq);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "redrive: moved 500, matching 500") != NULL, "%s",
	          out);
	free(out);
	cr_assert_eq(it_wait_queue(n.q, 500, WAIT_MS), 500);
	cr_assert_eq(it_wait_queue(n.dlq, 500, WAIT_MS), 500);

	/* The fix deployed: every type to fx_flow, which acks. */
	conf = it_conf(n.x, n.q, flow, "t:even=flow;t:odd=flow", policy, NULL,
	               NULL, NULL);
	it_daemon_start(&d, conf, true);
	free(conf);
	cr_expect_eq(it_log_wait(&d, "flow id=", 600, WAIT_MS), 600);
	cr_assert_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);
	log = it_stop_and_log(&d);
	IT_EXPECT_METRIC(log, "dead_lettered", 0);
	IT_EXPECT_METRIC(log, "acked", 500);
	IT_EXPECT_METRIC(log, "retried", 100);
	for (int i = 0; i < 1000; i += 2) {
		char want[64];
		snprintf(want, sizeof(want), "flow id=%d attempt=1 ", i);
		cr_expect_eq(it_count(log, want), 1, "%s", want);
		snprintf(want, sizeof(want), "flow id=%d attempt=2 ", i);
		cr_expect_eq(it_count(log, want), i % 10 == 0 ? 1 : 0, "%s",
		             want);
	}
	cr_expect_eq(it_count(log, "flow id="), 600);
	free(log);

	/* The odd ones stayed, in their order. */
	cr_assert_eq(drain_ids(n.dlq, ids_a, MAX_IDS), 500);
	for (int i = 0; i < 500; i++) {
		cr_expect_str_eq(ids_a[i], ids_b[i]);
		cr_expect(atoi(ids_a[i]) % 2 == 1, "%s", ids_a[i]);
	}
	it_names_delete(&n);
}

Test(dlq, redrive_killed_mid_way_loses_nothing, .timeout = 300)
{
	char q[128], to[128], url_arg[300];
	const int total = 400;
	pid_t pid;
	long moved = 0;

	it_unique(q, sizeof(q), "dlq.kill");
	it_unique(to, sizeof(to), "dlq.kill.to");
	declare(q);
	declare(to);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < total; i++) {
		char id[16];
		snprintf(id, sizeof(id), "k%d", i);
		put_dl(c, q,
		       &(struct dl){.id = id,
		                    .reason = "handler-reject",
		                    .queue = "elsewhere",
		                    .body = "{}"});
	}
	it_close(c);
	cr_assert_eq(it_wait_queue(q, total, WAIT_MS), total);

	snprintf(url_arg, sizeof(url_arg), "%s", it_url());
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		char tool[600];
		snprintf(tool, sizeof(tool), "%s/warrenctl", it_build_dir());
		freopen("/dev/null", "w", stdout);
		execl(tool, tool, "dlq", "--amqp", url_arg, "redrive", q,
		      "--to-queue", to, "--rate", "100", (char *)NULL);
		_exit(127);
	}
	/* Some have moved (bounded wait), then kill it mid-way. */
	for (int i = 0; i < 3000 && moved < 50; i++) {
		moved = it_queue_ready(to);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFSIGNALED(st), "the redrive ended before the kill");
	cr_assert_geq(moved, 50, "the redrive did not move (%ld)", moved);

	/* Its unacked dead-letters come back when its connection goes. */
	long left = 0, there = 0;
	for (int i = 0; i < 3000; i++) {
		left = it_queue_ready(q);
		there = it_queue_ready(to);
		if (left + there >= total)
			break;
		usleep(10000);
	}
	cr_expect_geq(left + there, total, "dlq %ld + target %ld", left, there);
	cr_expect_lt(there, total, "it was not killed mid-way");
	int nq = drain_ids(q, ids_a, MAX_IDS);
	int nt = drain_ids(to, ids_b, MAX_IDS);
	cr_expect_geq(nq + nt, total);
	for (int i = 0; i < total; i++) {
		char id[16];
		snprintf(id, sizeof(id), "k%d", i);
		cr_expect(has(ids_a, nq, id) || has(ids_b, nt, id),
		          "%s is in neither queue", id);
	}
	it_delete_queue(q);
	it_delete_queue(to);
}

Test(dlq, purge_with_a_filter, .timeout = 120)
{
	char q[128], args[300], *out;

	it_unique(q, sizeof(q), "dlq.purge");
	declare(q);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < 30; i++) {
		char id[16];
		snprintf(id, sizeof(id), "p%d", i);
		put_dl(c, q,
		       &(struct dl){.id = id,
		                    .reason = i % 3 ? "handler-reject"
		                                    : "unknown-type",
		                    .body = "{\"type\":\"x\"}"});
	}
	it_close(c);
	cr_assert_eq(it_wait_queue(q, 30, WAIT_MS), 30);

	snprintf(args, sizeof(args), "purge %s --reason unknown-type", q);
	cr_assert_eq(dlq(args, &out), 2, "without --yes: %s", out);
	free(out);
	cr_assert_eq(it_wait_queue(q, 30, WAIT_MS), 30);

	snprintf(args, sizeof(args), "purge %s --reason unknown-type --yes", q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "purge: removed 10, matching 10, scanned 30") !=
	              NULL,
	          "%s", out);
	free(out);
	cr_assert_eq(it_wait_queue(q, 20, WAIT_MS), 20);
	cr_assert_eq(drain_ids(q, ids_a, MAX_IDS), 20);
	for (int i = 0, k = 0; i < 30; i++) {
		char id[16];
		if (i % 3 == 0)
			continue;
		snprintf(id, sizeof(id), "p%d", i);
		cr_expect_str_eq(ids_a[k], id);
		k++;
	}
	it_delete_queue(q);
}

/* Wait (bounded) until the broker confirmed the first n publishes on c,
 * a channel in confirm mode: a quorum queue just declared may otherwise
 * not have them all when the connection closes. */
static void wait_confirms(amqp_connection_state_t c, uint64_t n)
{
	int64_t end = it_now_ms() + WAIT_MS;
	uint64_t upto = 0;

	while (upto < n) {
		struct timeval tv = {0, 200000};
		amqp_frame_t f;
		int rc;

		cr_assert(it_now_ms() < end, "%ju of %ju publishes confirmed",
		          (uintmax_t)upto, (uintmax_t)n);
		amqp_maybe_release_buffers(c);
		rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			continue;
		cr_assert(rc == AMQP_STATUS_OK, "waiting for confirms: %s",
		          amqp_error_string2(rc));
		if (f.frame_type == AMQP_FRAME_METHOD &&
		    f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			/* In order: a single ack closes the run below it too.
			 */
			if (a->delivery_tag > upto)
				upto = a->delivery_tag;
		}
		cr_assert(f.frame_type != AMQP_FRAME_METHOD ||
		              f.payload.method.id != AMQP_BASIC_NACK_METHOD,
		          "a publish was nacked");
	}
}

/* The same order guarantee on a quorum dead-letter queue: what a pass
 * gives back is ahead of the rest again, in its order. */
Test(dlq, redrive_keeps_a_quorum_queues_order, .timeout = 120)
{
	char q[128], to[128], args[400], *out;

	it_unique(q, sizeof(q), "dlq.qq");
	it_unique(to, sizeof(to), "dlq.qq.to");
	declare_as(q, true);
	declare(to);
	amqp_connection_state_t c = it_connect();
	amqp_confirm_select(c, 1);
	cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	for (int i = 0; i < 40; i++) {
		char id[16];
		snprintf(id, sizeof(id), "q%d", i);
		put_dl(c, q,
		       &(struct dl){.id = id,
		                    .reason = i % 4 ? "handler-reject"
		                                    : "max-attempts",
		                    .body = "{}"});
	}
	wait_confirms(c, 40);
	it_close(c);
	cr_assert_eq(it_wait_queue(q, 40, WAIT_MS), 40);
	snprintf(args, sizeof(args), "ls %s", q);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	free(out);
	snprintf(args, sizeof(args),
	         "redrive %s --reason max-attempts --to-queue %s", q, to);
	cr_assert_eq(dlq(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "redrive: moved 10, matching 10") != NULL, "%s",
	          out);
	free(out);
	cr_assert_eq(it_wait_queue(q, 30, WAIT_MS), 30);
	cr_assert_eq(drain_ids(q, ids_a, MAX_IDS), 30);
	for (int i = 0, k = 0; i < 40; i++) {
		char id[16];
		if (i % 4 == 0)
			continue;
		snprintf(id, sizeof(id), "q%d", i);
		cr_expect_str_eq(ids_a[k], id);
		k++;
	}
	cr_assert_eq(drain_ids(to, ids_b, MAX_IDS), 10);
	for (int i = 0; i < 10; i++) {
		char id[16];
		snprintf(id, sizeof(id), "q%d", 4 * i);
		cr_expect_str_eq(ids_b[i], id);
	}
	it_delete_queue(q);
	it_delete_queue(to);
}
