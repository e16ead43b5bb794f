/*
 * simulate.h - the simulated providers of the example applications (a
 * payment gateway, e-mail / SMS / push / websocket senders): a failure
 * rate, a latency, and a deterministic "the first N attempts fail".
 *
 * Shared by plugins/orders and plugins/notifications. The dice are a hash
 * of the message body, its attempt and a seed, not rand(): handlers run on
 * several threads at once (no shared generator state, no lock), and a test
 * or a demo run with the same seed and messages makes the same decisions.
 */
#ifndef SIMULATE_H
#define SIMULATE_H

#include <stddef.h>
#include <stdint.h>

struct sim_provider {
	double fail_rate;       /* 0..1: transient failures, at random */
	uint32_t fail_attempts; /* attempts 1..N always fail (0: none) */
	uint32_t latency_ms;    /* each call takes this long (0: no wait) */
	uint64_t seed;
};

/*
 * sim_parse_rate / sim_parse_uint - parse a param's text (NULL: keep *out,
 * the default). Return 0, or -1 with a reason in err naming `key`.
 * A rate is a number in [0, 1]; a uint at most `max`.
 */
int sim_parse_rate(const char *key, const char *text, double *out, char *err,
                   size_t errlen);
int sim_parse_uint(const char *key, const char *text, uint64_t max,
                   uint64_t *out, char *err, size_t errlen);

/*
 * sim_roll - a number in [0, 1) that depends only on the body bytes, the
 * attempt and the seed.
 */
double sim_roll(const void *body, size_t len, uint32_t attempt, uint64_t seed);

/*
 * sim_call - one call to the simulated provider: waits latency_ms, then
 * returns 1 if this attempt fails (attempt <= fail_attempts, or the roll
 * is under fail_rate), else 0.
 */
int sim_call(const struct sim_provider *p, const void *body, size_t len,
             uint32_t attempt);

#endif /* SIMULATE_H */
