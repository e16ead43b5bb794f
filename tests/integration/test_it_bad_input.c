/* Bad input under the delivery policy: every malformed, unknown, refused or
 * failing message ends in the dead-letter queue (or, where the policy says
 * so, is retried first or dropped) with warren's reason headers and its
 * body unchanged, is counted in the exit metrics, and the daemon keeps
 * serving. Dead-lettered copies are matched to their inputs by body: two
 * connections and several workers handle them concurrently, so their order
 * is not guaranteed.
 *
 * No Criterion .timeout (see test_it_cli.c); every wait here is bounded. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS        20000
#define RETRY_DELAY_MS 200
#define STR_(v)        #v
#define STR(v)         STR_(v)

/* ---- helpers ------------------------------------------------------------- */

#define assert_metric(log, key, want)                                          \
	cr_assert_eq(it_exit_metric(log, key), (long)(want),                   \
	             "exit metric %s: want %ld, got %ld\n%s", key,             \
	             (long)(want), it_exit_metric(log, key), log)

static char *body_dup(const char *s)
{
	char *b = strdup(s);
	cr_assert(b);
	return b;
}

/* `head` + n bytes of `fill` + `tail`, NUL-terminated. */
static char *body_padded(const char *head, char fill, size_t n,
                         const char *tail)
{
	size_t h = strlen(head), t = strlen(tail);
	char *b = malloc(h + n + t + 1);

	cr_assert(b);
	memcpy(b, head, h);
	memset(b + h, fill, n);
	memcpy(b + h + n, tail, t + 1);
	return b;
}

/* One bad input and what its dead-lettered copy must say. */
struct bad {
	const char *what;
	char *body; /* malloc'd, NUL-terminated (the body is strlen bytes) */
	char rk[32];
	const char *reason;   /* x-warren-reason */
	const char *text_has; /* in x-warren-reason-text, or NULL: non-empty */
	bool handler;         /* x-warren-plugin / -handler expected */
	int attempts;         /* x-warren-attempts */
	const char *queue;    /* x-warren-queue */
	bool seen;
	int64_t got_attempts;
};

static void str_header_is(const struct it_msg *m, const struct bad *b,
                          const char *name, const char *want)
{
	char buf[512];
	const char *got = it_msg_str(m, name, buf, sizeof(buf));

	cr_assert(got, "%s: no string header %s", b->what, name);
	cr_assert_str_eq(got, want, "%s: %s is \"%s\", want \"%s\"", b->what,
	                 name, got, want);
}

/* The warren headers of a dead-lettered copy of b, published to exchange
 * x with routing key b->rk, arriving through x.dlx (a fanout). */
static void check_copy(const struct it_msg *m, struct bad *b, const char *x)
{
	char dlx[160], text[1024];
	const amqp_field_value_t *v;
	int64_t n, first, last;

	snprintf(dlx, sizeof(dlx), "%s.dlx", x);
	cr_assert_str_eq(m->exchange, dlx, "%s: arrived through \"%s\"",
	                 b->what, m->exchange);
	cr_assert_str_eq(m->routing_key, b->rk,
	                 "%s: dead-lettered with routing key \"%s\", want the "
	                 "original \"%s\"",
	                 b->what, m->routing_key, b->rk);
	str_header_is(m, b, "x-warren-reason", b->reason);
	cr_assert(it_msg_str(m, "x-warren-reason-text", text, sizeof(text)),
	          "%s: no x-warren-reason-text", b->what);
	cr_assert(text[0], "%s: empty x-warren-reason-text", b->what);
	if (b->text_has)
		cr_assert(strstr(text, b->text_has),
		          "%s: x-warren-reason-text \"%s\" does not mention "
		          "\"%s\"",
		          b->what, text, b->text_has);
	str_header_is(m, b, "x-warren-queue", b->queue);
	str_header_is(m, b, "x-warren-original-exchange", x);
	str_header_is(m, b, "x-warren-original-routing-key", b->rk);
	if (b->handler) {
		str_header_is(m, b, "x-warren-plugin", "p");
		str_header_is(m, b, "x-warren-handler", "flow");
	} else {
		cr_assert_null(it_msg_header(m, "x-warren-plugin"),
		               "%s: x-warren-plugin set, but no handler saw it",
		               b->what);
		cr_assert_null(
		    it_msg_header(m, "x-warren-handler"),
		    "%s: x-warren-handler set, but no handler saw it", b->what);
	}
	v = it_msg_header(m, "x-warren-attempts");
	cr_assert(v && v->kind == AMQP_FIELD_KIND_I64,
	          "%s: x-warren-attempts missing or not an I64", b->what);
	cr_assert(it_msg_int(m, "x-warren-attempts", &n));
	b->got_attempts = n; /* compared last: see drain_and_check() */
	cr_assert(it_msg_int(m, "x-warren-first-failure-ms", &first) &&
	              it_msg_int(m, "x-warren-last-failure-ms", &last),
	          "%s: failure times missing", b->what);
	cr_assert(first > 1500000000000LL && last >= first,
	          "%s: failure times first=%lld last=%lld", b->what,
	          (long long)first, (long long)last);
	if (b->attempts > 1)
		cr_assert_geq(last - first, RETRY_DELAY_MS / 2,
		              "%s: the first failure time was not kept from "
		              "the retried copy (first=%lld last=%lld)",
		              b->what, (long long)first, (long long)last);
	/* Other properties travel unchanged. */
	cr_assert(m->m.properties._flags & AMQP_BASIC_CONTENT_TYPE_FLAG,
	          "%s: content_type lost", b->what);
	cr_assert(m->m.properties.content_type.len == 16 &&
	              memcmp(m->m.properties.content_type.bytes,
	                     "application/json", 16) == 0,
	          "%s: content_type changed", b->what);
}

