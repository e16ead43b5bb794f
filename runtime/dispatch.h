/* dispatch.h - the middle of a message's path: envelope -> route ->
 * handler -> action. Runs on a worker thread, never on a connection's. */
#ifndef WD_DISPATCH_H
#define WD_DISPATCH_H

#include "amqp_compat.h"
#include "routes.h"

/* What the connection thread does with the delivery afterwards. */
enum wd_action {
	WD_ACTION_ACK = 0,         /* basic.ack */
	WD_ACTION_RETRY = 1,       /* give it back later, never at once */
	WD_ACTION_DEAD_LETTER = 2, /* basic.nack requeue=false -> the DLX */
};

/*
 * Parse `amqp` (consumed from queue index `queue` of routes->conf), call its
 * route's handler and turn the outcome into an action. Logs once per
 * message that is not acked, with the reason. Counts in wd_metrics.
 */
enum wd_action wd_dispatch(const struct wd_routes *routes, size_t queue,
                           const amqp_envelope_t *amqp);

#endif
