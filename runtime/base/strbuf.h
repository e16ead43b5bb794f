/* strbuf.h - a growing text buffer for building responses (the metrics
 * exposition, JSON bodies): append with printf, check once at the end.
 * Out of memory is sticky: later appends do nothing, and `failed` says
 * so. */
#ifndef WD_STRBUF_H
#define WD_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"

struct wd_strbuf {
	char *s; /* NUL-terminated; owned */
	size_t len, cap;
	bool failed;
};

void wd_strbuf_printf(struct wd_strbuf *b, const char *fmt, ...)
    WD_PRINTF(2, 3);

/* Append s with \, " and newline escaped, as a Prometheus label value
 * (and a JSON string's content, for the characters warren writes). */
void wd_strbuf_escaped(struct wd_strbuf *b, const char *s);

/* Hand the text over (the caller frees it); NULL if an append failed. */
char *wd_strbuf_take(struct wd_strbuf *b, size_t *len);

void wd_strbuf_free(struct wd_strbuf *b);

#endif
