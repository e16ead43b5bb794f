/* The fault-injection proxy itself: it forwards an AMQP connection byte
 * for byte (small and multi-frame messages), freeze_down holds the
 * broker's answers without losing them while the client's bytes still
 * reach the broker, and cut drops connections the client notices at once,
 * after which new ones go through. Every wait is bounded: frames are read
 * with amqp_simple_wait_frame_noblock, RPCs under a 5 s rpc timeout. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"
#include "it_proxy.h"

#define WAIT_MS 5000

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* it_connect(), through the URL given (the proxy's), under a 5 s rpc
 * timeout so a broken proxy fails the test instead of hanging it. */
static amqp_connection_state_t connect_to(const char *url)
{
	char *u = strdup(url);
	struct amqp_connection_info info;
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	struct timeval tv = {WAIT_MS / 1000, 0};
	amqp_rpc_reply_t r;

	cr_assert(amqp_parse_url(u, &info) == AMQP_STATUS_OK);
	cr_assert(amqp_socket_open_noblock(s, info.host, info.port, &tv) ==
	              AMQP_STATUS_OK,
	          "cannot connect to %s", url);
	amqp_set_rpc_timeout(c, &tv);
	r = amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
	               info.user, info.password);
	cr_assert(r.reply_type == AMQP_RESPONSE_NORMAL, "login via %s failed",
	          url);
	amqp_channel_open(c, 1);
	cr_assert(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL);
	free(u);
	return c;
}

/* queue.declare; passive only checks the queue exists. NULL on failure. */
static amqp_queue_declare_ok_t *declare(amqp_connection_state_t c,
                                        const char *q, bool passive)
{
	return amqp_queue_declare(c, 1, amqp_cstring_bytes(q), passive, 0, 0, 0,
	                          amqp_empty_table);
}

static int wait_open(const struct it_proxy *p, int n, int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	int seen;
	while ((seen = it_proxy_open(p)) != n && it_now_ms() < end)
		nap_ms(10);
	return seen;
}

/* The next frame, waiting at most ms. */
static int next_frame(amqp_connection_state_t c, amqp_frame_t *f, int ms)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	return amqp_simple_wait_frame_noblock(c, f, &tv);
}

/* basic.get with no_ack, sent without waiting for the answer (an RPC that
 * times out makes rabbitmq-c close its socket; freeze needs the connection
 * to survive the wait). */
static void send_get(amqp_connection_state_t c, const char *q)
{
	amqp_basic_get_t m = {
	    .ticket = 0, .queue = amqp_cstring_bytes(q), .no_ack = 1};
	cr_assert_eq(amqp_send_method(c, 1, AMQP_BASIC_GET_METHOD, &m),
	             AMQP_STATUS_OK);
}

/* Wait for basic.get-ok (failing on get-empty or anything else) and read
 * the header and body frames that follow: a malloc'd body, *len set. */
static char *read_got(amqp_connection_state_t c, size_t *len)
{
	amqp_frame_t f;
	char *body;
	size_t want, got = 0;

	cr_assert_eq(next_frame(c, &f, WAIT_MS), AMQP_STATUS_OK,
	             "no answer to basic.get");
	cr_assert(f.frame_type == AMQP_FRAME_METHOD && f.channel == 1 &&
	              f.payload.method.id == AMQP_BASIC_GET_OK_METHOD,
	          "not a basic.get-ok (frame type %d, method 0x%x)",
	          f.frame_type, f.payload.method.id);
	cr_assert_eq(next_frame(c, &f, WAIT_MS), AMQP_STATUS_OK);
	cr_assert_eq(f.frame_type, AMQP_FRAME_HEADER);
	want = (size_t)f.payload.properties.body_size;
	body = malloc(want + 1);
	cr_assert(body);
	while (got < want) {
		cr_assert_eq(next_frame(c, &f, WAIT_MS), AMQP_STATUS_OK,
		             "body cut short at %zu of %zu bytes", got, want);
		cr_assert_eq(f.frame_type, AMQP_FRAME_BODY);
		cr_assert_leq(got + f.payload.body_fragment.len, want);
		memcpy(body + got, f.payload.body_fragment.bytes,
		       f.payload.body_fragment.len);
		got += f.payload.body_fragment.len;
	}
	body[want] = '\0';
	*len = want;
	amqp_maybe_release_buffers(c);
	return body;
}

static struct it_proxy *start_proxy(char **url)
{
	if (!it_url_is_loopback())
		cr_skip_test("the proxy forwards to 127.0.0.1 only; the "
		             "broker (%s) is elsewhere",
		             it_url());
	struct it_proxy *p = it_proxy_start(it_url_port());
	cr_assert_gt(it_proxy_port(p), 0);
	*url = it_proxy_url(p);
	return p;
}