/* Take every message of dlq (expecting exactly nbad), match each to its
 * input by body, and check it. */
static void drain_and_check(const char *dlq, const char *x, struct bad *bads,
                            size_t nbad)
{
	for (size_t k = 0; k < nbad; k++) {
		struct it_msg m;
		struct bad *b = NULL;

		cr_assert(it_get_msg(dlq, &m),
		          "the dead-letter queue ran dry after %zu of %zu", k,
		          nbad);
		for (size_t i = 0; i < nbad && !b; i++)
			if (!bads[i].seen && m.len == strlen(bads[i].body) &&
			    (m.len == 0 ||
			     memcmp(m.body, bads[i].body, m.len) == 0))
				b = &bads[i];
		cr_assert(b,
		          "a dead-lettered body matches no input (or one "
		          "twice), or was changed: %zu bytes \"%.*s\"",
		          m.len, (int)(m.len > 200 ? 200 : m.len), m.body);
		b->seen = true;
		check_copy(&m, b, x);
		it_msg_free(&m);
	}
	struct it_msg extra;
	cr_assert_not(it_get_msg(dlq, &extra),
	              "more dead-lettered copies than bad inputs");
	for (size_t i = 0; i < nbad; i++)
		cr_assert(bads[i].seen, "%s: not dead-lettered", bads[i].what);
	/* Attempts made, this one included: 1 for a message refused on its
	 * first delivery, whatever the refusal. */
	for (size_t i = 0; i < nbad; i++)
		cr_expect_eq(bads[i].got_attempts, bads[i].attempts,
		             "%s: x-warren-attempts %lld, want %d",
		             bads[i].what, (long long)bads[i].got_attempts,
		             bads[i].attempts);
}

static void publish_bads(amqp_connection_state_t c, const char *x,
                         const struct bad *bads, size_t nbad)
{
	for (size_t i = 0; i < nbad; i++)
		it_publish_str(c, x, bads[i].rk, bads[i].body);
}

static void free_bads(struct bad *bads, size_t nbad)
{
	for (size_t i = 0; i < nbad; i++)
		free(bads[i].body);
}

static char *flow_path(void)
{
	size_t n = strlen(it_build_dir()) + 64;
	char *p = malloc(n);

	cr_assert(p);
	snprintf(p, n, "%s/tests/fixtures/fx_flow.so", it_build_dir());
	return p;
}

/* ---- every class, dead-lettered --------------------------------------- */

