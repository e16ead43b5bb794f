/* batch.h - collecting deliveries of batch routes (batch_size > 1) into
 * batches: a batch goes to a worker when it is full, when its first
 * delivery has waited batch_timeout_ms, or at once when the daemon stops.
 * One handler call takes the whole batch; each delivery is then settled on
 * its own connection like any other. */
#ifndef WD_BATCH_H
#define WD_BATCH_H

#include <pthread.h>
#include <stdbool.h>

#include "exec/gate.h"
#include "exec/workers.h"
#include "host/routes.h"

struct wd_delivery;

struct wd_batchers;

/* A batcher for each batch route of `routes`, and the thread that flushes
 * them on time. gates: one per route (exec/gate.h); a batch of a route
 * with a concurrency limit waits in its gate for a place (the limit
 * counts batch calls). NULL on failure. */
struct wd_batchers *wd_batchers_start(const struct wd_routes *routes,
                                      struct wd_gate *gates,
                                      struct wd_workers *workers);

/* Add a parsed delivery whose route is a batch route. Thread-safe. */
void wd_batchers_add(struct wd_batchers *b, struct wd_delivery *d);

/* Flush everything now, and every later add at once (stopping). */
void wd_batchers_drain(struct wd_batchers *b);

/* Flush what is left, stop the thread, free. */
void wd_batchers_stop(struct wd_batchers *b);

#endif
