/* dlq_msg.h - what `warrenctl dlq` reads from one dead-letter and what it
 * makes of it: the fields it is counted and filtered by (reason, type,
 * plugin/handler, original queue, failure time), the headers of its
 * redriven copy, and printing it safely. Pure: no broker I/O, so each rule
 * is testable without a broker (tests/unit/test_dlq_msg.c). */
#ifndef WC_DLQ_MSG_H
#define WC_DLQ_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/amqp_compat.h"

/* The redriven copy's count of redrives (README: warrenctl dlq). */
#define WC_H_REDRIVEN "x-warren-redriven"

/* One dead-letter's description; "" where it does not say. */
struct wc_dlq_info {
	char reason[128];  /* x-warren-reason, else the broker's
	                      x-first-death-reason (delivery_limit, expired) */
	char type[256];    /* the JSON body's "type", else the type property */
	char handler[300]; /* "plugin/handler", or "plugin" */
	char queue[256];   /* x-warren-queue, else x-first-death-queue */
	char message_id[256];
	int64_t failed_ms; /* x-warren-last-failure-ms, else x-death's time;
	                      -1 if neither */
	int64_t redriven;  /* x-warren-redriven, 0 if absent */
};

/* Matching: each set (non-NULL) filter must equal the field exactly;
 * handler matches "plugin/handler" or the plugin alone. */
struct wc_dlq_filter {
	const char *reason, *type, *handler, *queue;
};

void wc_dlq_info_read(const amqp_envelope_t *env, struct wc_dlq_info *out);
bool wc_dlq_match(const struct wc_dlq_filter *f, const struct wc_dlq_info *i);

/*
 * The headers of the redriven copy: the dead-letter's headers without
 * warren's failure headers (x-warren-attempts, -reason, -reason-text,
 * -plugin, -handler, -first-failure-ms, -last-failure-ms, -queue) and
 * without the broker's death and delivery records (x-death,
 * x-first-death-*, x-last-death-*, x-delivery-count), so that warrend
 * counts its next delivery as attempt 1; x-warren-original-* are kept
 * (handlers still see where it was first published), x-warren-redriven
 * is set to one more than before, and a user_id property (which the copy
 * does not carry) becomes x-warren-original-user-id. out->entries borrows from
 * env; free it afterwards. Returns -1 on out of memory.
 */
int wc_dlq_redrive_headers(const amqp_envelope_t *env, amqp_table_t *out);

/* Print bytes for a terminal: valid UTF-8 as it is, except control
 * characters (C0, DEL, C1) and backslash, which are escaped (\n, \t, \\,
 * \xHH, \u0085); every byte of invalid UTF-8 as \xHH. At most max bytes
 * of the input (then "..."). */
void wc_dlq_print_bytes(FILE *f, const void *p, size_t len, size_t max);

/* One AMQP field value, strings escaped as above; tables and arrays
 * inline ({k: v, ...}, [v, ...]), at most `depth` levels deep. */
void wc_dlq_print_field(FILE *f, const amqp_field_value_t *v, int depth);

#endif
