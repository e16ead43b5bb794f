/* dlq.c - `warrenctl dlq ls | show | redrive | purge QUEUE`: the command
 * line, what each command does with a message, and what it prints. The
 * pass over the queue (and why it loses nothing and keeps the order) is
 * dlq_scan.c's; a message's fields, filters and redriven headers are
 * dlq_msg.c's. */
#include "dlq.h"

#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/amqp_fields.h"
#include "base/install.h"
#include "dlq_msg.h"
#include "dlq_scan.h"
#include "message/policy.h"

#ifndef WARREN_CONF_PATH
#define WARREN_CONF_PATH "/usr/local/etc/warren/warren.conf"
#endif
#ifndef WARREN_REL_CONF_PATH
#define WARREN_REL_CONF_PATH ""
#endif

#define WINDOW     256   /* unconfirmed copies at most */
#define CONFIRM_MS 30000 /* a copy unconfirmed this long fails the pass */
#define MAX_KEYS   1000  /* distinct values counted per column by ls */

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

void wc_dlq_usage(FILE *f)
{
	char installed[PATH_MAX];

	fprintf(f,
	        "       warrenctl dlq [-c CONF | --amqp URL] ls QUEUE\n"
	        "       warrenctl dlq [...] show QUEUE [-n N] [FILTERS]\n"
	        "       warrenctl dlq [...] redrive QUEUE [FILTERS] "
	        "[--limit N] [--rate R]\n"
	        "                 [--dry-run] [--to-queue Q | "
	        "--to-exchange]\n"
	        "       warrenctl dlq [...] purge QUEUE [FILTERS] "
	        "[--limit N] --yes\n"
	        "\n"
	        "  dlq        dead-letters, from the broker of CONF's broker "
	        "section (default\n"
	        "             %s) or URL (or WARREN_AMQP_URL);\n"
	        "             FILTERS: --reason R --type T "
	        "--handler PLUGIN[/HANDLER]\n"
	        "             --queue ORIGINAL_QUEUE. Exit 0 ok, 1 error, "
	        "2 usage.\n",
	        wd_install_path(WARREN_REL_CONF_PATH, WARREN_CONF_PATH,
	                        installed, sizeof(installed)));
}

enum cmd { LS, SHOW, REDRIVE, PURGE };

struct opts {
	enum cmd cmd;
	const char *queue;
	struct wc_dlq_filter filter;
	long n, limit; /* show's -n; redrive's and purge's --limit (0: all) */
	double rate;
	bool dry_run, yes, to_exchange;
	const char *to_queue;
};

/* A count per distinct value of one column, for ls. */
struct count {
	char *key;
	long n;
};
struct tally {
	struct count *v;
	size_t n, cap;
	long other; /* past MAX_KEYS distinct values */
};

static void tally_add(struct tally *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].key, key) == 0) {
			t->v[i].n++;
			return;
		}
	if (t->n >= MAX_KEYS) {
		t->other++;
		return;
	}
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		void *v = realloc(t->v, cap * sizeof(*t->v));
		if (!v) {
			t->other++;
			return;
		}
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n].key = strdup(key);
	if (!t->v[t->n].key) {
		t->other++;
		return;
	}
	t->v[t->n++].n = 1;
}

static int by_count(const void *a, const void *b)
{
	const struct count *x = a, *y = b;

	if (x->n != y->n)
		return x->n < y->n ? 1 : -1;
	return strcmp(x->key, y->key);
}

static void tally_print(struct tally *t, const char *title)
{
	printf("by %s:\n", title);
	qsort(t->v, t->n, sizeof(*t->v), by_count);
	for (size_t i = 0; i < t->n; i++) {
		printf("  %8ld  ", t->v[i].n);
		if (t->v[i].key[0])
			wc_dlq_print_bytes(stdout, t->v[i].key,
			                   strlen(t->v[i].key), 200);
		else
			fputs("(none)", stdout);
		putchar('\n');
	}
	if (t->other)
		printf("  %8ld  (more values than %d)\n", t->other, MAX_KEYS);
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i].key);
	free(t->v);
}

static void print_time(int64_t ms)
{
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	char buf[32];

	if (ms < 0 || !gmtime_r(&s, &tm)) {
		fputs("unknown", stdout);
		return;
	}
	strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%s.%03dZ", buf, (int)(ms % 1000));
}

/* What a pass's visitor knows: the options and its counts. */
struct run {
	const struct opts *o;
	long matched, shown, skipped;
	struct tally reason, type, handler, queue;
	int64_t oldest, newest;
	long timed;
};

static enum wc_dlq_action visit_ls(void *arg, const amqp_envelope_t *env,
                                   struct wc_dlq_move *mv)
{
	struct run *r = arg;
	struct wc_dlq_info i;