Test(bad_input, each_class_dead_lettered_with_headers_and_counted)
{
	char x[128], q[128], dlq[160], rq[200], needle[256], *plugin, *conf,
	    *log;
	struct it_daemon d;
	/* 32 KiB: big enough for the 10 KiB type and the 10,000 levels
	 * (20 KB), so those are refused for what they are (the levels past
	 * max_json_depth), not for their size. */
	const char *policy =
	    "policy {\n  max_body_size = 32768\n  max_attempts = 2\n"
	    "  retry_delay_ms = " STR(
	        RETRY_DELAY_MS) "\n  retry_jitter = 0\n}\n";
	struct bad bads[] = {
	    {"invalid JSON", body_dup("not json at all"), "", "unparseable",
	     NULL, false, 1, NULL, false, 0},
	    {"a JSON array", body_dup("[1,2,3]"), "", "unparseable",
	     "not a JSON object", false, 1, NULL, false, 0},
	    {"a JSON string", body_dup("\"just a string\""), "", "unparseable",
	     "not a JSON object", false, 1, NULL, false, 0},
	    {"an empty body", body_dup(""), "", "unparseable", "empty", false,
	     1, NULL, false, 0},
	    {"invalid UTF-8",
	     body_dup("{\"type\":\"flow\",\"id\":4,\"bad\":\"\xff\xfe"
	              "\"}"),
	     "", "unparseable", NULL, false, 1, NULL, false, 0},
	    {"10,000 levels of nesting", NULL /* below */, "", "too-large",
	     "max_json_depth (64)", false, 1, NULL, false, 0},
	    {"a missing type", body_dup("{\"id\":6}"), "", "bad-type",
	     "missing", false, 1, NULL, false, 0},
	    {"a numeric type", body_dup("{\"type\":42,\"id\":7}"), "",
	     "bad-type", "not a string", false, 1, NULL, false, 0},
	    {"an empty type", body_dup("{\"type\":\"\",\"id\":8}"), "",
	     "bad-type", "empty", false, 1, NULL, false, 0},
	    {"a 10 KiB type", body_padded("{\"type\":\"", 'a', 10240, "\"}"),
	     "", "bad-type", "longer than 255", false, 1, NULL, false, 0},
	    {"an unknown type",
	     body_dup("{\"type\":\"no:such:type\",\"id\":10}"), "",
	     "unknown-type", "no:such:type", false, 1, NULL, false, 0},
	    {"a handler reject",
	     body_dup("{\"type\":\"flow\",\"id\":11,\"reject\":true}"), "",
	     "handler-reject", "rejected id=11", true, 1, NULL, false, 0},
	    {"an invalid outcome",
	     body_dup("{\"type\":\"flow\",\"id\":12,\"outcome\":99}"), "",
	     "invalid-outcome", "99", true, 1, NULL, false, 0},
	    {"a body over max_body_size",
	     body_padded("{\"type\":\"flow\",\"id\":13,\"pad\":\"", 'p', 40960,
	                 "\"}"),
	     "", "too-large", "max_body_size", false, 1, NULL, false, 0},
	    {"a follow-up to a missing exchange",
	     body_dup("{\"type\":\"flow\",\"id\":14,\"publish\":[{\"exchange\":"
	              "\"no.such.x\",\"rk\":\"k\",\"body\":\"x\"}]}"),
	     "", "max-attempts", "no.such.x", true, 2, NULL, false, 0},
	};
	const size_t nbad = sizeof(bads) / sizeof(bads[0]);
	size_t depth = 10000;

	/* {"type":"flow","id":5,"d":[[[ ... ]]]} */
	bads[5].body = malloc(2 * depth + 64);
	cr_assert(bads[5].body);
	int len =
	    snprintf(bads[5].body, 64, "{\"type\":\"flow\",\"id\":5,\"d\":");
	memset(bads[5].body + len, '[', depth);
	memset(bads[5].body + len + depth, ']', depth);
	strcpy(bads[5].body + len + 2 * depth, "}");

	plugin = flow_path();
	it_unique(x, sizeof(x), "bad.x");
	it_unique(q, sizeof(q), "bad.q");
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	snprintf(rq, sizeof(rq), "%s.retry.%d", q, RETRY_DELAY_MS);
	for (size_t i = 0; i < nbad; i++) {
		snprintf(bads[i].rk, sizeof(bads[i].rk), "bad.%zu", i);
		bads[i].queue = q;
	}
	conf = it_conf(x, q, plugin, "flow=flow", policy, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	publish_bads(c, x, bads, nbad);
	/* x-warren-attempts of the wrong type (a string that looks like a
	 * count): not trusted, the message is handled normally as attempt 1
	 * (retried once by fail_until, then acked as attempt 2). Were "5"
	 * believed, max_attempts 2 would dead-letter it at once. */
	amqp_table_entry_t h = {
	    .key = amqp_cstring_bytes("x-warren-attempts"),
	    .value = {.kind = AMQP_FIELD_KIND_UTF8,
	              .value.bytes = amqp_cstring_bytes("5")}};
	amqp_basic_properties_t props = {
	    ._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG,
	    .content_type = amqp_cstring_bytes("application/json"),
	    .headers = {.num_entries = 1, .entries = &h},
	};
	it_publish_props(c, x, "forged",
	                 "{\"type\":\"flow\",\"id\":15,\"fail_until\":2}",
	                 &props);
	/* And after all of them, a good one is still handled. */
	it_publish_str(c, x, "good", "{\"type\":\"flow\",\"id\":100}");
	it_close(c);

	long n = it_wait_queue(dlq, (long)nbad, WAIT_MS);
	log = it_log_read(&d);
	cr_assert_eq(n, (long)nbad,
	             "%ld of %zu bad inputs reached the "
	             "dead-letter queue\n%s",
	             n, nbad, log);
	free(log);
	cr_assert_eq(it_log_wait(&d, "flow id=100 attempt=1 ", 1, WAIT_MS), 1,
	             "the good message published last was not handled");
	cr_assert_eq(it_log_wait(&d, "flow id=15 attempt=2 ", 1, WAIT_MS), 1,
	             "the message with a string x-warren-attempts was not "
	             "retried as attempt 2");
	cr_assert_eq(it_wait_queue(q, 0, WAIT_MS), 0);
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0, "warrend did not exit 0");
	log = it_log_read(&d);

	/* Nothing left behind: the input queue and the retry queue are
	 * empty (everything acked), and no copy is still in flight. */
	cr_assert_eq(it_queue_ready(q), 0, "%s", log);
	cr_assert_eq(it_queue_ready(rq), 0, "%s", log);

	/* Who saw what: no handler for anything refused before routing;
	 * the follow-up case twice (attempt 1 retried, attempt 2 dead-
	 * lettered), both times with its original routing key. */
	for (size_t i = 0; i <= 10; i++) {
		snprintf(needle, sizeof(needle), "flow id=%zu ", i);
		cr_assert_eq(it_log_count(&d, needle), 0,
		             "%s reached the handler\n%s", bads[i].what, log);
	}
	cr_assert_eq(it_log_count(&d, "flow id=13 "), 0,
	             "the body over max_body_size reached the handler\n%s",
	             log);
	cr_assert_eq(it_log_count(&d, "flow id=11 attempt=1 "), 1, "%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=12 attempt=1 "), 1, "%s", log);
	snprintf(needle, sizeof(needle), "rk=%s exchange=%s", bads[14].rk, x);
	cr_assert_eq(it_log_count(&d, "flow id=14 attempt=1 "), 1, "%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=14 attempt=2 "), 1, "%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=14 "), 2, "%s", log);
	cr_assert_eq(it_log_count(&d, needle), 2,
	             "the retried copy did not carry the original routing key "
	             "and exchange\n%s",
	             log);
	cr_assert_eq(it_log_count(&d, "flow id=15 attempt=1 "), 1,
	             "a string x-warren-attempts was believed\n%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=15 "), 2, "%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=100 "), 1, "%s", log);

	/* Logged: each refusal, the reject, the invalid outcome, the failed
	 * follow-ups, the exhausted attempts and the forged header. */
	cr_assert_eq(it_log_count(&d, "dead-lettered as unparseable"), 5, "%s",
	             log);
	cr_assert_eq(it_log_count(&d, "dead-lettered as bad-type"), 4, "%s",
	             log);
	cr_assert_eq(it_log_count(&d, "dead-lettered as unknown-type"), 1, "%s",
	             log);
	cr_assert_eq(it_log_count(&d, "dead-lettered as too-large"), 2, "%s",
	             log);
	cr_assert(strstr(log, "rejected: rejected id=11"), "%s", log);
	cr_assert(strstr(log, "invalid outcome 99"), "%s", log);
	cr_assert_geq(it_log_count(&d, "\"no.such.x\" does not exist"), 2,
	              "each failed follow-up is logged with its exchange\n%s",
	              log);
	cr_assert(strstr(log, "attempt 2 of 2 failed"), "%s", log);
	cr_assert_eq(it_log_count(&d, "x-warren-attempts is not a count"), 1,
	             "the string x-warren-attempts was not logged\n%s", log);

	/* Counted. received: 14 single deliveries, 2 each for ids 14 and 15,
	 * and the good one. acked: id 15's second attempt and the good one
	 * (id 14's acks never stand: its follow-up failed). unparseable
	 * counts bad-type too. */
	assert_metric(log, "received", nbad - 1 + 2 + 2 + 1);
	assert_metric(log, "acked", 2);
	assert_metric(log, "retried", 1);
	assert_metric(log, "dead_lettered", nbad);
	assert_metric(log, "unparseable", 9);
	assert_metric(log, "unknown_type", 1);
	assert_metric(log, "rejected", 1);
	assert_metric(log, "invalid_outcome", 1);
	assert_metric(log, "too_large", 2);
	assert_metric(log, "max_attempts", 1);
	assert_metric(log, "dropped", 0);
	assert_metric(log, "retry_published", 2);
	assert_metric(log, "followups", 0);
	assert_metric(log, "followups_failed", 2);
	assert_metric(log, "republish_failed", 0);

	/* The copies: reason class, text, queue, original exchange and
	 * routing key, attempts, and the body byte for byte. */
	drain_and_check(dlq, x, bads, nbad);

	it_delete_queue(q);
	it_delete_queue(dlq);
	it_delete_queue(rq);
	free_bads(bads, nbad);
	free(log);
	free(conf);
	free(plugin);
}

