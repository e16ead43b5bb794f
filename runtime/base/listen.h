/* listen.h - "ADDRESS:PORT" as the http section's `listen` takes it:
 * an IPv4 address, "[IPv6]" or "localhost" (127.0.0.1), and a port of 0 to
 * 65535 (0: any free port, for tests). */
#ifndef WD_LISTEN_H
#define WD_LISTEN_H

#include <sys/socket.h>

/* Parse text into *ss / *len. Returns 0, or -1 if it is not that shape. */
int wd_listen_parse(const char *text, struct sockaddr_storage *ss,
                    socklen_t *len);

#endif
