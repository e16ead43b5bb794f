/* conf_diff.h - what a reload changes: every comparison of two confs, so
 * that what "the same" means for a pool, a topology or a consumer is
 * decided in one place, next to the model it reads. */
#ifndef WD_CONF_DIFF_H
#define WD_CONF_DIFF_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"

/* Both NULL, or both strings and equal. */
bool wd_conf_str_eq(const char *a, const char *b);

/* Whether a and b give a pool the same connections and workers: the
 * broker keys that reach the broker (url, password_file, heartbeat,
 * connect_timeout, pool_size, TLS keys, publish_timeout) and `workers`.
 * prefetch and the ack keys are per consumer (wd_conf_same_consumer):
 * changing them replaces consumers, not connections. */
bool wd_conf_same_pool(const struct wd_conf *a, const struct wd_conf *b);

/* Whether a and b declare the same exchanges and queues (with their
 * arguments; a queue with its retry queues) and bindings, in the same order: a
 * reload with the same topology has nothing to declare. */
bool wd_conf_same_topology(const struct wd_conf *a, const struct wd_conf *b);

/* Whether queue qa of a and queue qb of b get the same consumer: the same
 * queue, prefetch, resolved ack batch (wd_conf_ack_batch) and
 * broker.ack_delay_ms. A reload can keep such a consumer as it is. */
bool wd_conf_same_consumer(const struct wd_conf *a, size_t qa,
                           const struct wd_conf *b, size_t qb);

/* The reload's summary line. A route is the same route in both confs if it
 * routes the same type on a queue of the same name; it changed if its
 * handler, plugin or policy did. A queue counts once it is consumed. */
struct wd_conf_diff {
	size_t routes_added, routes_removed, routes_changed;
	size_t queues_added, queues_removed;
};

void wd_conf_diff(const struct wd_conf *old, const struct wd_conf *new,
                  struct wd_conf_diff *d);

#endif
