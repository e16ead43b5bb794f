/* generation.h - one generation of what warrend runs: the routes (conf,
 * plugins, route table: host/routes.h) and the batchers of its batch
 * routes; and the slot that holds a pool's current generation.
 *
 * A reload builds a new generation beside the running one and swaps it
 * into the slot. Every delivery holds a reference to the generation it was
 * parsed under, so it finishes on that generation's code; the old
 * generation is freed -- batches flushed, plugins' fini run, libraries
 * unloaded -- once its last reference is gone (daemon/reload.h). Its
 * routes' concurrency gates are its own: a reload's new generation counts
 * from zero, and the old one's calls and parked deliveries finish on the
 * old gates. */
#ifndef WD_GENERATION_H
#define WD_GENERATION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "exec/batch.h"
#include "exec/gate.h"
#include "exec/workers.h"
#include "host/routes.h"

struct wd_gen {
	struct wd_routes *routes;     /* owned */
	struct wd_batchers *batchers; /* owned; NULL without batch routes */
	/* One per route (by its index): its concurrency limit, counted for
	 * this generation's calls only (exec/gate.h). */
	struct wd_gate *gates;
	uint64_t number; /* 1 at start, +1 per reload attempt */
	atomic_size_t refs;
};

/* A generation of `routes` (taken over, freed on failure too) holding one
 * reference. NULL if out of memory (logged). */
struct wd_gen *wd_gen_new(struct wd_routes *routes, uint64_t number);

/* Start the batch thread of a generation with batch routes, on the pool's
 * workers (once; a no-op without batch routes). -1 on failure (logged). */
int wd_gen_start_batchers(struct wd_gen *g, struct wd_workers *workers);

/* Its pending batches go to the workers now, and every later add at once
 * (stopping, or swapped out by a reload). */
void wd_gen_drain(struct wd_gen *g);

/* Flush what its batchers hold and stop their thread (before the workers
 * they submit to stop). */
void wd_gen_stop_batchers(struct wd_gen *g);

static inline void wd_gen_ref(struct wd_gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

/* Drop a reference. Whoever frees the generation (reload.c) waits for
 * wd_gen_unused(); the release pairs with its acquire, so everything done
 * under the reference happens before the free. */
static inline void wd_gen_unref(struct wd_gen *g)
{
	atomic_fetch_sub_explicit(&g->refs, 1, memory_order_release);
}

static inline bool wd_gen_unused(struct wd_gen *g)
{
	return atomic_load_explicit(&g->refs, memory_order_acquire) == 0;
}

/* Stop its batchers (flushing what they hold), then fini and unload its
 * plugins and free its conf. Only once nothing uses it. */
void wd_gen_free(struct wd_gen *g);

/* The current generation of a pool, read by its connection threads and
 * swapped by a reload. The slot holds one reference to it. Compared
 * without the lock (wd_gen_slot_is); a reference is taken under it, so the
 * generation cannot be retired in between (wd_gen_slot_get). */
struct wd_gen_slot {
	struct wd_gen *_Atomic gen;
	pthread_mutex_t lock;
};

/* Hold g (the caller's reference, taken over). */
void wd_gen_slot_init(struct wd_gen_slot *s, struct wd_gen *g);

/* A new reference to the current generation. */
struct wd_gen *wd_gen_slot_get(struct wd_gen_slot *s);

/* Whether g is the current generation (a relaxed look, for a thread that
 * asks each turn of its loop whether a reload happened). */
static inline bool wd_gen_slot_is(struct wd_gen_slot *s, const struct wd_gen *g)
{
	return atomic_load_explicit(&s->gen, memory_order_relaxed) == g;
}

/* The current generation without a new reference (the slot's own holds
 * it): for its owner only, e.g. to stop its batchers. */
struct wd_gen *wd_gen_slot_peek(struct wd_gen_slot *s);

/* Make g (the caller's reference, taken over) current; returns the one it
 * replaced, whose reference is now the caller's. */
struct wd_gen *wd_gen_slot_swap(struct wd_gen_slot *s, struct wd_gen *g);

/* Drop the slot's reference (if any) and its lock. */
void wd_gen_slot_destroy(struct wd_gen_slot *s);

#endif
