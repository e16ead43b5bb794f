/* workers.h - the handler threads. Connection threads hand deliveries over
 * as tasks; a worker runs the task's callback (dispatch) and hands it back.
 * A handler that may block runs here, never on a connection's thread, so a
 * slow handler cannot starve heartbeats or acks (only a handler declared
 * WARREN_HANDLER_NONBLOCKING is called by the connection thread itself). */
#ifndef WD_WORKERS_H
#define WD_WORKERS_H

#include <stddef.h>
#include <stdint.h>

struct wd_task {
	struct wd_task *next;
	/* Called on a worker thread: run does the work; finish hands the
	 * task back. A worker takes some 200 us of tasks at once (workers.c:
	 * TAKE_US), runs them, then finishes them, so that their owner is
	 * woken once per take. */
	void (*run)(struct wd_task *t);
	void (*finish)(struct wd_task *t);
};

struct wd_workers;

/* Start n threads. NULL on failure (logged). */
struct wd_workers *wd_workers_start(int n);

/* Queue the chain first..last (linked by next) of n tasks. Thread-safe. */
void wd_workers_submit(struct wd_workers *w, struct wd_task *first,
                       struct wd_task *last, size_t n);

/*
 * What each worker is busy with, for a watch from another thread: a
 * handler that runs too long cannot say so itself while it runs.
 *
 * wd_workers_busy() marks the calling worker busy with `what` (n items,
 * e.g. a batch) on behalf of `owner`, since now (wd_now_ms());
 * wd_workers_idle() clears the mark, before the task is handed back. Both
 * are a few atomic stores into the worker's own slot (no lock, no system
 * call: they run per message) and do nothing on a thread that is not a
 * worker (a non-blocking handler on its connection's thread).
 *
 * wd_workers_scan() calls fn for each worker of w busy on behalf of
 * `owner`, with a consistent (what, n, since) of its slot. `what` is not
 * dereferenced here; fn may do so only if the caller is the one thread
 * that frees it once it is handed back: it was not handed back when the
 * scan read it, and cannot be freed while the caller is in the scan.
 * Called from any thread, e.g. once a second.
 */
void wd_workers_busy(const void *owner, void *what, size_t n);
void wd_workers_idle(void);
void wd_workers_scan(struct wd_workers *w, const void *owner,
                     void (*fn)(void *what, size_t n, int64_t since_ms,
                                void *arg),
                     void *arg);

/* Run what is queued, then stop and join every thread. */
void wd_workers_stop(struct wd_workers *w);

#endif
