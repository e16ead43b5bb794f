/* stream.c - see stream.h. Every wait is bounded. */
#define _GNU_SOURCE /* memmem() */
#include "stream.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Attempts told apart in the tally: a quorum queue counts redeliveries as
 * attempts too, so a message can go past its last planned one. */
#define MAXA 8

/* Unconfirmed publishes before the stream waits for confirms. */
#define WINDOW 2000
/* The confirms of the last publishes are waited for this long. */
#define DRAIN_MS 15000

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int stream_last_attempt(const struct stream *s, int id)
{
	return s->retry_every > 0 && id % s->retry_every == 0 ? 3 : 1;
}

/* ---- the publisher ------------------------------------------------------- */

struct pending {
	uint64_t seq;
	int id;
};

struct pub {
	struct stream *s;
	amqp_connection_state_t c;
	int next_url;
	uint64_t seq; /* the channel's publishes, from 1 */
	struct pending ring[WINDOW];
	size_t head, n;
};

static amqp_connection_state_t connect_url(const char *url)
{
	struct amqp_connection_info info;
	struct timeval tv = {2, 0};
	char *copy = strdup(url);
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *sock = amqp_tcp_socket_new(c);
	bool ok = false;

	amqp_default_connection_info(&info);
	if (copy && sock && amqp_parse_url(copy, &info) == AMQP_STATUS_OK &&
	    amqp_socket_open_noblock(sock, info.host, info.port, &tv) ==
	        AMQP_STATUS_OK) {
		tv.tv_sec = 5;
		amqp_set_rpc_timeout(c, &tv);
		ok =
		    amqp_login(c, info.vhost, 0, 131072, 0,
		               AMQP_SASL_METHOD_PLAIN, info.user, info.password)
		            .reply_type == AMQP_RESPONSE_NORMAL &&
		    amqp_channel_open(c, 1) &&
		    amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL &&
		    amqp_confirm_select(c, 1) &&
		    amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
	}
	free(copy);
	if (!ok) {
		amqp_destroy_connection(c);
		return NULL;
	}
	return c;
}

/* The connection is gone: what it had not confirmed is not sent. */
static void lost(struct pub *p)
{
	if (p->c)
		amqp_destroy_connection(p->c);
	p->c = NULL;
	p->n = p->head = 0;
	p->seq = 0;
	p->s->reconnects++;
	p->next_url++; /* the next address, as warrend does */
}

static void settle(struct pub *p, struct pending *e, bool ack)
{
	if (ack && e->id && !p->s->confirmed[e->id]) {
		p->s->confirmed[e->id] = 1;
		p->s->sent++;
	}
	e->id = 0; /* settled */
}

/* basic.ack or basic.nack of tag (and all before it if multiple): a
 * nack'ed message is not sent. */
static void confirmed(struct pub *p, uint64_t tag, bool multiple, bool ack)
{
	for (size_t i = 0; i < p->n; i++) {
		struct pending *e = &p->ring[(p->head + i) % WINDOW];
		if (e->seq > tag)
			break;
		if (multiple || e->seq == tag)
			settle(p, e, ack);
	}
	while (p->n > 0 && p->ring[p->head].id == 0) {
		p->head = (p->head + 1) % WINDOW;
		p->n--;
	}
}

/* Read what the broker sent, waiting at most ms. -1 if the connection
 * failed. */
static int read_confirms(struct pub *p, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	amqp_frame_t f;

	for (;;) {
		int rc = amqp_simple_wait_frame_noblock(p->c, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			return 0;
		if (rc != AMQP_STATUS_OK)
			return -1;
		tv = (struct timeval){0, 0};
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: {
			amqp_basic_ack_t *m = f.payload.method.decoded;
			confirmed(p, m->delivery_tag, m->multiple, true);
			break;
		}
		case AMQP_BASIC_NACK_METHOD: {
			amqp_basic_nack_t *m = f.payload.method.decoded;
			confirmed(p, m->delivery_tag, m->multiple, false);
			break;
		}
		case AMQP_CONNECTION_CLOSE_METHOD:
		case AMQP_CHANNEL_CLOSE_METHOD:
			return -1;
		default:
			break; /* connection.blocked and the like */
		}
		amqp_maybe_release_buffers(p->c);
	}
}

