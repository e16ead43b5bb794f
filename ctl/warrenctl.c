/* warrenctl.c - warrend's command-line companion: what the daemon is doing,
 * read from its HTTP endpoint's /status.
 *
 *   warrenctl [--url URL] status           one screen, once
 *   warrenctl [--url URL] top [OPTIONS]    the same, refreshed (Ctrl-C ends)
 *   warrenctl [--url URL] report FILE      a JSON performance report
 *   warrenctl [--url URL] summary          totals: the final report of a
 *                                          run (summary.c)
 *   warrenctl new-plugin NAME [DIR]        a plugin to start from
 *                                          (new_plugin.c)
 *   warrenctl dlq ls|show|redrive|purge Q  dead-letters (ctl/dlq.c)
 *
 * The screen fits 80x24: per queue and route msg/s, error %, handler p50 /
 * p99, end-to-end p99, in flight; the connection slots; memory; and
 * alerts with the tutorial's thresholds (average handler latency over
 * 1000 ms, errors over 5 %, under 10 msg/s while messages arrive). When the
 * daemon goes away, top says "disconnected" and keeps trying. */
#include <jansson.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "dlq.h"
#include "fetch.h"
#include "new_plugin.h"
#include "summary.h"

#define DEFAULT_URL "http://127.0.0.1:9466"
#define TIMEOUT_MS  5000

struct alerts {
	double latency_ms; /* average handler latency above: alert */
	double error_pct;
	double min_rate; /* msg/s under, while messages arrive */
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: warrenctl [--url URL] status\n"
	           "       warrenctl [--url URL] top [--interval S] [--once]\n"
	           "                 [--latency-ms MS] [--error-pct P] "
	           "[--min-rate R]\n"
	           "       warrenctl [--url URL] report FILE.json\n");
	wc_summary_usage(f);
	wc_dlq_usage(f);
	fprintf(
	    f,
	    "\n"
	    "  --url URL  warrend's HTTP endpoint (default %s; the http\n"
	    "             section's listen address)\n"
	    "  top        refresh every --interval seconds (default 5);\n"
	    "             --once prints one frame and exits (1 if the\n"
	    "             daemon cannot be reached)\n"
	    "  alerts     --latency-ms 1000, --error-pct 5, --min-rate 10\n"
	    "  report     write the status and system information as JSON\n"
	    "  summary    totals since start: by route and outcome, handler\n"
	    "             latencies, dead-letters by queue and reason, the\n"
	    "             plugins' counters; --settle S first waits (at most\n"
	    "             S s) until nothing is in flight\n",
	    DEFAULT_URL);
	fputc('\n', f);
	wc_new_plugin_usage(f);
}

static json_t *get_status(const char *url, char *why, size_t whylen)
{
	char *body = NULL;
	json_error_t err;
	json_t *doc;
	int st = wc_fetch(url, "/status", TIMEOUT_MS, &body, why, whylen);

	if (st < 0)
		return NULL;
	if (st != 200) {
		snprintf(why, whylen, "%s/status answered %d", url, st);
		free(body);
		return NULL;
	}
	doc = json_loads(body, 0, &err);
	if (!doc)
		snprintf(why, whylen, "%s/status is not JSON: %s", url,
		         err.text);
	free(body);
	return doc;
}

static double num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : 0;
}

static double sum_values(const json_t *o)
{
	const char *k;
	json_t *v;
	double s = 0;

	json_object_foreach((json_t *)o, k, v) s += json_number_value(v);
	return s;
}

/* Dead-letters and retry copies of the whole daemon (for per-second
 * rates between two frames). */
static void queue_totals(const json_t *doc, double *dl, double *retries)
{
	size_t i;
	json_t *q;

	*dl = *retries = 0;
	json_array_foreach(json_object_get(doc, "queues"), i, q)
	{
		*dl += sum_values(json_object_get(q, "dead_lettered"));
		*retries += num(q, "retry_published");
	}
}

static void fit(char *out, size_t cap, const char *s, size_t width)
{
	size_t n;

	if (!s)
		s = "?"; /* a field that is not there: not warrend answering? */
	n = strlen(s);

	if (n <= width)
		snprintf(out, cap, "%-*s", (int)width, s);
	else
		snprintf(out, cap, "%.*s~", (int)width - 1, s);
}

/* One frame. prev: the previous frame's document (NULL at first) and
 * dt its age in seconds, for the per-second rates /status does not give. */
