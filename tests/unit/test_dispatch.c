/*
 * test_dispatch.c - exec/dispatch.c on a hand-built generation: the parse
 * step refuses a body over max_body_size, an unparseable one, a bad and an
 * unknown type (dead-lettered, or dropped per the queue's policy) and finds
 * the route of a good one; the run step turns each handler outcome into a
 * verdict (follow-ups kept only with an ack, a reason text always), alone
 * and in a batch; the route-prefixed log lines keep their text.
 *
 * No dlopen: the routes point at static handlers in this file, and a
 * wd_plugin that was never loaded. Loading is test_plugin_loader's.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/metrics.h"
#include "exec/dispatch.h"

static int plugin_state;
static warren_param params[] = {{"greeting", "hi"}};
static struct wd_conf_plugin plugin_conf = {
    .name = "testplug", .params = params, .nparams = 1};
static struct wd_plugin plugin;
static struct wd_conf_queue queues[2];
static struct wd_conf conf;
static struct wd_policy policy = {.max_attempts = 3, .batch_size = 1};
static struct wd_route route_tbl[8];
static struct wd_routes routes;
static struct wd_queue_series *queue_series[2];

/* ---- handlers ---------------------------------------------------------- */

/* A follow-up that must survive only an ack. */
static void follow_up(warren_ctx *ctx, const char *rk)
{
	warren_publish pub = {.size = sizeof(pub),
	                      .exchange = "out",
	                      .routing_key = rk,
	                      .body = {"{}", 2}};

	cr_assert_eq(wd_sdk_api.publish(ctx, &pub), 0);
}

static warren_outcome on_ack(void *state, const warren_message *msg,
                             warren_ctx *ctx)
{
	const char *greeting = wd_sdk_api.param(ctx, "greeting");

	cr_expect_eq(state, &plugin_state, "the plugin's state");
	cr_expect(msg->type.len == 5 && memcmp(msg->type.ptr, "t:ack", 5) == 0);
	cr_expect(greeting && strcmp(greeting, "hi") == 0,
	          "the ctx carries the plugin's params");
	follow_up(ctx, "next");
	return WARREN_ACK;
}

static warren_outcome on_retry(void *state, const warren_message *msg,
                               warren_ctx *ctx)
{
	(void)state;
	(void)msg;
	follow_up(ctx, "dropped");
	wd_sdk_api.reason(ctx, "db down");
	return WARREN_RETRY;
}

static warren_outcome on_reject(void *state, const warren_message *msg,
                                warren_ctx *ctx)
{
	(void)state;
	(void)msg;
	follow_up(ctx, "dropped");
	wd_sdk_api.reason(ctx, "bad order %d", 7);
	return WARREN_REJECT;
}

static warren_outcome on_silent(void *state, const warren_message *msg,
                                warren_ctx *ctx)
{
	(void)state;
	(void)msg;
	(void)ctx;
	return WARREN_REJECT;
}

static warren_outcome on_invalid(void *state, const warren_message *msg,
                                 warren_ctx *ctx)
{
	(void)state;
	(void)msg;
	follow_up(ctx, "dropped");
	return (warren_outcome)42;
}

/* Four messages: ack (with a follow-up), reject (with a reason), left
 * alone (so retried: its follow-up goes), an invalid outcome. */
static void on_batch(void *state, size_t n, const warren_message *const *msgs,
                     warren_ctx *const *ctxs, warren_outcome *outcomes)
{
	cr_expect_eq(state, &plugin_state);
	cr_assert_eq(n, 4);
	for (size_t i = 0; i < n; i++) {
		cr_expect_eq(outcomes[i], WARREN_RETRY,
		             "outcomes start as retry");
		cr_expect_eq(msgs[i]->type.len, 7); /* "t:batch" */
		for (size_t j = 0; j < i; j++)
			cr_expect_neq(ctxs[i], ctxs[j], "one ctx per message");
	}
	follow_up(ctxs[0], "from-0");
	outcomes[0] = WARREN_ACK;
	wd_sdk_api.reason(ctxs[1], "nope");
	outcomes[1] = WARREN_REJECT;
	follow_up(ctxs[2], "from-2");
	outcomes[3] = (warren_outcome)42;
}

