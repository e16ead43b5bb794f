/* topology.c - exchanges, queues (with their x-arguments) and bindings. */
#define _GNU_SOURCE /* memmem() */
#include "broker/topology.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/amqp_fields.h"
#include "base/log.h"
#include "broker/broker.h"
#include "message/policy.h"

#define MAX_QUEUE_ARGS 64

/* The conf's `arguments` appended to t (which has room for MAX_QUEUE_ARGS
 * in all): integers as integers, the rest as strings. */
static void add_args(amqp_table_t *t, const struct wd_conf_arg *args, size_t n)
{
	for (size_t i = 0; i < n && t->num_entries < MAX_QUEUE_ARGS; i++) {
		if (args[i].is_int)
			wd_table_add_i64(t, args[i].key, args[i].ival);
		else
			wd_table_add_str(t, args[i].key,
			                 amqp_cstring_bytes(args[i].sval));
	}
}

/* The queue's arguments as an AMQP table in `e`, pointing into `q`. */
static amqp_table_t queue_args(const struct wd_conf_queue *q,
                               amqp_table_entry_t *e)
{
	amqp_table_t t = {.entries = e};

	if (q->quorum)
		wd_table_add_str(&t, "x-queue-type",
		                 amqp_cstring_bytes("quorum"));
	if (q->dead_letter_exchange)
		wd_table_add_str(&t, "x-dead-letter-exchange",
		                 amqp_cstring_bytes(q->dead_letter_exchange));
	if (q->dead_letter_routing_key)
		wd_table_add_str(
		    &t, "x-dead-letter-routing-key",
		    amqp_cstring_bytes(q->dead_letter_routing_key));
	if (q->message_ttl)
		wd_table_add_i64(&t, "x-message-ttl", q->message_ttl);
	if (q->max_length)
		wd_table_add_i64(&t, "x-max-length", q->max_length);
	if (q->delivery_limit)
		wd_table_add_i64(&t, "x-delivery-limit", q->delivery_limit);
	add_args(&t, q->args, q->nargs);
	return t;
}

static int check(amqp_connection_state_t conn, char *err, size_t errlen,
                 const char *what, const char *name, int line, const char *file)
{
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
	char why[512];

	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	snprintf(err, errlen, "%s:%d: cannot declare %s \"%s\": %s", file, line,
	         what, name, wd_broker_reply_str(r, why, sizeof(why)));
	return -1;
}

/* The broker refused a declaration by closing channel ch (r): answer the
 * close and open the channel again. 0, or -1 with err set. */
static int reopen(amqp_connection_state_t conn, amqp_channel_t ch, char *err,
                  size_t errlen)
{
	amqp_channel_close_ok_t ok;

	if (amqp_send_method(conn, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
	    AMQP_STATUS_OK) {
		snprintf(err, errlen, "cannot answer a channel close");
		return -1;
	}
	return wd_broker_channel_open(conn, ch, err, errlen);
}

/* Whether r is the broker refusing a queue.declare whose arguments differ
 * from the queue's (406 PRECONDITION_FAILED, "inequivalent arg"). */
static bool inequivalent(amqp_rpc_reply_t r)
{
	const amqp_channel_close_t *m;

	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION ||
	    r.reply.id != AMQP_CHANNEL_CLOSE_METHOD)
		return false;
	m = r.reply.decoded;
	return m->reply_code == AMQP_PRECONDITION_FAILED &&
	       memmem(m->reply_text.bytes, m->reply_text.len, "inequivalent",
	              12) != NULL;
}

/*
 * The retry queues of a consumed queue, one per delay: no consumer; a
 * message expires after the delay (the queue's TTL; jitter only shortens
 * it, per message) and is dead-lettered through the default exchange
 * straight back to its queue, and to no other queue bound to the original
 * exchange.
 *
 * Of the consumed queue's type: for a quorum queue, quorum queues (a
 * classic one lives on one node, and while that node is down every retry
 * copy is unroutable), whose expiries go back at-least-once (RabbitMQ 3.10:
 * x-dead-letter-strategy, which takes x-overflow = reject-publish; an
 * at-most-once expiry could drop a message if its queue had no leader at
 * that moment).
 *
 * One declared before as another type (by an older warren) is kept as it
 * is, with a warning: redeclaring it would need it deleted, and it may
 * hold messages waiting for their retry.
 */