/* ---- on_unknown_type = "drop" ------------------------------------------ */

Test(bad_input, unknown_type_dropped_by_policy_others_still_dead_lettered)
{
	char x[128], q[128], dlq[160], *plugin, *conf, *log;
	struct it_daemon d;
	const char *policy = "policy {\n  max_attempts = 1\n"
	                     "  on_unknown_type = \"drop\"\n}\n";
	struct bad bads[] = {
	    {"invalid JSON", body_dup("{oops"), "", "unparseable", NULL, false,
	     1, NULL, false, 0},
	    {"a missing type", body_dup("{\"id\":3}"), "", "bad-type",
	     "missing", false, 1, NULL, false, 0},
	    {"a handler reject",
	     body_dup("{\"type\":\"flow\",\"id\":4,\"reject\":true}"), "",
	     "handler-reject", "rejected id=4", true, 1, NULL, false, 0},
	};
	const size_t nbad = sizeof(bads) / sizeof(bads[0]);

	plugin = flow_path();
	it_unique(x, sizeof(x), "bad.x");
	it_unique(q, sizeof(q), "bad.q");
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	for (size_t i = 0; i < nbad; i++) {
		snprintf(bads[i].rk, sizeof(bads[i].rk), "bad.%zu", i);
		bads[i].queue = q;
	}
	conf = it_conf(x, q, plugin, "flow=flow", policy, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "unknown", "{\"type\":\"no:such:type\",\"id\":1}");
	publish_bads(c, x, bads, nbad);
	it_publish_str(c, x, "good", "{\"type\":\"flow\",\"id\":5}");
	it_close(c);

	cr_assert_eq(it_log_wait(&d, "dropped as unknown-type", 1, WAIT_MS), 1,
	             "the unknown type was not dropped (and logged)");
	cr_assert_eq(it_log_wait(&d, "flow id=5 attempt=1 ", 1, WAIT_MS), 1,
	             "the good message was not handled");
	cr_assert_eq(it_wait_queue(dlq, (long)nbad, WAIT_MS), (long)nbad);
	cr_assert_eq(it_wait_queue(q, 0, WAIT_MS), 0);
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0, "warrend did not exit 0");
	log = it_log_read(&d);

	/* Acked away: not in the queue (not even unacked: the consumer is
	 * gone), not in the dead-letter queue (checked by drain_and_check:
	 * only the three others are there). */
	cr_assert_eq(it_queue_ready(q), 0, "%s", log);
	cr_assert(strstr(log, "no route for type \"no:such:type\""),
	          "the drop does not say why\n%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=1 "), 0, "%s", log);
	assert_metric(log, "received", 5);
	assert_metric(log, "dropped", 1);
	assert_metric(log, "unknown_type", 1);
	assert_metric(log, "dead_lettered", 3);
	assert_metric(log, "unparseable", 2);
	assert_metric(log, "rejected", 1);
	assert_metric(log, "acked", 1);
	drain_and_check(dlq, x, bads, nbad);

	it_delete_queue(q);
	it_delete_queue(dlq);
	free_bads(bads, nbad);
	free(log);
	free(conf);
	free(plugin);
}

