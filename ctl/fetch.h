/* fetch.h - GET one path from warrend's HTTP endpoint: a plain HTTP/1.0
 * request over TCP to the host and port of an http:// URL. */
#ifndef WC_FETCH_H
#define WC_FETCH_H

#include <stddef.h>

/* GET url's host:port + path, within timeout_ms. Returns the HTTP status
 * with the body in *body (malloc'd, NUL-terminated), or -1 with why set
 * (e.g. "connect 127.0.0.1:9466: Connection refused"). */
int wc_fetch(const char *url, const char *path, int timeout_ms, char **body,
             char *why, size_t whylen);

#endif
