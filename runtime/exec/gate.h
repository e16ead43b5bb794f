/* gate.h - a route's concurrency limit (`concurrency = N`): at most N of
 * its handler calls in flight, the rest waiting in the route's own FIFO
 * rather than on a worker, so that a slow route never holds more than N
 * workers and never stands in front of another route's deliveries.
 *
 * A task enters the gate before it is submitted to the workers: it either
 * has a place (submit it) or is parked, in arrival order. The worker that
 * finishes a call leaves the gate, and gets back the next parked task,
 * which has taken over its place: the caller submits it. So the route's
 * order is kept, and a parked task costs no thread.
 *
 * One gate per route, per generation (exec/generation.h): a reload starts
 * new gates at zero; the old generation's gates drain with it. A gate with
 * no limit is never locked (wd_gate_limited), so that a route without one
 * costs nothing more per message. */
#ifndef WD_GATE_H
#define WD_GATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "exec/workers.h"

struct wd_gate {
	pthread_mutex_t lock;
	int limit;                   /* 0: no limit (the lock is not used) */
	int running;                 /* tasks with a place: at most limit */
	struct wd_task *head, *tail; /* parked, oldest first */
	size_t parked;
};

/* A gate of `limit` places (0: unlimited). */
void wd_gate_init(struct wd_gate *g, int limit);
void wd_gate_destroy(struct wd_gate *g);

static inline bool wd_gate_limited(const struct wd_gate *g)
{
	return g->limit > 0;
}

/* Whether t may run now (it has a place: submit it); false: t is parked
 * (its next link is the gate's until it comes back from wd_gate_leave).
 * Thread-safe. Only for a limited gate. */
bool wd_gate_enter(struct wd_gate *g, struct wd_task *t);

/* A call that had a place is over: returns the oldest parked task, which
 * now has that place (submit it), or NULL (the place is free).
 * Thread-safe. */
struct wd_task *wd_gate_leave(struct wd_gate *g);

/* The counts, for tests and /status (a consistent pair, under the lock). */
void wd_gate_counts(struct wd_gate *g, int *running, size_t *parked);

#endif
