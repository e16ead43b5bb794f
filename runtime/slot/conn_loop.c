/* conn_loop.c - the I/O loop of one pool slot: read -> hand off -> settle.
 *
 * Each turn settles what the handlers finished and what the broker
 * confirmed (settle.h), flushes due acks, takes up a new generation after a
 * reload, and, when stopping, cancels the consumers and waits for what is
 * in flight; then it reads the next delivery, or sleeps in poll() until the
 * socket, a worker or a timer wakes it. wd_conn_main() reconnects with
 * backoff around it. */
#define _GNU_SOURCE /* pthread_setname_np() */
#include "slot/conn.h"

#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "slot/prefetch_qos.h"

/* The publishing connection is read at least this often (ms) when nothing
 * else calls for it, so that its heartbeats go out and come in. */
#define PUB_READ_MS 1000

/* Deliveries read before they are handed to the workers in one go. */
#define HANDOFF_MAX 32
/* A non-blocking handler's call that takes longer stalls the connection
 * (its other deliveries, its acks): its route goes to the workers. */
#define NONBLOCKING_LIMIT_MS 20

static const char AREA[] = "conn";

/* ---- taking a delivery --------------------------------------------------- */

/* Hand what was read over to the workers. */
static void flush_handoff(struct wd_conn *c)
{
	if (!c->handoff_first)
		return;
	wd_workers_submit(c->env->workers, &c->handoff_first->task,
	                  &c->handoff_last->task, c->nhandoff);
	c->handoff_first = c->handoff_last = NULL;
	c->nhandoff = 0;
}

/* A handler that promised not to block (WARREN_HANDLER_NONBLOCKING):
 * called here, right away. One that took too long has its route moved to
 * the workers, once, with a warning: its promise was wrong. */
static int run_here(struct wd_conn *c, struct wd_delivery *d)
{
	const struct wd_route *r = d->verdict.route;
	int64_t t0 = wd_now_ms(), took;

	d->task.run(&d->task);
	d->done_ms = wd_now_ms();
	took = d->done_ms - t0;
	if (took > NONBLOCKING_LIMIT_MS &&
	    !atomic_exchange(&((struct wd_route *)r)->on_workers, true))
		wd_log_warnx(AREA,
		             WD_ROUTE_FMT
		             ": a call took %jd ms, but the "
		             "handler is declared non-blocking: its route runs "
		             "on the workers from now on (until the next "
		             "reload)",
		             WD_ROUTE_ARGS(r), (intmax_t)took);
	return wd_settle(&c->settler, d);
}

/* A delivery just read: to the workers (or, if its route has
 * `concurrency` calls in flight, to its gate's FIFO until one ends), to its
 * route's batcher, to its non-blocking handler here, or, if no handler will
 * see it, settled at once. */
static int take(struct wd_conn *c, struct wd_delivery *d)
{
	const struct wd_route *r = d->verdict.route; /* NULL without run */
	struct wd_gate *gate;

	c->inflight++;
	wd_log_debug(AREA, "slot %d: read delivery %ju (%zu in flight)", c->id,
	             (uintmax_t)d->env.delivery_tag, c->inflight);
	if (!d->task.run)
		return wd_settle(&c->settler, d);
	if (r->handle_batch) {
		/* Until a handler takes it (run_batch leaves it); a batch
		 * waits for its route's concurrency in batch.c. */
		wd_delivery_enter(d, WD_INFLIGHT_WAITING_WORKER);
		wd_batchers_add(d->gen->batchers, d);
		return 0;
	}
	/* A non-blocking call on this thread is one at a time per
	 * connection anyway: no gate. */
	if (r->nonblocking &&
	    !atomic_load_explicit(&r->on_workers, memory_order_relaxed)) {
		wd_delivery_enter(d, WD_INFLIGHT_WAITING_WORKER);
		return run_here(c, d);
	}
	gate = &d->gen->gates[r->index];
	if (wd_gate_limited(gate)) {
		d->gate = gate;
		/* Counted as parked before it is: a worker may take it out
		 * of the gate (run_delivery) as soon as it is in. */
		wd_delivery_enter(d, WD_INFLIGHT_WAITING_CONCURRENCY);
		if (!wd_gate_enter(gate, &d->task))
			return 0; /* run once a call of its route ends */
		wd_delivery_leave(d, WD_INFLIGHT_WAITING_CONCURRENCY);
	}
	/* Until a handler takes it (run_delivery leaves it). */
	wd_delivery_enter(d, WD_INFLIGHT_WAITING_WORKER);
	if (c->handoff_last)
		c->handoff_last->task.next = &d->task;
	else
		c->handoff_first = d;
	c->handoff_last = d;
	if (++c->nhandoff >= HANDOFF_MAX)
		flush_handoff(c);
	return 0;
}