	(void)mv;
	wc_dlq_info_read(env, &i);
	tally_add(&r->reason, i.reason);
	tally_add(&r->type, i.type);
	tally_add(&r->handler, i.handler);
	tally_add(&r->queue, i.queue);
	if (i.failed_ms >= 0) {
		if (!r->timed || i.failed_ms < r->oldest)
			r->oldest = i.failed_ms;
		if (!r->timed || i.failed_ms > r->newest)
			r->newest = i.failed_ms;
		r->timed++;
	}
	return WC_DLQ_KEEP;
}

static void print_props(const amqp_basic_properties_t *p)
{
#define PROP_STR(flag, field, name)                                            \
	if (p->_flags & (flag)) {                                              \
		printf("  %s: ", name);                                        \
		wc_dlq_print_bytes(stdout, p->field.bytes, p->field.len, 512); \
		putchar('\n');                                                 \
	}
	PROP_STR(AMQP_BASIC_MESSAGE_ID_FLAG, message_id, "message-id")
	PROP_STR(AMQP_BASIC_CONTENT_TYPE_FLAG, content_type, "content-type")
	PROP_STR(AMQP_BASIC_CONTENT_ENCODING_FLAG, content_encoding,
	         "content-encoding")
	PROP_STR(AMQP_BASIC_TYPE_FLAG, type, "type")
	PROP_STR(AMQP_BASIC_CORRELATION_ID_FLAG, correlation_id,
	         "correlation-id")
	PROP_STR(AMQP_BASIC_REPLY_TO_FLAG, reply_to, "reply-to")
	PROP_STR(AMQP_BASIC_EXPIRATION_FLAG, expiration, "expiration")
	PROP_STR(AMQP_BASIC_USER_ID_FLAG, user_id, "user-id")
	PROP_STR(AMQP_BASIC_APP_ID_FLAG, app_id, "app-id")
#undef PROP_STR
	if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
		printf("  delivery-mode: %u\n", p->delivery_mode);
	if (p->_flags & AMQP_BASIC_PRIORITY_FLAG)
		printf("  priority: %u\n", p->priority);
	if (p->_flags & AMQP_BASIC_TIMESTAMP_FLAG)
		printf("  timestamp: %llu\n", (unsigned long long)p->timestamp);
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return;
	printf("  headers:\n");
	for (int k = 0; k < p->headers.num_entries; k++) {
		const amqp_table_entry_t *e = &p->headers.entries[k];
		printf("    ");
		wc_dlq_print_bytes(stdout, e->key.bytes, e->key.len, 256);
		printf(": ");
		wc_dlq_print_field(stdout, &e->value, 8);
		putchar('\n');
	}
}

static enum wc_dlq_action visit_show(void *arg, const amqp_envelope_t *env,
                                     struct wc_dlq_move *mv)
{
	struct run *r = arg;
	struct wc_dlq_info i;

	(void)mv;
	wc_dlq_info_read(env, &i);
	if (!wc_dlq_match(&r->o->filter, &i))
		return WC_DLQ_KEEP;
	if (r->shown >= r->o->n)
		return WC_DLQ_STOP;
	r->shown++;
	printf("message %ld (position %ld in the queue)\n", r->shown,
	       (long)env->delivery_tag);
	print_props(&env->message.properties);
	printf("  body (%zu bytes): ", env->message.body.len);
	wc_dlq_print_bytes(stdout, env->message.body.bytes,
	                   env->message.body.len, 65536);
	printf("\n\n");
	return WC_DLQ_KEEP;
}

/* Where a matching dead-letter goes: --to-queue, the original exchange
 * and key (--to-exchange), or its original queue through the default
 * exchange. False (with why) if it does not say. x and rk borrow from
 * env, o and queue. */
static bool target(const struct opts *o, const amqp_envelope_t *env,
                   const char *queue, amqp_bytes_t *x, amqp_bytes_t *rk,
                   const char **why)
{
	const amqp_field_value_t *ox = wd_amqp_header(env, WD_H_ORIG_EXCHANGE);
	const amqp_field_value_t *ork =
	    wd_amqp_header(env, WD_H_ORIG_ROUTING_KEY);

	*x = amqp_empty_bytes;
	if (o->to_queue) {
		*rk = amqp_cstring_bytes(o->to_queue);
		return true;
	}
	if (o->to_exchange) {
		if (!wd_field_is_string(ox) || !wd_field_is_string(ork)) {
			*why = "no x-warren-original-exchange and "
			       "-routing-key";
			return false;
		}
		*x = ox->value.bytes;
		*rk = ork->value.bytes;
		return true;
	}
	if (!queue[0]) {
		*why = "no x-warren-queue (use --to-queue)";
		return false;
	}
	*rk = amqp_cstring_bytes(queue);
	return true;
}

struct redrive_run {
	struct run r;
	char queue[256]; /* the current message's original queue */
};

