/*
 * wr-baseline URL QUEUE COUNT PREFETCH ACKMODE
 *
 * The yardstick for warrend's throughput: a bare rabbitmq-c consumer doing
 * the same per-message work as warrend's hot path (parse the JSON body, read
 * its string field "type", ack) on one connection and one channel.
 *
 * ACKMODE is "each" (one basic.ack per message), "multi" (one multiple-ack
 * per 100 messages, plus one for the final partial batch) or "raw" (as
 * multi, without the JSON parse: what the broker can deliver to one
 * consumer, the limit any consumer of this machine is measured against)
 * or "latency" (as multi, and also notes how long ago each message was
 * published, from its x-warren-published-us header: warren-load's
 * microseconds of CLOCK_REALTIME; prints a second line,
 *
 *     baseline latency: p50 A us, p99 B us, max C us
 *
 * the floor that warrend's latency is measured against).
 *
 * The clock starts at the first delivery and stops once the ack covering the
 * COUNT-th message is sent. Prints exactly one line on stdout:
 *
 *     baseline: N messages in S.SSSSSS s (R msg/s)
 *
 * Exits non-zero on any error, or when COUNT messages do not arrive within
 * TIMEOUT_S seconds.
 */
#include "wr_bench.h"

#include <jansson.h>

#define TIMEOUT_S   300
#define MULTI_BATCH 100

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The x-warren-published-us header of p, or -1. */
static int64_t published_us(const amqp_basic_properties_t *p)
{
	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return -1;
	for (int i = 0; i < p->headers.num_entries; i++) {
		const amqp_table_entry_t *e = &p->headers.entries[i];
		if (e->key.len == 21 &&
		    memcmp(e->key.bytes, "x-warren-published-us", 21) == 0 &&
		    e->value.kind == AMQP_FIELD_KIND_I64)
			return e->value.value.i64;
	}
	return -1;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	wr_prog = "wr-baseline";
	if (argc != 6) {
		fprintf(stderr, "usage: wr-baseline URL QUEUE COUNT PREFETCH "
		                "each|multi|raw|latency\n");
		return 2;
	}
	const char *url = argv[1], *queue = argv[2];
	unsigned long count = wr_arg_ulong(argv[3], "COUNT", 1, 100000000UL);
	uint16_t prefetch =
	    (uint16_t)wr_arg_ulong(argv[4], "PREFETCH", 1, 65535);
	int multi, parse = 1, latency = 0;
	int64_t *lat = NULL;
	unsigned long nlat = 0;
	if (strcmp(argv[5], "each") == 0)
		multi = 0;
	else if (strcmp(argv[5], "multi") == 0)
		multi = 1;
	else if (strcmp(argv[5], "raw") == 0)
		multi = 1, parse = 0;
	else if (strcmp(argv[5], "latency") == 0)
		multi = 1, latency = 1;
	else
		wr_die("ACKMODE must be 'each', 'multi', 'raw' or 'latency', "
		       "got '%s'",
		       argv[5]);
	if (latency && (lat = calloc(count, sizeof(*lat))) == NULL)
		wr_die("out of memory for %lu latencies", count);

	amqp_connection_state_t c = wr_connect(url);
	amqp_basic_qos(c, 1, 0, prefetch, 0);
	wr_check_reply(c, "basic.qos");
	amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0,
	                   0, 0, amqp_empty_table);
	wr_check_reply(c, "basic.consume");

	unsigned long received = 0, pending = 0, wrong_type = 0;
	double t0 = 0, t1 = 0, deadline = wr_now() + TIMEOUT_S;
	while (received < count) {
		amqp_envelope_t env;
		struct timeval tv = {.tv_sec = 1, .tv_usec = 0};
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);

		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT) {
			if (wr_now() > deadline)
				wr_die("timed out after %d s: got %lu of %lu "
				       "messages",
				       TIMEOUT_S, received, count);
			continue;
		}
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			/* Not a delivery: read the method that is waiting. */
			amqp_frame_t f;
			wr_check_status(amqp_simple_wait_frame(c, &f),
			                "reading frame");
			if (f.frame_type == AMQP_FRAME_METHOD &&
			    (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			     f.payload.method.id ==
			         AMQP_CONNECTION_CLOSE_METHOD))
				wr_die(
				    "broker closed the %s after %lu messages",
				    f.payload.method.id ==
				            AMQP_CHANNEL_CLOSE_METHOD
				        ? "channel"
				        : "connection",
				    received);
			continue;
		}
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			char buf[256];
			wr_die("consume: %s", wr_reply_str(r, buf, sizeof buf));
		}

		if (received == 0)
			t0 = wr_now();
		received++;
		if (latency) {
			int64_t at = published_us(&env.message.properties);
			if (at >= 0)
				lat[nlat++] = wall_us() - at;
		}

		/* The work warrend does per message: parse, find the type. */
		if (parse) {
			json_error_t jerr;
			json_t *root =
			    json_loadb(env.message.body.bytes,
			               env.message.body.len, 0, &jerr);
			if (root == NULL)
				wr_die("message %lu is not JSON: %s", received,
				       jerr.text);
			const char *type =
			    json_string_value(json_object_get(root, "type"));
			if (type == NULL)
				wr_die("message %lu has no string field "
				       "\"type\"",
				       received);
			if (strcmp(type, "bench:noop") != 0)
				wrong_type++;
			json_decref(root);
		}

		uint64_t tag = env.delivery_tag;
		amqp_destroy_envelope(&env);
		if (!multi) {
			wr_check_status(amqp_basic_ack(c, 1, tag, 0),
			                "basic.ack");
		} else if (++pending == MULTI_BATCH || received == count) {
			wr_check_status(amqp_basic_ack(c, 1, tag, 1),
			                "basic.ack multiple");
			pending = 0;
		}
	}
	t1 = wr_now();

	if (wrong_type > 0)
		fprintf(stderr,
		        "wr-baseline: warning: %lu messages had a type other "
		        "than bench:noop\n",
		        wrong_type);
	double dt = t1 - t0;
	printf("baseline: %lu messages in %.6f s (%.0f msg/s)\n", count, dt,
	       dt > 0 ? (double)count / dt : 0.0);
	if (nlat > 0) {
		qsort(lat, nlat, sizeof(*lat), cmp_i64);
		printf("baseline latency: p50 %lld us, p99 %lld us, max %lld "
		       "us\n",
		       (long long)lat[(nlat - 1) / 2],
		       (long long)lat[(nlat - 1) * 99 / 100],
		       (long long)lat[nlat - 1]);
	}
	free(lat);
	fflush(stdout);
	wr_close(c);
	return 0;
}
