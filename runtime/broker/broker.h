/* broker.h - how to reach the broker: its addresses (a cluster's nodes),
 * parsed, with the secret kept out of every log line, connect + login, close,
 * and readable errors. */
#ifndef WD_BROKER_H
#define WD_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/amqp_compat.h"
#include "conf/conf.h"

/* One address of the broker: a node of a cluster, or the only one. */
struct wd_broker_addr {
	char *url_buf; /* amqp_parse_url() points into this copy */
	struct amqp_connection_info info;
	char *password;     /* WARREN_AMQP_PASSWORD, password_file or URL */
	char redacted[512]; /* "amqp://user@host:port[/vhost]": safe to log */
	char node[300];     /* "host:port", for metrics */
};

struct wd_broker {
	struct wd_broker_addr *addrs; /* in the configured order */
	size_t naddrs;
	/* A shuffle of the addresses, drawn once per process: slot i tries
	 * them from order[i % naddrs] on (wd_broker_addr_at), so that one
	 * warrend's slots spread over the nodes and several warrends do not
	 * all start on the first. */
	size_t *order;
	int heartbeat;
	int connect_timeout;
	char *ca_cert, *client_cert, *client_key; /* copies, or NULL */
	bool verify_peer;
};

/* Parse the URLs and find the password. Returns 0, or -1 with err set
 * (never containing the password). */
int wd_broker_init(struct wd_broker *b, const struct wd_conf_broker *conf,
                   char *err, size_t errlen);
void wd_broker_free(struct wd_broker *b);

/* The address slot `slot` tries k-th (k counts on without bound). */
size_t wd_broker_addr_at(const struct wd_broker *b, int slot, unsigned k);

/* Open a connection to address `addr` and log in, announcing the
 * connection.blocked and consumer_cancel_notify capabilities. `name` is
 * shown by the broker's management tools. Returns NULL with err set, and
 * *outage (unless NULL) true if no connection could be made (nothing
 * listens, no route: worth waiting for), false if the broker answered and
 * refused (a login: a config error, not an outage). */
amqp_connection_state_t wd_broker_connect(const struct wd_broker *b,
                                          size_t addr, const char *name,
                                          char *err, size_t errlen,
                                          bool *outage);

/* The same, trying every address from the first until one connects; *addr
 * (unless NULL) says which. err is the last address's error; *outage is
 * true only if every address was an outage. */
amqp_connection_state_t wd_broker_connect_any(const struct wd_broker *b,
                                              const char *name, char *err,
                                              size_t errlen, bool *outage,
                                              size_t *addr);

/* Close politely (bounded by the RPC timeout) and free. */
void wd_broker_close(amqp_connection_state_t conn);

/* A readable description of a failed RPC reply, e.g.
 * "NOT_FOUND - no queue 'x' in vhost '/' (404)". */
const char *wd_broker_reply_str(amqp_rpc_reply_t r, char *buf, size_t len);

/* Whether a channel.close with this reply code and text is RabbitMQ's
 * consumer_timeout: a delivery on the channel was not acked in time (406
 * PRECONDITION_FAILED, "delivery acknowledgement on channel N timed out.
 * Timeout value used: MS ms. ..."). */
bool wd_broker_is_consumer_timeout(int reply_code, amqp_bytes_t text);

/* Open channel `ch`; returns 0 or -1 with err set. */
int wd_broker_channel_open(amqp_connection_state_t conn, amqp_channel_t ch,
                           char *err, size_t errlen);

#endif