static enum wc_dlq_action visit_redrive(void *arg, const amqp_envelope_t *env,
                                        struct wc_dlq_move *mv)
{
	struct redrive_run *rr = arg;
	struct run *r = &rr->r;
	const struct opts *o = r->o;
	struct wc_dlq_info i;
	const char *why = "";

	wc_dlq_info_read(env, &i);
	if (!wc_dlq_match(&o->filter, &i))
		return WC_DLQ_KEEP;
	if (o->limit && r->matched >= o->limit)
		return WC_DLQ_STOP;
	r->matched++;
	snprintf(rr->queue, sizeof(rr->queue), "%s", i.queue);
	if (!target(o, env, rr->queue, &mv->exchange, &mv->routing_key, &why)) {
		r->skipped++;
		fprintf(stderr,
		        "warrenctl: dlq: message %s (position %ld) left: %s\n",
		        i.message_id[0] ? i.message_id : "without id",
		        (long)env->delivery_tag, why);
		return WC_DLQ_KEEP;
	}
	if (o->dry_run) {
		printf("would move ");
		if (i.message_id[0])
			wc_dlq_print_bytes(stdout, i.message_id,
			                   strlen(i.message_id), 256);
		else
			printf("(no message-id)");
		printf(" (position %ld, %s) to ", (long)env->delivery_tag,
		       i.reason[0] ? i.reason : "no reason");
		if (mv->exchange.len) {
			printf("exchange ");
			wc_dlq_print_bytes(stdout, mv->exchange.bytes,
			                   mv->exchange.len, 256);
			printf(" key ");
		} else {
			printf("queue ");
		}
		wc_dlq_print_bytes(stdout, mv->routing_key.bytes,
		                   mv->routing_key.len, 256);
		putchar('\n');
		return WC_DLQ_KEEP;
	}
	if (wc_dlq_redrive_headers(env, &mv->headers) < 0) {
		r->skipped++;
		fprintf(stderr, "warrenctl: dlq: out of memory\n");
		return WC_DLQ_STOP;
	}
	return WC_DLQ_MOVE;
}

static enum wc_dlq_action visit_purge(void *arg, const amqp_envelope_t *env,
                                      struct wc_dlq_move *mv)
{
	struct run *r = arg;
	struct wc_dlq_info i;

	(void)mv;
	wc_dlq_info_read(env, &i);
	if (!wc_dlq_match(&r->o->filter, &i))
		return WC_DLQ_KEEP;
	if (r->o->limit && r->matched >= r->o->limit)
		return WC_DLQ_STOP;
	r->matched++;
	return WC_DLQ_DELETE;
}

static int usage_err(const char *what)
{
	fprintf(stderr, "warrenctl dlq: %s (warrenctl --help)\n", what);
	return 2;
}

/* A positive count, or -1. */
static long count_arg(const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);
	return *v && !*end && n > 0 ? n : -1;
}

static int parse(int argc, char **argv, struct opts *o,
                 struct wc_dlq_source *src)
{
	int pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		bool takes = true;

		if (strcmp(a, "--dry-run") == 0)
			o->dry_run = true, takes = false;
		else if (strcmp(a, "--yes") == 0)
			o->yes = true, takes = false;
		else if (strcmp(a, "--to-exchange") == 0)
			o->to_exchange = true, takes = false;
		else if (a[0] != '-') {
			takes = false;
			if (pos == 0) {
				if (strcmp(a, "ls") == 0)
					o->cmd = LS;
				else if (strcmp(a, "show") == 0)
					o->cmd = SHOW;
				else if (strcmp(a, "redrive") == 0)
					o->cmd = REDRIVE;
				else if (strcmp(a, "purge") == 0)
					o->cmd = PURGE;
				else
					return usage_err("unknown command");
			} else if (pos == 1) {
				o->queue = a;
			} else {
				return usage_err("one queue only");
			}
			pos++;
		} else if (!v) {
			return usage_err("an option without its value");
		} else if (strcmp(a, "-c") == 0) {
			src->conf = v, src->conf_given = true;
		} else if (strcmp(a, "--amqp") == 0) {
			src->amqp_url = v;
		} else if (strcmp(a, "--reason") == 0) {
			o->filter.reason = v;
		} else if (strcmp(a, "--type") == 0) {
			o->filter.type = v;
		} else if (strcmp(a, "--handler") == 0) {
			o->filter.handler = v;
		} else if (strcmp(a, "--queue") == 0) {
			o->filter.queue = v;
		} else if (strcmp(a, "--to-queue") == 0) {
			o->to_queue = v;
		} else if (strcmp(a, "-n") == 0) {
			if ((o->n = count_arg(v)) < 0)
				return usage_err("-n: a positive count");
		} else if (strcmp(a, "--limit") == 0) {
			if ((o->limit = count_arg(v)) < 0)
				return usage_err("--limit: a positive count");
		} else if (strcmp(a, "--rate") == 0) {
			char *end;
			o->rate = strtod(v, &end);
			if (!*v || *end || !(o->rate > 0))
				return usage_err("--rate: messages per second, "
				                 "above 0");
		} else {
			return usage_err("unknown option");
		}
		if (takes)
			i++;
	}
	if (pos < 2)
		return usage_err("a command and a queue");
	if (o->cmd == LS && (o->filter.reason || o->filter.type ||
	                     o->filter.handler || o->filter.queue))
		return usage_err("ls counts everything: no filters");
	if (o->cmd != REDRIVE &&
	    (o->to_queue || o->to_exchange || o->dry_run || o->rate > 0))
		return usage_err("--to-queue, --to-exchange, --dry-run and "
		                 "--rate are redrive's");
	if (o->to_queue && o->to_exchange)
		return usage_err("--to-queue or --to-exchange, not both");
	if ((o->cmd == LS || o->cmd == SHOW) && o->limit)
		return usage_err("--limit is redrive's and purge's (show: -n)");
	if (o->cmd != SHOW && o->n)
		return usage_err("-n is show's");
	if (o->cmd == PURGE && !o->yes)
		return usage_err("purge removes messages for good: add --yes");
	if (o->cmd == SHOW && !o->n)
		o->n = 10;
	return 0;
}

