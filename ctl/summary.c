/* summary.c - warrenctl summary: the final report of a run (summary.h). */
#include "summary.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch.h"

#define TIMEOUT_MS 5000

void wc_summary_usage(FILE *f)
{
	fprintf(f, "       warrenctl [--url URL] summary [--settle S]\n");
}

static json_t *status(const char *url)
{
	char *body = NULL, why[256];
	json_t *doc = NULL;

	if (wc_fetch(url, "/status", TIMEOUT_MS, &body, why, sizeof(why)) ==
	    200)
		doc = json_loads(body, 0, NULL);
	free(body);
	return doc;
}

static double num(const json_t *o, const char *k)
{
	return json_number_value(json_object_get(o, k));
}

static const char *str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "?";
}

/* Messages that are somewhere between delivery and ack. */
static double inflight(const json_t *doc)
{
	double n = 0;
	const char *k;
	size_t i;
	json_t *q, *v;

	json_array_foreach(json_object_get(doc, "queues"), i, q)
	{
		json_object_foreach(json_object_get(q, "inflight"), k, v) n +=
		    json_number_value(v);
	}
	return n;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bounded by settle_s; returns the last document (or NULL). */
static json_t *settled(const char *url, int settle_s)
{
	int64_t end = now_ms() + (int64_t)settle_s * 1000, still = now_ms();
	json_t *doc = status(url);
	double last = doc ? num(json_object_get(doc, "totals"), "received") : 0;

	while (doc && settle_s > 0 && now_ms() < end) {
		double r = num(json_object_get(doc, "totals"), "received");

		if (r != last || inflight(doc) > 0) {
			last = r;
			still = now_ms();
		} else if (now_ms() - still >= 2000) {
			break;
		}
		usleep(250000);
		/* A read that fails keeps the last good document. */
		json_t *next = status(url);
		if (next) {
			json_decref(doc);
			doc = next;
		}
	}
	return doc;
}

static void routes(const json_t *doc)
{
	size_t i, j;
	json_t *q, *r;

	printf("\n%-40s %8s %6s %6s %6s %8s %8s\n", "QUEUE / ROUTE", "handled",
	       "ack", "retry", "reject", "p50 ms", "p99 ms");
	json_array_foreach(json_object_get(doc, "queues"), i, q)
	{
		const json_t *rs = json_object_get(q, "routes");
		char label[160];

		if (json_array_size(rs) == 0)
			continue; /* not consumed: a dead-letter queue */
		printf("%-40.40s %8.0f\n", str(q, "queue"), num(q, "received"));
		json_array_foreach(rs, j, r)
		{
			const json_t *h = json_object_get(r, "handled");
			const json_t *lat =
			    json_object_get(r, "handler_latency");

			snprintf(label, sizeof(label), "  %s %s/%s",
			         str(r, "type"), str(r, "plugin"),
			         str(r, "handler"));
			printf("%-40.40s %8.0f %6.0f %6.0f %6.0f %8.2f %8.2f\n",
			       label, num(lat, "count"), num(h, "ack"),
			       num(h, "retry"),
			       num(h, "reject") + num(h, "invalid"),
			       num(lat, "p50_s") * 1000,
			       num(lat, "p99_s") * 1000);
		}
	}
}

static void dead_letters(const json_t *doc)
{
	size_t i;
	json_t *q, *v;
	const char *k;
	int rows = 0;

	printf("\n%-40s %-20s %8s\n", "DEAD-LETTERED FROM", "REASON", "COUNT");
	json_array_foreach(json_object_get(doc, "queues"), i, q)
	{
		json_object_foreach(json_object_get(q, "dead_lettered"), k, v)
		{
			printf("%-40.40s %-20s %8.0f\n", str(q, "queue"), k,
			       json_number_value(v));
			rows++;
		}
	}
	if (rows == 0)
		printf("(none)\n");
}

static int by_plugin_name(const void *a, const void *b)
{
	const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
	int c = strcmp(str(x, "plugin"), str(y, "plugin"));

	return c ? c : strcmp(str(x, "name"), str(y, "name"));
}

static void counters(const json_t *doc)
{
	const json_t *ev = json_object_get(doc, "plugin_events");
	size_t n = json_array_size(ev);
	json_t **rows;

	if (n == 0 || (rows = calloc(n, sizeof(*rows))) == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		rows[i] = json_array_get(ev, i);
	qsort(rows, n, sizeof(*rows), by_plugin_name);
	printf("\n%-40s %-20s %8s\n", "PLUGIN", "EVENT", "COUNT");
	for (size_t i = 0; i < n; i++)
		printf("%-40.40s %-20s %8.0f\n", str(rows[i], "plugin"),
		       str(rows[i], "name"), num(rows[i], "value"));
	free(rows);
}

int wc_summary(const char *url, int settle_s)
{
	json_t *doc = settled(url, settle_s);
	const json_t *t;

	if (doc == NULL) {
		fprintf(stderr, "warrenctl: cannot read %s/status\n", url);
		return 1;
	}
	t = json_object_get(doc, "totals");
	printf("warrend %s: final report after %.0f s\n", str(doc, "version"),
	       num(json_object_get(doc, "process"), "uptime_s"));
	printf("received %.0f  acked %.0f  retried %.0f (retry copies %.0f)  "
	       "dead-lettered %.0f  dropped %.0f  in flight %.0f\n",
	       num(t, "received"), num(t, "acked"), num(t, "retried"),
	       num(t, "retry_published"), num(t, "dead_lettered"),
	       num(t, "dropped"), inflight(doc));
	routes(doc);
	dead_letters(doc);
	counters(doc);
	json_decref(doc);
	return 0;
}
