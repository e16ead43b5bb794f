/* series.h - the labelled metrics: one series per queue, per route and per
 * pool slot, plus the plugins a generation runs.
 *
 * A series is registered (found or made) when a generation is built, under
 * the registry's lock, and never freed: a reload that keeps a queue or a
 * route keeps counting in the same series, so counters never go back. The
 * message path holds a pointer to its series and adds to it with relaxed
 * atomics; no lock per message. Readers (the HTTP endpoint, the metrics
 * log line) walk the lists under the lock, which nothing on the message
 * path takes. */
#ifndef WD_SERIES_H
#define WD_SERIES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/histogram.h"

/* Reason classes a dead-letter or drop is counted by: indexes into
 * wd_reasons (message/policy.h names them, in this order). */
#define WD_SERIES_REASONS 7

/* Outcomes a handler call is counted by. */
enum wd_outcome {
	WD_OUTCOME_ACK = 0,
	WD_OUTCOME_RETRY,
	WD_OUTCOME_REJECT,
	WD_OUTCOME_INVALID,
	WD_OUTCOMES
};
extern const char *const wd_outcome_names[WD_OUTCOMES];

typedef atomic_uint_fast64_t wd_counter;

/* A counter's value at each of the last samples (wd_series_sample, once a
 * second), newest first: recent rates. Under the registry lock only. */
#define WD_RATE_SAMPLES 11
struct wd_rate {
	uint64_t v[WD_RATE_SAMPLES];
};

#define wd_count(c) atomic_fetch_add_explicit(&(c), 1, memory_order_relaxed)
#define wd_count_n(c, n)                                                       \
	atomic_fetch_add_explicit(&(c), (n), memory_order_relaxed)
#define wd_counted(c) atomic_load_explicit(&(c), memory_order_relaxed)

/* Where a delivery read from a queue is while it is in flight. */
enum wd_inflight {
	WD_INFLIGHT_WAITING_WORKER = 0, /* handed off, no handler yet */
	WD_INFLIGHT_IN_HANDLER,
	WD_INFLIGHT_WAITING_CONFIRM, /* its publishes not confirmed yet */
	WD_INFLIGHT_WAITING_UNBLOCK, /* to publish, while the broker blocks */
	/* parked: its route has `concurrency` calls in flight already */
	WD_INFLIGHT_WAITING_CONCURRENCY,
	WD_INFLIGHT_STAGES
};
extern const char *const wd_inflight_names[WD_INFLIGHT_STAGES];

#define WD_SERIES_MAX_SLOTS 64 /* broker.pool_size's maximum */

struct wd_queue_series {
	struct wd_queue_series *next;
	char *queue;
	wd_counter received;
	wd_counter dead_lettered[WD_SERIES_REASONS]; /* confirmed copies */
	wd_counter dropped[WD_SERIES_REASONS];
	wd_counter retry_published; /* confirmed retry copies */
	wd_counter republish_failed;
	/* The broker closed a consumer's channel: a delivery not acked
	 * within its consumer_timeout (slot/consumers.c). */
	wd_counter consumer_timeouts;
	struct wd_hist end_to_end; /* publish -> settle, when known */
	struct wd_rate received_rate;
	_Atomic int64_t inflight[WD_INFLIGHT_STAGES]; /* gauges */
	/* The prefetch of its consumer on each slot (0: none there): the
	 * number, or where `auto` has moved it (slot/consumers.c). */
	atomic_int prefetch[WD_SERIES_MAX_SLOTS];
	atomic_bool prefetch_auto[WD_SERIES_MAX_SLOTS];
};

struct wd_route_series {
	struct wd_route_series *next;
	char *queue, *type, *plugin, *handler;
	wd_counter handled[WD_OUTCOMES];
	wd_counter followups;        /* confirmed */
	wd_counter followups_failed; /* inputs whose follow-ups failed */
	wd_counter batches;          /* batch handler calls */
	/* Handler calls that ran past handler_timeout_warn (exec/delivery.c),
	 * each counted once however often it is logged. */
	wd_counter handler_timeout_warnings;
	struct wd_hist handler_seconds;
	struct wd_rate handled_rate,
	    failed_rate; /* all; retry+reject+invalid */
};

