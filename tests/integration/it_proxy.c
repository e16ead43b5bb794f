/* it_proxy.c - see it_proxy.h.
 *
 * One thread runs a poll loop over the listening socket, a self-pipe and
 * the two non-blocking sockets of each connection (client side, broker
 * side), with one bounded buffer per direction. All state lives under one
 * mutex that the thread holds for everything but poll(): a control call
 * never runs in the middle of a read or write. A control call changes
 * flags, wakes the thread through the pipe and waits (bounded) until the
 * thread has been through the top of its loop once after the change, so
 * when the call returns its effect is in place (sockets of a cut are
 * closed; the poll set no longer reads a frozen broker side). */
#include "it_proxy.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

/* Per direction. 64 KiB holds several AMQP frames at the test's frame_max
 * (128 KiB messages go through in pieces, which the tests exercise). */
#define IT_PROXY_BUF 65536
/* Upper bound of one poll() (the pipe wakes it sooner) and of the wait a
 * control call makes for the thread. */
#define IT_PROXY_TICK_MS    250
#define IT_PROXY_SYNC_MS    5000
#define IT_PROXY_CONNECT_MS 2000

/* Sockets of a connection, and the directions between them: UP reads the
 * client and writes the broker, DOWN the other way. */
enum { SIDE_CLIENT, SIDE_BROKER };
enum { DIR_UP, DIR_DOWN };

struct it_flow {
	char buf[IT_PROXY_BUF];
	size_t off, len; /* buf[off, len) read from the source, not yet sent */
	bool eof;        /* the source sent FIN */
	bool shut;       /* and we passed it on (shutdown(SHUT_WR)) */
};

struct it_conn {
	int fd[2];
	struct it_flow flow[2];
	bool frozen; /* DOWN held: it_proxy_freeze_down */
	bool cut;    /* it_proxy_cut: close at the top of the next loop */
	bool dead;   /* an I/O error or both directions ended: close too */
	int nth;     /* accepted as the nth (1-based) */
	struct it_conn *next;
};

struct it_proxy {
	int lfd;
	int wake[2]; /* self-pipe: [1] written by control calls, [0] polled */
	int port, upstream_port;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when `done` moves */
	struct it_conn *conns;
	bool stop;
	/* Control calls made / seen by the thread: a caller waits for
	 * done >= its ticket. */
	unsigned long req, done;
	/* Written under mu, read without it (const accessors). */
	atomic_int open, accepted;
	atomic_bool
	    refusing; /* close what is accepted: a broker that is down */
};

static int side_from(int dir)
{
	return dir == DIR_UP ? SIDE_CLIENT : SIDE_BROKER;
}

static int side_to(int dir)
{
	return dir == DIR_UP ? SIDE_BROKER : SIDE_CLIENT;
}

static bool flows(const struct it_conn *c, int dir)
{
	return !(dir == DIR_DOWN && c->frozen);
}

static bool wants_read(const struct it_conn *c, int dir)
{
	const struct it_flow *f = &c->flow[dir];
	return flows(c, dir) && !f->eof && f->len < sizeof(f->buf);
}

static bool wants_write(const struct it_conn *c, int dir)
{
	return flows(c, dir) && c->flow[dir].off < c->flow[dir].len;
}

static bool would_block(void)
{
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static int set_nonblock_cloexec(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* AMQP is small frames back and forth: without NODELAY, Nagle on one hop
 * plus delayed ACKs on the other would add ~40 ms to RPCs. */
static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void wake_thread(struct it_proxy *p)
{
	/* EAGAIN: the pipe is full, so a wake-up is pending anyway. */
	if (write(p->wake[1], "w", 1) < 0 && errno != EAGAIN)
		fprintf(stderr, "it_proxy: wake: %s\n", strerror(errno));
}

/* Caller holds mu. Returns once the thread went through the top of its
 * loop after this call (or after IT_PROXY_SYNC_MS: a stuck thread shows up
 * as the test's next assertion failing, not as a hang). */
static void sync_with_thread(struct it_proxy *p)
{
	unsigned long ticket = ++p->req;
	struct timespec until;

	wake_thread(p);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += IT_PROXY_SYNC_MS / 1000;
	while (p->done < ticket && !p->stop)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &until) ==
		    ETIMEDOUT) {
			fprintf(stderr,
			        "it_proxy: thread did not answer "
			        "within %d ms\n",
			        IT_PROXY_SYNC_MS);
			break;
		}
}

