/*
 * wr_bench.h - small helpers shared by the benchmark tools (wr-fill,
 * wr-baseline): connect from a URL, report broker errors, a monotonic clock.
 * Header-only on purpose: each tool is one .c file plus this.
 */
#ifndef WR_BENCH_H
#define WR_BENCH_H

#include "base/amqp_compat.h" /* <amqp.h> (0.11) or <rabbitmq-c/amqp.h> */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

/* Seconds allowed for the TCP connect and for every broker RPC. */
#define WR_RPC_TIMEOUT_S 30

static const char *wr_prog = "wr-bench";

static void wr_die(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));
static void wr_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", wr_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static double wr_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A readable description of an RPC reply; "" when it is normal. */
static const char *wr_reply_str(amqp_rpc_reply_t r, char *buf, size_t len)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return "";
	case AMQP_RESPONSE_NONE:
		return "missing RPC reply";
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		return amqp_error_string2(r.library_error);
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			const amqp_connection_close_t *m = r.reply.decoded;
			snprintf(
			    buf, len, "connection closed by broker: %u %.*s",
			    (unsigned)m->reply_code, (int)m->reply_text.len,
			    (const char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			const amqp_channel_close_t *m = r.reply.decoded;
			snprintf(buf, len, "channel closed by broker: %u %.*s",
			         (unsigned)m->reply_code,
			         (int)m->reply_text.len,
			         (const char *)m->reply_text.bytes);
		} else {
			snprintf(buf, len, "unexpected server method 0x%08x",
			         (unsigned)r.reply.id);
		}
		return buf;
	}
	return "unknown reply type";
}

static void wr_check_reply(amqp_connection_state_t c, const char *what)
{
	char buf[256];
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		wr_die("%s: %s", what, wr_reply_str(r, buf, sizeof buf));
}

static void wr_check_status(int status, const char *what)
{
	if (status < 0)
		wr_die("%s: %s", what, amqp_error_string2(status));
}

/* Connect to an amqp:// URL, log in and open channel 1. Exits on error. */
static amqp_connection_state_t wr_connect(const char *url)
{
	struct amqp_connection_info ci;
	char *copy = strdup(url);
	if (copy == NULL)
		wr_die("out of memory");
	if (amqp_parse_url(copy, &ci) != AMQP_STATUS_OK)
		wr_die("cannot parse AMQP URL '%s'", url);
	if (ci.ssl)
		wr_die("amqps:// is not supported by the benchmark tools");

	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (c == NULL || s == NULL)
		wr_die("out of memory");
	struct timeval tv = {.tv_sec = WR_RPC_TIMEOUT_S, .tv_usec = 0};
	wr_check_status(amqp_socket_open_noblock(s, ci.host, ci.port, &tv),
	                "connect");
	wr_check_status(amqp_set_rpc_timeout(c, &tv), "set rpc timeout");

	char buf[256];
	amqp_rpc_reply_t r =
	    amqp_login(c, ci.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
	               ci.user, ci.password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		wr_die("login to %s:%d as %s: %s", ci.host, ci.port, ci.user,
		       wr_reply_str(r, buf, sizeof buf));
	amqp_channel_open(c, 1);
	wr_check_reply(c, "channel.open");
	free(copy);
	return c;
}

static void wr_close(amqp_connection_state_t c)
{
	/* Best effort: the numbers are already printed. */
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

/* Parse an integer argument in min..max or exit. */
static unsigned long wr_arg_ulong(const char *s, const char *name,
                                  unsigned long min, unsigned long max)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);
	if (*s < '0' || *s > '9' || *end != '\0' || v < min || v > max)
		wr_die("%s must be an integer in %lu..%lu, got '%s'", name, min,
		       max, s);
	return v;
}

#endif /* WR_BENCH_H */
