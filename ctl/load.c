/* load.c - warren-load: publish a known load and say how the broker kept
 * up, in the spirit of RabbitMQ PerfTest: C publishers, each on its own
 * connection in confirm mode with at most W unconfirmed, at a fixed total
 * rate or flat out, N messages or T seconds (both bounded). Bodies are
 * JSON shaped like the example types, carrying x-warren-published-us so
 * that warrend's end-to-end latency sees when each was sent. Prints a row
 * per second (sent, confirmed, confirm latency p50 / p99, and with --watch
 * warrend's end-to-end p50 / p99) and a summary with min / median / 95th /
 * 99th / max confirm latency. With --mix orders|notifications it publishes
 * the tutorial's applications' messages instead (load_mix.c), each to its
 * own exchange and routing key, and counts them by kind. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/amqp_compat.h"
#include "base/histogram.h"
#include "fetch.h"
#include "load_mix.h"

#define MAX_PUBLISHERS 64
#define MAX_COUNT      10000000L
#define MAX_SECONDS    3600

struct opts {
	const char *url, *exchange, *rk, *type, *csv, *plot, *watch;
	long count;  /* 0: until seconds */
	int seconds; /* 0: until count */
	int publishers, window, size;
	double rate; /* total msg/s, 0: flat out */
	bool persistent;
	enum load_mix mix; /* LOAD_MIX_NONE: --type's bodies to --exchange */
};

static struct opts o = {.url = "amqp://guest:guest@127.0.0.1:5672",
                        .exchange = "",
                        .type = "user:signup",
                        .count = 1000,
                        .publishers = 1,
                        .window = 100,
                        .size = 0};

static atomic_long claimed, sent, confirmed, nacked, returned;
static atomic_long mix_sent[8]; /* by kind of --mix */
static atomic_bool failed, stopping;
static atomic_int running;     /* publishers still publishing or confirming */
static struct wd_hist latency; /* confirm latency, all of it */
static _Atomic uint64_t min_us = UINT64_MAX, max_us;

static int64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "warren-load: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* The next message's body: the example type's shape, padded to size. */
static int body_of(char *buf, size_t cap, long n)
{
	int len;

	if (strcmp(o.type, "order:created") == 0)
		len = snprintf(
		    buf, cap,
		    "{\"type\":\"order:created\",\"orderId\":\"o-%ld\","
		    "\"userId\":%ld,\"items\":[{\"productId\":\"p-1\","
		    "\"productName\":\"Widget\",\"quantity\":1,"
		    "\"price\":9.5}],\"totalAmount\":9.5",
		    n, n % 1000);
	else if (strcmp(o.type, "email:send") == 0)
		len = snprintf(
		    buf, cap,
		    "{\"type\":\"email:send\",\"to\":\"user%ld@example."
		    "com\",\"subject\":\"Hello %ld\"",
		    n % 1000, n);
	else if (strcmp(o.type, "user:signup") == 0)
		len = snprintf(
		    buf, cap,
		    "{\"type\":\"user:signup\",\"userId\":%ld,\"email\":"
		    "\"user%ld@example.com\"",
		    n, n);
	else
		len = snprintf(buf, cap, "{\"type\":\"%s\",\"id\":%ld", o.type,
		               n);
	if (o.size > len + 12 && (size_t)o.size < cap) {
		len += snprintf(buf + len, cap - (size_t)len, ",\"pad\":\"");
		while (len < o.size - 2)
			buf[len++] = 'x';
		buf[len++] = '"';
	}
	buf[len++] = '}';
	buf[len] = '\0';
	return len;
}

