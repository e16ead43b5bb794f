/* reload.h - the daemon's generations: the first at start, a new one on
 * each SIGHUP, and the retired ones until nothing uses them any more.
 *
 * A reload builds the whole new generation beside the running one (conf,
 * private copies of the plugins, handler and ABI checks, init, then the new
 * topology declared on a connection of its own) and only then swaps it in.
 * Any failure logs why, frees what was built, counts it, and leaves the
 * running generation as it was. Called from the main thread only. */
#ifndef WD_RELOAD_H
#define WD_RELOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "exec/generation.h"
#include "slot/pool.h"

struct wd_reloader {
	const char *conf_path;
	struct wd_pool *pool;    /* serving current */
	struct wd_gen *current;  /* the pool holds its reference */
	struct wd_gen **retired; /* swapped out, freed once unused */
	size_t nretired, capretired;
	uint64_t last_number; /* the last generation number given out */
};

/* Load conf_path into generation 1 (plugins loaded, checked and init'ed).
 * NULL on failure, logged. Also what `warrend -t` runs. */
struct wd_gen *wd_reload_load(const char *conf_path, uint64_t number);

/* Generation 1 (r->current), not serving yet. -1 on failure (logged). */
int wd_reload_first(struct wd_reloader *r, const char *conf_path);

/* Its pool: connect, declare, consume. While the broker cannot be
 * reached at all (and broker.startup is "wait"), it retries with backoff,
 * logging each attempt with the cause. 0 once serving; -1 on failure, 1 if
 * SIGINT or SIGTERM came first (logged; r->current is freed either way). */
int wd_reload_serve(struct wd_reloader *r);

/* Reload conf_path (SIGHUP). Logs one summary line either way. Returns 0
 * if the new generation serves, -1 if the old one still does. */
int wd_reload(struct wd_reloader *r);

/* Free the retired generations nothing uses any more (their plugins' fini
 * runs here). Returns how many are still in use. */
size_t wd_reload_collect(struct wd_reloader *r);

/* After the pool is stopped, joined and freed: free every generation. */
void wd_reload_finish(struct wd_reloader *r);

#endif
