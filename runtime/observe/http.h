/* http.h - the HTTP endpoint (libmicrohttpd): GET /metrics, /healthz,
 * /readyz and /status on the http section's `listen` address.
 *
 * It runs on libmicrohttpd's own thread and reads only the series
 * registry and the process counters (base/series.h), never a structure of
 * the message path, so a scrape cannot stall a connection thread or a
 * worker. Hostile clients are bounded: at most WD_HTTP_MAX_CONNECTIONS at
 * once, WD_HTTP_TIMEOUT_S of idleness, WD_HTTP_MEMORY_LIMIT bytes of
 * request per connection; anything but GET or HEAD is 405, an unknown
 * path 404. */
#ifndef WD_HTTP_H
#define WD_HTTP_H

#include <stddef.h>

#define WD_HTTP_MAX_CONNECTIONS 64
#define WD_HTTP_TIMEOUT_S       10
#define WD_HTTP_MEMORY_LIMIT    (32 * 1024)

struct wd_http;

/* Listen on `listen` ("ADDRESS:PORT"; port 0 picks a free one) and serve.
 * NULL with err set if it cannot ("127.0.0.1:9466: Address already in
 * use"). Logs the address it serves on. */
struct wd_http *wd_http_start(const char *listen, char *err, size_t errlen);

/* The port it listens on (for listen = "...:0"). */
int wd_http_port(const struct wd_http *h);

/* Stop serving and free. NULL is a no-op. */
void wd_http_stop(struct wd_http *h);

#endif
