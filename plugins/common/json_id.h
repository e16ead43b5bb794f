/*
 * json_id.h - format an id taken from a message body for a log line.
 *
 * Shared by the example plugins. Bodies are untrusted: an id may be huge,
 * hold a newline that would forge a second log line, or hold a NUL.
 */
#ifndef JSON_ID_H
#define JSON_ID_H

#include <jansson.h>
#include <stddef.h>

/* Bytes of an id kept in a log line; longer ids are cut and end in "...". */
#define JSON_ID_MAX 64
/* A buffer that always holds a formatted id: the id, "..." and a NUL. */
#define JSON_ID_BUFSZ (JSON_ID_MAX + 4)

/*
 * json_id_format - write `v` into buf (buflen bytes, always NUL-terminated
 * when buflen > 0): an integer as an integer, a string as its text with
 * control bytes replaced by '?' and cut at JSON_ID_MAX bytes (on a UTF-8
 * character boundary), anything else, including NULL, as "-".
 */
void json_id_format(const json_t *v, char *buf, size_t buflen);

#endif /* JSON_ID_H */
