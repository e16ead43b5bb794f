/* broker.h - how to reach the broker: the parsed URL with its secret kept
 * out of every log line, connect + login, close, and readable errors. */
#ifndef WD_BROKER_H
#define WD_BROKER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/amqp_compat.h"
#include "conf/conf.h"

struct wd_broker {
	char *url_buf; /* amqp_parse_url() points into this copy */
	struct amqp_connection_info info;
	char *password; /* from WARREN_AMQP_PASSWORD, password_file or URL */
	char redacted[512]; /* "amqp://user@host:port[/vhost]": safe to log */
	int heartbeat;
	int connect_timeout;
	char *ca_cert, *client_cert, *client_key; /* copies, or NULL */
	bool verify_peer;
};

/* Parse the URL and find the password. Returns 0, or -1 with err set
 * (never containing the password). */
int wd_broker_init(struct wd_broker *b, const struct wd_conf_broker *conf,
                   char *err, size_t errlen);
void wd_broker_free(struct wd_broker *b);

/* Open a connection and log in, announcing the connection.blocked and
 * consumer_cancel_notify capabilities. `name` is shown by the broker's
 * management tools. Returns NULL with err set, and *outage (unless NULL)
 * true if no connection could be made (nothing listens, no route: worth
 * waiting for), false if the broker answered and refused (a login: a
 * config error, not an outage). */
amqp_connection_state_t wd_broker_connect(const struct wd_broker *b,
                                          const char *name, char *err,
                                          size_t errlen, bool *outage);

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