static amqp_connection_state_t connect_broker(void)
{
	struct amqp_connection_info info;
	char *url = strdup(o.url);
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s;
	amqp_rpc_reply_t r;

	if (!url || amqp_parse_url(url, &info) != AMQP_STATUS_OK)
		die("%s is not an amqp:// URL", o.url);
	s = info.ssl ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, info.host, info.port) != AMQP_STATUS_OK)
		die("cannot connect to %s:%d", info.host, info.port);
	r = amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
	               info.user, info.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		die("cannot log in to %s:%d", info.host, info.port);
	amqp_channel_open(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		die("cannot open a channel");
	amqp_confirm_select(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		die("cannot put the channel in confirm mode");
	free(url);
	return c;
}

struct publisher {
	pthread_t thread;
	int id;
	int64_t *sent_at; /* by sequence number modulo the window */
	uint64_t next_seq, acked_upto;
};

static void record(uint64_t us)
{
	uint64_t m;

	wd_hist_observe_us(&latency, us);
	m = atomic_load(&min_us);
	while (us < m && !atomic_compare_exchange_weak(&min_us, &m, us))
		;
	m = atomic_load(&max_us);
	while (us > m && !atomic_compare_exchange_weak(&max_us, &m, us))
		;
}

/* Read confirms until fewer than `keep` are outstanding (or the wait for
 * a frame times out). Returns -1 if the connection failed. */
static int drain_confirms(amqp_connection_state_t c, struct publisher *p,
                          uint64_t keep, int timeout_ms)
{
	while (p->next_seq - 1 - p->acked_upto > keep) {
		struct timeval tv = {timeout_ms / 1000,
		                     (timeout_ms % 1000) * 1000};
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);

		if (rc == AMQP_STATUS_TIMEOUT)
			return 0;
		if (rc != AMQP_STATUS_OK)
			return -1;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
			amqp_message_t m;
			atomic_fetch_add(&returned, 1);
			if (amqp_read_message(c, f.channel, &m, 0).reply_type !=
			    AMQP_RESPONSE_NORMAL)
				return -1;
			amqp_destroy_message(&m);
			continue;
		}
		bool ack = f.payload.method.id == AMQP_BASIC_ACK_METHOD;
		if (!ack && f.payload.method.id != AMQP_BASIC_NACK_METHOD)
			continue;
		uint64_t tag =
		    ack ? ((amqp_basic_ack_t *)f.payload.method.decoded)
		              ->delivery_tag
		        : ((amqp_basic_nack_t *)f.payload.method.decoded)
		              ->delivery_tag;
		bool multiple =
		    ack ? ((amqp_basic_ack_t *)f.payload.method.decoded)
		              ->multiple
		        : ((amqp_basic_nack_t *)f.payload.method.decoded)
		              ->multiple;
		uint64_t from = multiple ? p->acked_upto + 1 : tag;
		int64_t t = now_us();
		for (uint64_t s = from; s <= tag; s++) {
			record(
			    (uint64_t)(t - p->sent_at[s % (uint64_t)o.window]));
			atomic_fetch_add(ack ? &confirmed : &nacked, 1);
		}
		/* Confirms come in order: a single one closes the run too. */
		if (tag > p->acked_upto)
			p->acked_upto = tag;
	}
	return 0;
}