/* ---- the generation ---------------------------------------------------- */

static void add_route(const char *type, size_t queue, const char *handler,
                      warren_handler_fn h, warren_batch_fn hb)
{
	struct wd_route *r = &route_tbl[routes.nroutes];

	cr_assert_lt(routes.nroutes, sizeof(route_tbl) / sizeof(route_tbl[0]));
	*r = (struct wd_route){.type = type,
	                       .type_len = strlen(type),
	                       .queue = queue,
	                       .plugin = &plugin,
	                       .handler_name = handler,
	                       .handle = h,
	                       .handle_batch = hb,
	                       .policy = &policy,
	                       .index = routes.nroutes,
	                       .series =
	                           wd_series_route(queues[queue].name, type,
	                                           plugin_conf.name, handler)};
	cr_assert_not_null(r->series);
	atomic_init(&r->on_workers, false);
	routes.nroutes++;
}

static void setup(void)
{
	for (size_t i = 0; i < 2; i++)
		queues[i] = (struct wd_conf_queue){
		    .name = i == 0 ? "q" : "other",
		    .type_from = WD_TYPE_FROM_JSON,
		    .type_field = "type",
		    .max_body_size = 64,
		    .limits = WD_INPUT_LIMITS_DEFAULT,
		    .on_unknown_type = WD_BAD_DEAD_LETTER,
		    .on_unparseable = WD_BAD_DEAD_LETTER,
		    .on_too_large = WD_BAD_DEAD_LETTER};
	conf = (struct wd_conf){.queues = queues,
	                        .nqueues = 2,
	                        .plugins = &plugin_conf,
	                        .nplugins = 1};
	plugin = (struct wd_plugin){
	    .conf = &plugin_conf, .fd = -1, .state = &plugin_state};
	for (size_t i = 0; i < 2; i++)
		cr_assert_not_null(queue_series[i] =
		                       wd_series_queue(queues[i].name));
	routes = (struct wd_routes){.conf = &conf,
	                            .plugins = &plugin,
	                            .nplugins = 1,
	                            .routes = route_tbl,
	                            .queue_series = queue_series};
	add_route("t:ack", 0, "on_ack", on_ack, NULL);
	add_route("t:retry", 0, "on_retry", on_retry, NULL);
	add_route("t:reject", 0, "on_reject", on_reject, NULL);
	add_route("t:silent", 0, "on_silent", on_silent, NULL);
	add_route("t:invalid", 0, "on_invalid", on_invalid, NULL);
	add_route("t:batch", 0, "on_batch", NULL, on_batch);
	add_route("t:elsewhere", 1, "on_ack", on_ack, NULL);
}

TestSuite(dispatch, .init = setup);

/* ---- deliveries -------------------------------------------------------- */

struct delivery {
	amqp_envelope_t amqp;
	char body[128];
	struct wd_envelope env;
	struct wd_verdict v;
};

/* A delivery with `body` (copied) and tag `tag`, parsed from queue `q`. */
static int parse(struct delivery *d, size_t q, const char *body, uint64_t tag)
{
	memset(&d->amqp, 0, sizeof(d->amqp));
	snprintf(d->body, sizeof(d->body), "%s", body);
	d->amqp.message.body = amqp_cstring_bytes(d->body);
	d->amqp.routing_key = amqp_cstring_bytes("rk");
	d->amqp.exchange = amqp_cstring_bytes("ex");
	d->amqp.delivery_tag = tag;
	return wd_dispatch_parse(&routes, q, &d->amqp, &d->env, &d->v);
}