/* ---- settling what came back --------------------------------------------- */

/* Deliveries the workers finished. */
static int settle_done(struct wd_conn *c)
{
	struct wd_delivery *d, *next;
	int rc = 0;

	if (!atomic_load_explicit(&c->has_done, memory_order_acquire))
		return 0;
	pthread_mutex_lock(&c->lock);
	d = c->done_head;
	c->done_head = c->done_tail = NULL;
	c->ndone = 0;
	atomic_store_explicit(&c->has_done, false, memory_order_relaxed);
	atomic_store_explicit(&c->wake_due, false, memory_order_relaxed);
	pthread_mutex_unlock(&c->lock);
	for (; d; d = next) {
		next = (struct wd_delivery *)d->task.next;
		if (!wd_delivery_live(d) || rc < 0) {
			wd_conn_forget(d); /* the broker redelivers it */
			continue;
		}
		rc = wd_settle(&c->settler, d);
	}
	return rc;
}

/* A reload swapped in a new generation: consume what it says from now on. */
static int take_up_generation(struct wd_conn *c)
{
	if (wd_consumers_update(&c->consumers, c->amqp,
	                        wd_gen_slot_get(c->env->current)) < 0)
		return -1;
	wd_conn_know_exchanges(c);
	return 0;
}

/* The first part of a turn: settle what handlers and confirms finished,
 * flush due acks, take up a new generation. -1 if the connection failed. */
static int settle_phase(struct wd_conn *c, int64_t now, int64_t *next_due)
{
	/* A full ack batch goes out once the pass over finished deliveries
	 * is over, so that what one pass settles -- a whole handler batch,
	 * say -- goes out together; then the acks whose wait is over. */
	if (settle_done(c) < 0 || wd_settle_ready(&c->settler) < 0 ||
	    wd_settle_unpark(&c->settler) < 0)
		return -1;
	if (c->acks_full) {
		c->acks_full = false;
		if (wd_consumers_flush_due(&c->consumers, c->amqp, c->now_ms,
		                           false, NULL) < 0)
			return -1;
	}
	if (wd_settle_requeue_due(&c->settler, now, next_due) < 0 ||
	    wd_consumers_flush_due(&c->consumers, c->amqp, now, c->cancelled,
	                           next_due) < 0)
		return -1;
	/* While the broker blocks publishing, what waits for a confirm is
	 * not late: the clock starts again at the unblock. */
	if (!c->blocked_since_ms && wd_pub_expired(&c->pub, now, next_due)) {
		wd_log_error(AREA,
		             "slot %d: no publisher confirm within %d s: "
		             "reconnecting (unconfirmed deliveries are "
		             "redelivered)",
		             c->id, c->env->publish_timeout);
		return -1;
	}
	if (!c->cancelled &&
	    !wd_gen_slot_is(c->env->current, c->consumers.gen) &&
	    take_up_generation(c) < 0)
		return -1;
	return wd_consumers_close_drained(&c->consumers, c->amqp);
}

/* Frames or bytes read from the socket but not looked at yet. */
static bool buffered(struct wd_conn *c)
{
	return amqp_frames_enqueued(c->amqp) || amqp_data_in_buffer(c->amqp);
}

/* Whether the publishing connection is to be read this turn: poll() saw
 * it readable, rabbitmq-c holds some of it, confirms are awaited, or it
 * was not read for PUB_READ_MS. */
static bool pub_due(struct wd_conn *c, int64_t now)
{
	return c->pub_readable || amqp_frames_enqueued(c->pub_amqp) ||
	       amqp_data_in_buffer(c->pub_amqp) || c->pub.confirms.count > 0 ||
	       now - c->pub_read_ms >= PUB_READ_MS;
}

/* Stopping: cancel the consumers once, then wait until everything in
 * flight is settled or the deadline passes. Returns 1 to go on serving, 0
 * when the connection is done, -1 if it failed. */
