/* policy.h - what a failed or refused message becomes: the attempt count a
 * delivery carries, the retry queue and delay of its next attempt, and the
 * headers of the copy warren republishes (to a retry queue or to the
 * dead-letter exchange). Pure functions of a delivery: no broker I/O. */
#ifndef WD_POLICY_H
#define WD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"
#include "base/series.h"

/* warren's own headers; the README documents each. */
#define WD_H_ATTEMPTS         "x-warren-attempts"
#define WD_H_REASON           "x-warren-reason"
#define WD_H_REASON_TEXT      "x-warren-reason-text"
#define WD_H_PLUGIN           "x-warren-plugin"
#define WD_H_HANDLER          "x-warren-handler"
#define WD_H_FIRST_FAILURE    "x-warren-first-failure-ms"
#define WD_H_LAST_FAILURE     "x-warren-last-failure-ms"
#define WD_H_ORIG_EXCHANGE    "x-warren-original-exchange"
#define WD_H_ORIG_ROUTING_KEY "x-warren-original-routing-key"
/* The user_id property of the first delivery: the copies do not carry the
 * property (see wd_policy_headers). */
#define WD_H_ORIG_USER_ID "x-warren-original-user-id"
/* Set by warren's load tool: when the message was published, in
 * microseconds since the epoch (end-to-end latency). */
#define WD_H_PUBLISHED_US "x-warren-published-us"
#define WD_H_QUEUE        "x-warren-queue"

/* Reason classes of x-warren-reason. */
#define WD_R_HANDLER_REJECT  "handler-reject"
#define WD_R_MAX_ATTEMPTS    "max-attempts"
#define WD_R_UNPARSEABLE     "unparseable"
#define WD_R_BAD_TYPE        "bad-type" /* missing, not a string, empty, too long */
#define WD_R_UNKNOWN_TYPE    "unknown-type"
#define WD_R_TOO_LARGE       "too-large"
#define WD_R_INVALID_OUTCOME "invalid-outcome"
/* On a retry queue's copy: why the last attempt failed. */
#define WD_R_HANDLER_RETRY   "handler-retry"
#define WD_R_FOLLOWUP_FAILED "followup-failed"

/* A route's delivery policy, resolved: the route's own keys, else the
 * `policy` section's, else the defaults. */
struct wd_policy {
	int max_attempts;        /* handler calls before dead-lettering */
	long retry_delay_ms;     /* delay after the first failed attempt */
	double retry_multiplier; /* each further delay is this much longer */
	long retry_max_delay_ms; /* no delay is longer */
	double retry_jitter;     /* 0..1: a delay is cut by up to this part */
	int batch_size;          /* > 1: the handler is a batch handler */
	long batch_timeout_ms;   /* a partial batch waits at most this long */
	/* handler_timeout_warn: a handler call running longer is logged
	 * (exec/delivery.c watches), 0 = never. */
	long handler_warn_ms;
	/* concurrency: the most handler calls (batch calls, for a batch
	 * route) of the route in flight at once, 0 = no limit (workers). */
	int concurrency;
};

/* The delay before retry number `attempt` (1 = after the first failed
 * attempt), before jitter: retry_delay_ms * multiplier^(attempt-1),
 * capped at retry_max_delay_ms. */
long wd_policy_delay_ms(const struct wd_policy *p, int attempt);

/* The reasons a message is dead-lettered or dropped for, in the order of
 * the series' counters (base/series.h). */
extern const char *const wd_reasons[WD_SERIES_REASONS];

/* The index of reason class r in wd_reasons, or -1. */
int wd_reason_index(const char *r);

/* How many attempts a delivery has behind it. */
struct wd_attempts {
	int from_header; /* x-warren-attempts, -1 if absent or unusable */
	int from_xdeath; /* expiries from this queue's retry queues */
	int64_t delivery_count; /* x-delivery-count (quorum queues), or -1 */
	int redeliveries;       /* the same as an attempt count, else 0 */
	bool header_bad;        /* x-warren-attempts present but not a count */
	int attempt;            /* this delivery's attempt, 1-based */
};

/*
 * Count the attempts of a delivery consumed from `queue`. The count of
 * earlier failed attempts is the larger of warren's header and the x-death
 * expiries of "<queue>.retry.*" (so a lost or forged header never makes a
 * message retry forever); each quorum redelivery (x-delivery-count: an
 * attempt that never finished, e.g. a crash) counts as an attempt too.
 */
void wd_policy_attempts(const amqp_envelope_t *env, const char *queue,
                        struct wd_attempts *out);

/* "<queue>.retry.<delay_ms>" into buf. Returns -1 if it does not fit. */
int wd_policy_retry_queue(char *buf, size_t len, const char *queue,
                          long delay_ms);

/* The delay of retry number `attempt` with jitter applied: uniformly cut
 * by up to retry_jitter of it (never lengthened, so the retry queue's TTL
 * is an upper bound). `rnd` is a uniform value in [0, 1). */
long wd_policy_jittered_ms(const struct wd_policy *p, int attempt, double rnd);

/* Why a copy is republished. */
struct wd_failure {
	const char *reason; /* a WD_R_* class */
	const char *text;   /* the handler's or the parser's reason, or "" */
	const char *plugin; /* NULL if no handler was involved */
	const char *handler;
	int attempts;      /* attempts made, this one included */
	int64_t now_ms;    /* the time of this failure */
	bool drop_headers; /* copy none of the delivery's own headers */
};

/*
 * Headers of the republished copy of `env`: the delivery's own headers
 * (x-death included) with warren's failure headers set from `f`; the first
 * failure time and the original exchange / routing key are kept from an
 * earlier copy, else taken from this delivery. So is the user_id property,
 * as x-warren-original-user-id: RabbitMQ refuses a publish whose user_id
 * is not the publishing connection's user (a channel error), so a copy
 * warrend publishes must not carry another user's; the caller drops the
 * property. *out borrows strings from
 * env, f and `scratch` (which must outlive *out); free out->entries
 * afterwards. Returns -1 on out of memory.
 */
struct wd_header_scratch {
	char queue[256];
};
int wd_policy_headers(const amqp_envelope_t *env, const char *queue,
                      const struct wd_failure *f,
                      struct wd_header_scratch *scratch, amqp_table_t *out);

/*
 * When env was first published, in microseconds since the epoch, or -1 if
 * it does not say: warren's x-warren-published-us header, else the AMQP
 * timestamp property. The spec makes that seconds, but Node producers
 * often put Date.now() milliseconds there: a value too large to be
 * seconds (over 10^11, the year 5138) is read as milliseconds.
 */
int64_t wd_policy_published_us(const amqp_envelope_t *env);

/* The exchange and routing key a delivery was first published with
 * (warren's header on a retried copy, else the delivery's own). */
amqp_bytes_t wd_policy_original_exchange(const amqp_envelope_t *env);
amqp_bytes_t wd_policy_original_routing_key(const amqp_envelope_t *env);

#endif
