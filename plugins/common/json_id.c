/*
 * json_id.c - format an id taken from a message body for a log line.
 */
#include "json_id.h"

#include <stdio.h>
#include <string.h>

void json_id_format(const json_t *v, char *buf, size_t buflen)
{
	const char *s;
	size_t len, n, max, i;

	if (buf == NULL || buflen == 0)
		return;
	if (json_is_integer(v)) {
		snprintf(buf, buflen, "%" JSON_INTEGER_FORMAT,
		         json_integer_value(v));
		return;
	}
	if (!json_is_string(v)) {
		snprintf(buf, buflen, "-");
		return;
	}

	/* json_string_length, not strlen: a JSON string may hold "\u0000". */
	s = json_string_value(v);
	len = json_string_length(v);
	max = buflen - 1 < JSON_ID_MAX ? buflen - 1 : JSON_ID_MAX;
	n = len < max ? len : max;
	/* Never leave half a UTF-8 character at the cut: back off over
	 * continuation bytes (10xxxxxx) to the start of that character. */
	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		/* A newline in an id would forge a log line of its own. */
		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	buf[n] = '\0';
	if (n < len && buflen - 1 - n >= 3)
		memcpy(buf + n, "...", 4);
}
