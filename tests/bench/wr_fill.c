/*
 * wr-fill URL QUEUE COUNT [SIZE]
 *
 * Publish COUNT JSON messages of about SIZE bytes (default 200) to QUEUE via
 * the default exchange, for the benchmarks:
 *
 *     {"type":"bench:noop","id":N,"pad":"xxxx..."}
 *
 * The queue is used as it is if it exists (passive declare), otherwise
 * declared as a durable classic queue (with x-dead-letter-exchange set to
 * $WR_FILL_DLX if that is set). Messages are transient (speed) but
 * published with confirms: the broker has taken every message when wr-fill
 * exits 0. Confirms are waited for in windows so that at most two windows are
 * in flight.
 *
 * WR_FILL_RATE=R (messages per second) paces the publishes, a few per
 * millisecond, for a steady stream to a running consumer instead of a
 * burst (reload_pause.sh); unset or 0: as fast as confirms allow.
 *
 * COUNT 0 publishes nothing and prints "wr-fill: QUEUE holds M messages"
 * (ready messages, from queue.declare-ok): throughput.sh uses it to check
 * that a queue was drained, also on a broker it has no rabbitmqctl for.
 */
#include "wr_bench.h"

#include <stdint.h>

#define WINDOW 1000UL

struct confirms {
	unsigned char *done;  /* done[tag] != 0 once confirmed, tags 1..count */
	unsigned long lowest; /* every tag below this one is confirmed */
	unsigned long count;  /* confirmed so far */
	unsigned long max;
};

static void mark(struct confirms *cf, unsigned long tag, int multiple)
{
	if (tag == 0 || tag > cf->max)
		wr_die("broker confirmed unknown delivery tag %lu", tag);
	unsigned long from = multiple ? cf->lowest : tag;
	for (unsigned long t = from; t <= tag; t++) {
		if (!cf->done[t]) {
			cf->done[t] = 1;
			cf->count++;
		}
	}
	while (cf->lowest <= cf->max && cf->done[cf->lowest])
		cf->lowest++;
}

/* Read confirms until at least `target` messages are confirmed. */
static void wait_confirms(amqp_connection_state_t c, struct confirms *cf,
                          unsigned long target)
{
	while (cf->count < target) {
		amqp_frame_t f;
		struct timeval tv = {.tv_sec = WR_RPC_TIMEOUT_S, .tv_usec = 0};
		int st = amqp_simple_wait_frame_noblock(c, &f, &tv);
		if (st == AMQP_STATUS_TIMEOUT)
			wr_die("no publisher confirm within %d s (%lu of %lu "
			       "confirmed)",
			       WR_RPC_TIMEOUT_S, cf->count, target);
		wr_check_status(st, "waiting for publisher confirms");
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: {
			const amqp_basic_ack_t *a = f.payload.method.decoded;
			mark(cf, (unsigned long)a->delivery_tag, a->multiple);
			break;
		}
		case AMQP_BASIC_NACK_METHOD: {
			const amqp_basic_nack_t *n = f.payload.method.decoded;
			wr_die("broker nacked publish %lu",
			       (unsigned long)n->delivery_tag);
		}
		case AMQP_CHANNEL_CLOSE_METHOD: {
			const amqp_channel_close_t *m =
			    f.payload.method.decoded;
			wr_die("channel closed by broker: %u %.*s",
			       (unsigned)m->reply_code, (int)m->reply_text.len,
			       (const char *)m->reply_text.bytes);
		}
		case AMQP_CONNECTION_CLOSE_METHOD: {
			const amqp_connection_close_t *m =
			    f.payload.method.decoded;
			wr_die("connection closed by broker: %u %.*s",
			       (unsigned)m->reply_code, (int)m->reply_text.len,
			       (const char *)m->reply_text.bytes);
		}
		default:
			break; /* connection.blocked and the like: keep waiting
			        */
		}
	}
	amqp_maybe_release_buffers(c);
}