/* A pool slot's state, as /readyz and the metrics report it. */
enum wd_slot_state {
	WD_SLOT_CONNECTING = 0,
	WD_SLOT_CONSUMING,
	WD_SLOT_BLOCKED,      /* the broker blocked the connection */
	WD_SLOT_RECONNECTING, /* retry_at_ms says when */
	WD_SLOT_STOPPING,
	WD_SLOT_STOPPED,
	WD_SLOT_STATES
};
extern const char *const wd_slot_state_names[WD_SLOT_STATES];

struct wd_slot_series {
	atomic_int state;            /* enum wd_slot_state */
	_Atomic int64_t retry_at_ms; /* monotonic, when RECONNECTING */
	atomic_size_t inflight;      /* read and not settled yet */
	/* Monotonic time past which the slot's thread counts as stuck:
	 * pushed forward by every turn of its loop. */
	_Atomic int64_t alive_until_ms;
	atomic_int node; /* the broker address it is on (view's nodes), or -1 */
};

/* The queue's series (made if new), or NULL if out of memory. */
struct wd_queue_series *wd_series_queue(const char *queue);

/* The route's series (made if new), or NULL if out of memory. */
struct wd_route_series *wd_series_route(const char *queue, const char *type,
                                        const char *plugin,
                                        const char *handler);

/* Slots: each pool has its own array (a pool replaced by a reload runs
 * its threads a while longer, and must not overwrite the new pool's
 * states); the serving pool publishes its array once it has started.
 * Arrays are never freed. NULL if out of memory. */
struct wd_slot_series *wd_series_slots_new(void);
/* nodes: the broker's addresses ("host:port") the slots' node indexes
 * name; the caller's, kept until wd_series_slots_free. */
void wd_series_slots_publish(struct wd_slot_series *slots, int nslots,
                             const char *const *nodes, int nnodes);
/* A pool's array once its threads are gone (the pool is freed): no longer
 * served if it was, and freed. */
void wd_series_slots_free(struct wd_slot_series *slots);

static inline void wd_slot_set(struct wd_slot_series *s,
                               enum wd_slot_state state)
{
	atomic_store_explicit(&s->state, (int)state, memory_order_relaxed);
}

/* The main loop's liveness, for /healthz. */
void wd_series_main_alive_until(int64_t ms);
int64_t wd_series_main_alive(void);

/* The plugins of the serving generation, for warren_plugin_info. */
struct wd_plugin_info {
	char *plugin, *version;
	uint64_t generation;
};
/* Replace the list (copies the strings). -1 on out of memory (the old list
 * stays). */
int wd_series_set_plugins(const struct wd_plugin_info *p, size_t n);

/* A plugin's own counter (warren_api.counter_add): found or made without
 * a lock, so a handler may count per message. NULL if the table is full
 * (WD_SERIES_PLUGIN_COUNTERS) or out of memory. */
#define WD_SERIES_PLUGIN_COUNTERS 1024
struct wd_plugin_counter {
	const char *plugin, *name; /* owned */
	wd_counter value;
};
struct wd_plugin_counter *wd_series_plugin_counter(const char *plugin,
                                                   const char *name);

/* Walk everything under the registry lock: fn gets the heads of the lists
 * and the plugin list; it must not block. */
struct wd_series_view {
	const struct wd_queue_series *queues;
	const struct wd_route_series *routes;
	const struct wd_plugin_info *plugins;
	size_t nplugins;
	const struct wd_slot_series *slots; /* the serving pool's, or NULL */
	int nslots;
	const char *const *nodes; /* the broker's addresses, for slots' node */
	int nnodes;
	/* The plugin counters' table: WD_SERIES_PLUGIN_COUNTERS slots, NULL
	 * where empty (entries are made without the lock: read atomically). */
	struct wd_plugin_counter *_Atomic const *plugin_counters;
	const int64_t *sample_ms; /* when each rate sample was taken */
	int nsamples;
};

/* Take a rate sample of every series (the main loop, once a second). */
void wd_series_sample(int64_t now_ms);

/* Per second over the samples taken (up to WD_RATE_SAMPLES - 1 seconds),
 * or 0 with fewer than two. Call inside wd_series_visit. */
double wd_series_rate(const struct wd_series_view *v, const struct wd_rate *r);
void wd_series_visit(void (*fn)(const struct wd_series_view *v, void *arg),
                     void *arg);

#endif