/* {"type":"<type>"} parsed on queue 0: must reach its route. */
static void parse_ok(struct delivery *d, const char *type, uint64_t tag)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"type\":\"%s\"}", type);
	cr_assert_eq(parse(d, 0, body, tag), 0, "refused: %s", d->v.text);
	cr_assert_not_null(d->v.route);
}

static void done(struct delivery *d)
{
	wd_verdict_clear(&d->v);
	wd_envelope_clear(&d->env);
}

static void expect_refused(struct delivery *d, enum wd_action action,
                           const char *reason, const char *text)
{
	cr_expect_eq(d->v.action, action, "action %d, expected %d",
	             (int)d->v.action, (int)action);
	cr_expect_str_eq(d->v.reason ? d->v.reason : "(null)", reason);
	cr_expect_str_eq(d->v.text, text);
	cr_expect_eq(d->v.outbox.n, 0);
}

/* stderr (the log) into a temporary file, and back. */
static FILE *log_file;
static int saved_stderr = -1;

static void capture_log(void)
{
	log_file = tmpfile();
	cr_assert_not_null(log_file);
	saved_stderr = dup(STDERR_FILENO);
	cr_assert_geq(saved_stderr, 0);
	cr_assert_geq(dup2(fileno(log_file), STDERR_FILENO), 0);
}

static void expect_logged(const char *line)
{
	char buf[4096];
	size_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	rewind(log_file);
	n = fread(buf, 1, sizeof(buf) - 1, log_file);
	buf[n] = '\0';
	fclose(log_file);
	cr_expect_not_null(strstr(buf, line), "log:\n%s\nwithout: %s", buf,
	                   line);
}

/* ---- the parse step ---------------------------------------------------- */

Test(dispatch, too_large_is_dead_lettered_with_its_attempts)
{
	amqp_table_entry_t h = {
	    .key = amqp_cstring_bytes("x-warren-attempts"),
	    .value = {.kind = AMQP_FIELD_KIND_I64, .value.i64 = 2}};
	struct delivery d;
	char body[128];
	uint_fast64_t received = wd_metric_get(received);

	/* 64 bytes pass (type "t:ack" padded), 65 do not. */
	snprintf(body, sizeof(body), "{\"type\":\"t:ack\",\"pad\":\"%039d\"}",
	         0);
	cr_assert_eq(strlen(body), 64);
	cr_expect_eq(parse(&d, 0, body, 1), 0, "at the limit: %s", d.v.text);
	done(&d);
	snprintf(body, sizeof(body), "{\"type\":\"t:ack\",\"pad\":\"%040d\"}",
	         0);
	memset(&d.amqp, 0, sizeof(d.amqp));
	d.amqp.message.body = amqp_cstring_bytes(body);
	d.amqp.message.properties._flags = AMQP_BASIC_HEADERS_FLAG;
	d.amqp.message.properties.headers =
	    (amqp_table_t){.num_entries = 1, .entries = &h};
	cr_expect_eq(wd_dispatch_parse(&routes, 0, &d.amqp, &d.env, &d.v), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_TOO_LARGE,
	               "body of 65 bytes is over max_body_size (64)");
	cr_expect_null(d.v.route);
	cr_expect_eq(d.env.attempts.attempt, 3, "2 earlier attempts, this 3rd");
	cr_expect_eq(wd_metric_get(too_large), 1);
	cr_expect_eq(wd_metric_get(received), received + 2);
	done(&d);
}

