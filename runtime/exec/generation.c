/* generation.c - a generation's life, made whole and freed whole; and the
 * slot that holds the current one. */
#include "exec/generation.h"

#include <stdlib.h>

#include "base/log.h"

struct wd_gen *wd_gen_new(struct wd_routes *routes, uint64_t number)
{
	struct wd_gen *g = calloc(1, sizeof(*g));

	if (!g) {
		wd_log_error("reload", "out of memory for generation %ju",
		             (uintmax_t)number);
		wd_routes_free(routes);
		return NULL;
	}
	g->gates = calloc(routes->nroutes + 1, sizeof(*g->gates));
	if (!g->gates) {
		wd_log_error("reload", "out of memory for generation %ju",
		             (uintmax_t)number);
		wd_routes_free(routes);
		free(g);
		return NULL;
	}
	for (size_t i = 0; i < routes->nroutes; i++)
		wd_gate_init(&g->gates[i],
		             routes->routes[i].policy->concurrency);
	g->routes = routes;
	g->number = number;
	atomic_init(&g->refs, 1);
	return g;
}

int wd_gen_start_batchers(struct wd_gen *g, struct wd_workers *workers)
{
	bool batched = false;

	for (size_t i = 0; i < g->routes->nroutes; i++)
		batched = batched || g->routes->routes[i].handle_batch;
	/* The batch thread exists only for generations that batch. */
	if (!batched || g->batchers)
		return 0;
	g->batchers = wd_batchers_start(g->routes, g->gates, workers);
	if (!g->batchers) {
		wd_log_error("reload",
		             "generation %ju: cannot start the batch "
		             "thread",
		             (uintmax_t)g->number);
		return -1;
	}
	return 0;
}

void wd_gen_drain(struct wd_gen *g)
{
	if (g && g->batchers)
		wd_batchers_drain(g->batchers);
}

void wd_gen_stop_batchers(struct wd_gen *g)
{
	if (!g)
		return;
	wd_batchers_stop(g->batchers);
	g->batchers = NULL;
}

void wd_gen_free(struct wd_gen *g)
{
	if (!g)
		return;
	wd_batchers_stop(g->batchers);
	for (size_t i = 0; i < g->routes->nroutes; i++)
		wd_gate_destroy(&g->gates[i]);
	free(g->gates);
	wd_routes_free(g->routes);
	free(g);
}

void wd_gen_slot_init(struct wd_gen_slot *s, struct wd_gen *g)
{
	pthread_mutex_init(&s->lock, NULL);
	atomic_init(&s->gen, g);
}

struct wd_gen *wd_gen_slot_get(struct wd_gen_slot *s)
{
	struct wd_gen *g;

	pthread_mutex_lock(&s->lock);
	g = atomic_load(&s->gen);
	wd_gen_ref(g);
	pthread_mutex_unlock(&s->lock);
	return g;
}

struct wd_gen *wd_gen_slot_peek(struct wd_gen_slot *s)
{
	return atomic_load(&s->gen);
}

struct wd_gen *wd_gen_slot_swap(struct wd_gen_slot *s, struct wd_gen *g)
{
	struct wd_gen *old;

	pthread_mutex_lock(&s->lock);
	old = atomic_load(&s->gen);
	atomic_store(&s->gen, g);
	pthread_mutex_unlock(&s->lock);
	return old;
}

void wd_gen_slot_destroy(struct wd_gen_slot *s)
{
	struct wd_gen *g = atomic_load(&s->gen);

	if (g)
		wd_gen_unref(g);
	atomic_store(&s->gen, NULL);
	pthread_mutex_destroy(&s->lock);
}
