/*
 * wr-limits [RUNS]
 *
 * What reading one message costs the connection thread (message/limits.h,
 * message/envelope.c), per body: the limits' scan and the parse, timed on
 * this thread's CPU clock, median of RUNS (default 7) in one run, with the
 * shipped limits and with none (no depth or value bound, max_parse_ms 0:
 * what jansson alone would cost). Prints one
 * row per body, ms and ms per MiB, the verdict, and the ratio of the two
 * costs. The hostile bodies are the issue's: 1 MiB nested 2,048 deep, and
 * 500,000 small keys; then 1 MiB at the depth bound (64 levels, refused
 * for its values), bodies the limits let through (99,000 keys, a 1 MiB
 * string, a small order), and headers of 2,000 entries and 20 levels.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "message/envelope.h"
#include "message/limits.h"

#define MIB (1024.0 * 1024.0)

struct body {
	const char *name;
	char *text;
	size_t len;
};

static char *nested(size_t size, int depth, size_t *len)
{
	char *b = malloc(size + 2 * (size_t)depth + 64);
	size_t n = (size_t)sprintf(b, "{\"type\":\"t\",\"a\":[");

	while (n < size) {
		memset(b + n, '[', (size_t)depth);
		memset(b + n + (size_t)depth, ']', (size_t)depth);
		n += 2 * (size_t)depth;
		b[n++] = ',';
	}
	memcpy(b + n, "0]}", 4);
	*len = n + 3;
	return b;
}

static char *keys(int k, size_t *len)
{
	char *b = malloc((size_t)k * 12 + 64);
	size_t n = (size_t)sprintf(b, "{\"type\":\"t\"");

	for (int i = 0; i < k; i++)
		n += (size_t)sprintf(b + n, ",\"%x\":0", i);
	memcpy(b + n, "}", 2);
	*len = n + 1;
	return b;
}

static char *one_string(size_t size, size_t *len)
{
	char *b = malloc(size + 64);
	size_t n = (size_t)sprintf(b, "{\"type\":\"t\",\"s\":\"");

	memset(b + n, 'x', size);
	n += size;
	memcpy(b + n, "\"}", 3);
	*len = n + 2;
	return b;
}

static int cmp(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Median CPU ns of parsing `b` under `l`; its verdict in `verdict`. */
static int64_t cost(const struct body *b, const struct wd_input_limits *l,
                    int runs, char *verdict, size_t vlen)
{
	int64_t t[64];
	amqp_envelope_t a;

	memset(&a, 0, sizeof(a));
	a.message.body = (amqp_bytes_t){b->len, b->text};
	a.routing_key = amqp_cstring_bytes("rk");
	a.exchange = amqp_cstring_bytes("ex");
	for (int r = 0; r < runs; r++) {
		struct wd_envelope e;
		int64_t t0 = wd_thread_cpu_ns();
		int rc = wd_envelope_parse(&e, &a, "q", WD_TYPE_FROM_JSON,
		                           "type", l);
		t[r] = wd_thread_cpu_ns() - t0;
		snprintf(verdict, vlen, "%s",
		         rc == 0       ? "parsed"
		         : e.too_large ? "too-large"
		                       : e.reason);
		wd_envelope_clear(&e);
	}
	qsort(t, (size_t)runs, sizeof(t[0]), cmp);
	return t[runs / 2];
}

