/* series.c - the registry of labelled series. */
#include "base/series.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const char *const wd_outcome_names[WD_OUTCOMES] = {"ack", "retry", "reject",
                                                   "invalid"};

const char *const wd_inflight_names[WD_INFLIGHT_STAGES] = {
    "waiting_worker", "in_handler", "waiting_confirm", "waiting_unblock",
    "waiting_concurrency"};

const char *const wd_slot_state_names[WD_SLOT_STATES] = {
    "connecting",   "consuming", "blocked",
    "reconnecting", "stopping",  "stopped"};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct wd_queue_series *queues;
static struct wd_route_series *routes;
static struct wd_plugin_info *plugins;
static size_t nplugins;

/* Every pool's slot array, the serving one first. */
struct slot_array {
	struct slot_array *next;
	struct wd_slot_series slot[WD_SERIES_MAX_SLOTS];
};
static struct slot_array *slot_arrays;
static const struct wd_slot_series *serving;
static int nserving;
static const char *const *serving_nodes; /* the serving pool's */
static int nserving_nodes;
static _Atomic int64_t main_alive_until;
static int64_t sample_ms[WD_RATE_SAMPLES];
/* Open addressing, never shrinking: an entry, once in, stays. */
static struct wd_plugin_counter
    *_Atomic plugin_counters[WD_SERIES_PLUGIN_COUNTERS];
static int nsamples;

static bool same(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

struct wd_queue_series *wd_series_queue(const char *queue)
{
	struct wd_queue_series *q, **end = &queues;

	pthread_mutex_lock(&lock);
	for (q = queues; q; end = &q->next, q = q->next)
		if (same(q->queue, queue))
			goto out;
	q = calloc(1, sizeof(*q));
	if (q && !(q->queue = strdup(queue))) {
		free(q);
		q = NULL;
	}
	if (q)
		*end = q; /* in the order they were first seen */
out:
	pthread_mutex_unlock(&lock);
	return q;
}

struct wd_route_series *wd_series_route(const char *queue, const char *type,
                                        const char *plugin, const char *handler)
{
	struct wd_route_series *r, **end = &routes;

	pthread_mutex_lock(&lock);
	for (r = routes; r; end = &r->next, r = r->next)
		if (same(r->queue, queue) && same(r->type, type) &&
		    same(r->plugin, plugin) && same(r->handler, handler))
			goto out;
	r = calloc(1, sizeof(*r));
	if (r && (!(r->queue = strdup(queue)) || !(r->type = strdup(type)) ||
	          !(r->plugin = strdup(plugin)) ||
	          !(r->handler = strdup(handler)))) {
		free(r->queue);
		free(r->type);
		free(r->plugin);
		free(r);
		r = NULL;
	}
	if (r)
		*end = r;
out:
	pthread_mutex_unlock(&lock);
	return r;
}

struct wd_slot_series *wd_series_slots_new(void)
{
	struct slot_array *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	for (int i = 0; i < WD_SERIES_MAX_SLOTS; i++) {
		atomic_init(&a->slot[i].state, WD_SLOT_CONNECTING);
		atomic_init(&a->slot[i].alive_until_ms, INT64_MAX);
		atomic_init(&a->slot[i].node, -1);
	}
	pthread_mutex_lock(&lock);
	a->next = slot_arrays;
	slot_arrays = a;
	pthread_mutex_unlock(&lock);
	return a->slot;
}

void wd_series_slots_free(struct wd_slot_series *slots)
{
	struct slot_array **a, *dead = NULL;

	if (!slots)
		return;
	pthread_mutex_lock(&lock);
	if (serving == slots) {
		serving = NULL;
		nserving = 0;
		serving_nodes = NULL;
		nserving_nodes = 0;
	}
	for (a = &slot_arrays; *a; a = &(*a)->next)
		if ((*a)->slot == slots) {
			dead = *a;
			*a = dead->next;
			break;
		}
	pthread_mutex_unlock(&lock);
	free(dead);
}

void wd_series_slots_publish(struct wd_slot_series *slots, int n,
                             const char *const *nodes, int nnodes)
{
	pthread_mutex_lock(&lock);
	serving = slots;
	nserving = n < WD_SERIES_MAX_SLOTS ? n : WD_SERIES_MAX_SLOTS;
	serving_nodes = nodes;
	nserving_nodes = nnodes;
	pthread_mutex_unlock(&lock);
}

void wd_series_main_alive_until(int64_t ms)
{
	atomic_store_explicit(&main_alive_until, ms, memory_order_relaxed);
}

int64_t wd_series_main_alive(void)
{
	return atomic_load_explicit(&main_alive_until, memory_order_relaxed);
}

static void free_plugins(struct wd_plugin_info *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].plugin);
		free(p[i].version);
	}
	free(p);
}

