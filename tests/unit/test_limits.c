/*
 * test_limits.c - message/limits.c: the JSON scan counts values and
 * nesting exactly as documented (strings, escapes, whitespace, empty
 * containers), stops at the first bound passed and names it; the headers
 * walk counts nested entries and levels; and wd_envelope_parse refuses a
 * body past a bound as too large, its CPU budget included.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message/envelope.h"
#include "message/limits.h"

static char why[256];

static struct wd_input_limits lim(int depth, long values)
{
	struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;

	l.json_depth = depth;
	l.json_values = values;
	return l;
}

/* The value count and depth of `text` found by the scan: the smallest
 * bounds it passes (each searched up to 100). */
static void measure(const char *text, long *values, int *depth)
{
	struct wd_input_limits l;

	for (*values = 1; *values <= 100; ++*values) {
		l = lim(100, *values);
		if (wd_limits_json(&l, text, strlen(text), why, sizeof(why)) ==
		    0)
			break;
	}
	for (*depth = 0; *depth <= 100; ++*depth) {
		l = lim(*depth ? *depth : 1, 1000);
		if (*depth && wd_limits_json(&l, text, strlen(text), why,
		                             sizeof(why)) == 0)
			break;
	}
}

Test(limits, json_values_and_depth_are_counted_as_documented)
{
	static const struct {
		const char *text;
		long values;
		int depth;
	} cases[] = {
	    {"{}", 1, 1},
	    {"{\"a\":[1,2]}", 4, 2},
	    {" { \"a\" : [ ] , \"b\" : { } } ", 3, 2},
	    {"[[[[]]]]", 4, 4},
	    {"{\"s\":\"a,b:[c]{d}\\\"e,\\\\\",\"t\":1}", 3, 1},
	    {"{\"k\":\"\\u005b\"}", 2, 1},
	    {"[1,[2,[3,[4]]]]", 8, 4},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long values;
		int depth;

		measure(cases[i].text, &values, &depth);
		cr_expect_eq(values, cases[i].values, "%s: %ld values",
		             cases[i].text, values);
		cr_expect_eq(depth, cases[i].depth, "%s: depth %d",
		             cases[i].text, depth);
	}
}

Test(limits, json_bounds_are_named)
{
	struct wd_input_limits l = lim(2, 3);

	cr_assert_eq(wd_limits_json(&l, "[[[1]]]", 7, why, sizeof(why)), -1);
	cr_expect_str_eq(why, "body nested deeper than max_json_depth (2)");
	cr_assert_eq(wd_limits_json(&l, "[1,2,3]", 7, why, sizeof(why)), -1);
	cr_expect_str_eq(why,
	                 "body has more than 3 JSON values (max_json_values)");
	/* Invalid JSON is the parse's to name; an open string ends the
	 * scan without reading past len. */
	cr_expect_eq(wd_limits_json(&l, "{\"a\":\"\\", 7, why, sizeof(why)), 0);
	cr_expect_eq(wd_limits_json(&l, "]]]]", 4, why, sizeof(why)), 0);
}

/* A headers table: n entries under key "k" nested `depth` tables deep. */
static amqp_table_t *nest(int depth, int n)
{
	amqp_table_t *t = calloc((size_t)depth, sizeof(*t));
	amqp_table_entry_t *e = calloc((size_t)depth + (size_t)n, sizeof(*e));

	cr_assert(t && e);
	for (int i = 0; i < depth; i++) {
		t[i].entries = &e[i];
		t[i].num_entries = 1;
		e[i].key = amqp_cstring_bytes("k");
		if (i + 1 < depth) {
			e[i].value.kind = AMQP_FIELD_KIND_TABLE;
			e[i].value.value.table = t[i + 1];
		}
	}
	/* The innermost holds n string entries (built last: the tables
	 * above hold copies of their children). */
	t[depth - 1].entries = &e[depth];
	t[depth - 1].num_entries = n;
	for (int i = 0; i < n; i++) {
		e[depth + i].key = amqp_cstring_bytes("s");
		e[depth + i].value.kind = AMQP_FIELD_KIND_UTF8;
		e[depth + i].value.value.bytes = amqp_cstring_bytes("v");
	}
	for (int i = depth - 2; i >= 0; i--)
		e[i].value.value.table = t[i + 1];
	return t;
}

Test(limits, headers_entries_and_depth)
{
	struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;
	amqp_table_t *t = nest(3, 5); /* levels 1, 2, 3; 2 + 5 entries */

	l.header_depth = 3;
	l.headers = 7;
	cr_expect_eq(wd_limits_headers(&l, &t[0], why, sizeof(why)), 0, "%s",
	             why);
	l.headers = 6;
	cr_assert_eq(wd_limits_headers(&l, &t[0], why, sizeof(why)), -1);
	cr_expect_str_eq(why, "headers have more than 6 entries (max_headers)");
	l.headers = 7;
	l.header_depth = 2;
	cr_assert_eq(wd_limits_headers(&l, &t[0], why, sizeof(why)), -1);
	cr_expect_str_eq(why,
	                 "headers nested deeper than max_header_depth (2)");
	cr_expect_eq(wd_limits_headers(&l, NULL, why, sizeof(why)), 0);
	free(t[0].entries); /* the entries' block: t[0]'s come first */
	free(t);
}