Test(dispatch, headers_or_json_past_a_limit_are_too_large)
{
	amqp_table_entry_t h[3];
	struct delivery d;

	for (int i = 0; i < 3; i++)
		h[i] = (amqp_table_entry_t){
		    .key = amqp_cstring_bytes("x-k"),
		    .value = {.kind = AMQP_FIELD_KIND_I32, .value.i32 = i}};
	queues[0].limits.headers = 2;
	memset(&d.amqp, 0, sizeof(d.amqp));
	d.amqp.message.body = amqp_cstring_bytes("{\"type\":\"t:ack\"}");
	d.amqp.message.properties._flags = AMQP_BASIC_HEADERS_FLAG;
	d.amqp.message.properties.headers =
	    (amqp_table_t){.num_entries = 3, .entries = h};
	cr_expect_eq(wd_dispatch_parse(&routes, 0, &d.amqp, &d.env, &d.v), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_TOO_LARGE,
	               "headers have more than 2 entries (max_headers)");
	/* Its copy carries warren's headers, not these again. */
	cr_expect(d.v.drop_headers);
	cr_expect_eq(wd_metric_get(too_large), 1);
	done(&d);

	/* Within the bound, the same delivery reaches its route. */
	queues[0].limits.headers = 3;
	cr_expect_eq(wd_dispatch_parse(&routes, 0, &d.amqp, &d.env, &d.v), 0,
	             "%s", d.v.text);
	cr_expect_not(d.v.drop_headers);
	done(&d);

	/* A body too deep is too-large too, its headers kept. */
	queues[0].limits.json_depth = 1;
	d.amqp.message.body =
	    amqp_cstring_bytes("{\"type\":\"t:ack\",\"a\":[1]}");
	cr_expect_eq(wd_dispatch_parse(&routes, 0, &d.amqp, &d.env, &d.v), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_TOO_LARGE,
	               "body nested deeper than max_json_depth (1)");
	cr_expect_not(d.v.drop_headers);
	cr_expect_eq(wd_metric_get(too_large), 2);
	cr_expect_eq(wd_metric_get(unparseable), 0);
	done(&d);

	/* Over max_body_size and max_headers both: the headers are bounded
	 * first (nothing walks them), and the copy goes without them. */
	char big[128];
	snprintf(big, sizeof(big), "{\"type\":\"t:ack\",\"pad\":\"%040d\"}", 0);
	queues[0].limits.headers = 2;
	d.amqp.message.body = amqp_cstring_bytes(big);
	cr_expect_eq(wd_dispatch_parse(&routes, 0, &d.amqp, &d.env, &d.v), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_TOO_LARGE,
	               "headers have more than 2 entries (max_headers)");
	cr_expect(d.v.drop_headers);
	done(&d);
}

Test(dispatch, too_large_dropped_by_policy)
{
	struct delivery d;
	char body[128];

	queues[0].on_too_large = WD_BAD_DROP;
	snprintf(body, sizeof(body), "{\"type\":\"t:ack\",\"pad\":\"%040d\"}",
	         0);
	capture_log();
	cr_expect_eq(parse(&d, 0, body, 5), -1);
	expect_logged("[dispatch] queue \"q\" tag 5 rk \"rk\": body of 65 "
	              "bytes is over max_body_size (64): dropped as "
	              "too-large\n");
	expect_refused(&d, WD_ACTION_DROP, WD_R_TOO_LARGE,
	               "body of 65 bytes is over max_body_size (64)");
	done(&d);
}

Test(dispatch, unparseable)
{
	struct delivery d;

	cr_expect_eq(parse(&d, 0, "{\"type\":", 1), -1);
	cr_expect_eq(d.v.action, WD_ACTION_DEAD_LETTER);
	cr_expect_str_eq(d.v.reason, WD_R_UNPARSEABLE);
	cr_expect_eq(strncmp(d.v.text, "unparseable: ", 13), 0, "text: %s",
	             d.v.text);
	cr_expect_eq(wd_metric_get(unparseable), 1);
	done(&d);
	queues[0].on_unparseable = WD_BAD_DROP;
	cr_expect_eq(parse(&d, 0, "[1]", 2), -1);
	expect_refused(&d, WD_ACTION_DROP, WD_R_UNPARSEABLE,
	               "unparseable: body is not a JSON object");
	done(&d);
}