int wd_series_set_plugins(const struct wd_plugin_info *p, size_t n)
{
	struct wd_plugin_info *copy = calloc(n + 1, sizeof(*copy)), *old;
	size_t nold;

	if (!copy)
		return -1;
	for (size_t i = 0; i < n; i++) {
		copy[i].generation = p[i].generation;
		copy[i].plugin = strdup(p[i].plugin);
		copy[i].version = strdup(p[i].version);
		if (!copy[i].plugin || !copy[i].version) {
			free_plugins(copy, i + 1);
			return -1;
		}
	}
	pthread_mutex_lock(&lock);
	old = plugins;
	nold = nplugins;
	plugins = copy;
	nplugins = n;
	pthread_mutex_unlock(&lock);
	free_plugins(old, nold);
	return 0;
}

void wd_series_visit(void (*fn)(const struct wd_series_view *v, void *arg),
                     void *arg)
{
	struct wd_series_view v;

	pthread_mutex_lock(&lock);
	v.queues = queues;
	v.routes = routes;
	v.plugins = plugins;
	v.nplugins = nplugins;
	v.slots = serving;
	v.nslots = nserving;
	v.nodes = serving_nodes;
	v.nnodes = nserving_nodes;
	v.plugin_counters = plugin_counters;
	v.sample_ms = sample_ms;
	v.nsamples = nsamples;
	fn(&v, arg);
	pthread_mutex_unlock(&lock);
}

static void shift(struct wd_rate *r, uint64_t now)
{
	memmove(&r->v[1], &r->v[0], (WD_RATE_SAMPLES - 1) * sizeof(r->v[0]));
	r->v[0] = now;
}

void wd_series_sample(int64_t now_ms)
{
	pthread_mutex_lock(&lock);
	memmove(&sample_ms[1], &sample_ms[0],
	        (WD_RATE_SAMPLES - 1) * sizeof(sample_ms[0]));
	sample_ms[0] = now_ms;
	if (nsamples < WD_RATE_SAMPLES)
		nsamples++;
	for (struct wd_queue_series *q = queues; q; q = q->next)
		shift(&q->received_rate, wd_counted(q->received));
	for (struct wd_route_series *r = routes; r; r = r->next) {
		uint64_t all = 0, failed = 0;
		/* Each counter read once: a sum and a difference of two
		 * reads could go below zero. */
		for (int i = 0; i < WD_OUTCOMES; i++) {
			uint64_t v = wd_counted(r->handled[i]);
			all += v;
			if (i != WD_OUTCOME_ACK)
				failed += v;
		}
		shift(&r->handled_rate, all);
		shift(&r->failed_rate, failed);
	}
	pthread_mutex_unlock(&lock);
}

double wd_series_rate(const struct wd_series_view *v, const struct wd_rate *r)
{
	int last = v->nsamples - 1;
	int64_t dt;

	if (last < 1)
		return 0;
	dt = v->sample_ms[0] - v->sample_ms[last];
	/* A series made after the oldest sample counts from zero. */
	return dt > 0 && r->v[0] >= r->v[last]
	           ? (double)(r->v[0] - r->v[last]) * 1000.0 / (double)dt
	           : 0;
}

static uint32_t hash2(const char *a, const char *b)
{
	uint32_t h = 2166136261u; /* FNV-1a over "a\0b" */

	for (const char *s = a;; s++) {
		h = (h ^ (unsigned char)*s) * 16777619u;
		if (!*s)
			break;
	}
	for (const char *s = b; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct wd_plugin_counter *wd_series_plugin_counter(const char *plugin,
                                                   const char *name)
{
	uint32_t h = hash2(plugin, name);
	struct wd_plugin_counter *mine = NULL;

	for (uint32_t i = 0; i < WD_SERIES_PLUGIN_COUNTERS; i++) {
		struct wd_plugin_counter *_Atomic *slot =
		    &plugin_counters[(h + i) % WD_SERIES_PLUGIN_COUNTERS];
		struct wd_plugin_counter *e = atomic_load(slot);

		while (!e) {
			if (!mine) {
				mine = calloc(1, sizeof(*mine));
				if (!mine || !(mine->plugin = strdup(plugin)) ||
				    !(mine->name = strdup(name)))
					goto oom;
			}
			/* Claim the empty slot; if another thread won it, look
			 * at what it put there. */
			if (atomic_compare_exchange_strong(slot, &e, mine))
				return mine;
		}
		if (same(e->plugin, plugin) && same(e->name, name)) {
			if (mine) {
				free((char *)mine->plugin);
				free((char *)mine->name);
				free(mine);
			}
			return e;
		}
	}
oom:
	if (mine) {
		free((char *)mine->plugin);
		free((char *)mine->name);
		free(mine);
	}
	return NULL;
}