/* Use QUEUE if it exists, else declare it durable. Returns its ready count. */
static unsigned long ensure_queue(amqp_connection_state_t c, const char *queue)
{
	amqp_bytes_t q = amqp_cstring_bytes(queue);
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, q, 1, 0, 0, 0, amqp_empty_table);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (r.reply_type == AMQP_RESPONSE_NORMAL && ok != NULL)
		return ok->message_count;
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
	    r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
		wr_check_reply(c, "passive queue.declare");
	/* 404: the broker closed the channel. Acknowledge and reopen it. */
	amqp_channel_close_ok_t close_ok = {0};
	wr_check_status(
	    amqp_send_method(c, 1, AMQP_CHANNEL_CLOSE_OK_METHOD, &close_ok),
	    "channel.close-ok");
	amqp_channel_open(c, 1);
	wr_check_reply(c, "channel.open");
	/* WR_FILL_DLX: declare it as warrend will (a consumed queue has a
	 * dead-letter exchange), so warrend's declare is equivalent. */
	const char *dlx = getenv("WR_FILL_DLX");
	amqp_table_entry_t e = {
	    .key = amqp_cstring_bytes("x-dead-letter-exchange")};
	amqp_table_t args = amqp_empty_table;
	if (dlx && *dlx) {
		e.value.kind = AMQP_FIELD_KIND_UTF8;
		e.value.value.bytes = amqp_cstring_bytes(dlx);
		args = (amqp_table_t){.num_entries = 1, .entries = &e};
	}
	ok = amqp_queue_declare(c, 1, q, 0, 1, 0, 0, args);
	wr_check_reply(c, "queue.declare");
	return ok != NULL ? ok->message_count : 0;
}

/* Sleep until `at` (wr_now() time) if that is more than a millisecond
 * away: sleeps of a millisecond or more, so a fast rate goes out in small
 * bursts rather than a syscall per message. */
static void pace(double at)
{
	double d = at - wr_now();
	if (d < 0.001)
		return;
	struct timespec ts = {.tv_sec = (time_t)d,
	                      .tv_nsec = (long)((d - (double)(time_t)d) * 1e9)};
	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	wr_prog = "wr-fill";
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: wr-fill URL QUEUE COUNT [SIZE]\n");
		return 2;
	}
	const char *url = argv[1], *queue = argv[2];
	unsigned long count = wr_arg_ulong(argv[3], "COUNT", 0, 100000000UL);
	unsigned long size =
	    argc > 4 ? wr_arg_ulong(argv[4], "SIZE", 1, 64UL << 20) : 200;

	amqp_connection_state_t c = wr_connect(url);
	unsigned long ready = ensure_queue(c, queue);
	if (count == 0) {
		printf("wr-fill: %s holds %lu messages\n", queue, ready);
		wr_close(c);
		return 0;
	}
	amqp_confirm_select(c, 1);
	wr_check_reply(c, "confirm.select");

	char *body = malloc(size + 64);
	struct confirms cf = {
	    .done = calloc(count + 1, 1), .lowest = 1, .max = count};
	if (body == NULL || cf.done == NULL)
		wr_die("out of memory");

	amqp_basic_properties_t props = {
	    ._flags =
	        AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG,
	    .content_type = amqp_cstring_bytes("application/json"),
	    .delivery_mode = 1, /* transient */
	};
	amqp_bytes_t rk = amqp_cstring_bytes(queue);
	const char *rate_env = getenv("WR_FILL_RATE");
	unsigned long rate =
	    rate_env && *rate_env
	        ? wr_arg_ulong(rate_env, "WR_FILL_RATE", 0, 10000000UL)
	        : 0;

	double t0 = wr_now();
	for (unsigned long i = 1; i <= count; i++) {
		int n = snprintf(
		    body, 64, "{\"type\":\"bench:noop\",\"id\":%lu,\"pad\":\"",
		    i);
		size_t len = (size_t)n;
		size_t pad = size > len + 2 ? size - len - 2 : 0;
		memset(body + len, 'x', pad);
		len += pad;
		body[len++] = '"';
		body[len++] = '}';
		amqp_bytes_t b = {.len = len, .bytes = body};
		int st = amqp_basic_publish(c, 1, amqp_empty_bytes, rk, 0, 0,
		                            &props, b);
		wr_check_status(st, "basic.publish");
		if (i % WINDOW == 0)
			wait_confirms(c, &cf, i - WINDOW);
		if (rate > 0)
			pace(t0 + (double)i / (double)rate);
	}
	wait_confirms(c, &cf, count);
	double dt = wr_now() - t0;

	printf("wr-fill: published %lu messages to %s in %.3f s (%.0f msg/s)\n",
	       count, queue, dt, dt > 0 ? (double)count / dt : 0.0);
	free(cf.done);
	free(body);
	wr_close(c);
	return 0;
}