static int stop_phase(struct wd_conn *c, int64_t now, int64_t *next_due)
{
	if (atomic_load(c->env->stopping) && !c->cancelled) {
		c->cancelled = true;
		c->settler.stopping = true;
		wd_slot_set(c->series, WD_SLOT_STOPPING);
		/* Stop new deliveries but keep the channels open, so that
		 * what is in the handlers can still be acked. */
		if (wd_consumers_cancel(&c->consumers, c->amqp) < 0)
			return -1;
		wd_log_info(AREA,
		            "slot %d: stopped consuming; %zu deliveries "
		            "in flight",
		            c->id, c->inflight);
	}
	if (!c->cancelled)
		return 1;
	/* The cancel waited for its cancel-ok: whatever was delivered before
	 * it is buffered here, and is read and handled before the connection
	 * is done. */
	if (c->inflight == 0 && !buffered(c))
		return wd_consumers_flush_due(&c->consumers, c->amqp, now, true,
		                              next_due);
	if (now > atomic_load(c->env->stop_deadline_ms)) {
		c->abandoned = c->inflight;
		wd_log_error(AREA,
		             "slot %d: shutdown timeout with %zu "
		             "deliveries still in handlers or unconfirmed: the "
		             "broker will redeliver them",
		             c->id, c->inflight);
		wd_consumers_flush_due(&c->consumers, c->amqp, now, true,
		                       next_due);
		return 0;
	}
	return 1;
}

/* ---- sleeping ------------------------------------------------------------ */

/* How many finished plain acks make it worth waking this thread (see
 * wake_at), and so how long it may sleep while handlers hold deliveries:
 * *delay_ms. 1 (wake for each) while stopping or draining, and where acks
 * go out at once. */
static int wake_threshold(const struct wd_conn *c, int *delay_ms)
{
	int at = 0;

	*delay_ms = 1000;
	if (c->cancelled || c->consumers.ndraining > 0)
		return 1;
	for (size_t i = 0; i < c->consumers.n; i++) {
		const struct wd_acks *a = &c->consumers.v[i].acks;
		int left = a->batch - (int)a->npending;
		if (a->delay_ms == 0 || left <= 1)
			return 1;
		if (at == 0 || left < at)
			at = left;
		if (a->delay_ms < *delay_ms)
			*delay_ms = a->delay_ms;
	}
	return at > 0 ? at : 1;
}

/* Whether at least `at` finished deliveries wait: judged here because
 * the workers judged them against the threshold before this one. */
static bool done_reached(struct wd_conn *c, int at)
{
	bool r;

	pthread_mutex_lock(&c->lock);
	r = c->ndone >= (size_t)at;
	pthread_mutex_unlock(&c->lock);
	return r;
}

static int poll_timeout_ms(const struct wd_conn *c, int64_t now,
                           int64_t next_due, int lazy_ms)
{
	int64_t t = 1000;
	int hb = c->env->broker->heartbeat;

	if (hb > 0 && hb * 250 < t)
		t = hb * 250;
	if (c->inflight > 0 && lazy_ms < t)
		t = lazy_ms; /* come back for acks no worker woke us for */
	if (next_due >= 0 && next_due - now < t)
		t = next_due - now;
	if ((c->cancelled || c->consumers.ndraining > 0) && t > 100)
		t = 100; /* look again soon: is everything settled? */
	return t < 0 ? 0 : (int)t;
}

/* An eventfd wake-up counter read back to zero. */
static void drain_wakefd(struct wd_conn *c)
{
	uint64_t v;
	ssize_t n = read(c->wakefd, &v, sizeof(v));
	(void)n; /* EAGAIN: nobody woke us */
}

/* Nothing buffered: hand over what was read, then sleep until the socket,
 * a worker or a timer. *now is the time after the sleep; *last_read_ms
 * when the socket was last read. Returns 1 to read the socket, 0 to go
 * round again, -1 if the connection failed. */