static void frame(FILE *f, const json_t *doc, const json_t *prev, double dt,
                  const struct alerts *al)
{
	const json_t *proc = json_object_get(doc, "process");
	double up = num(proc, "uptime_s"), handled_all = 0, failed_all = 0;
	double received_all = 0, dl, retries, pdl, pretries;
	char when[16], name[40], alerts[4][100];
	int nalerts = 0, rows = 0;
	time_t now = time(NULL);
	struct tm tm;
	size_t i, j;
	json_t *q, *r, *s;

	localtime_r(&now, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(f,
	        "warrend %s  up %dh%02dm  generation %d  rss %.1f MiB  fds "
	        "%d    %s\n",
	        json_string_value(json_object_get(doc, "version")),
	        (int)(up / 3600), (int)(up / 60) % 60,
	        (int)num(json_object_get(doc, "totals"), "generation"),
	        num(proc, "resident_bytes") / (1024.0 * 1024.0),
	        (int)num(proc, "open_fds"), when);
	fprintf(f, "slots:");
	json_array_foreach(json_object_get(doc, "slots"), i, s)
	{
		fprintf(f, "  %d %s", (int)num(s, "slot"),
		        json_string_value(json_object_get(s, "state")));
		if (json_object_get(s, "retry_in_s"))
			fprintf(f, " in %.0f s", num(s, "retry_in_s"));
		fprintf(f, " (%d in flight)", (int)num(s, "inflight"));
	}
	fprintf(f, "\n\n%-38s %7s %5s %7s %7s %7s\n", "QUEUE / ROUTE", "msg/s",
	        "err%", "p50 ms", "p99 ms", "e2e p99");
	json_array_foreach(json_object_get(doc, "queues"), i, q)
	{
		const json_t *e2e = json_object_get(q, "end_to_end_latency");
		const json_t *routes = json_object_get(q, "routes");

		if (json_array_size(routes) == 0)
			continue; /* not consumed: a dead-letter queue */
		received_all += num(q, "received_per_s");
		if (rows++ < 12) {
			fit(name, sizeof(name),
			    json_string_value(json_object_get(q, "queue")), 38);
			fprintf(f, "%s %7.1f %5s %7s %7s %7.1f\n", name,
			        num(q, "received_per_s"), "", "", "",
			        num(e2e, "p99_s") * 1000);
		}
		json_array_foreach(routes, j, r)
		{
			const json_t *lat =
			    json_object_get(r, "handler_latency");
			double h = num(r, "handled_per_s"),
			       fl = num(r, "failed_per_s");
			double cnt = num(lat, "count");
			char label[80];

			handled_all += h;
			failed_all += fl;
			if (cnt > 0 &&
			    num(lat, "sum_s") / cnt * 1000 > al->latency_ms &&
			    nalerts < 4)
				snprintf(
				    alerts[nalerts++], sizeof(alerts[0]),
				    "%s/%s: average handler latency %.0f ms "
				    "> %.0f ms",
				    json_string_value(
				        json_object_get(r, "plugin")),
				    json_string_value(
				        json_object_get(r, "handler")),
				    num(lat, "sum_s") / cnt * 1000,
				    al->latency_ms);
			if (rows++ >= 12)
				continue;
			snprintf(
			    label, sizeof(label), "  %s %s/%s",
			    json_string_value(json_object_get(r, "type")),
			    json_string_value(json_object_get(r, "plugin")),
			    json_string_value(json_object_get(r, "handler")));
			fit(name, sizeof(name), label, 38);
			fprintf(f, "%s %7.1f %5.1f %7.2f %7.2f\n", name, h,
			        h > 0 ? 100 * fl / h : 0.0,
			        num(lat, "p50_s") * 1000,
			        num(lat, "p99_s") * 1000);
		}
	}
	if (rows > 12)
		fprintf(f, "  ... %d more rows (warrenctl report for all)\n",
		        rows - 12);
	queue_totals(doc, &dl, &retries);
	if (prev && dt > 0) {
		queue_totals(prev, &pdl, &pretries);
		fprintf(f, "\nretries %.1f/s  dead-letters %.1f/s  ",
		        (retries - pretries) / dt, (dl - pdl) / dt);
	} else {
		fprintf(f, "\nretries %.0f  dead-letters %.0f (totals)  ",
		        retries, dl);
	}
	fprintf(f, "handled %.1f/s\n", handled_all);
	if (handled_all > 0 && 100 * failed_all / handled_all > al->error_pct &&
	    nalerts < 4)
		snprintf(alerts[nalerts++], sizeof(alerts[0]),
		         "error rate %.1f %% > %.1f %%",
		         100 * failed_all / handled_all, al->error_pct);
	if (received_all > 0 && handled_all < al->min_rate && nalerts < 4)
		snprintf(alerts[nalerts++], sizeof(alerts[0]),
		         "throughput %.1f msg/s < %.1f msg/s", handled_all,
		         al->min_rate);
	if (nalerts == 0)
		fprintf(f, "alerts: none\n");
	for (int k = 0; k < nalerts; k++)
		fprintf(f, "ALERT: %s\n", alerts[k]);
}

static int cmd_top(const char *url, int interval, bool once,
                   const struct alerts *al)
{
	json_t *prev = NULL;
	struct timespec t0 = {0}, t1;
	char why[256];

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop) {
		json_t *doc = get_status(url, why, sizeof(why));
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (!once)
			printf("\033[H\033[2J"); /* home, clear */
		if (!doc) {
			printf("disconnected from %s: %s%s\n", url, why,
			       once ? "" : " (retrying)");
			json_decref(prev);
			prev = NULL;
			if (once)
				return 1;
		} else {
			double dt = (double)(t1.tv_sec - t0.tv_sec) +
			            (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
			frame(stdout, doc, prev, dt, al);
			json_decref(prev);
			prev = doc;
			t0 = t1;
		}
		fflush(stdout);
		if (once)
			break;
		for (int i = 0; i < interval * 10 && !stop; i++)
			usleep(100 * 1000);
	}
	json_decref(prev);
	return 0;
}

static int cmd_report(const char *url, const char *path)
{
	char why[256], host[256] = "";
	struct utsname u;
	json_t *doc = get_status(url, why, sizeof(why)), *report;
	time_t now = time(NULL);
	char when[32];

	if (!doc) {
		fprintf(stderr, "warrenctl: %s\n", why);
		return 1;
	}
	gethostname(host, sizeof(host) - 1);
	uname(&u);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
	report =
	    json_pack("{s:s,s:s,s:{s:s,s:s,s:s,s:s,s:I},s:O}", "generated_at",
	              when, "url", url, "system", "hostname", host, "kernel",
	              u.release, "machine", u.machine, "os", u.sysname, "cpus",
	              (json_int_t)sysconf(_SC_NPROCESSORS_ONLN), "status", doc);
	json_decref(doc);
	if (!report || json_dump_file(report, path, JSON_INDENT(2)) != 0) {
		fprintf(stderr, "warrenctl: cannot write %s\n", path);
		json_decref(report);
		return 1;
	}
	json_decref(report);
	printf("warrenctl: report written to %s\n", path);
	return 0;
}

int main(int argc, char **argv)
{
	const char *url = DEFAULT_URL;
	struct alerts al = {.latency_ms = 1000, .error_pct = 5, .min_rate = 10};
	int interval = 5, i = 1;
	bool once = false;

	if (i + 1 < argc && strcmp(argv[i], "--url") == 0) {
		url = argv[i + 1];
		i += 2;
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[i], "new-plugin") == 0)
		return wc_new_plugin(argc - i - 1, argv + i + 1);
	if (strcmp(argv[i], "dlq") == 0) /* talks to the broker, not warrend */
		return wc_dlq_main(argc - i, argv + i);
	if (strcmp(argv[i], "status") == 0 && i + 1 == argc)
		return cmd_top(url, 0, true, &al);
	if (strcmp(argv[i], "summary") == 0 && i + 1 == argc)
		return wc_summary(url, 0);
	if (strcmp(argv[i], "summary") == 0 && i + 3 == argc &&
	    strcmp(argv[i + 1], "--settle") == 0 && atoi(argv[i + 2]) > 0)
		return wc_summary(url, atoi(argv[i + 2]));
	if (strcmp(argv[i], "report") == 0 && i + 2 == argc)
		return cmd_report(url, argv[i + 1]);
	if (strcmp(argv[i], "top") != 0) {
		usage(stderr);
		return 2;
	}
	for (i++; i < argc; i++) {
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(argv[i], "--once") == 0) {
			once = true;
			continue;
		}
		if (!v) {
			usage(stderr);
			return 2;
		}
		if (strcmp(argv[i], "--interval") == 0 && atoi(v) > 0)
			interval = atoi(v);
		else if (strcmp(argv[i], "--latency-ms") == 0)
			al.latency_ms = atof(v);
		else if (strcmp(argv[i], "--error-pct") == 0)
			al.error_pct = atof(v);
		else if (strcmp(argv[i], "--min-rate") == 0)
			al.min_rate = atof(v);
		else {
			usage(stderr);
			return 2;
		}
		i++;
	}
	return cmd_top(url, interval, once, &al);
}