Test(proxy, forwards_declare_publish_get)
{
	char q[128], *url, *got;
	size_t len, big_len = 1024 * 1024;
	struct it_proxy *p = start_proxy(&url);
	char *big = malloc(big_len);

	/* Several frames at frame_max 128 KiB, more than the proxy's 64 KiB
	 * buffer each way: exercises partial writes and buffer reuse. */
	cr_assert(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (char)('a' + (i * 7 + i / 977) % 26);

	amqp_connection_state_t c = connect_to(url);
	cr_assert_eq(it_proxy_accepted(p), 1);
	cr_assert_eq(it_proxy_open(p), 1);
	it_unique(q, sizeof(q), "px.fwd");
	cr_assert(declare(c, q, false), "queue.declare via the proxy failed");
	it_publish_str(c, "", q, "{\"n\":1}");
	it_publish(c, "", q, big, big_len, NULL);

	send_get(c, q);
	got = read_got(c, &len);
	cr_assert_str_eq(got, "{\"n\":1}");
	free(got);
	send_get(c, q);
	got = read_got(c, &len);
	cr_assert_eq(len, big_len);
	cr_assert(memcmp(got, big, big_len) == 0, "big body corrupted");
	free(got);

	cr_assert(amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0));
	it_close(c);
	/* A clean close passes through: both sides end, the proxy lets go. */
	cr_assert_eq(wait_open(p, 0, WAIT_MS), 0);
	cr_assert_eq(it_proxy_accepted(p), 1);
	it_proxy_stop(p);
	free(url);
	free(big);
}

Test(proxy, freeze_down_holds_answers_until_resumed)
{
	char q[128], *url, *got;
	size_t len;
	amqp_frame_t f;
	struct it_proxy *p = start_proxy(&url);

	amqp_connection_state_t c = connect_to(url);
	it_unique(q, sizeof(q), "px.frz");
	cr_assert(declare(c, q, false));
	it_publish_str(c, "", q, "held");
	cr_assert_eq(it_wait_queue(q, 1, WAIT_MS), 1);

	it_proxy_freeze_down(p, true);
	send_get(c, q);
	int64_t t0 = it_now_ms();
	cr_assert_eq(next_frame(c, &f, 500), AMQP_STATUS_TIMEOUT,
	             "an answer got through a frozen proxy");
	cr_assert_geq(it_now_ms() - t0, 450);
	/* Client->broker still flows: the broker served the get (no_ack),
	 * the queue is empty, only its answer is held. */
	cr_assert_eq(it_wait_queue(q, 0, WAIT_MS), 0);

	/* A connection accepted while frozen is not frozen. */
	amqp_connection_state_t c2 = connect_to(url);
	cr_assert(declare(c2, q, true), "a new connection was frozen too");
	it_close(c2);
	cr_assert_eq(it_proxy_accepted(p), 2);

	it_proxy_freeze_down(p, false);
	got = read_got(c, &len);
	cr_assert_str_eq(got, "held", "the held answer was lost or changed");
	free(got);
	/* The connection works again both ways. */
	it_publish_str(c, "", q, "again");
	send_get(c, q);
	got = read_got(c, &len);
	cr_assert_str_eq(got, "again");
	free(got);

	/* Freeze, then resume before anything was asked: nothing is lost or
	 * duplicated either. */
	it_proxy_freeze_down(p, true);
	it_proxy_freeze_down(p, false);
	cr_assert(declare(c, q, true));

	cr_assert(amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0));
	it_close(c);
	cr_assert_eq(wait_open(p, 0, WAIT_MS), 0);
	it_proxy_stop(p);
	free(url);
}

Test(proxy, cut_drops_connections_and_accepts_new_ones)
{
	char q[128], *url;
	struct it_proxy *p = start_proxy(&url);

	amqp_connection_state_t c = connect_to(url);
	amqp_connection_state_t c2 = connect_to(url);
	it_unique(q, sizeof(q), "px.cut");
	cr_assert(declare(c, q, false));
	cr_assert_eq(it_proxy_open(p), 2);

	it_proxy_cut(p);
	/* Both connections gone at once (wait bounded, though cut only
	 * returns once they are closed). */
	cr_assert_eq(wait_open(p, 0, WAIT_MS), 0);
	int64_t t0 = it_now_ms();
	cr_assert_null(declare(c, q, true),
	               "a call on a cut connection worked");
	cr_assert_eq(amqp_get_rpc_reply(c).reply_type,
	             AMQP_RESPONSE_LIBRARY_EXCEPTION);
	cr_assert_null(declare(c2, q, true));
	/* Noticed as a drop, not as the rpc timeout running out. */
	cr_assert_lt(it_now_ms() - t0, 2000);
	amqp_destroy_connection(c);
	amqp_destroy_connection(c2);

	/* New connections go through as usual. */
	c = connect_to(url);
	cr_assert(declare(c, q, true), "a new connection after a cut failed");
	cr_assert_eq(it_proxy_accepted(p), 3);
	cr_assert_eq(it_proxy_open(p), 1);

	/* Stop with a connection still open: it is closed (and freed, which
	 * the sanitizer build checks). */
	it_proxy_stop(p);
	cr_assert_null(declare(c, q, true));
	amqp_destroy_connection(c);
	it_delete_queue(q);
	cr_assert_eq(it_queue_ready(q), -1);
	free(url);
}

Test(proxy, url_points_at_the_proxy)
{
	char *url;
	struct it_proxy *p = start_proxy(&url);
	char want[64];
	struct amqp_connection_info info;
	char *u = strdup(url);

	snprintf(want, sizeof(want), "127.0.0.1:%d", it_proxy_port(p));
	cr_assert(strstr(url, want), "%s lacks %s", url, want);
	cr_assert(amqp_parse_url(u, &info) == AMQP_STATUS_OK);
	cr_assert_eq(info.port, it_proxy_port(p));
	cr_assert_neq(info.port, it_url_port());
	free(u);
	it_proxy_stop(p);
	free(url);
}
