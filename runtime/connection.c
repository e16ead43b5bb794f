/* connection.c - the I/O loop of one pool slot: deliver -> worker -> settle.
 *
 * Every arrow of a message's path that touches the broker is here:
 * read_delivery() takes it off the wire and parses it, the handler runs on
 * a worker (run_delivery), settle() sends its ack, nack or (for a retry)
 * holds it and requeues it later. */
#include "connection.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "topology.h"

/* How long a retried message is held before it is requeued: never an
 * instant requeue loop. */
#define RETRY_HOLD_MS 1000
/* Deliveries read before they are handed to the workers in one go. */
#define SUBMIT_BATCH 32
#define CONTROL_CHANNEL 1

static const char AREA[] = "conn";

void wd_conn_wake(struct wd_conn *c)
{
	uint64_t one = 1;
	ssize_t w = write(c->wakefd, &one, sizeof(one));
	(void)w; /* EAGAIN: the counter is already non-zero, it will wake */
}

/* ---- the worker's side ------------------------------------------------ */

static void run_delivery(struct wd_task *t)
{
	struct wd_delivery *d = (struct wd_delivery *)t;
	struct wd_conn *c = d->conn;

	/* A delivery of a connection that is gone will be redelivered: do not
	 * run its handler now, the redelivery will. */
	if (d->epoch == atomic_load(&c->epoch))
		d->action = wd_dispatch_run(c->pool->routes, d->queue,
		                            &d->parsed, d->parse_rc);
	else
		wd_envelope_clear(&d->parsed);
}

static void finish_delivery(struct wd_task *t)
{
	struct wd_delivery *d = (struct wd_delivery *)t;
	struct wd_conn *c = d->conn;

	pthread_mutex_lock(&c->lock);
	d->task.next = NULL;
	if (c->done_tail)
		c->done_tail->task.next = &d->task;
	else
		c->done_head = d;
	c->done_tail = d;
	pthread_mutex_unlock(&c->lock);
	/* A busy connection thread finds the list on its next turn; a
	 * sleeping one needs one wake-up (the exchange makes it one). Pairs
	 * with the store-then-check in serve(). */
	if (atomic_exchange(&c->sleeping, false))
		wd_conn_wake(c);
}

/* ---- opening ----------------------------------------------------------- */

