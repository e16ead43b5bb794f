/* What one message may cost (message/limits.h), against the real broker:
 * a 1 MiB body nested 2048 deep, a body of 500,000 small keys, headers of
 * 2,000 entries and headers nested 20 deep are each dead-lettered as
 * too-large with the limit named, the header ones without their headers
 * (so that the copy fits the broker's frame); and a plain message sent
 * after them all is handled (bounded wait), and only it reaches the
 * handler. The cost per MiB is measured by build/tests/bench/wr-limits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 30000

/* {"type":"t:flow","id":"deep","a":[[[...]],[[...]],...]} of about `size`
 * bytes, each element nested `depth` deep. */
static char *nested_body(size_t size, int depth)
{
	char *b = malloc(size + 2 * (size_t)depth + 64);
	size_t n;

	cr_assert_not_null(b);
	n = (size_t)sprintf(b, "{\"type\":\"t:flow\",\"id\":\"deep\",\"a\":[");
	while (n < size) {
		memset(b + n, '[', (size_t)depth);
		memset(b + n + (size_t)depth, ']', (size_t)depth);
		n += 2 * (size_t)depth;
		b[n++] = ',';
	}
	memcpy(b + n, "0]}", 4);
	return b;
}

static char *keys_body(int keys)
{
	char *b = malloc((size_t)keys * 12 + 64);
	size_t n;

	cr_assert_not_null(b);
	n = (size_t)sprintf(b, "{\"type\":\"t:flow\",\"id\":\"keys\"");
	for (int i = 0; i < keys; i++)
		n += (size_t)sprintf(b + n, ",\"%x\":0", i);
	memcpy(b + n, "}", 2);
	return b;
}

/* Publish body with a headers table of n string entries, or of one entry
 * nested `depth` tables deep (n = 0). */
static void publish_with_headers(amqp_connection_state_t c, const char *x,
                                 const char *body, int n, int depth)
{
	amqp_basic_properties_t p = {0};
	int k = n ? n : depth;
	amqp_table_entry_t *e = calloc((size_t)k, sizeof(*e));
	char(*keys)[16] = calloc((size_t)k, sizeof(*keys));

	cr_assert(e && keys);
	for (int i = 0; i < k; i++) {
		snprintf(keys[i], sizeof(keys[i]), "h%d", i);
		e[i].key = amqp_cstring_bytes(keys[i]);
		e[i].value.kind = AMQP_FIELD_KIND_UTF8;
		e[i].value.value.bytes = amqp_cstring_bytes("v");
	}
	if (!n) /* e[i] holds a table of e[i + 1] */
		for (int i = depth - 2; i >= 0; i--) {
			e[i].value.kind = AMQP_FIELD_KIND_TABLE;
			e[i].value.value.table = (amqp_table_t){
			    .num_entries = 1, .entries = &e[i + 1]};
		}
	p._flags = AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.headers = (amqp_table_t){.num_entries = n ? n : 1, .entries = e};
	it_publish_props(c, x, "k", body, &p);
	free(e);
	free(keys);
}

struct seen {
	int count;
	char reasons[4][256];
	bool own_headers[4]; /* an h0 header came along */
};

static void read_dlq(const char *dlq, struct seen *s)
{
	struct it_msg m;

	memset(s, 0, sizeof(*s));
	while (s->count < 4 && it_get_msg(dlq, &m)) {
		char reason[64];

		cr_expect_str_eq(
		    it_msg_str(&m, "x-warren-reason", reason, sizeof(reason))
		        ? reason
		        : "(none)",
		    "too-large");
		if (!it_msg_str(&m, "x-warren-reason-text",
		                s->reasons[s->count], sizeof(s->reasons[0])))
			snprintf(s->reasons[s->count], sizeof(s->reasons[0]),
			         "(none)");
		s->own_headers[s->count] = it_msg_header(&m, "h0") != NULL;
		s->count++;
		it_msg_free(&m);
	}
}

static int find(const struct seen *s, const char *reason)
{
	for (int i = 0; i < s->count; i++)
		if (strcmp(s->reasons[i], reason) == 0)
			return i;
	return -1;
}

Test(limits, hostile_messages_are_too_large_and_cost_no_stall)
{
	struct it_names n;
	struct it_daemon d;
	struct seen s;
	char plugin[512];
	/* 2,046 in the array in the object: 2,048 levels, as deep as
	 * jansson goes. */
	char *deep = nested_body((size_t)1 << 20, 2046);
	char *keys = keys_body(500000);

	snprintf(plugin, sizeof(plugin), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_names_init(&n, "limits");
	/* 500,000 keys are 5 MB: past max_body_size's 1 MiB default, which
	 * would refuse them before any scan. */
	char *conf = it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL,
	                     "  max_body_size = 8388608", NULL);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	/* With a header of its own, which its copy keeps: only a header
	 * bound drops them. */
	publish_with_headers(c, n.x, deep, 1, 0);
	it_publish_str(c, n.x, "k", keys);
	publish_with_headers(c, n.x, "{\"type\":\"t:flow\",\"id\":\"many\"}",
	                     2000, 0);
	publish_with_headers(c, n.x, "{\"type\":\"t:flow\",\"id\":\"nest\"}", 0,
	                     20);
	int64_t sent = it_now_ms();
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":\"plain\"}");
	it_close(c);

	cr_assert_eq(it_log_wait(&d, "flow id=plain", 1, WAIT_MS), 1, "%s",
	             it_log_read(&d));
	int64_t handled_ms = it_now_ms() - sent;
	cr_assert_eq(it_wait_queue(n.dlq, 4, WAIT_MS), 4, "%s",
	             it_log_read(&d));
	char *log = it_stop_and_log(&d);
	cr_expect_eq(it_count(log, "flow id="), 1,
	             "only the plain one ran:\n%s", log);
	cr_expect_eq(it_count(log, "as too-large"), 4, "%s", log);
	IT_EXPECT_METRIC(log, "too_large", 4);
	free(log);

	read_dlq(n.dlq, &s);
	cr_assert_eq(s.count, 4);
	int i;
	cr_expect_geq(i = find(&s, "body nested deeper than max_json_depth "
	                           "(64)"),
	              0);
	if (i >= 0)
		cr_expect(s.own_headers[i], "the deep body's copy lost h0");
	cr_expect_geq(find(&s, "body has more than 100000 JSON values "
	                       "(max_json_values)"),
	              0);
	cr_expect_geq(i = find(&s, "headers have more than 1000 entries "
	                           "(max_headers)"),
	              0);
	if (i >= 0)
		cr_expect(!s.own_headers[i], "the copy kept the 2,000 headers");
	cr_expect_geq(i = find(&s, "headers nested deeper than "
	                           "max_header_depth (8)"),
	              0);
	if (i >= 0)
		cr_expect(!s.own_headers[i],
		          "the copy kept the nested headers");
	/* Behind 6 MB of hostile input on the same connection: the figure
	 * for the log; the cost is measured by build/tests/bench/wr-limits. */
	cr_log_info("the plain message was handled %jd ms after it was sent",
	            (intmax_t)handled_ms);

	it_names_delete(&n);
	free(conf);
	free(deep);
	free(keys);
}
