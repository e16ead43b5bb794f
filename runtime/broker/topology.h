/* topology.h - declare the conf's exchanges, queues and bindings (with
 * their arguments), and ask whether an exchange exists. */
#ifndef WD_TOPOLOGY_H
#define WD_TOPOLOGY_H

#include <stddef.h>

#include "base/amqp_compat.h"
#include "conf/conf.h"

/* Declare everything on an open channel `ch` (idempotent). On failure
 * returns -1 with err naming the exchange, queue or binding and the
 * broker's reason; the channel is then closed by the broker. */
int wd_topology_declare(amqp_connection_state_t conn, amqp_channel_t ch,
                        const struct wd_conf *conf, char *err, size_t errlen);

/* Whether exchange `name` exists on the broker (a passive declare on ch):
 * 0, or -1 with the broker's reason in why; the channel is open again
 * either way. */
int wd_topology_exchange_exists(amqp_connection_state_t conn, amqp_channel_t ch,
                                const char *name, char *why, size_t whylen);

#endif