int wc_dlq_main(int argc, char **argv)
{
	char installed[PATH_MAX], err[1024];
	struct wc_dlq_source src = {
	    .conf = wd_install_path(WARREN_REL_CONF_PATH, WARREN_CONF_PATH,
	                            installed, sizeof(installed))};
	struct opts o = {0};
	struct redrive_run rr = {0};
	struct run *r = &rr.r;
	struct wc_dlq_pass_opts po = {
	    .window = WINDOW, .confirm_ms = CONFIRM_MS, .stop = &stop};
	struct wc_dlq_result res;
	struct wc_dlq_conn c;
	wc_dlq_visit_fn fn;
	struct sigaction sa = {.sa_handler = on_signal};
	int rc;

	if (parse(argc, argv, &o, &src) != 0)
		return 2;
	r->o = &o;
	po.rate = o.rate;
	fn = o.cmd == LS        ? visit_ls
	     : o.cmd == SHOW    ? visit_show
	     : o.cmd == REDRIVE ? visit_redrive
	                        : visit_purge;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (wc_dlq_connect(&c, &src, err, sizeof(err)) < 0) {
		fprintf(stderr, "warrenctl dlq: %s\n", err);
		return 1;
	}
	rc = wc_dlq_pass(&c, o.queue, &po, fn, &rr, &res, err, sizeof(err));
	wc_dlq_disconnect(&c);
	if (rc < 0)
		fprintf(stderr,
		        "warrenctl dlq: %s (what was not moved or removed "
		        "stays in %s)\n",
		        err, o.queue);
	if (rc < 0 && res.scanned == 0)
		return 1;
	switch (o.cmd) {
	case LS:
		if (rc < 0)
			printf("%s: the pass was cut after %ld dead-letters "
			       "(counts below are partial)\n",
			       o.queue, res.scanned);
		else
			printf("%s: %ld dead-letters (read and given back in "
			       "order: the queue is as it was)\n",
			       o.queue, res.scanned);
		printf("failed: oldest ");
		print_time(r->timed ? r->oldest : -1);
		printf(", newest ");
		print_time(r->timed ? r->newest : -1);
		putchar('\n');
		tally_print(&r->reason, "reason");
		tally_print(&r->type, "type");
		tally_print(&r->handler, "plugin/handler");
		tally_print(&r->queue, "original queue");
		break;
	case SHOW:
		printf("shown %ld matching of %ld scanned\n", r->shown,
		       res.scanned);
		break;
	case REDRIVE:
		if (o.dry_run)
			printf("dry run: would move %ld of %ld scanned "
			       "(%ld without a target)\n",
			       r->matched - r->skipped, res.scanned,
			       r->skipped);
		else
			printf("redrive: moved %ld, matching %ld, not moved "
			       "%ld (no target %ld, not confirmed %ld), "
			       "scanned %ld\n",
			       res.moved, r->matched, r->matched - res.moved,
			       r->skipped, res.failed, res.scanned);
		break;
	case PURGE:
		printf("purge: removed %ld, matching %ld, scanned %ld\n",
		       res.deleted, r->matched, res.scanned);
		break;
	}
	if (res.interrupted)
		fprintf(stderr, "warrenctl dlq: interrupted\n");
	if (rc < 0 || res.interrupted || res.failed || r->skipped)
		return 1;
	if (o.cmd == REDRIVE && !o.dry_run && res.moved != r->matched)
		return 1;
	return 0;
}