/* ---- a queue's on_too_large overrides the policy ------------------------ */

Test(bad_input, queue_on_too_large_drop_overrides_policy_dead_letter)
{
	char x[128], q[128], q2[160], dlq[160], *plugin, *conf, *log;
	struct it_daemon d;
	size_t n;
	const char *policy =
	    "policy {\n  max_attempts = 1\n  max_body_size = 4096\n"
	    "  on_too_large = \"dead-letter\"\n}\n";

	plugin = flow_path();
	it_unique(x, sizeof(x), "bad.x");
	it_unique(q, sizeof(q), "bad.q");
	snprintf(q2, sizeof(q2), "%s.two", q);
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	/* q drops what is too large; q2 (bound for "two.#" only) follows
	 * the policy and dead-letters it. */
	char *base = it_conf(x, q, plugin, "flow=flow", policy, NULL,
	                     "on_too_large = \"drop\"", NULL);
	FILE *f = open_memstream(&conf, &n);
	fprintf(f,
	        "%s"
	        "queue \"%s\" { dead_letter_exchange = \"%s.dlx\" }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"two.#\" }\n"
	        "route \"flow-two\" { type = \"flow\" queue = \"%s\" "
	        "plugin = \"p\" handler = \"flow\" }\n",
	        base, q2, x, x, q2, q2);
	fclose(f);
	free(base);

	/* 5 KiB: over the limit. Exactly 4096 bytes: at it, accepted. */
	char *big1 = body_padded("{\"type\":\"flow\",\"id\":1,\"pad\":\"", 'p',
	                         5120, "\"}");
	char *big2 = body_padded("{\"type\":\"flow\",\"id\":2,\"pad\":\"", 'p',
	                         5120, "\"}");
	const char *head = "{\"type\":\"flow\",\"id\":3,\"pad\":\"";
	char *edge = body_padded(head, 'p', 4096 - strlen(head) - 2, "\"}");
	cr_assert_eq(strlen(edge), 4096);
	struct bad bads[] = {
	    {"too large on the queue without the override", big2, "two.big",
	     "too-large", "max_body_size", false, 1, q2, false, 0},
	    {"invalid JSON on the queue with the override", body_dup("{oops"),
	     "one.bad", "unparseable", NULL, false, 1, q, false, 0},
	};
	const size_t nbad = sizeof(bads) / sizeof(bads[0]);

	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "one.big", big1);    /* q: dropped */
	it_publish_str(c, x, "two.big", big2);    /* q: dropped; q2: DLQ */
	it_publish_str(c, x, "one.edge", edge);   /* q: handled */
	it_publish_str(c, x, "one.bad", "{oops"); /* q: DLQ (unparseable) */
	it_publish_str(c, x, "two.good", "{\"type\":\"flow\",\"id\":4}");
	it_close(c);

	cr_assert_eq(it_log_wait(&d, "dropped as too-large", 2, WAIT_MS), 2,
	             "q did not drop both large bodies");
	cr_assert_eq(it_log_wait(&d, "flow id=4 ", 2, WAIT_MS), 2,
	             "the good message was not handled on both queues");
	cr_assert_eq(it_log_wait(&d, "flow id=3 ", 1, WAIT_MS), 1,
	             "a body of exactly max_body_size was not handled");
	cr_assert_eq(it_wait_queue(dlq, (long)nbad, WAIT_MS), (long)nbad);
	cr_assert_eq(it_wait_queue(q, 0, WAIT_MS), 0);
	cr_assert_eq(it_wait_queue(q2, 0, WAIT_MS), 0);
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0, "warrend did not exit 0");
	log = it_log_read(&d);

	cr_assert_eq(it_queue_ready(q), 0, "%s", log);
	cr_assert_eq(it_queue_ready(q2), 0, "%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=1 "), 0, "%s", log);
	cr_assert_eq(it_log_count(&d, "flow id=2 "), 0, "%s", log);
	cr_assert_eq(it_log_count(&d, "dead-lettered as too-large"), 1, "%s",
	             log);
	assert_metric(log, "received", 7);
	assert_metric(log, "too_large", 3);
	assert_metric(log, "dropped", 2);
	assert_metric(log, "dead_lettered", 2);
	assert_metric(log, "unparseable", 1);
	assert_metric(log, "acked", 3);
	drain_and_check(dlq, x, bads, nbad);

	it_delete_queue(q);
	it_delete_queue(q2);
	it_delete_queue(dlq);
	free_bads(bads, nbad);
	free(big1);
	free(edge);
	free(log);
	free(conf);
	free(plugin);
}
