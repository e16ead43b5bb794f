/* generation.h - one generation of what warrend runs: the conf, its plugins
 * and routes (routes.h), and the batchers of its batch routes.
 *
 * A reload builds a new generation beside the running one and swaps it in
 * (pool.h). Every delivery holds a reference to the generation it was
 * parsed under, so it finishes on that generation's code; the old
 * generation is freed -- batches flushed, plugins' fini run, libraries
 * unloaded -- once its last reference is gone (reload.h). */
#ifndef WD_GENERATION_H
#define WD_GENERATION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "exec/batch.h"
#include "host/routes.h"

struct wd_gen {
	struct wd_routes *routes;     /* owned */
	struct wd_batchers *batchers; /* owned; NULL without batch routes */
	uint64_t number;              /* 1 at start, +1 per reload attempt */
	atomic_size_t refs;
};

/* A generation of `routes` (taken over, freed on failure too) holding one
 * reference. NULL if out of memory (logged). */
struct wd_gen *wd_gen_new(struct wd_routes *routes, uint64_t number);

/* Start the batch thread of a generation with batch routes, on the pool's
 * workers (once; a no-op without batch routes). -1 on failure (logged). */
int wd_gen_start_batchers(struct wd_gen *g, struct wd_workers *workers);

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

#endif