Test(limits, headers_arrays_count_their_elements_and_a_level)
{
	struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;
	amqp_field_value_t elems[3] = {0};
	amqp_table_entry_t entry = {.key = amqp_cstring_bytes("x-death")};
	amqp_table_t t = {.num_entries = 1, .entries = &entry};

	for (int i = 0; i < 3; i++)
		elems[i].kind = AMQP_FIELD_KIND_I32;
	entry.value.kind = AMQP_FIELD_KIND_ARRAY;
	entry.value.value.array.num_entries = 3;
	entry.value.value.array.entries = elems;
	l.headers = 4;
	l.header_depth = 2;
	cr_expect_eq(wd_limits_headers(&l, &t, why, sizeof(why)), 0, "%s", why);
	l.headers = 3;
	cr_expect_eq(wd_limits_headers(&l, &t, why, sizeof(why)), -1);
	l.headers = 4;
	l.header_depth = 1;
	cr_expect_eq(wd_limits_headers(&l, &t, why, sizeof(why)), -1);
}

/* ---- through wd_envelope_parse ------------------------------------------ */

static int parse(struct wd_envelope *e, amqp_envelope_t *a, const char *body,
                 size_t len, const struct wd_input_limits *l)
{
	memset(a, 0, sizeof(*a));
	a->message.body = (amqp_bytes_t){len, (void *)body};
	a->routing_key = amqp_cstring_bytes("rk");
	a->exchange = amqp_cstring_bytes("ex");
	return wd_envelope_parse(e, a, "q", WD_TYPE_FROM_JSON, "type", l);
}

/* `n` copies of `unit` between `open` and `close`. */
static char *repeat(const char *open, const char *unit, size_t n,
                    const char *close, size_t *len)
{
	size_t u = strlen(unit), o = strlen(open), c = strlen(close);
	char *b = malloc(o + u * n + c + 1);

	cr_assert(b);
	memcpy(b, open, o);
	for (size_t i = 0; i < n; i++)
		memcpy(b + o + i * u, unit, u);
	memcpy(b + o + u * n, close, c + 1);
	*len = o + u * n + c;
	return b;
}

Test(limits, a_body_2048_deep_is_too_large_not_unparseable)
{
	const struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;
	struct wd_envelope e;
	amqp_envelope_t a;
	size_t n1, n2;
	char *open = repeat("{\"type\":\"t\",\"a\":", "[", 2048, "", &n1);
	char *close = repeat("", "]", 2048, "}", &n2);
	char *body = malloc(n1 + n2 + 1);

	cr_assert(body);
	memcpy(body, open, n1);
	memcpy(body + n1, close, n2 + 1);
	cr_assert_eq(parse(&e, &a, body, n1 + n2, &l), -1);
	cr_expect(e.too_large);
	cr_expect_str_eq(e.reason,
	                 "body nested deeper than max_json_depth (64)");
	cr_expect_null(e.json);
	wd_envelope_clear(&e);
	free(open);
	free(close);
	free(body);
}

Test(limits, a_body_of_500000_keys_is_too_large)
{
	const struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;
	struct wd_envelope e;
	amqp_envelope_t a;
	size_t len = 0, cap = 500000 * 12 + 64;
	char *body = malloc(cap);

	cr_assert(body);
	len += (size_t)sprintf(body, "{\"type\":\"t\"");
	for (int i = 0; i < 500000; i++)
		len += (size_t)sprintf(body + len, ",\"%x\":0", i);
	body[len++] = '}';
	cr_assert_eq(parse(&e, &a, body, len, &l), -1);
	cr_expect(e.too_large);
	cr_expect_str_eq(e.reason, "body has more than 100000 JSON values "
	                           "(max_json_values)");
	wd_envelope_clear(&e);
	free(body);
}

Test(limits, a_parse_past_its_cpu_budget_is_stopped)
{
	struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;
	struct wd_envelope e;
	amqp_envelope_t a;
	size_t len;
	/* 4 MiB of one string: well past 1 ms of CPU in any build. */
	char *body = repeat("{\"type\":\"t\",\"s\":\"", "abcdefgh",
	                    (size_t)1 << 19, "\"}", &len);

	l.parse_ms = 1;
	cr_assert_eq(parse(&e, &a, body, len, &l), -1);
	cr_expect(e.too_large);
	static const char want[] = "parsing the body took over max_parse_ms "
	                           "(1 ms of CPU), stopped at byte ";
	cr_expect(strncmp(e.reason, want, sizeof(want) - 1) == 0, "%s",
	          e.reason);
	cr_expect_null(e.json);
	wd_envelope_clear(&e);

	/* No budget: the same body parses. */
	l.parse_ms = 0;
	cr_expect_eq(parse(&e, &a, body, len, &l), 0, "%s", e.reason);
	cr_expect_not(e.too_large);
	wd_envelope_clear(&e);
	free(body);
}
