/* refusals.h - how often the broker refused a message's retry or
 * dead-letter copy, remembered across its requeues.
 *
 * A refused copy leaves the delivery with the broker: it is held, then
 * requeued, and comes back unchanged (a classic queue adds no count). So
 * that it neither loops every hold nor forever, the refusals of each
 * message are kept here: the hold doubles with each (WD_REQUEUE_HOLD_MS up
 * to WD_REQUEUE_HOLD_MAX_MS) and, on a queue that does not count
 * deliveries itself, they count as attempts, so the message reaches
 * max_attempts and the dead-letter queue.
 *
 * Process-wide (the requeued message may come back on another slot), under
 * one lock taken only on these rare paths; bounded (WD_REFUSALS_SLOTS, the
 * oldest nearby entry is forgotten first), and an entry not refused again
 * for WD_REFUSALS_TTL_MS is forgotten. */
#ifndef WD_REFUSALS_H
#define WD_REFUSALS_H

#include <stdint.h>

#include "base/amqp_compat.h"

#define WD_REFUSALS_SLOTS  4096
#define WD_REFUSALS_TTL_MS (10 * 60 * 1000)

/* Which message env is, for this table: a hash of the queue, the
 * message-id (if any), the routing key and the body. Never 0. */
uint64_t wd_refusal_key(const char *queue, const amqp_envelope_t *env);

/* One more refusal of key at now_ms; returns how many there have been. */
int wd_refusals_add(uint64_t key, int64_t now_ms);

/* The refusals of key so far (0 if none or forgotten). */
int wd_refusals_get(uint64_t key, int64_t now_ms);

/* A copy of key was confirmed: forget its refusals. */
void wd_refusals_clear(uint64_t key);

#endif
