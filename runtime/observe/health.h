/* health.h - /healthz and /readyz.
 *
 * Live: the main loop and every slot thread turned within the time they
 * promised (base/series.h: alive_until). Ready: every slot of the serving
 * pool is connected and consuming its queues. Either answers 200 with
 * {"status":"ok"}, or 503 with one line of JSON naming what is not. */
#ifndef WD_HEALTH_H
#define WD_HEALTH_H

#include <stddef.h>

/* The HTTP status and a malloc'd one-line JSON body (NULL: out of
 * memory). */
int wd_health_live(char **body, size_t *len);
int wd_health_ready(char **body, size_t *len);

#endif
