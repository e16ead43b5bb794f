/* gate.c - a counter of places and a FIFO of the tasks that wait for one. */
#include "exec/gate.h"

void wd_gate_init(struct wd_gate *g, int limit)
{
	g->limit = limit > 0 ? limit : 0;
	g->running = 0;
	g->head = g->tail = NULL;
	g->parked = 0;
	pthread_mutex_init(&g->lock, NULL);
}

void wd_gate_destroy(struct wd_gate *g)
{
	pthread_mutex_destroy(&g->lock);
}

bool wd_gate_enter(struct wd_gate *g, struct wd_task *t)
{
	bool place;

	pthread_mutex_lock(&g->lock);
	/* A free place means nothing is parked: a place is handed to the
	 * oldest parked task before it is freed (wd_gate_leave), so a new
	 * task never overtakes a waiting one. */
	place = g->running < g->limit;
	if (place) {
		g->running++;
	} else {
		t->next = NULL;
		if (g->tail)
			g->tail->next = t;
		else
			g->head = t;
		g->tail = t;
		g->parked++;
	}
	pthread_mutex_unlock(&g->lock);
	return place;
}

struct wd_task *wd_gate_leave(struct wd_gate *g)
{
	struct wd_task *t;

	pthread_mutex_lock(&g->lock);
	t = g->head;
	if (t) {
		g->head = t->next;
		if (!g->head)
			g->tail = NULL;
		g->parked--;
		t->next = NULL;
	} else if (g->running > 0) {
		g->running--;
	}
	pthread_mutex_unlock(&g->lock);
	return t;
}

void wd_gate_counts(struct wd_gate *g, int *running, size_t *parked)
{
	pthread_mutex_lock(&g->lock);
	*running = g->running;
	*parked = g->parked;
	pthread_mutex_unlock(&g->lock);
}
