/* status.h - GET /status: the numbers of /metrics as one JSON document for
 * tools (warrenctl), grouped by queue and route, with recent rates and
 * p50 / p99 latencies. */
#ifndef WD_STATUS_H
#define WD_STATUS_H

#include <stddef.h>

/* The document, malloc'd, with *len; NULL if out of memory. */
char *wd_status_json(size_t *len);

#endif