Test(dispatch, bad_type)
{
	struct delivery d;

	cr_expect_eq(parse(&d, 0, "{\"type\":5}", 1), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_BAD_TYPE,
	               "bad type: field \"type\" is not a string");
	done(&d);
	cr_expect_eq(parse(&d, 0, "{\"kind\":\"t:ack\"}", 2), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_BAD_TYPE,
	               "no type: field \"type\" is missing");
	done(&d);
	/* Counted with the unparseable ones, refused by their policy. */
	cr_expect_eq(wd_metric_get(unparseable), 2);
	queues[0].on_unparseable = WD_BAD_DROP;
	cr_expect_eq(parse(&d, 0, "{\"type\":\"\"}", 3), -1);
	cr_expect_eq(d.v.action, WD_ACTION_DROP);
	cr_expect_str_eq(d.v.reason, WD_R_BAD_TYPE);
	done(&d);
}

Test(dispatch, unknown_type)
{
	struct delivery d;

	cr_expect_eq(parse(&d, 0, "{\"type\":\"nope\"}", 1), -1);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_UNKNOWN_TYPE,
	               "no route for type \"nope\" on this queue");
	cr_expect_null(d.v.route);
	done(&d);
	/* Routed on queue 1 only. */
	queues[0].on_unknown_type = WD_BAD_DROP;
	cr_expect_eq(parse(&d, 0, "{\"type\":\"t:elsewhere\"}", 2), -1);
	expect_refused(&d, WD_ACTION_DROP, WD_R_UNKNOWN_TYPE,
	               "no route for type \"t:elsewhere\" on this queue");
	done(&d);
	cr_expect_eq(wd_metric_get(unknown_type), 2);
	cr_expect_eq(parse(&d, 1, "{\"type\":\"t:elsewhere\"}", 3), 0);
	cr_expect_eq(d.v.route, &route_tbl[6]);
	done(&d);
}

Test(dispatch, good_one_finds_its_route)
{
	struct delivery d;

	cr_assert_eq(parse(&d, 0, "{\"type\":\"t:reject\",\"n\":1}", 1), 0);
	cr_expect_eq(d.v.route, &route_tbl[2]);
	cr_expect_eq(d.v.action, WD_ACTION_ACK, "nothing judged yet");
	cr_expect_null(d.v.reason);
	cr_expect_str_eq(d.v.text, "");
	cr_expect_eq(d.env.msg.type.len, 8);
	cr_expect_eq(d.env.attempts.attempt, 1);
	cr_expect_eq(wd_metric_get(received), 1);
	done(&d);
}

/* ---- the run step ------------------------------------------------------ */

Test(dispatch, ack_keeps_its_follow_up)
{
	struct delivery d;
	struct wd_followup *f;

	parse_ok(&d, "t:ack", 1);
	wd_dispatch_run(&d.env, &d.v);
	cr_expect_eq(d.v.action, WD_ACTION_ACK);
	cr_expect_null(d.v.reason);
	cr_assert_eq(d.v.outbox.n, 1);
	f = d.v.outbox.head;
	cr_expect(f->exchange.len == 3 &&
	          memcmp(f->exchange.bytes, "out", 3) == 0);
	cr_expect(f->routing_key.len == 4 &&
	          memcmp(f->routing_key.bytes, "next", 4) == 0);
	cr_expect_eq(wd_metric_get(retried) + wd_metric_get(rejected) +
	                 wd_metric_get(invalid_outcome),
	             0);
	done(&d);
}

Test(dispatch, retry_drops_follow_ups)
{
	struct delivery d;

	parse_ok(&d, "t:retry", 7);
	capture_log();
	wd_dispatch_run(&d.env, &d.v);
	expect_logged("[dispatch] testplug/on_retry: type \"t:retry\" tag 7 "
	              "attempt 1: retry: db down\n");
	expect_refused(&d, WD_ACTION_RETRY, WD_R_HANDLER_RETRY, "db down");
	cr_expect_null(d.v.outbox.head);
	cr_expect_eq(wd_metric_get(retried), 1);
	done(&d);
}

