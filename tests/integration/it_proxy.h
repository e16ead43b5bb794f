/* it_proxy.h - a loopback TCP proxy between a client under test (warrend or
 * a rabbitmq-c connection of the test) and the test broker, to inject the
 * network faults rabbitmqctl cannot: a broker that stops answering while
 * the socket stays up (freeze), and a connection that drops at once on
 * both sides (cut). One thread per proxy; every wait is bounded. */
#ifndef IT_PROXY_H
#define IT_PROXY_H

#include <stdbool.h>

struct it_proxy;

/* The port of the test broker's URL (it_url()); 5672 if it has none. */
int it_url_port(void);
/* Whether it_url()'s host is this machine's loopback (127.0.0.1 or
 * localhost): the proxy only forwards to 127.0.0.1, so tests skip when the
 * broker is elsewhere. */
bool it_url_is_loopback(void);

/* Listen on 127.0.0.1 (ephemeral port) and forward every accepted
 * connection to 127.0.0.1:upstream_port. Runs on its own thread. Fails the
 * test (cr_assert) on setup errors. A connection whose upstream connect
 * fails is closed at once (the client sees a broker that is down). */
struct it_proxy *it_proxy_start(int upstream_port);
/* The same on a given port (0: any): a broker that comes back where it
 * was. */
struct it_proxy *it_proxy_start_at(int upstream_port, int port);
int it_proxy_port(const struct it_proxy *p);
/* it_url() with host:port replaced by 127.0.0.1:<proxy port>; user,
 * password, vhost and query are kept as written. malloc'd. */
char *it_proxy_url(const struct it_proxy *p);

/* Stop (on=true) or resume forwarding broker->client bytes on every
 * connection open now. Bytes are held, not dropped: the proxy stops
 * reading the upstream socket (and holds what it had read), so the broker
 * sees a slow reader. Client->broker keeps flowing. Connections accepted
 * later are not frozen. When it returns, the proxy thread has taken the
 * change: no broker byte reaches a frozen client afterwards. Thread-safe. */
void it_proxy_freeze_down(struct it_proxy *p, bool on);
/* The same for one connection: the nth accepted (1-based), if it is still
 * open. warrend opens a slot's consuming connection, then its publishing
 * one: with one slot, 2 is the publishing connection. */
void it_proxy_freeze_down_nth(struct it_proxy *p, int nth, bool on);
/* Close every open connection, both sockets, at once (the client sees the
 * connection drop; bytes in flight are lost). When it returns they are
 * closed and it_proxy_open() no longer counts them. New connections are
 * accepted afterwards as usual. Thread-safe. */
void it_proxy_cut(struct it_proxy *p);

/* While on, every new connection is closed as soon as it is accepted (a
 * broker that is down); open ones are left alone (it_proxy_cut them).
 * Thread-safe. */
void it_proxy_refuse(struct it_proxy *p, bool on);

/* Connections open now / accepted since start (including ones whose
 * upstream connect failed). */
int it_proxy_open(const struct it_proxy *p);
int it_proxy_accepted(const struct it_proxy *p);

/* Stop the thread, close every socket, free. */
void it_proxy_stop(struct it_proxy *p);

#endif
