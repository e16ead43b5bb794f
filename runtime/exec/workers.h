/* workers.h - the handler threads. Connection threads hand deliveries over
 * as tasks; a worker runs the task's callback (dispatch) and hands it back.
 * A handler that may block runs here, never on a connection's thread, so a
 * slow handler cannot starve heartbeats or acks (only a handler declared
 * WARREN_HANDLER_NONBLOCKING is called by the connection thread itself). */
#ifndef WD_WORKERS_H
#define WD_WORKERS_H

#include <stddef.h>

struct wd_task {
	struct wd_task *next;
	/* Called on a worker thread: run does the work; finish hands the
	 * task back. A worker takes a few tasks at once, runs them all, then
	 * finishes them all, so that their owner is woken once per take. */
	void (*run)(struct wd_task *t);
	void (*finish)(struct wd_task *t);
};

struct wd_workers;

/* Start n threads. NULL on failure (logged). */
struct wd_workers *wd_workers_start(int n);

/* Queue the chain first..last (linked by next) of n tasks. Thread-safe. */
void wd_workers_submit(struct wd_workers *w, struct wd_task *first,
                       struct wd_task *last, size_t n);

/* Run what is queued, then stop and join every thread. */
void wd_workers_stop(struct wd_workers *w);

#endif
