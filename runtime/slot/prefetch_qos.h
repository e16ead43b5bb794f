/* prefetch_qos.h - the adaptive prefetch on the wire: each turn of a
 * slot's loop, the consumers with prefetch = "auto" whose interval is over
 * close it (broker/prefetch.h decides), and a new window goes out as a new
 * consumer on the consumer's own channel: basic.cancel, then basic.qos
 * (per consumer) and basic.consume. RabbitMQ applies a per-consumer qos
 * only to consumers started after it, and a channel-wide one (global),
 * which would bind the running consumer, costs the broker work on every
 * message (README: Adaptive prefetch has the figures). A bigger window
 * consumes again at once; a smaller one once the consumer holds at most
 * half of it (the broker counts only the new consumer's deliveries).
 *
 * The RPCs here (and the passive queue.declare that asks whether the
 * queue has more) wait for their reply on the consuming connection, as the
 * cancels of a reload do: rabbitmq-c keeps the deliveries that arrive
 * meanwhile (amqp_frames_enqueued), and the loop reads them next; their
 * tags are the channel's, acked as ever. At most one change per consumer
 * per interval (broker/prefetch.h: 100 ms after a growth, else 500). */
#ifndef WD_SLOT_PREFETCH_QOS_H
#define WD_SLOT_PREFETCH_QOS_H

#include <stdint.h>

#include "base/amqp_compat.h"
#include "slot/consumers.h"

/* Decide and apply for each adaptive consumer that is due. Returns 0, or
 * -1 if the connection failed (the caller reconnects). */
int wd_prefetch_qos_tick(struct wd_consumers *cs, amqp_connection_state_t amqp,
                         int64_t now_us);

#endif