static void *publish(void *arg)
{
	struct publisher *p = arg;
	amqp_connection_state_t c = connect_broker();
	double per = o.rate > 0 ? o.rate / o.publishers : 0;
	int64_t start = now_us(),
	        end = o.seconds ? start + o.seconds * 1000000LL : INT64_MAX;
	char *body = malloc((size_t)(o.size > 4096 ? o.size : 4096) + 64);
	long mine = 0;

	p->next_seq = 1;
	p->sent_at = calloc((size_t)o.window, sizeof(*p->sent_at));
	if (!body || !p->sent_at)
		die("out of memory");
	while (!atomic_load(&stopping)) {
		long n = atomic_fetch_add(&claimed, 1);
		amqp_table_entry_t h;
		amqp_basic_properties_t props = {0};
		char id[32];
		int len;

		if ((o.count && n >= o.count) || now_us() >= end)
			break;
		if (per > 0) { /* this publisher's schedule, not a sleep per
			          message */
			int64_t due =
			    start + (int64_t)((double)mine * 1e6 / per);
			int64_t wait;
			/* Waiting is reading confirms: their latency is
			 * measured when they arrive, not when we look. */
			while ((wait = due - now_us()) > 0) {
				if (p->next_seq - 1 == p->acked_upto) {
					usleep((useconds_t)wait);
					break;
				}
				if (drain_confirms(
				        c, p, 0, (int)(wait / 1000) + 1) < 0) {
					atomic_store(&failed, true);
					goto out;
				}
			}
		}
		/* What has arrived, at once; then wait only for a full window.
		 */
		if (drain_confirms(c, p, 0, 0) < 0 ||
		    drain_confirms(c, p, (uint64_t)o.window - 1, 5000) < 0 ||
		    p->next_seq - 1 - p->acked_upto >= (uint64_t)o.window) {
			atomic_store(&failed, true);
			break;
		}
		struct load_msg lm = {.exchange = o.exchange};
		if (o.mix != LOAD_MIX_NONE) {
			len = load_mix_next(o.mix, n + 1, body, 4096, &lm);
			atomic_fetch_add(&mix_sent[lm.kind], 1);
		} else {
			len = body_of(
			    body, (size_t)(o.size > 4096 ? o.size : 4096) + 64,
			    n + 1);
			snprintf(lm.routing_key, sizeof(lm.routing_key), "%s",
			         o.rk);
		}
		snprintf(id, sizeof(id), "load-%d-%ld", p->id, n + 1);
		h.key = amqp_cstring_bytes("x-warren-published-us");
		h.value.kind = AMQP_FIELD_KIND_I64;
		h.value.value.i64 = wall_us();
		props._flags =
		    AMQP_BASIC_CONTENT_TYPE_FLAG |
		    AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
		    AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG |
		    AMQP_BASIC_HEADERS_FLAG;
		props.content_type = amqp_cstring_bytes("application/json");
		props.delivery_mode = o.persistent ? 2 : 1;
		props.message_id = amqp_cstring_bytes(id);
		props.type = amqp_cstring_bytes(o.type);
		/* The tutorial's clients set no AMQP type, and a priority. */
		if (o.mix != LOAD_MIX_NONE)
			props._flags &= ~AMQP_BASIC_TYPE_FLAG;
		if (lm.priority) {
			props._flags |= AMQP_BASIC_PRIORITY_FLAG;
			props.priority = lm.priority;
		}
		props.timestamp = (uint64_t)(h.value.value.i64 / 1000000);
		props.headers.num_entries = 1;
		props.headers.entries = &h;
		p->sent_at[p->next_seq % (uint64_t)o.window] = now_us();
		if (amqp_basic_publish(
		        c, 1, amqp_cstring_bytes(lm.exchange),
		        amqp_cstring_bytes(lm.routing_key), 1, 0, &props,
		        (amqp_bytes_t){(size_t)len, body}) != AMQP_STATUS_OK) {
			atomic_store(&failed, true);
			break;
		}
		p->next_seq++;
		mine++;
		atomic_fetch_add(&sent, 1);
	}
out:
	/* The last confirms, bounded. */
	for (int i = 0; i < 20 && p->next_seq - 1 > p->acked_upto; i++)
		if (drain_confirms(c, p, 0, 500) < 0)
			break;
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
	free(body);
	free(p->sent_at);
	atomic_fetch_sub(&running, 1);
	return NULL;
}

/* warrend's end-to-end p50 / p99 (the largest over its queues), from
 * /status; false if it cannot be read. */
static bool watch(double *p50, double *p99)
{
	char *body = NULL, why[256];
	json_t *doc, *q;
	size_t i;

	*p50 = *p99 = 0;
	if (wc_fetch(o.watch, "/status", 2000, &body, why, sizeof(why)) !=
	    200) {
		free(body);
		return false;
	}
	doc = json_loads(body, 0, NULL);
	free(body);
	if (!doc)
		return false;
	json_array_foreach(json_object_get(doc, "queues"), i, q)
	{
		json_t *e = json_object_get(q, "end_to_end_latency");
		double a = json_number_value(json_object_get(e, "p50_s"));
		double b = json_number_value(json_object_get(e, "p99_s"));
		if (b > *p99) {
			*p50 = a;
			*p99 = b;
		}
	}
	json_decref(doc);
	return true;
}

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stopping, true);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: warren-load [--url AMQP_URL] (--queue Q | --exchange X "
	        "--routing-key K)\n"
	        "         [--type T] [--size BYTES] [--count N | --seconds S]\n"
	        "         [--publishers C] [--rate R] [--window W] "
	        "[--persistent]\n"
	        "         [--csv FILE] [--plot FILE.svg] [--watch "
	        "http://HOST:PORT]\n"
	        "       warren-load --mix orders|notifications [the same "
	        "options]\n"
	        "  --mix: the tutorial's applications' messages, to their "
	        "own exchanges\n"
	        "  (conf/examples), with bad ones among them.\n"
	        "  defaults: amqp://guest:guest@127.0.0.1:5672, type "
	        "user:signup, 1000\n"
	        "  messages, 1 publisher, as fast as confirms allow (rate 0), "
	        "window 100,\n"
	        "  transient. Bounded: at most %ld messages, %d s, %d "
	        "publishers.\n",
	        MAX_COUNT, MAX_SECONDS, MAX_PUBLISHERS);
	exit(2);
}

