/* strbuf.c - printf into a growing buffer. */
#include "base/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/grow.h"

void wd_strbuf_printf(struct wd_strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		size_t room = b->cap - b->len;
		va_start(ap, fmt);
		n = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = true;
			return;
		}
		if ((size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		if (WD_GROW(b->s, b->cap, b->len + (size_t)n + 1, 4096) < 0) {
			b->failed = true;
			return;
		}
	}
}

void wd_strbuf_escaped(struct wd_strbuf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			wd_strbuf_printf(b, "\\\\");
		else if (*s == '"')
			wd_strbuf_printf(b, "\\\"");
		else if (*s == '\n')
			wd_strbuf_printf(b, "\\n");
		else
			wd_strbuf_printf(b, "%c", *s);
	}
}

char *wd_strbuf_take(struct wd_strbuf *b, size_t *len)
{
	char *s = b->s;

	if (b->failed || !s) {
		wd_strbuf_free(b);
		if (!b->failed && (s = calloc(1, 1))) { /* empty, not failed */
			*len = 0;
			return s;
		}
		return NULL;
	}
	*len = b->len;
	b->s = NULL;
	b->len = b->cap = 0;
	return s;
}

void wd_strbuf_free(struct wd_strbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}
