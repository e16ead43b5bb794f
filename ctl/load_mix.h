/* load_mix.h - warren-load's realistic mixes (--mix): the messages the
 * tutorial's clients publish to its two applications, with the share of
 * bad ones a real day has, so the demo and the tests exercise every path
 * (accepted, rejected with a reason, retried, dead-lettered, unroutable).
 *
 * A message's kind and content follow from its number alone (a hash, not
 * rand()): publishers on several threads need no shared state, and the
 * same count gives the same mix. */
#ifndef LOAD_MIX_H
#define LOAD_MIX_H

#include <stddef.h>
#include <stdint.h>

enum load_mix { LOAD_MIX_NONE, LOAD_MIX_ORDERS, LOAD_MIX_NOTIFICATIONS };

/* Where and how one message goes. */
struct load_msg {
	const char *exchange; /* "" = the default exchange */
	char routing_key[64];
	uint8_t priority; /* AMQP priority; 0 = unset */
	int kind;         /* index into load_mix_kinds() */
};

/* "orders" or "notifications"; returns 0, or -1 for another name. */
int load_mix_parse(const char *name, enum load_mix *out);

/* The kinds of a mix, ending with NULL, e.g. "valid order". */
const char *const *load_mix_kinds(enum load_mix mix);

/* Message n (from 1) of the mix: its body into buf (cap bytes, at least
 * 1024; NUL-terminated) and its destination into m. Returns the body's
 * length. */
int load_mix_next(enum load_mix mix, long n, char *buf, size_t cap,
                  struct load_msg *m);

#endif