int wd_conn_open(struct wd_conn *c, char *err, size_t errlen)
{
	const struct wd_conf *conf = c->pool->routes->conf;
	char name[64], why[512];
	amqp_rpc_reply_t r;

	snprintf(name, sizeof(name), "warrend pid %d slot %d", (int)getpid(),
	         c->id);
	c->amqp = wd_broker_connect(&c->pool->broker, name, err, errlen);
	if (!c->amqp)
		return -1;
	if (wd_broker_channel_open(c->amqp, CONTROL_CHANNEL, err, errlen) < 0 ||
	    wd_topology_declare(c->amqp, CONTROL_CHANNEL, conf, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; i < c->nconsumers; i++) {
		const struct wd_consumer *k = &c->consumers[i];
		const struct wd_conf_queue *q = &conf->queues[k->queue];

		if (wd_broker_channel_open(c->amqp, k->channel, err, errlen) < 0)
			goto fail;
		amqp_basic_qos(c->amqp, k->channel, 0, (uint16_t)q->prefetch, 0);
		r = amqp_get_rpc_reply(c->amqp);
		if (r.reply_type == AMQP_RESPONSE_NORMAL) {
			amqp_basic_consume_ok_t *ok = amqp_basic_consume(
			    c->amqp, k->channel, amqp_cstring_bytes(q->name),
			    amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
			r = amqp_get_rpc_reply(c->amqp);
			if (ok)
				snprintf(c->consumers[i].tag,
				         sizeof(c->consumers[i].tag), "%.*s",
				         (int)ok->consumer_tag.len,
				         (const char *)ok->consumer_tag.bytes);
		}
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			snprintf(err, errlen, "%s:%d: cannot consume queue "
			         "\"%s\": %s", conf->file, q->line, q->name,
			         wd_broker_reply_str(r, why, sizeof(why)));
			goto fail;
		}
		wd_log_info(AREA, "slot %d: consuming queue \"%s\" (prefetch "
		            "%d, channel %u)", c->id, q->name, q->prefetch,
		            k->channel);
	}
	c->cancelled = false;
	c->last_rx_ms = wd_now_ms();
	wd_metric_inc(connections_opened);
	return 0;
fail:
	amqp_destroy_connection(c->amqp);
	c->amqp = NULL;
	return -1;
}

/* The connection is gone (or going): every tag it gave is void. */
static void drop(struct wd_conn *c, bool polite)
{
	atomic_fetch_add(&c->epoch, 1);
	c->inflight = 0;
	for (size_t i = 0; i < c->nheld; i++) {
		amqp_destroy_envelope(&c->held[i]->env);
		free(c->held[i]);
	}
	c->nheld = 0;
	if (polite)
		wd_broker_close(c->amqp);
	else
		amqp_destroy_connection(c->amqp);
	c->amqp = NULL;
}

/* ---- settling ------------------------------------------------------------ */

static void free_delivery(struct wd_delivery *d)
{
	wd_envelope_clear(&d->parsed); /* no-op once a worker ran it */
	amqp_destroy_envelope(&d->env);
	free(d);
}

static int hold(struct wd_conn *c, struct wd_delivery *d)
{
	if (c->nheld == c->capheld) {
		size_t cap = c->capheld ? c->capheld * 2 : 16;
		void *p = realloc(c->held, cap * sizeof(*c->held));
		if (!p)
			return -1;
		c->held = p;
		c->capheld = cap;
	}
	d->due_ms = wd_now_ms() + RETRY_HOLD_MS;
	c->held[c->nheld++] = d;
	return 0;
}

static int settle(struct wd_conn *c, struct wd_delivery *d)
{
	amqp_channel_t ch = d->env.channel;
	uint64_t tag = d->env.delivery_tag;
	int rc = 0;

	switch (d->action) {
	case WD_ACTION_ACK:
		rc = amqp_basic_ack(c->amqp, ch, tag, 0);
		if (rc == AMQP_STATUS_OK)
			wd_metric_inc(acked);
		break;
	case WD_ACTION_DEAD_LETTER:
		rc = amqp_basic_nack(c->amqp, ch, tag, 0, 0);
		break;
	case WD_ACTION_RETRY:
		if (!c->cancelled && hold(c, d) == 0)
			return 0; /* kept: requeued when due */
		rc = amqp_basic_nack(c->amqp, ch, tag, 0, 1);
		break;
	}
	free_delivery(d);
	if (rc != AMQP_STATUS_OK) {
		wd_log_warnx(AREA, "slot %d: cannot settle delivery %ju: %s",
		             c->id, (uintmax_t)tag, amqp_error_string2(rc));
		return -1;
	}
	return 0;
}

static int settle_done(struct wd_conn *c)
{
	struct wd_delivery *d, *next;
	uint64_t epoch = atomic_load(&c->epoch);
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	d = c->done_head;
	c->done_head = c->done_tail = NULL;
	pthread_mutex_unlock(&c->lock);
	for (; d; d = next) {
		next = (struct wd_delivery *)d->task.next;
		if (d->epoch != epoch) {
			free_delivery(d); /* the broker redelivers it */
			continue;
		}
		c->inflight--;
		if (rc == 0)
			rc = settle(c, d);
		else
			free_delivery(d);
	}
	return rc;
}

/* Requeue held retries that are due (all of them when stopping). */
static int requeue_due(struct wd_conn *c, int64_t now, int64_t *next_due)
{
	size_t keep = 0;
	int rc = 0;

	for (size_t i = 0; i < c->nheld; i++) {
		struct wd_delivery *d = c->held[i];
		if (!c->cancelled && d->due_ms > now) {
			if (*next_due < 0 || d->due_ms < *next_due)
				*next_due = d->due_ms;
			c->held[keep++] = d;
			continue;
		}
		if (rc == 0)
			rc = amqp_basic_nack(c->amqp, d->env.channel,
			                     d->env.delivery_tag, 0, 1);
		free_delivery(d);
	}
	c->nheld = keep;
	return rc == AMQP_STATUS_OK ? 0 : -1;
}

/* ---- reading ------------------------------------------------------------- */

static size_t queue_of_channel(const struct wd_conn *c, amqp_channel_t ch)
{
	for (size_t i = 0; i < c->nconsumers; i++)
		if (c->consumers[i].channel == ch)
			return c->consumers[i].queue;
	return SIZE_MAX;
}

/* A method other than a delivery: closes, cancels, flow control. Returns 0
 * to go on, -1 if the connection must be dropped. */
static int handle_frame(struct wd_conn *c)
{
	amqp_frame_t f;
	int rc = amqp_simple_wait_frame(c->amqp, &f);

	if (rc != AMQP_STATUS_OK)
		return -1;
	if (f.frame_type != AMQP_FRAME_METHOD)
		return 0;
	switch (f.payload.method.id) {
	case AMQP_CONNECTION_CLOSE_METHOD: {
		amqp_connection_close_t *m = f.payload.method.decoded;
		amqp_connection_close_ok_t ok;
		wd_log_warnx(AREA, "slot %d: the broker closed the connection: "
		             "%.*s (%u)", c->id, (int)m->reply_text.len,
		             (const char *)m->reply_text.bytes, m->reply_code);
		amqp_send_method(c->amqp, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		return -1;
	}
	case AMQP_CHANNEL_CLOSE_METHOD: {
		amqp_channel_close_t *m = f.payload.method.decoded;
		amqp_channel_close_ok_t ok;
		wd_log_warnx(AREA, "slot %d: the broker closed channel %u: "
		             "%.*s (%u)", c->id, f.channel,
		             (int)m->reply_text.len,
		             (const char *)m->reply_text.bytes, m->reply_code);
		amqp_send_method(c->amqp, f.channel,
		                 AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
		return -1; /* reconnect: consumers and tags are reset together */
	}
	case AMQP_BASIC_CANCEL_METHOD:
		wd_log_warnx(AREA, "slot %d: the broker cancelled the consumer "
		             "on channel %u (queue deleted?): reconnecting",
		             c->id, f.channel);
		return -1;
	case AMQP_CONNECTION_BLOCKED_METHOD:
		wd_log_warnx(AREA, "slot %d: the broker blocked the connection "
		             "(resource alarm): publishes wait", c->id);
		return 0;
	case AMQP_CONNECTION_UNBLOCKED_METHOD:
		wd_log_info(AREA, "slot %d: the broker unblocked the connection",
		            c->id);
		return 0;
	case AMQP_BASIC_RETURN_METHOD: {
		amqp_message_t msg;
		if (amqp_read_message(c->amqp, f.channel, &msg, 0).reply_type !=
		    AMQP_RESPONSE_NORMAL)
			return -1;
		amqp_destroy_message(&msg);
		return 0;
	}
	default:
		wd_log_debug(AREA, "slot %d: ignored method 0x%08x on channel %u",
		             c->id, f.payload.method.id, f.channel);
		return 0;
	}
}

/* Read and parse one delivery into *out. Returns 1 if one was read, 0 if none was
 * there, -1 if the connection failed. */
static int read_delivery(struct wd_conn *c, struct wd_delivery **out)
{
	struct timeval zero = {0, 0};
	struct wd_delivery *d = calloc(1, sizeof(*d));
	amqp_rpc_reply_t r;

	if (!d)
		return -1;
	amqp_maybe_release_buffers(c->amqp);
	r = amqp_consume_message(c->amqp, &d->env, &zero, 0);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		d->task.run = run_delivery;
		d->task.finish = finish_delivery;
		d->conn = c;
		d->epoch = atomic_load(&c->epoch);
		d->queue = queue_of_channel(c, d->env.channel);
		if (d->queue == SIZE_MAX) {
			wd_log_error(AREA, "slot %d: delivery on unknown channel "
			             "%u", c->id, d->env.channel);
			free_delivery(d);
			return -1;
		}
		/* The one parse of the body, here: bounded work, and it
		 * keeps this thread busy rather than waking per message. */
		d->parse_rc = wd_dispatch_parse(c->pool->routes, d->queue,
		                                &d->env, &d->parsed);
		*out = d;
		return 1;
	}
	free(d);
	if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
		if (r.library_error == AMQP_STATUS_TIMEOUT)
			return 0;
		if (r.library_error == AMQP_STATUS_UNEXPECTED_STATE)
			return handle_frame(c);
		wd_log_warnx(AREA, "slot %d: connection lost: %s", c->id,
		             amqp_error_string2(r.library_error));
	}
	return -1;
}

/* ---- the loop ------------------------------------------------------------ */

/* Stop new deliveries but keep the channels open, so that what is in the
 * handlers can still be acked. Deliveries that cross the cancel on the wire
 * are read and handled like any other. */
static int cancel_consumers(struct wd_conn *c)
{
	char why[256];

	for (size_t i = 0; i < c->nconsumers; i++) {
		amqp_basic_cancel(c->amqp, c->consumers[i].channel,
		                  amqp_cstring_bytes(c->consumers[i].tag));
		amqp_rpc_reply_t r = amqp_get_rpc_reply(c->amqp);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			wd_log_warnx(AREA, "slot %d: cannot cancel consumer on "
			             "channel %u: %s", c->id,
			             c->consumers[i].channel,
			             wd_broker_reply_str(r, why, sizeof(why)));
			return -1;
		}
	}
	wd_log_info(AREA, "slot %d: stopped consuming; %zu deliveries in "
	            "flight", c->id, c->inflight);
	return 0;
}