/* A non-blocking socket connected to 127.0.0.1:port, or -1. The connect
 * is waited for here (loopback answers at once, refused or accepted), but
 * bounded in case it does not. */
static int connect_upstream(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), err = 0;
	socklen_t elen = sizeof(err);

	if (fd < 0)
		return -1;
	if (set_nonblock_cloexec(fd) < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		if (errno != EINPROGRESS ||
		    poll(&pfd, 1, IT_PROXY_CONNECT_MS) != 1 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 ||
		    err != 0)
			goto fail;
	}
	set_nodelay(fd);
	return fd;
fail:
	close(fd);
	return -1;
}

/* Thread, mu held. Accept what is pending and connect each to the broker. */
static void accept_all(struct it_proxy *p)
{
	/* Bounded per pass so a flood cannot starve the open connections. */
	for (int i = 0; i < 64; i++) {
		int cfd = accept(p->lfd, NULL, NULL);
		if (cfd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "it_proxy: accept: %s\n",
				        strerror(errno));
			return;
		}
		int nth = atomic_fetch_add(&p->accepted, 1) + 1;
		if (atomic_load(&p->refusing)) {
			close(cfd);
			continue;
		}
		int ufd = connect_upstream(p->upstream_port);
		struct it_conn *c = ufd >= 0 ? calloc(1, sizeof(*c)) : NULL;
		if (!c || set_nonblock_cloexec(cfd) < 0) {
			fprintf(stderr,
			        "it_proxy: cannot forward a connection "
			        "to 127.0.0.1:%d\n",
			        p->upstream_port);
			close(cfd);
			if (ufd >= 0)
				close(ufd);
			free(c);
			continue;
		}
		set_nodelay(cfd);
		c->fd[SIDE_CLIENT] = cfd;
		c->fd[SIDE_BROKER] = ufd;
		c->nth = nth;
		c->next = p->conns;
		p->conns = c;
		atomic_fetch_add(&p->open, 1);
	}
}

/* Thread, mu held. Move what one direction can move now. Reads only when
 * poll said the source is readable (or broken: then the read reports it);
 * writes whenever bytes wait (EAGAIN is cheap, and it saves a poll round
 * for bytes just read). */
static void pump(struct it_conn *c, int dir, short src_revents)
{
	struct it_flow *f = &c->flow[dir];
	int src = c->fd[side_from(dir)], dst = c->fd[side_to(dir)];
	ssize_t n;

	/* flows() is checked again here, not only when the poll set was
	 * built: a freeze that came during poll() holds from now on. */
	if (c->dead || !flows(c, dir))
		return;
	if (wants_read(c, dir) &&
	    (src_revents & (POLLIN | POLLHUP | POLLERR))) {
		n = recv(src, f->buf + f->len, sizeof(f->buf) - f->len, 0);
		if (n > 0)
			f->len += (size_t)n;
		else if (n == 0)
			f->eof = true;
		else if (!would_block()) {
			c->dead = true;
			return;
		}
	}
	if (f->off < f->len) {
		/* MSG_NOSIGNAL: a peer that went away is an error here, not a
		 * SIGPIPE that kills the test. */
		n = send(dst, f->buf + f->off, f->len - f->off, MSG_NOSIGNAL);
		if (n > 0)
			f->off += (size_t)n;
		else if (n < 0 && !would_block()) {
			c->dead = true;
			return;
		}
		if (f->off == f->len)
			f->off = f->len = 0;
		else if (f->len == sizeof(f->buf)) {
			memmove(f->buf, f->buf + f->off, f->len - f->off);
			f->len -= f->off;
			f->off = 0;
		}
	}
	/* Pass a FIN on once everything before it went out, so a clean close
	 * stays clean through the proxy. */
	if (f->eof && f->off == f->len && !f->shut) {
		shutdown(dst, SHUT_WR);
		f->shut = true;
	}
	if (c->flow[DIR_UP].shut && c->flow[DIR_DOWN].shut)
		c->dead = true;
}

static void conn_close(struct it_conn *c)
{
	close(c->fd[SIDE_CLIENT]);
	close(c->fd[SIDE_BROKER]);
	free(c);
}

/* Thread, mu held: close what was cut or ended. */
static void reap(struct it_proxy *p)
{
	struct it_conn **pp = &p->conns;
	while (*pp) {
		struct it_conn *c = *pp;
		if (c->cut || c->dead) {
			*pp = c->next;
			conn_close(c);
			atomic_fetch_sub(&p->open, 1);
		} else
			pp = &c->next;
	}
}

