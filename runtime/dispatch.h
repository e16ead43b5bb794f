/* dispatch.h - the middle of a message's path, in two steps:
 * wd_dispatch_parse() on the connection thread (the one parse of the body;
 * bounded work, so it never starves broker I/O), then wd_dispatch_run() on a
 * worker: route -> handler -> action. Handlers never run on a connection's
 * thread. */
#ifndef WD_DISPATCH_H
#define WD_DISPATCH_H

#include "amqp_compat.h"
#include "envelope.h"
#include "routes.h"

/* What the connection thread does with the delivery afterwards. */
enum wd_action {
	WD_ACTION_ACK = 0,         /* basic.ack */
	WD_ACTION_RETRY = 1,       /* give it back later, never at once */
	WD_ACTION_DEAD_LETTER = 2, /* basic.nack requeue=false -> the DLX */
};

/* Parse `amqp`, consumed from queue index `queue` of routes->conf, into
 * *env with that queue's type source. Returns wd_envelope_parse()'s
 * result; wd_dispatch_run() takes both. */
int wd_dispatch_parse(const struct wd_routes *routes, size_t queue,
                      const amqp_envelope_t *amqp, struct wd_envelope *env);

/*
 * Call the route's handler for a parsed envelope (parse_rc from
 * wd_dispatch_parse) and turn the outcome into an action. Logs once per
 * message that is not acked, with the reason. Counts in wd_metrics. Clears
 * env.
 */
enum wd_action wd_dispatch_run(const struct wd_routes *routes, size_t queue,
                               struct wd_envelope *env, int parse_rc);

#endif
