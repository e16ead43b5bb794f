/* dispatch.h - the middle of a message's path, in two steps:
 * wd_dispatch_parse() on the connection thread (the size check, the one
 * parse of the body, the route lookup; bounded work, so it never starves
 * broker I/O), then wd_dispatch_run() or wd_dispatch_run_batch():
 * handler -> verdict. That runs on a worker, except for a handler declared
 * WARREN_HANDLER_NONBLOCKING, which slot/conn.c calls on the connection's
 * own thread (until a call takes too long). What a verdict becomes on the
 * broker (ack, retry queue, dead-letter) is slot/settle.c's business. */
#ifndef WD_DISPATCH_H
#define WD_DISPATCH_H

#include "base/amqp_compat.h"
#include "host/routes.h"
#include "host/sdk_api.h"
#include "message/envelope.h"
#include "message/outbox.h"

enum wd_action {
	WD_ACTION_ACK = 0,         /* follow-ups, then basic.ack */
	WD_ACTION_RETRY = 1,       /* via a retry queue, or dead-letter */
	WD_ACTION_DEAD_LETTER = 2, /* republish to the dead-letter exchange */
	WD_ACTION_DROP = 3,        /* ack it away (explicit policy only) */
};

/* What became of one delivery, and why. */
struct wd_verdict {
	enum wd_action action;
	const struct wd_route *route; /* NULL if it never reached one */
	const char *reason;           /* a WD_R_* class (not for ACK) */
	bool drop_headers; /* its headers were past a limit: not copied */
	/* The handler call (wd_now_us), for the adaptive prefetch: when it
	 * began (0: no call) and how long it took. */
	int64_t started_us, handler_us;
	char text[WD_REASON_MAX]; /* the handler's or the parser's reason */
	struct wd_outbox outbox;  /* follow-ups (ACK only) */
};

/*
 * Make `amqp`, consumed from queue index `queue` of routes->conf, ready
 * for its handler: returns 0 with env parsed and v->route set, or -1 with
 * *v a final verdict (too large, unparseable, unknown type: dead-letter or
 * drop per the queue's policy; logged and counted). Either way call
 * wd_envelope_clear(env) once done with it.
 */
int wd_dispatch_parse(const struct wd_routes *routes, size_t queue,
                      const amqp_envelope_t *amqp, struct wd_envelope *env,
                      struct wd_verdict *v);

/* Call v->route's handler on env and fill *v from its outcome. Logs each
 * outcome that is not an ack, with the reason. env is left for the
 * connection thread to clear: memory is freed on the thread that
 * allocated it, which keeps malloc's arenas uncontended. */
void wd_dispatch_run(struct wd_envelope *env, struct wd_verdict *v);

/* The same for n deliveries of one batch route, in one handler call. */
void wd_dispatch_run_batch(const struct wd_route *route,
                           struct wd_envelope *const *envs,
                           struct wd_verdict *const *vs, size_t n);

/* An empty verdict (cheaper than zeroing its reason buffer). */
void wd_verdict_init(struct wd_verdict *v);

/* The verdict for a delivery that was not handled (out of memory): it
 * goes the retry way, never lost. `text` is copied. */
void wd_verdict_retry(struct wd_verdict *v, const char *text);

/* Free what a verdict owns (its follow-ups). */
void wd_verdict_clear(struct wd_verdict *v);

#endif
