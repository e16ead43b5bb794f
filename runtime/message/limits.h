/* limits.h - what reading one message may cost the connection thread that
 * reads it: bounds on its headers (entries, nesting) and on its JSON body
 * (nesting, values, the CPU time of the parse), beside max_body_size. A
 * message over one is dead-lettered as "too-large" with the limit named
 * (exec/dispatch.c), for the price of a scan that stops at the limit: no
 * publisher can stall a connection (its heartbeats, its acks, the other
 * deliveries) with a body nested 2048 deep or half a million keys. */
#ifndef WD_LIMITS_H
#define WD_LIMITS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/amqp_compat.h"

/* A queue's limits (conf: the policy section's, or the queue's own). */
struct wd_input_limits {
	int json_depth;   /* max_json_depth: arrays and objects, nested */
	long json_values; /* max_json_values: elements and members */
	int parse_ms;     /* max_parse_ms: CPU time of one parse; 0: none */
	int header_depth; /* max_header_depth: the headers table is 1 */
	long headers;     /* max_headers: entries and elements, nested */
};

/* The defaults (conf/conf_schema.c has the same figures). */
#define WD_INPUT_LIMITS_DEFAULT                                                \
	{                                                                      \
		.json_depth = 64, .json_values = 100000, .parse_ms = 50,       \
		.header_depth = 8, .headers = 1000                             \
	}

/*
 * 0 if the headers table (NULL: none) keeps within l's bounds; else -1
 * with `why` naming the bound. Entries count at every level: a table's
 * entries and an array's elements, nested ones included. The walk stops
 * at the first bound passed, so its cost is at most l->headers steps.
 */
int wd_limits_headers(const struct wd_input_limits *l, const amqp_table_t *t,
                      char *why, size_t whylen);

/*
 * 0 if a JSON text of len bytes keeps within l's nesting and value
 * bounds, or is not valid JSON in a way the parse will name; else -1 with
 * `why` naming the bound. Values: every array element and object member,
 * and the text itself (so "{}" is 1, {"a":[1,2]} is 4). One pass over the
 * bytes, stopping at the first bound passed: about a millisecond per MiB.
 */
int wd_limits_json(const struct wd_input_limits *l, const char *text,
                   size_t len, char *why, size_t whylen);

#endif