static int declare_retry_queues(amqp_connection_state_t conn, amqp_channel_t ch,
                                const struct wd_conf *conf,
                                const struct wd_conf_queue *q, char *err,
                                size_t errlen)
{
	char name[300], why[512];

	for (size_t i = 0; i < q->nretry_delays; i++) {
		amqp_table_entry_t e[6];
		amqp_table_t args = {.entries = e};
		amqp_rpc_reply_t r;

		if (wd_policy_retry_queue(name, sizeof(name), q->name,
		                          q->retry_delays[i]) < 0) {
			snprintf(err, errlen,
			         "%s:%d: queue \"%s\": retry queue "
			         "name too long",
			         conf->file, q->line, q->name);
			return -1;
		}
		wd_table_add_i64(&args, "x-message-ttl", q->retry_delays[i]);
		wd_table_add_str(&args, "x-dead-letter-exchange",
		                 amqp_empty_bytes);
		wd_table_add_str(&args, "x-dead-letter-routing-key",
		                 amqp_cstring_bytes(q->name));
		if (q->quorum) {
			wd_table_add_str(&args, "x-queue-type",
			                 amqp_cstring_bytes("quorum"));
			wd_table_add_str(&args, "x-dead-letter-strategy",
			                 amqp_cstring_bytes("at-least-once"));
			wd_table_add_str(&args, "x-overflow",
			                 amqp_cstring_bytes("reject-publish"));
		}
		amqp_queue_declare(conn, ch, amqp_cstring_bytes(name), 0,
		                   q->durable, 0, 0, args);
		r = amqp_get_rpc_reply(conn);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
			continue;
		if (!inequivalent(r)) {
			snprintf(err, errlen,
			         "%s:%d: cannot declare retry queue \"%s\": %s",
			         conf->file, q->line, name,
			         wd_broker_reply_str(r, why, sizeof(why)));
			return -1;
		}
		wd_log_warnx(
		    "topology",
		    "%s:%d: queue \"%s\": its retry queue \"%s\" exists "
		    "with other arguments (%s), declared by an older "
		    "warren: kept as it is%s; once it is empty, delete "
		    "it and warrend declares it anew",
		    conf->file, q->line, q->name, name,
		    wd_broker_reply_str(r, why, sizeof(why)),
		    q->quorum ? ", not replicated" : "");
		if (reopen(conn, ch, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int wd_topology_exchange_exists(amqp_connection_state_t conn, amqp_channel_t ch,
                                const char *name, char *why, size_t whylen)
{
	amqp_rpc_reply_t r;
	char ignore[256];

	/* passive = 1: asks, never creates. */
	amqp_exchange_declare(conn, ch, amqp_cstring_bytes(name),
	                      amqp_empty_bytes, 1, 0, 0, 0, amqp_empty_table);
	r = amqp_get_rpc_reply(conn);
	if (r.reply_type == AMQP_RESPONSE_NORMAL)
		return 0;
	wd_broker_reply_str(r, why, whylen);
	/* A 404 closes the channel: open it again for what comes next. */
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    r.reply.id == AMQP_CHANNEL_CLOSE_METHOD)
		reopen(conn, ch, ignore, sizeof(ignore));
	return -1;
}

/* A dead-letter exchange the conf does not declare must exist already:
 * find out now, not when the first message needs it. */
static int check_dead_letter_exchange(amqp_connection_state_t conn,
                                      amqp_channel_t ch,
                                      const struct wd_conf *conf,
                                      const struct wd_conf_queue *q, char *err,
                                      size_t errlen)
{
	const char *x = q->dead_letter_exchange;
	char why[512];

	if (wd_conf_declares_exchange(conf, x) ||
	    wd_amqp_predeclared(amqp_cstring_bytes(x)))
		return 0;
	if (wd_topology_exchange_exists(conn, ch, x, why, sizeof(why)) == 0)
		return 0;
	snprintf(err, errlen,
	         "%s:%d: queue \"%s\": dead_letter_exchange "
	         "\"%s\" is not declared in the conf and does not exist on "
	         "the broker: %s",
	         conf->file, q->line, q->name, x, why);
	return -1;
}

int wd_topology_declare(amqp_connection_state_t conn, amqp_channel_t ch,
                        const struct wd_conf *conf, char *err, size_t errlen)
{
	amqp_table_entry_t entries[MAX_QUEUE_ARGS + 6];

	for (size_t i = 0; i < conf->nexchanges; i++) {
		const struct wd_conf_exchange *x = &conf->exchanges[i];
		amqp_table_t args = {.entries = entries};

		add_args(&args, x->args, x->nargs);
		amqp_exchange_declare(conn, ch, amqp_cstring_bytes(x->name),
		                      amqp_cstring_bytes(x->type), 0,
		                      x->durable, 0, 0, args);
		if (check(conn, err, errlen, "exchange", x->name, x->line,
		          conf->file) < 0)
			return -1;
	}
	for (size_t i = 0; i < conf->nqueues; i++) {
		const struct wd_conf_queue *q = &conf->queues[i];
		amqp_queue_declare(conn, ch, amqp_cstring_bytes(q->name), 0,
		                   q->durable, 0, 0, queue_args(q, entries));
		if (check(conn, err, errlen, "queue", q->name, q->line,
		          conf->file) < 0)
			return -1;
		if (q->consumed &&
		    (declare_retry_queues(conn, ch, conf, q, err, errlen) < 0 ||
		     check_dead_letter_exchange(conn, ch, conf, q, err,
		                                errlen) < 0))
			return -1;
	}
	for (size_t i = 0; i < conf->nbindings; i++) {
		const struct wd_conf_binding *b = &conf->bindings[i];
		char what[600];
		amqp_queue_bind(conn, ch, amqp_cstring_bytes(b->queue),
		                amqp_cstring_bytes(b->exchange),
		                amqp_cstring_bytes(b->key), amqp_empty_table);
		snprintf(what, sizeof(what), "%s -> %s", b->exchange, b->queue);
		if (check(conn, err, errlen, "binding", what, b->line,
		          conf->file) < 0)
			return -1;
	}
	return 0;
}