static int64_t header_cost(int n, int depth, int runs, char *verdict,
                           size_t vlen)
{
	const struct wd_input_limits l = WD_INPUT_LIMITS_DEFAULT;
	int k = n ? n : depth;
	amqp_table_entry_t *e = calloc((size_t)k, sizeof(*e));
	amqp_table_t t;
	int64_t ts[64];

	for (int i = 0; i < k; i++) {
		e[i].key = amqp_cstring_bytes("h");
		e[i].value.kind = AMQP_FIELD_KIND_UTF8;
		e[i].value.value.bytes = amqp_cstring_bytes("v");
	}
	if (!n)
		for (int i = depth - 2; i >= 0; i--) {
			e[i].value.kind = AMQP_FIELD_KIND_TABLE;
			e[i].value.value.table = (amqp_table_t){
			    .num_entries = 1, .entries = &e[i + 1]};
		}
	t = (amqp_table_t){.num_entries = n ? n : 1, .entries = e};
	for (int r = 0; r < runs; r++) {
		int64_t t0 = wd_thread_cpu_ns();
		int rc = wd_limits_headers(&l, &t, verdict, vlen);
		ts[r] = wd_thread_cpu_ns() - t0;
		if (rc == 0)
			snprintf(verdict, vlen, "within");
	}
	free(e);
	qsort(ts, (size_t)runs, sizeof(ts[0]), cmp);
	return ts[runs / 2];
}

int main(int argc, char **argv)
{
	int runs = argc > 1 ? atoi(argv[1]) : 7;
	const struct wd_input_limits shipped = WD_INPUT_LIMITS_DEFAULT;
	struct wd_input_limits none = shipped;
	struct body bodies[6];
	char v1[256], v2[256];

	if (runs < 1 || runs > 64) {
		fprintf(stderr, "usage: wr-limits [RUNS 1..64]\n");
		return 2;
	}
	none.json_depth = INT_MAX; /* the scan passes all: jansson decides */
	none.json_values = 100000000;
	none.parse_ms = 0;
	/* 2,046 in an array in the object: 2,048 levels, jansson's most. */
	bodies[0] = (struct body){"1 MiB nested 2048 deep", NULL, 0};
	bodies[0].text = nested(1 << 20, 2046, &bodies[0].len);
	bodies[1] = (struct body){"500,000 small keys", NULL, 0};
	bodies[1].text = keys(500000, &bodies[1].len);
	/* 62 in the array in the object: 64 levels, at the depth bound;
	 * refused for its 500,000 values. */
	bodies[2] = (struct body){"1 MiB nested 64 deep", NULL, 0};
	bodies[2].text = nested(1 << 20, 62, &bodies[2].len);
	bodies[3] = (struct body){"99,000 small keys", NULL, 0};
	bodies[3].text = keys(99000, &bodies[3].len);
	bodies[4] = (struct body){"a 1 MiB string", NULL, 0};
	bodies[4].text = one_string(1 << 20, &bodies[4].len);
	bodies[5] = (struct body){"a 200-byte order", NULL, 0};
	bodies[5].text = strdup(
	    "{\"type\":\"order:created\",\"id\":\"o-1\",\"email\":\"a@example."
	    "com\",\"items\":[{\"sku\":\"a\",\"qty\":1},{\"sku\":\"b\",\"qty\":"
	    "2}],\"total\":12.5,\"currency\":\"EUR\",\"note\":\"ring twice\"}");
	bodies[5].len = strlen(bodies[5].text);

	printf("%-24s %9s  %-10s %9s %8s  %-10s %9s %8s  %7s\n", "body",
	       "bytes", "shipped", "ms", "ms/MiB", "no limits", "ms", "ms/MiB",
	       "ratio");
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		const struct body *b = &bodies[i];
		double mib = (double)b->len / MIB;
		int64_t with = cost(b, &shipped, runs, v1, sizeof(v1));
		int64_t without = cost(b, &none, runs, v2, sizeof(v2));

		printf(
		    "%-24s %9zu  %-10.10s %9.3f %8.2f  %-10.10s %9.3f %8.2f  "
		    "%7.3f\n",
		    b->name, b->len, v1, with / 1e6, with / 1e6 / mib, v2,
		    without / 1e6, without / 1e6 / mib,
		    without ? (double)with / (double)without : 0.0);
		free(b->text);
	}
	int64_t h1 = header_cost(2000, 0, runs, v1, sizeof(v1));
	int64_t h2 = header_cost(0, 20, runs, v2, sizeof(v2));
	printf("headers, 2,000 entries: %.3f ms (%s)\n", h1 / 1e6, v1);
	printf("headers, 20 levels:     %.3f ms (%s)\n", h2 / 1e6, v2);
	return 0;
}