/* Hand what was read over to the workers. */
static void flush_batch(struct wd_conn *c)
{
	if (!c->batch_first)
		return;
	wd_workers_submit(c->pool->workers, &c->batch_first->task,
	                  &c->batch_last->task, c->nbatch);
	c->batch_first = c->batch_last = NULL;
	c->nbatch = 0;
}

static int poll_timeout_ms(const struct wd_conn *c, int64_t now,
                           int64_t next_due)
{
	int64_t t = 1000;
	int hb = c->pool->broker.heartbeat;

	if (hb > 0 && hb * 250 < t)
		t = hb * 250;
	if (next_due >= 0 && next_due - now < t)
		t = next_due - now;
	if (c->cancelled && t > 100)
		t = 100;
	return t < 0 ? 0 : (int)t;
}

/* Serve until the connection fails (-1) or, when stopping, everything it
 * holds is settled or the deadline passed (0). */
static int serve(struct wd_conn *c)
{
	struct wd_pool *p = c->pool;
	struct wd_delivery *d;
	int64_t last_read = 0;
	int hb_ms = p->broker.heartbeat * 1000;

	for (;;) {
		int64_t now = wd_now_ms(), next_due = -1;
		struct pollfd fds[2];
		int r;

		if (settle_done(c) < 0 || requeue_due(c, now, &next_due) < 0)
			return -1;
		if (atomic_load(&p->stopping) && !c->cancelled) {
			c->cancelled = true;
			if (cancel_consumers(c) < 0)
				return -1;
		}
		if (c->cancelled) {
			if (c->inflight == 0 && c->nheld == 0)
				return 0;
			if (now > atomic_load(&p->stop_deadline_ms)) {
				c->abandoned = c->inflight;
				wd_log_error(AREA, "slot %d: shutdown timeout "
				             "with %zu deliveries still in "
				             "handlers: the broker will redeliver "
				             "them", c->id, c->inflight);
				return 0;
			}
		}

		if (!amqp_frames_enqueued(c->amqp) &&
		    !amqp_data_in_buffer(c->amqp)) {
			/* Nothing buffered: hand over what was read, then
			 * sleep until the socket, a worker or a timer. */
			flush_batch(c);
			/* Announce the sleep, then look once more: a worker
			 * that finished in between either saw the flag (and
			 * wakes us) or is seen here. */
			atomic_store(&c->sleeping, true);
			pthread_mutex_lock(&c->lock);
			bool pending = c->done_head != NULL;
			pthread_mutex_unlock(&c->lock);
			if (pending) {
				atomic_store(&c->sleeping, false);
				continue;
			}
			fds[0] = (struct pollfd){.fd = amqp_get_sockfd(c->amqp),
			                         .events = POLLIN};
			fds[1] = (struct pollfd){.fd = c->wakefd, .events = POLLIN};
			r = poll(fds, 2, poll_timeout_ms(c, now, next_due));
			atomic_store(&c->sleeping, false);
			if (r < 0 && errno != EINTR)
				return -1;
			now = wd_now_ms();
			if (r > 0 && (fds[1].revents & POLLIN)) {
				uint64_t v;
				ssize_t n = read(c->wakefd, &v, sizeof(v));
				(void)n;
			}
			if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
				c->last_rx_ms = now;
			else if (hb_ms > 0 && now - c->last_rx_ms > 2 * hb_ms) {
				wd_log_warnx(AREA, "slot %d: no heartbeat from "
				             "the broker for %d s: reconnecting",
				             c->id, 2 * p->broker.heartbeat);
				return -1;
			}
			/* Without data, still let rabbitmq-c send a due
			 * heartbeat now and then. */
			if (!(r > 0 && (fds[0].revents & POLLIN)) &&
			    now - last_read < 250)
				continue;
		}
		last_read = now;
		r = read_delivery(c, &d);
		if (r < 0)
			return -1;
		if (r == 0)
			continue;
		c->inflight++;
		if (c->batch_last)
			c->batch_last->task.next = &d->task;
		else
			c->batch_first = d;
		c->batch_last = d;
		if (++c->nbatch >= SUBMIT_BATCH)
			flush_batch(c);
	}
}