Test(dispatch, reject_with_a_reason)
{
	struct delivery d;

	parse_ok(&d, "t:reject", 8);
	capture_log();
	wd_dispatch_run(&d.env, &d.v);
	expect_logged("[dispatch] testplug/on_reject: type \"t:reject\" tag 8: "
	              "rejected: bad order 7\n");
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_HANDLER_REJECT,
	               "bad order 7");
	cr_expect_eq(wd_metric_get(rejected), 1);
	done(&d);
}

Test(dispatch, reject_without_a_reason)
{
	struct delivery d;

	parse_ok(&d, "t:silent", 1);
	wd_dispatch_run(&d.env, &d.v);
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_HANDLER_REJECT,
	               "no reason given");
	done(&d);
}

Test(dispatch, invalid_outcome)
{
	struct delivery d;

	parse_ok(&d, "t:invalid", 9);
	capture_log();
	wd_dispatch_run(&d.env, &d.v);
	expect_logged("[dispatch] testplug/on_invalid: type \"t:invalid\" tag "
	              "9: invalid outcome 42\n");
	expect_refused(&d, WD_ACTION_DEAD_LETTER, WD_R_INVALID_OUTCOME,
	               "the handler returned 42");
	cr_expect_eq(wd_metric_get(invalid_outcome), 1);
	done(&d);
}

Test(dispatch, batch_of_mixed_outcomes)
{
	struct delivery d[4];
	struct wd_envelope *envs[4];
	struct wd_verdict *vs[4];

	for (size_t i = 0; i < 4; i++) {
		parse_ok(&d[i], "t:batch", i + 1);
		envs[i] = &d[i].env;
		vs[i] = &d[i].v;
	}
	wd_dispatch_run_batch(&route_tbl[5], envs, vs, 4);
	cr_expect_eq(wd_metric_get(batches), 1);
	cr_expect_eq(d[0].v.action, WD_ACTION_ACK);
	cr_assert_eq(d[0].v.outbox.n, 1);
	cr_expect(
	    d[0].v.outbox.head->routing_key.len == 6 &&
	        memcmp(d[0].v.outbox.head->routing_key.bytes, "from-0", 6) == 0,
	    "the follow-up of message 0 stays with message 0");
	expect_refused(&d[1], WD_ACTION_DEAD_LETTER, WD_R_HANDLER_REJECT,
	               "nope");
	expect_refused(&d[2], WD_ACTION_RETRY, WD_R_HANDLER_RETRY, "");
	expect_refused(&d[3], WD_ACTION_DEAD_LETTER, WD_R_INVALID_OUTCOME,
	               "the handler returned 42");
	cr_expect_eq(wd_metric_get(retried), 1);
	cr_expect_eq(wd_metric_get(rejected), 1);
	cr_expect_eq(wd_metric_get(invalid_outcome), 1);
	for (size_t i = 0; i < 4; i++)
		done(&d[i]);
}

Test(dispatch, verdict_retry)
{
	struct wd_verdict v;
	char text[WD_REASON_MAX + 10];

	wd_verdict_init(&v);
	v.route = &route_tbl[0];
	wd_verdict_retry(&v, "out of memory for the batch");
	cr_expect_eq(v.action, WD_ACTION_RETRY);
	cr_expect_str_eq(v.reason, WD_R_HANDLER_RETRY);
	cr_expect_str_eq(v.text, "out of memory for the batch");
	cr_expect_eq(v.route, &route_tbl[0], "the route is kept");
	/* Cut to the buffer, still a string. */
	memset(text, 'a', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	wd_verdict_retry(&v, text);
	cr_expect_eq(strlen(v.text), WD_REASON_MAX - 1);
	wd_verdict_clear(&v);
}