static int publish_one(struct pub *p, int id)
{
	char body[128];
	amqp_basic_properties_t props = {
	    ._flags =
	        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG,
	    .content_type = amqp_cstring_bytes("application/json"),
	    .delivery_mode = 2, /* persistent */
	};

	snprintf(body, sizeof(body), "{\"type\":\"flow\",\"id\":\"%d\"%s}", id,
	         stream_last_attempt(p->s, id) == 3 ? ",\"fail_until\":3" : "");
	if (amqp_basic_publish(p->c, 1, amqp_cstring_bytes(p->s->exchange),
	                       amqp_cstring_bytes("chaos"), 0, 0, &props,
	                       amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
		return -1;
	p->ring[(p->head + p->n) % WINDOW] =
	    (struct pending){.seq = ++p->seq, .id = id};
	p->n++;
	return 0;
}

static void *run(void *arg)
{
	struct stream *s = arg;
	struct pub p = {.s = s};
	int64_t end = it_now_ms() + s->duration_ms;
	double due = (double)it_now_ms(), interval = 1000.0 / s->rate;

	while (!atomic_load(&s->stop) && it_now_ms() < end &&
	       s->published < s->cap) {
		int64_t now = it_now_ms();
		if (!p.c) {
			p.c = connect_url(s->urls[p.next_url % s->nurls]);
			if (!p.c) {
				p.next_url++;
				nap_ms(100);
				continue;
			}
		}
		if (p.n >= WINDOW || (double)now < due) {
			int wait =
			    p.n >= WINDOW ? 100 : (int)(due - (double)now);
			if (read_confirms(&p, wait < 1 ? 1 : wait) < 0)
				lost(&p);
			continue;
		}
		if (publish_one(&p, s->published + 1) < 0) {
			lost(&p);
			continue;
		}
		s->published++;
		due += interval;
		/* A stall (a reconnect, an alarm) is not made up for in a
		 * burst: the rate starts again from now. */
		if (due < (double)(now - 1000))
			due = (double)now;
		if (read_confirms(&p, 0) < 0)
			lost(&p);
	}
	/* The confirms of the last ones. */
	for (int64_t stop = it_now_ms() + DRAIN_MS;
	     p.c && p.n > 0 && it_now_ms() < stop;)
		if (read_confirms(&p, 100) < 0)
			lost(&p);
	if (p.c)
		amqp_destroy_connection(p.c);
	return NULL;
}

void stream_start(struct stream *s)
{
	s->cap = s->rate * (s->duration_ms / 1000 + 2) + 16;
	s->confirmed = calloc((size_t)s->cap + 1, 1);
	cr_assert(s->confirmed);
	s->published = s->sent = s->reconnects = 0;
	atomic_init(&s->stop, false);
	cr_assert_eq(pthread_create(&s->thread, NULL, run, s), 0);
}

void stream_stop(struct stream *s)
{
	atomic_store(&s->stop, true);
}

void stream_join(struct stream *s)
{
	pthread_join(s->thread, NULL);
}

void stream_free(struct stream *s)
{
	free(s->confirmed);
	s->confirmed = NULL;
}

/* ---- the tally ----------------------------------------------------------- */

struct calls {
	int *n[MAXA +
	       1];   /* [attempt 1..MAXA][id]; later attempts count as MAXA */
	int64_t *at; /* handler-call times (ms since the epoch) */
	size_t nat, capat;
};

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Count the handler's calls in one log. */
static void read_log(struct calls *k, const char *log, int max_id)
{
	const char *needle = "flow id=";

	for (const char *p = strstr(log, needle); p;
	     p = strstr(p + 1, needle)) {
		int id = 0, attempt = 0;
		const char *bol = p;
		if (sscanf(p, "flow id=%d attempt=%d ", &id, &attempt) != 2 ||
		    id < 1 || id > max_id || attempt < 1)
			continue;
		if (attempt > MAXA)
			attempt = MAXA;
		k->n[attempt][id]++;
		while (bol > log && bol[-1] != '\n')
			bol--;
		if (k->nat == k->capat) {
			k->capat = k->capat ? k->capat * 2 : 4096;
			k->at = realloc(k->at, k->capat * sizeof(*k->at));
			cr_assert(k->at);
		}
		k->at[k->nat++] = it_line_ms(bol);
	}
}

/* Take what is in the dead-letter queue; mark its ids in dl. */
static int drain_dlq(const char *dlq, uint8_t *dl, int max_id)
{
	struct it_msg m;
	int n = 0;

	while (it_get_msg(dlq, &m)) {
		int id = 0;
		const char *at = memmem(m.body, m.len, "\"id\":\"", 6);
		if (at && sscanf(at + 6, "%d", &id) == 1 && id >= 1 &&
		    id <= max_id)
			dl[id] = 1;
		n++;
		it_msg_free(&m);
	}
	return n;
}

void tally_wait(struct tally *t, const struct stream *s,
                const struct it_daemon *const *d, int n, const char *dlq,
                int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	uint8_t *dl = calloc((size_t)s->published + 2, 1);
	int dead = 0;

	cr_assert(dl);
	for (;;) {
		struct calls k = {0};
		bool all = true;

		for (int a = 1; a <= MAXA; a++) {
			k.n[a] = calloc((size_t)s->published + 2, sizeof(int));
			cr_assert(k.n[a]);
		}
		for (int i = 0; i < n; i++) {
			char *log = it_log_read(d[i]);
			read_log(&k, log, s->published);
			free(log);
		}
		dead += drain_dlq(dlq, dl, s->published);
		memset(t, 0, sizeof(*t));
		t->sent = s->sent;
		t->dead_lettered = dead;
		for (int id = 1; id <= s->published; id++) {
			/* Acked: a call at its last planned attempt or after
			 * (a redelivery by a quorum queue counts as one). */
			bool done = false;
			for (int a = stream_last_attempt(s, id); a <= MAXA; a++)
				done = done || k.n[a][id] > 0;
			/* Calls past the planned ones: the same attempt again
			 * (a classic queue's redelivery), or one more (a quorum
			 * queue's, which counts as an attempt). */
			int calls = 0;
			for (int a = 1; a <= MAXA; a++)
				calls += k.n[a][id];
			if (calls > stream_last_attempt(s, id))
				t->twice += calls - stream_last_attempt(s, id);
			if (!s->confirmed[id])
				continue;
			if (done) {
				t->handled++;
			} else if (!dl[id]) {
				t->lost++;
				/* The first few, for whoever looks into it. */
				if (t->lost <= 10 && it_now_ms() >= end)
					fprintf(stderr,
					        "chaos: lost id %d (calls at "
					        "attempt 1, 2, 3: %d %d %d)\n",
					        id, k.n[1][id], k.n[2][id],
					        k.n[3][id]);
			}
		}
		all = t->lost == 0;
		if (k.nat > 1) {
			qsort(k.at, k.nat, sizeof(*k.at), cmp_i64);
			for (size_t i = 1; i < k.nat; i++)
				if (k.at[i] - k.at[i - 1] > t->gap_ms)
					t->gap_ms = k.at[i] - k.at[i - 1];
		}
		for (int a = 1; a <= MAXA; a++)
			free(k.n[a]);
		free(k.at);
		if (all || it_now_ms() >= end)
			break;
		nap_ms(500);
	}
	free(dl);
}

void tally_print(const struct tally *t, const char *name, int faults)
{
	char line[512];

	snprintf(line, sizeof(line),
	         "chaos %s: faults=%d sent=%d handled=%d twice=%d "
	         "dead_lettered=%d lost=%d gap_ms=%jd",
	         name, faults, t->sent, t->handled, t->twice, t->dead_lettered,
	         t->lost, (intmax_t)t->gap_ms);
	/* On stderr, where the suite's output is kept, and in the log. */
	fprintf(stderr, "%s\n", line);
	cr_log_info("%s", line);
}