void *wd_conn_main(void *arg)
{
	struct wd_conn *c = arg;
	struct wd_pool *p = c->pool;
	int64_t backoff = 500;
	char err[1024];

	for (;;) {
		if (c->amqp) {
			int rc = serve(c);
			/* Whatever was read but not handed over still goes
			 * through a worker, which skips it if its connection
			 * is gone, and comes back here to be freed. */
			flush_batch(c);
			if (rc == 0) {
				drop(c, true);
				return NULL;
			}
			wd_metric_inc(connections_lost);
			drop(c, false);
			wd_log_warnx(AREA, "slot %d: connection dropped; "
			             "deliveries in flight will be redelivered",
			             c->id);
		}
		if (atomic_load(&p->stopping))
			return NULL;
		if (wd_conn_open(c, err, sizeof(err)) == 0) {
			wd_log_info(AREA, "slot %d: reconnected to %s", c->id,
			            p->broker.redacted);
			backoff = 500;
			continue;
		}
		wd_log_warnx(AREA, "slot %d: %s (retrying in %jd ms)", c->id,
		             err, (intmax_t)backoff);
		struct pollfd fd = {.fd = c->wakefd, .events = POLLIN};
		if (poll(&fd, 1, (int)backoff) > 0) {
			uint64_t v;
			ssize_t n = read(c->wakefd, &v, sizeof(v));
			(void)n;
		}
		backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
	}
}