static short events_of(const struct it_conn *c, int side)
{
	/* The client socket is read for UP and written for DOWN; the broker
	 * socket the other way round. */
	int rd = side == SIDE_CLIENT ? DIR_UP : DIR_DOWN;
	int wr = side == SIDE_CLIENT ? DIR_DOWN : DIR_UP;
	return (short)((wants_read(c, rd) ? POLLIN : 0) |
	               (wants_write(c, wr) ? POLLOUT : 0));
}

static void *proxy_main(void *arg)
{
	struct it_proxy *p = arg;
	size_t cap = 8; /* connections the arrays have room for */
	struct pollfd *fds = malloc((2 + 2 * cap) * sizeof(*fds));
	struct it_conn **polled = malloc(cap * sizeof(*polled));

	if (!fds || !polled) {
		fprintf(stderr, "it_proxy: out of memory\n");
		abort();
	}

	pthread_mutex_lock(&p->mu);
	for (;;) {
		size_t n = 0, nfds;

		reap(p);
		/* Everything asked before this point is applied: cuts were
		 * closed just above, freezes are in the flags the poll set
		 * is built from below. */
		p->done = p->req;
		pthread_cond_broadcast(&p->cv);
		if (p->stop)
			break;

		for (struct it_conn *c = p->conns; c; c = c->next)
			n++;
		if (n > cap) {
			cap = n * 2;
			free(fds);
			free(polled);
			fds = malloc((2 + 2 * cap) * sizeof(*fds));
			polled = malloc(cap * sizeof(*polled));
			if (!fds || !polled) {
				fprintf(stderr, "it_proxy: out of memory\n");
				abort();
			}
		}
		fds[0] = (struct pollfd){.fd = p->lfd, .events = POLLIN};
		fds[1] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		nfds = 2;
		n = 0;
		for (struct it_conn *c = p->conns; c; c = c->next, n++) {
			polled[n] = c;
			for (int s = 0; s < 2; s++) {
				short ev = events_of(c, s);
				/* A socket we neither read nor write now (a
				 * frozen broker side, say) stays out of the
				 * set: its hang-up would otherwise be reported
				 * on every poll and spin the loop. */
				fds[nfds++] = (struct pollfd){
				    .fd = ev ? c->fd[s] : -1, .events = ev};
			}
		}

		pthread_mutex_unlock(&p->mu);
		int r = poll(fds, nfds, IT_PROXY_TICK_MS);
		int poll_errno = errno;
		pthread_mutex_lock(&p->mu);
		if (r < 0) {
			if (poll_errno != EINTR)
				fprintf(stderr, "it_proxy: poll: %s\n",
				        strerror(poll_errno));
			continue;
		}
		if (fds[1].revents) {
			char drain[64];
			while (read(p->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		/* Connections only leave the list in reap() on this thread,
		 * so every pointer in polled[] is still valid here. */
		for (size_t i = 0; i < n; i++) {
			struct it_conn *c = polled[i];
			pump(c, DIR_UP, fds[2 + 2 * i + SIDE_CLIENT].revents);
			pump(c, DIR_DOWN, fds[2 + 2 * i + SIDE_BROKER].revents);
		}
		if (fds[0].revents)
			accept_all(p);
	}
	pthread_mutex_unlock(&p->mu);
	free(fds);
	free(polled);
	return NULL;
}

struct it_proxy *it_proxy_start(int upstream_port)
{
	return it_proxy_start_at(upstream_port, 0);
}

struct it_proxy *it_proxy_start_at(int upstream_port, int port)
{
	struct it_proxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int one = 1;
	socklen_t alen = sizeof(a);
	pthread_condattr_t ca;

	cr_assert(p, "it_proxy: out of memory");
	cr_assert(upstream_port > 0 && upstream_port < 65536,
	          "it_proxy: bad upstream port %d", upstream_port);
	p->upstream_port = upstream_port;
	atomic_init(&p->open, 0);
	atomic_init(&p->accepted, 0);
	atomic_init(&p->refusing, false);

	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert(p->lfd >= 0, "it_proxy: socket: %s", strerror(errno));
	/* A proxy started again on the port of a stopped one. */
	setsockopt(p->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	cr_assert(bind(p->lfd, (struct sockaddr *)&a, sizeof(a)) == 0,
	          "it_proxy: bind 127.0.0.1:%d: %s", port, strerror(errno));
	cr_assert(listen(p->lfd, 64) == 0, "it_proxy: listen: %s",
	          strerror(errno));
	cr_assert(getsockname(p->lfd, (struct sockaddr *)&a, &alen) == 0);
	cr_assert(set_nonblock_cloexec(p->lfd) == 0);
	p->port = ntohs(a.sin_port);

	cr_assert(pipe(p->wake) == 0, "it_proxy: pipe: %s", strerror(errno));
	cr_assert(set_nonblock_cloexec(p->wake[0]) == 0 &&
	          set_nonblock_cloexec(p->wake[1]) == 0);

	/* Monotonic: the bounded waits in sync_with_thread must not stretch
	 * or shrink with the wall clock. */
	cr_assert(pthread_condattr_init(&ca) == 0);
	cr_assert(pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0);
	cr_assert(pthread_cond_init(&p->cv, &ca) == 0);
	pthread_condattr_destroy(&ca);
	cr_assert(pthread_mutex_init(&p->mu, NULL) == 0);
	cr_assert(pthread_create(&p->thread, NULL, proxy_main, p) == 0,
	          "it_proxy: pthread_create failed");
	return p;
}

int it_proxy_port(const struct it_proxy *p)
{
	return p->port;
}

char *it_proxy_url(const struct it_proxy *p)
{
	const char *u = it_url(), *auth = strstr(u, "://"), *end, *host;
	char *out;
	size_t len;

	cr_assert(auth, "it_proxy: no scheme in %s", u);
	auth += 3;
	end = auth + strcspn(auth, "/?#");
	/* The host starts after the userinfo's '@', if any (a literal '@'
	 * in a password must be percent-encoded in a URL). */
	host = auth;
	for (const char *s = auth; s < end; s++)
		if (*s == '@')
			host = s + 1;
	/* 127.0.0.1 rather than the URL's host: the proxy listens there
	 * only, and "localhost" could resolve to ::1 first. */
	len = (size_t)(host - u) + sizeof("127.0.0.1:65535") + strlen(end);
	out = malloc(len);
	cr_assert(out, "it_proxy: out of memory");
	snprintf(out, len, "%.*s127.0.0.1:%d%s", (int)(host - u), u, p->port,
	         end);
	return out;
}

int it_url_port(void)
{
	char *u = strdup(it_url());
	struct amqp_connection_info info;
	int port;

	cr_assert(u && amqp_parse_url(u, &info) == AMQP_STATUS_OK,
	          "cannot parse the broker URL %s", it_url());
	port = info.port;
	free(u);
	return port;
}

bool it_url_is_loopback(void)
{
	char *u = strdup(it_url());
	struct amqp_connection_info info;
	bool yes;

	cr_assert(u && amqp_parse_url(u, &info) == AMQP_STATUS_OK,
	          "cannot parse the broker URL %s", it_url());
	yes = strcmp(info.host, "127.0.0.1") == 0 ||
	      strcmp(info.host, "localhost") == 0;
	free(u);
	return yes;
}

void it_proxy_freeze_down(struct it_proxy *p, bool on)
{
	pthread_mutex_lock(&p->mu);
	for (struct it_conn *c = p->conns; c; c = c->next)
		c->frozen = on;
	sync_with_thread(p);
	pthread_mutex_unlock(&p->mu);
}

void it_proxy_freeze_down_nth(struct it_proxy *p, int nth, bool on)
{
	pthread_mutex_lock(&p->mu);
	for (struct it_conn *c = p->conns; c; c = c->next)
		if (c->nth == nth)
			c->frozen = on;
	sync_with_thread(p);
	pthread_mutex_unlock(&p->mu);
}

void it_proxy_cut(struct it_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	for (struct it_conn *c = p->conns; c; c = c->next)
		c->cut = true;
	sync_with_thread(p);
	pthread_mutex_unlock(&p->mu);
}

int it_proxy_open(const struct it_proxy *p)
{
	return atomic_load(&p->open);
}

void it_proxy_refuse(struct it_proxy *p, bool on)
{
	atomic_store(&p->refusing, on);
}

int it_proxy_accepted(const struct it_proxy *p)
{
	return atomic_load(&p->accepted);
}

void it_proxy_stop(struct it_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_mutex_unlock(&p->mu);
	wake_thread(p);
	/* The thread checks `stop` at the top of each loop, which it reaches
	 * at once (woken) or within IT_PROXY_TICK_MS. */
	pthread_join(p->thread, NULL);
	while (p->conns) {
		struct it_conn *c = p->conns;
		p->conns = c->next;
		conn_close(c);
	}
	atomic_store(&p->open, 0);
	close(p->lfd);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