static int sleep_until_work(struct wd_conn *c, int64_t *now, int64_t next_due,
                            int64_t last_read_ms)
{
	int hb_ms = c->env->broker->heartbeat * 1000, lazy_ms, at, r;
	struct pollfd fds[3];
	bool woken, data;

	flush_handoff(c);
	at = wake_threshold(c, &lazy_ms);
	atomic_store_explicit(&c->wake_at, at, memory_order_relaxed);
	/* Announce the sleep, then look once more: a worker that finished in
	 * between either saw the flag (and wakes us) or is seen here. */
	atomic_store(&c->sleeping, true);
	if (atomic_load(&c->wake_due) || c->settler.ready ||
	    amqp_frames_enqueued(c->pub_amqp) ||
	    amqp_data_in_buffer(c->pub_amqp) ||
	    (atomic_load(&c->has_done) && done_reached(c, at))) {
		atomic_store(&c->sleeping, false);
		return 0;
	}
	fds[0] =
	    (struct pollfd){.fd = amqp_get_sockfd(c->amqp), .events = POLLIN};
	fds[1] = (struct pollfd){.fd = c->wakefd, .events = POLLIN};
	fds[2] = (struct pollfd){.fd = amqp_get_sockfd(c->pub_amqp),
	                         .events = POLLIN};
	r = poll(fds, 3, poll_timeout_ms(c, *now, next_due, lazy_ms));
	atomic_store(&c->sleeping, false);
	if (r < 0 && errno != EINTR)
		return -1;
	c->now_us = wd_now_us();
	*now = c->now_us / 1000;
	woken = r > 0 && (fds[1].revents & POLLIN);
	data = r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR));
	if (woken)
		drain_wakefd(c);
	/* Confirms, or the broker blocking or closing it: read next turn
	 * (its heartbeats rabbitmq-c checks as it reads). */
	if (r > 0 && (fds[2].revents & (POLLIN | POLLHUP | POLLERR)))
		c->pub_readable = true;
	if (data) {
		c->last_rx_ms = *now;
	} else if (hb_ms > 0 && *now - c->last_rx_ms > 2 * hb_ms) {
		wd_log_warnx(AREA,
		             "slot %d: no heartbeat from the broker for "
		             "%d s: reconnecting",
		             c->id, 2 * c->env->broker->heartbeat);
		return -1;
	}
	/* Woken (a reload's swap, finished deliveries, stop): go round
	 * first, so that what is read next is read under the generation and
	 * state the wake-up announced. The socket's data waits a turn. So
	 * does a turn for the publishing connection alone. */
	if (woken || (c->pub_readable && !data))
		return 0;
	/* Without data, still let rabbitmq-c send a due heartbeat now and
	 * then. */
	if (!(r > 0 && (fds[0].revents & POLLIN)) && *now - last_read_ms < 250)
		return 0;
	return 1;
}

/* ---- the loop ------------------------------------------------------------ */

/* What /metrics and /healthz see of this slot: its deliveries in flight,
 * and until when its thread counts as alive: its next turn comes within
 * wait_ms (the longest sleep ahead) plus a broker RPC or two, each bounded
 * by connect_timeout. */
static void publish_state(struct wd_conn *c, int64_t now, int64_t wait_ms)
{
	int64_t rpc_ms = (int64_t)c->env->broker->connect_timeout * 1000;

	atomic_store_explicit(&c->series->inflight, c->inflight,
	                      memory_order_relaxed);
	atomic_store_explicit(&c->series->alive_until_ms,
	                      now + wait_ms + 2 * rpc_ms + 5000,
	                      memory_order_relaxed);
}

/* A burst of deliveries -- a backlog drained through a big window --
 * leaves the heap as large as the most it held at once: glibc keeps
 * freed memory in its arenas (one per thread that allocated), so the
 * resident size stays up after the burst. Once this connection holds
 * nothing and has read nothing for a second, free its spare deliveries
 * but a few and give the free pages back (malloc_trim walks every arena:
 * a millisecond or so, once per burst). */
#define TRIM_IDLE_MS     1000
#define TRIM_KEEP_SPARES 16

/* Under AddressSanitizer (or ThreadSanitizer) the heap is the
 * sanitizer's, and glibc's own malloc is never set up: the first
 * malloc_trim() sets it up, unlocked (glibc expects the main thread to have
 * done so before any other starts), so two connection threads trimming
 * at once both attached to its main arena, and glibc's count of that
 * arena failed an assertion as they exited ("a->attached_threads > 0",
 * seen once in the ASan fault suite). Nothing to give back there anyway. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define WD_TRIM_HEAP 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define WD_TRIM_HEAP 0
#endif
#endif
#ifndef WD_TRIM_HEAP
#define WD_TRIM_HEAP 1
#endif

static void trim_when_idle(struct wd_conn *c, int64_t now)
{
	if (!c->read_since_trim || c->inflight > 0 ||
	    now - c->delivery_ms < TRIM_IDLE_MS)
		return;
	c->read_since_trim = false;
	wd_conn_trim_spares(c, TRIM_KEEP_SPARES);
	if (WD_TRIM_HEAP)
		malloc_trim(0);
}

/* Serve until the connection fails (-1) or, when stopping, everything it
 * holds is settled or the deadline passed (0). */
