/* refusals.c - see refusals.h: a small open-addressed table. */
#include "slot/refusals.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* Entries looked at from a key's home slot on. */
#define PROBE 8

struct entry {
	uint64_t key; /* 0: empty */
	int count;
	int64_t last_ms;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct entry table[WD_REFUSALS_SLOTS];

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t wd_refusal_key(const char *queue, const amqp_envelope_t *env)
{
	const amqp_basic_properties_t *p = &env->message.properties;
	uint64_t h = 14695981039346656037ULL;
	unsigned char sep = 0;

	h = fnv(h, queue, strlen(queue) + 1);
	if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
		h = fnv(h, p->message_id.bytes, p->message_id.len);
	h = fnv(h, &sep, 1);
	h = fnv(h, env->routing_key.bytes, env->routing_key.len);
	h = fnv(h, &sep, 1);
	h = fnv(h, env->message.body.bytes, env->message.body.len);
	return h ? h : 1;
}

static bool live(const struct entry *e, int64_t now_ms)
{
	return e->key && now_ms - e->last_ms < WD_REFUSALS_TTL_MS;
}

/* key's entry, or NULL. Under the lock. */
static struct entry *find(uint64_t key, int64_t now_ms)
{
	for (size_t i = 0; i < PROBE; i++) {
		struct entry *e = &table[(key + i) % WD_REFUSALS_SLOTS];
		if (e->key == key && live(e, now_ms))
			return e;
	}
	return NULL;
}

int wd_refusals_add(uint64_t key, int64_t now_ms)
{
	struct entry *e, *free_e = NULL;
	int n;

	pthread_mutex_lock(&lock);
	e = find(key, now_ms);
	if (!e) {
		/* An empty or stale slot, else the oldest nearby. */
		for (size_t i = 0; i < PROBE; i++) {
			struct entry *c = &table[(key + i) % WD_REFUSALS_SLOTS];
			if (!live(c, now_ms)) {
				free_e = c;
				break;
			}
			if (!free_e || c->last_ms < free_e->last_ms)
				free_e = c;
		}
		e = free_e;
		*e = (struct entry){.key = key};
	}
	e->last_ms = now_ms;
	n = ++e->count;
	pthread_mutex_unlock(&lock);
	return n;
}

int wd_refusals_get(uint64_t key, int64_t now_ms)
{
	struct entry *e;
	int n;

	pthread_mutex_lock(&lock);
	e = find(key, now_ms);
	n = e ? e->count : 0;
	pthread_mutex_unlock(&lock);
	return n;
}

void wd_refusals_clear(uint64_t key)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < PROBE; i++) {
		struct entry *e = &table[(key + i) % WD_REFUSALS_SLOTS];
		if (e->key == key)
			*e = (struct entry){0};
	}
	pthread_mutex_unlock(&lock);
}
