/*
 * simulate.c - the simulated providers of the example applications.
 */
#include "simulate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int sim_parse_rate(const char *key, const char *text, double *out, char *err,
                   size_t errlen)
{
	char *end;
	double v;

	if (text == NULL)
		return 0;
	errno = 0;
	v = strtod(text, &end);
	if (errno != 0 || end == text || *end != '\0' || !(v >= 0 && v <= 1)) {
		snprintf(err, errlen, "%s = \"%s\": want a number from 0 to 1",
		         key, text);
		return -1;
	}
	*out = v;
	return 0;
}

int sim_parse_uint(const char *key, const char *text, uint64_t max,
                   uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long v;

	if (text == NULL)
		return 0;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
	    v > max) {
		snprintf(err, errlen,
		         "%s = \"%s\": want an integer from 0 to %llu", key,
		         text, (unsigned long long)max);
		return -1;
	}
	*out = v;
	return 0;
}

/* splitmix64's finaliser: every input bit moves every output bit. */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

double sim_roll(const void *body, size_t len, uint32_t attempt, uint64_t seed)
{
	const unsigned char *b = body;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a over the body */

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ULL;
	h = mix64(h ^ mix64(seed + attempt));
	/* The top 53 bits: exactly representable, so the result is < 1. */
	return (double)(h >> 11) / 9007199254740992.0;
}

int sim_call(const struct sim_provider *p, const void *body, size_t len,
             uint32_t attempt)
{
	if (p->latency_ms > 0) {
		struct timespec ts = {p->latency_ms / 1000,
		                      (long)(p->latency_ms % 1000) * 1000000L};

		while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
			;
	}
	if (attempt <= p->fail_attempts)
		return 1;
	return p->fail_rate > 0 &&
	       sim_roll(body, len, attempt, p->seed) < p->fail_rate;
}
