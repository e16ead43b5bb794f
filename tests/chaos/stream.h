/* stream.h - the fault suite's load and its loss accounting.
 *
 * A stream publishes persistent messages with unique ids, in confirm mode,
 * at a fixed rate, from a thread of its own, to an exchange on one or more
 * broker addresses (it moves to the next on a lost connection, as warrend
 * does). Only a message the broker confirmed counts as sent: one whose
 * connection went before its confirm may or may not have arrived, and is
 * neither sent nor lost. Every retry_every-th message asks fx_flow's "flow"
 * handler for two retries (retry copies, so publishes and their confirms,
 * across the faults), the others are acked at once.
 *
 * The tally reads what warrend's handler logged ("flow id=N attempt=A"),
 * from every log of the case, and what is left in the dead-letter queue:
 * a message is handled once its last planned attempt (or a later one: a
 * quorum queue counts redeliveries as attempts) has been logged; one
 * handled twice is a call past its planned ones; lost is sent, never
 * handled and not dead-lettered. */
#ifndef CHAOS_STREAM_H
#define CHAOS_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "harness.h"

#define STREAM_MAX_URLS 3

struct stream {
	/* Set before stream_start. */
	const char *urls[STREAM_MAX_URLS]; /* amqp:// of the broker's nodes */
	int nurls;
	const char *exchange;
	int rate;        /* messages per second */
	int duration_ms; /* then it stops publishing */
	int retry_every; /* every nth message is retried twice; 0: none */
	/* Results, once stream_join returned. */
	int published;      /* ids handed out: 1..published */
	int sent;           /* of those, confirmed by the broker */
	int reconnects;     /* connections the publisher lost */
	uint8_t *confirmed; /* [1..published]: 1 if confirmed */
	/* Internal. */
	pthread_t thread;
	atomic_bool stop;
	int cap;
};

void stream_start(struct stream *s);
/* Ask it to stop early (it also stops at duration_ms). */
void stream_stop(struct stream *s);
/* Wait for the thread; the confirms of what it sent last are waited for
 * (bounded). */
void stream_join(struct stream *s);
void stream_free(struct stream *s);

/* The attempt a message's handling ends with: 3 for every retry_every-th
 * id (it fails twice), else 1. */
int stream_last_attempt(const struct stream *s, int id);

struct tally {
	int sent, handled, twice, dead_lettered, lost;
	int64_t gap_ms; /* the longest pause between two handler calls */
};

/* Wait (at most timeout_ms) until every sent message is handled or
 * dead-lettered, reading the logs of the n daemons; then count. dlq: the
 * dead-letter queue, drained here. */
void tally_wait(struct tally *t, const struct stream *s,
                const struct it_daemon *const *d, int n, const char *dlq,
                int timeout_ms);

/* One line with the figures, for the closing note: "chaos CASE: sent=..." */
void tally_print(const struct tally *t, const char *name, int faults);

#endif
