/* fetch.c - a minimal HTTP GET for warrenctl. */
#include "fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "http://HOST:PORT[/...]" into host and port. */
static int parse_url(const char *url, char *host, size_t hlen, char *port,
                     size_t plen)
{
	const char *h, *c, *end;

	if (strncmp(url, "http://", 7) != 0)
		return -1;
	h = url + 7;
	end = h + strcspn(h, "/");
	if (*h == '[') { /* [IPv6]:PORT */
		const char *rb = memchr(h, ']', (size_t)(end - h));
		if (!rb || rb[1] != ':' || rb + 2 == end ||
		    (size_t)(rb - h - 1) >= hlen ||
		    (size_t)(end - rb - 2) >= plen)
			return -1;
		snprintf(host, hlen, "%.*s", (int)(rb - h - 1), h + 1);
		snprintf(port, plen, "%.*s", (int)(end - rb - 2), rb + 2);
		return 0;
	}
	c = memchr(h, ':', (size_t)(end - h));
	if (!c || c == h || c + 1 == end || (size_t)(c - h) >= hlen ||
	    (size_t)(end - c - 1) >= plen)
		return -1;
	snprintf(host, hlen, "%.*s", (int)(c - h), h);
	snprintf(port, plen, "%.*s", (int)(end - c - 1), c + 1);
	return 0;
}

/* A connect bounded by the deadline; the fd (blocking again) or -1. */
static int connect_one(const struct addrinfo *a, long long end, char *why,
                       size_t whylen)
{
	int fd = socket(a->ai_family,
	                SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0),
	    err = 0;
	socklen_t len = sizeof(err);
	struct pollfd p;

	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			snprintf(why, whylen, "%s", strerror(errno));
			close(fd);
			return -1;
		}
		p = (struct pollfd){.fd = fd, .events = POLLOUT};
		long long left = end - now_ms();
		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			snprintf(why, whylen, "connect timed out");
			close(fd);
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 ||
		    err) {
			snprintf(why, whylen, "%s",
			         strerror(err ? err : errno));
			close(fd);
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

int wc_fetch(const char *url, const char *path, int timeout_ms, char **body,
             char *why, size_t whylen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
	                         .ai_socktype = SOCK_STREAM},
	                *ai = NULL;
	char host[256], port[16], req[512], *out = NULL, *b;
	long long end = now_ms() + timeout_ms;
	size_t len = 0;
	FILE *f;
	int fd = -1, status = 0, rc;

	*body = NULL;
	if (parse_url(url, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(why, whylen, "%s is not http://HOST:PORT", url);
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(why, whylen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	/* Every address the name has (localhost: ::1 and 127.0.0.1), each
	 * within what is left of the timeout. */
	for (struct addrinfo *i = ai; i && fd < 0; i = i->ai_next)
		fd = connect_one(i, end, why, whylen);
	freeaddrinfo(ai);
	if (fd < 0) {
		char cause[200];
		snprintf(cause, sizeof(cause), "%s", why);
		snprintf(why, whylen, "connect %s:%s: %s", host, port, cause);
		return -1;
	}
	snprintf(req, sizeof(req),
	         "GET %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: warrenctl\r\n\r\n",
	         path, host);
	if (write(fd, req, strlen(req)) != (ssize_t)strlen(req)) {
		snprintf(why, whylen, "write: %s", strerror(errno));
		close(fd);
		return -1;
	}
	f = open_memstream(&out, &len);
	if (!f) {
		close(fd);
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		long long left = end - now_ms();
		char buf[8192];
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
			snprintf(why, whylen, "no answer within %d ms",
			         timeout_ms);
			status = -1;
			break;
		}
		r = read(fd, buf, sizeof(buf));
		if (r < 0) {
			snprintf(why, whylen, "read: %s", strerror(errno));
			status = -1;
			break;
		}
		if (r == 0)
			break;
		fwrite(buf, 1, (size_t)r, f);
	}
	close(fd);
	fclose(f);
	if (status == 0 &&
	    (!out || sscanf(out, "HTTP/1.%*d %d", &status) != 1)) {
		snprintf(why, whylen, "not an HTTP answer");
		status = -1;
	}
	b = status > 0 && out ? strstr(out, "\r\n\r\n") : NULL;
	if (status > 0)
		*body = strdup(b ? b + 4 : "");
	free(out);
	return status;
}
