/* fuzz_http.c - a request to the metrics endpoint (observe/http.c, on
 * libmicrohttpd), as whoever reaches its port may send it: the bytes go
 * as they are over a loopback connection to the real server (its own
 * thread, its limits), what it answers is read, and the connection is
 * reset. warren's handler and what it serves (/metrics, /healthz,
 * /readyz, /status) run under the sanitizers; every 256 inputs a plain
 * GET /healthz must still be answered, or the input that stopped the
 * server fails.
 *
 * Input: the raw request bytes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "fuzz.h"
#include "observe/http.h"

static struct wd_http *server;
static bool head_request; /* the input's first request is a HEAD */
static struct sockaddr_in addr;

static void stop_server(void)
{
	wd_http_stop(server);
	server = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	(void)argc;
	(void)argv;
	wd_log_set_level(WD_LOG_ERROR);
	server = wd_http_start("127.0.0.1:0", err, sizeof(err));
	if (!server)
		abort();
	atexit(stop_server);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)wd_http_port(server));
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return 0;
}

/* A connection with `data` sent and our side shut, or -1. */
static int send_request(const uint8_t *data, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	size_t off = 0;

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		close(fd);
		return -1;
	}
	while (off < size) {
		ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL);
		if (w <= 0)
			break; /* refused mid-way (a limit): read its answer */
		off += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	return fd;
}

/* The first `what` in buf[0..n), or NULL. */
static const char *find(const char *buf, size_t n, const char *what)
{
	size_t w = strlen(what);

	for (size_t i = 0; i + w <= n; i++)
		if (memcmp(buf + i, what, w) == 0)
			return buf + i;
	return NULL;
}

/* Whether buf holds a whole answer: its headers and, if it says how
 * long, its body (an answer to HEAD has none: its headers do). */
static bool whole(const char *buf, size_t n)
{
	const char *end = find(buf, n, "\r\n\r\n"), *cl;
	size_t hlen;

	if (!end)
		return false;
	hlen = (size_t)(end - buf) + 4;
	cl = find(buf, hlen, "Content-Length: ");
	if (!cl || head_request)
		return true;
	return n >= hlen + strtoul(cl + 16, NULL, 10);
}

/* Read what comes: until the server closes, `first_ms` without a byte, a
 * whole answer, or 20 ms of quiet after a part of one (a kept-alive
 * connection stays open: libmicrohttpd waits for the next request even
 * after our half-close). Returns the bytes read; the first 8 in head. */
static size_t read_answer(int fd, int first_ms, char head[9])
{
	static char buf[65536];
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t got = 0;
	ssize_t r;

	while (got < sizeof(buf) && poll(&p, 1, got ? 20 : first_ms) > 0 &&
	       (r = read(fd, buf + got, sizeof(buf) - got)) > 0) {
		got += (size_t)r;
		if (whole(buf, got))
			break;
	}
	memcpy(head, buf, got < 8 ? got : 8);
	head[got < 8 ? got : 8] = '\0';
	return got;
}

/* Close with a reset: the server frees the connection at once instead of
 * holding it to its idle timeout (10 s, 64 at most). */
static void reset(int fd)
{
	struct linger l = {.l_onoff = 1, .l_linger = 0};

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char probe[] = "GET /healthz HTTP/1.0\r\n\r\n";
	static unsigned runs;
	char head[9];
	int fd = send_request(data, size);

	head_request = size >= 5 && memcmp(data, "HEAD ", 5) == 0;
	if (fd >= 0) {
		(void)read_answer(fd, 10, head);
		reset(fd);
	}
	if (++runs % 256 == 0) {
		head_request = false;
		fd = send_request((const uint8_t *)probe, sizeof(probe) - 1);
		if (fd < 0 || read_answer(fd, 5000, head) == 0 ||
		    strncmp(head, "HTTP/1.", 7) != 0)
			__builtin_trap(); /* the server stopped answering */
		reset(fd);
	}
	return 0;
}