static void plot(const char *csv, const char *svg)
{
	char cmd[2048];

	if (system("command -v gnuplot >/dev/null 2>&1") != 0) {
		fprintf(stderr,
		        "warren-load: --plot: gnuplot is not installed "
		        "(apt-get install gnuplot-nox); rows are in the "
		        "csv\n");
		return;
	}
	snprintf(cmd, sizeof(cmd),
	         "gnuplot -e \"set terminal svg size 900,500; set output '%s'; "
	         "set datafile separator ','; set key autotitle columnhead; "
	         "set xlabel 'second'; set ylabel 'msg/s'; set y2label 'ms'; "
	         "set y2tics; plot '%s' using 1:3 with lines, '' using 1:4 "
	         "axes x1y2 with lines, '' using 1:5 axes x1y2 with lines\"",
	         svg, csv);
	if (system(cmd) != 0)
		fprintf(stderr, "warren-load: gnuplot failed\n");
}

int main(int argc, char **argv)
{
	struct publisher pubs[MAX_PUBLISHERS];
	struct wd_hist_snap prev = {0}, cur, d, all;
	long last_sent = 0, last_conf = 0;
	int64_t t0;
	FILE *csv = NULL;
	char tmp_csv[256] = "";
	const char *csv_path;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--persistent") == 0) {
			o.persistent = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (strcmp(a, "--url") == 0)
			o.url = v;
		else if (strcmp(a, "--queue") == 0)
			o.exchange = "", o.rk = v;
		else if (strcmp(a, "--exchange") == 0)
			o.exchange = v;
		else if (strcmp(a, "--routing-key") == 0)
			o.rk = v;
		else if (strcmp(a, "--mix") == 0) {
			if (load_mix_parse(v, &o.mix) < 0)
				die("--mix: \"orders\" or \"notifications\"");
			o.rk = "";
		} else if (strcmp(a, "--type") == 0)
			o.type = v;
		else if (strcmp(a, "--size") == 0)
			o.size = atoi(v);
		else if (strcmp(a, "--count") == 0)
			o.count = atol(v), o.seconds = 0;
		else if (strcmp(a, "--seconds") == 0)
			o.seconds = atoi(v), o.count = 0;
		else if (strcmp(a, "--publishers") == 0)
			o.publishers = atoi(v);
		else if (strcmp(a, "--rate") == 0)
			o.rate = atof(v);
		else if (strcmp(a, "--window") == 0)
			o.window = atoi(v);
		else if (strcmp(a, "--csv") == 0)
			o.csv = v;
		else if (strcmp(a, "--plot") == 0)
			o.plot = v;
		else if (strcmp(a, "--watch") == 0)
			o.watch = v;
		else
			usage();
	}
	/* The type goes into JSON and an AMQP short string as it is. */
	if (strlen(o.type) > 255 || strpbrk(o.type, "\"\\") ||
	    strcspn(o.type, "\x01\x02\x03\x04\x05\x06\x07\x08\t\n\r") !=
	        strlen(o.type))
		die("--type: at most 255 characters, without quotes, "
		    "backslashes or control characters");
	if (!o.rk || o.publishers < 1 || o.publishers > MAX_PUBLISHERS ||
	    o.window < 1 || o.window > 100000 || o.rate < 0 || o.size < 0 ||
	    o.size > 16 << 20 || o.count < 0 || o.count > MAX_COUNT ||
	    o.seconds < 0 || o.seconds > MAX_SECONDS ||
	    (o.count == 0 && o.seconds == 0))
		usage();
	csv_path = o.csv;
	if (!csv_path && o.plot) {
		snprintf(tmp_csv, sizeof(tmp_csv), "/tmp/warren-load-%d.csv",
		         (int)getpid());
		csv_path = tmp_csv;
	}
	if (csv_path && !(csv = fopen(csv_path, "w")))
		die("%s: %s", csv_path, strerror(errno));
	if (csv)
		fprintf(csv, "second,sent,sent_per_s,confirm_p50_ms,"
		             "confirm_p99_ms,e2e_p50_ms,e2e_p99_ms\n");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	t0 = now_us();
	atomic_store(&running, o.publishers);
	for (int i = 0; i < o.publishers; i++) {
		pubs[i] = (struct publisher){.id = i};
		if (pthread_create(&pubs[i].thread, NULL, publish, &pubs[i]) !=
		    0)
			die("cannot start publisher %d", i);
	}
	printf("%6s %9s %9s %9s %9s %9s%s\n", "second", "sent", "sent/s",
	       "confirmed", "p50 ms", "p99 ms",
	       o.watch ? "   e2e p50   e2e p99" : "");
	for (int sec = 1;; sec++) {
		long s, c;
		double e50 = 0, e99 = 0;
		bool done;

		/* Until the second is over, or everything is confirmed. */
		while (now_us() < t0 + (int64_t)sec * 1000000 &&
		       !(o.count &&
		         atomic_load(&confirmed) + atomic_load(&nacked) >=
		             o.count))
			usleep(10000);
		s = atomic_load(&sent);
		c = atomic_load(&confirmed);
		wd_hist_read(&latency, &cur);
		wd_hist_diff(&prev, &cur, &d);
		prev = cur;
		if (o.watch)
			watch(&e50, &e99);
		printf("%6d %9ld %9ld %9ld %9.2f %9.2f", sec, s, s - last_sent,
		       c, wd_hist_quantile(&d, 0.5) * 1000,
		       wd_hist_quantile(&d, 0.99) * 1000);
		if (o.watch)
			printf(" %9.2f %9.2f", e50 * 1000, e99 * 1000);
		printf("\n");
		fflush(stdout);
		if (csv)
			fprintf(csv, "%d,%ld,%ld,%.3f,%.3f,%.3f,%.3f\n", sec, s,
			        s - last_sent, wd_hist_quantile(&d, 0.5) * 1000,
			        wd_hist_quantile(&d, 0.99) * 1000, e50 * 1000,
			        e99 * 1000);
		last_sent = s;
		last_conf = c;
		/* Every publisher gone (all confirmed, or given up) ends it
		 * too: a count that cannot be reached does not run an hour. */
		done = atomic_load(&running) == 0 ||
		       (o.count && c + atomic_load(&nacked) >= o.count) ||
		       atomic_load(&failed) || atomic_load(&stopping) ||
		       (o.seconds && sec >= o.seconds + 10) ||
		       sec > MAX_SECONDS + 60;
		if (o.seconds && sec >= o.seconds && s == last_conf)
			done = true;
		if (done)
			break;
	}
	atomic_store(&stopping, true);
	for (int i = 0; i < o.publishers; i++)
		pthread_join(pubs[i].thread, NULL);
	double secs = (double)(now_us() - t0) / 1e6;
	/* Quantiles come from buckets (interpolated): never outside what was
	 * seen. */
	double lo = (double)atomic_load(&min_us) / 1000;
	double hi = (double)atomic_load(&max_us) / 1000;
	wd_hist_read(&latency, &all);
	printf("summary: sent %ld confirmed %ld nacked %ld returned %ld in "
	       "%.2f s: %.1f msg/s; confirm latency ms min %.2f median %.2f "
	       "95th %.2f 99th %.2f max %.2f\n",
	       atomic_load(&sent), atomic_load(&confirmed),
	       atomic_load(&nacked), atomic_load(&returned), secs,
	       (double)atomic_load(&sent) / secs, all.count ? lo : 0.0,
	       clamp(wd_hist_quantile(&all, 0.5) * 1000, lo, hi),
	       clamp(wd_hist_quantile(&all, 0.95) * 1000, lo, hi),
	       clamp(wd_hist_quantile(&all, 0.99) * 1000, lo, hi), hi);
	if (o.mix != LOAD_MIX_NONE) {
		const char *const *kinds = load_mix_kinds(o.mix);
		printf("mix:");
		for (int k = 0; kinds[k]; k++)
			printf("%s %ld %s", k ? "," : "",
			       atomic_load(&mix_sent[k]), kinds[k]);
		printf("\n");
	}
	if (csv)
		fclose(csv);
	if (o.plot)
		plot(csv_path, o.plot);
	if (tmp_csv[0])
		unlink(tmp_csv);
	return atomic_load(&failed) ? 1 : 0;
}
