/* dlq_scan.h - one pass over a dead-letter queue for `warrenctl dlq`: the
 * broker connection (found as warrend finds it) and the pass itself.
 *
 * The pass takes the messages from the head with basic.get, without
 * auto-ack, and keeps every one it does not remove unacked until the pass
 * ends; then it gives them back with a basic.nack(requeue) each, in
 * delivery order, and the queue is as it was, less what was removed
 * (dlq_scan.c's give_back says why one by one). (A get + reject of each
 * message in turn would not work: the requeued message is the next get's
 * again.) A message is removed only by an ack: at once for a purge, and
 * for a redrive only after the broker confirmed its copy. So a pass killed
 * at any point loses nothing: whatever is not acked comes back when the
 * connection goes. The pass reads at most the queue's message count at its
 * start; the client holds one message at a time, the window of
 * unconfirmed copies' delivery tags and a bit per message read; the broker
 * holds the scanned part of the queue unacked. */
#ifndef WC_DLQ_SCAN_H
#define WC_DLQ_SCAN_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/amqp_compat.h"
#include "broker/broker.h"

/* Where the broker is: --amqp URL (with WARREN_AMQP_PASSWORD), else the
 * conf's broker section (with warrend's overrides: WARREN_AMQP_URL,
 * WARREN_AMQP_PASSWORD, password_file, TLS), else, if the default conf is
 * not there, WARREN_AMQP_URL alone. */
struct wc_dlq_source {
	const char *amqp_url; /* NULL: not given */
	const char *conf;     /* the conf file */
	bool conf_given;      /* -c: its absence is an error */
};

struct wc_dlq_conn {
	struct wd_broker broker;
	amqp_connection_state_t amqp;
	char where[512]; /* the address, without the password */
};

/* Connect and open the channels a pass uses. Returns 0, or -1 with err
 * (never the password). */
int wc_dlq_connect(struct wc_dlq_conn *c, const struct wc_dlq_source *src,
                   char *err, size_t errlen);
void wc_dlq_disconnect(struct wc_dlq_conn *c);

enum wc_dlq_action {
	WC_DLQ_KEEP,   /* leave it where it was */
	WC_DLQ_DELETE, /* ack it away (purge) */
	WC_DLQ_MOVE,   /* publish the copy in *mv, ack once confirmed */
	WC_DLQ_STOP,   /* keep this one, and end the pass */
};

/* The copy of a message to move, filled by the visitor: exchange and
 * routing key borrowed (they must outlive the call), headers' entries
 * malloc'd (the pass frees them). */
struct wc_dlq_move {
	amqp_bytes_t exchange, routing_key;
	amqp_table_t headers;
};

typedef enum wc_dlq_action (*wc_dlq_visit_fn)(void *arg,
                                              const amqp_envelope_t *env,
                                              struct wc_dlq_move *mv);

struct wc_dlq_pass_opts {
	double rate;    /* moves and deletes per second, 0 = no bound */
	int window;     /* unconfirmed copies at most */
	int confirm_ms; /* a copy not confirmed by then fails the pass */
	volatile sig_atomic_t *stop; /* set by a signal: end the pass */
};

struct wc_dlq_result {
	long at_start; /* messages ready when the pass began */
	long scanned, deleted, moved, failed;
	bool interrupted;
};

/* One pass over `queue`. Returns 0, or -1 with err (what was not moved or
 * deleted is given back all the same, if the connection still works). */
int wc_dlq_pass(struct wc_dlq_conn *c, const char *queue,
                const struct wc_dlq_pass_opts *o, wc_dlq_visit_fn fn, void *arg,
                struct wc_dlq_result *res, char *err, size_t errlen);

#endif