static int serve(struct wd_conn *c)
{
	struct wd_delivery *d;
	int64_t last_read = 0;

	for (;;) {
		int64_t now, next_due = -1;
		int r;

		c->now_us = wd_now_us();
		c->now_ms = now = c->now_us / 1000;
		publish_state(c, now, 1000);
		if (pub_due(c, now) && wd_conn_read_pub(c) < 0)
			return -1;
		if (now >=
		    c->watch_at_ms) { /* a turn comes at least each 1 s */
			wd_delivery_watch(c->env->workers, c, c->id, now);
			c->watch_at_ms = now + 1000;
			trim_when_idle(c, now);
		}
		if (settle_phase(c, now, &next_due) < 0 ||
		    wd_prefetch_qos_tick(&c->consumers, c->amqp, c->now_us) < 0)
			return -1;
		/* The next look at the adaptive windows: a paused consumer
		 * resumes within 10 ms even when nothing else wakes us. */
		if (next_due < 0 || c->consumers.adapt_due_us / 1000 < next_due)
			next_due = c->consumers.adapt_due_us / 1000;
		r = stop_phase(c, now, &next_due);
		if (r <= 0)
			return r;
		if (!buffered(c)) {
			r = sleep_until_work(c, &now, next_due, last_read);
			if (r < 0)
				return -1;
			if (r == 0)
				continue;
		}
		last_read = now;
		r = wd_conn_read(c, &d);
		if (r < 0)
			return -1;
		if (r > 0) {
			c->read_since_trim = true;
			c->delivery_ms = now;
			if (take(c, d) < 0)
				return -1;
		}
	}
}

void *wd_conn_main(void *arg)
{
	struct wd_conn *c = arg;
	const struct wd_slot_env *env = c->env;
	int64_t backoff = 500;
	unsigned reconnect_rnd = (unsigned)getpid() ^
	                         (unsigned)(c->id * 2654435761u) ^
	                         (unsigned)wd_now_ms();
	char err[1024];

	snprintf(err, sizeof(err), "wd-conn-%d", c->id);
	pthread_setname_np(pthread_self(), err); /* for top -H, gdb */
	for (;;) {
		if (c->amqp) {
			int rc = serve(c);
			/* Whatever was read but not handed over still goes
			 * through a worker, which skips it if its connection
			 * is gone, and comes back here to be freed. */
			flush_handoff(c);
			if (rc == 0) {
				wd_conn_drop(c, true);
				wd_slot_set(c->series, WD_SLOT_STOPPED);
				return NULL;
			}
			wd_metric_inc(connections_lost);
			wd_conn_drop(c, false);
			wd_log_warnx(AREA,
			             "slot %d: connection dropped; "
			             "deliveries in flight will be redelivered",
			             c->id);
		}
		if (atomic_load(env->stopping)) {
			wd_slot_set(c->series, WD_SLOT_STOPPED);
			return NULL;
		}
		wd_slot_set(c->series, WD_SLOT_CONNECTING);
		publish_state(c, wd_now_ms(), 0);
		if (wd_conn_open(c, err, sizeof(err)) == 0) {
			wd_log_info(AREA, "slot %d: reconnected to %s", c->id,
			            env->broker->addrs[c->addr].redacted);
			backoff = 500;
			continue;
		}
		/* Full jitter: a wait anywhere up to the backoff, so that the
		 * slots (and other warrends) do not come back in lockstep. */
		int64_t wait =
		    1 + (int64_t)((double)backoff *
		                  (rand_r(&reconnect_rnd) / (RAND_MAX + 1.0)));
		wd_log_warnx(AREA, "slot %d: %s (retrying in %jd ms)", c->id,
		             err, (intmax_t)wait);
		atomic_store(&c->series->retry_at_ms, wd_now_ms() + wait);
		wd_slot_set(c->series, WD_SLOT_RECONNECTING);
		publish_state(c, wd_now_ms(), wait);
		struct pollfd fd = {.fd = c->wakefd, .events = POLLIN};
		if (poll(&fd, 1, (int)wait) > 0)
			drain_wakefd(c);
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
}
