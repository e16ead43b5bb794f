/* http.c - libmicrohttpd's daemon and the four paths. */
#include "observe/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/listen.h"
#include "base/log.h"
#include "observe/health.h"
#include "observe/prometheus.h"
#include "observe/status.h"

static const char AREA[] = "http";
static const char JSON_TYPE[] = "application/json";

struct wd_http {
	struct MHD_Daemon *mhd;
	int port;
};

static void on_mhd_error(void *arg, const char *fmt, va_list ap)
{
	(void)arg;
	wd_logv(WD_LOG_WARN, AREA, fmt, ap);
}

/* Send `body` (malloc'd, taken over; NULL: out of memory -> 503). */
static enum MHD_Result respond(struct MHD_Connection *conn, unsigned code,
                               const char *type, char *body, size_t len)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	if (!body) {
		static char oom[] = "out of memory\n";
		code = MHD_HTTP_SERVICE_UNAVAILABLE;
		type = "text/plain";
		r = MHD_create_response_from_buffer(strlen(oom), oom,
		                                    MHD_RESPMEM_PERSISTENT);
	} else {
		r = MHD_create_response_from_buffer(len, body,
		                                    MHD_RESPMEM_MUST_FREE);
	}
	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	rc = MHD_queue_response(conn, code, r);
	MHD_destroy_response(r);
	return rc;
}

static enum MHD_Result text(struct MHD_Connection *conn, unsigned code,
                            const char *msg)
{
	char *body = strdup(msg);
	return respond(conn, code, "text/plain; charset=utf-8", body,
	               body ? strlen(body) : 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
	static int first_call;
	char *body;
	size_t len = 0;
	int code;

	(void)cls;
	(void)version;
	(void)upload;
	/* Called once for the headers, then for any body: answer on the
	 * first call (a GET has none), ignore what a client uploads. */
	if (!*state) {
		*state = &first_call;
		if (strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0)
			return MHD_YES; /* answered on the next call */
	}
	*upload_len = 0;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
		return text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
		            "only GET and HEAD\n");
	if (strcmp(url, "/metrics") == 0) {
		body = wd_prometheus_text(&len);
		return respond(conn, MHD_HTTP_OK, WD_PROMETHEUS_TYPE, body,
		               len);
	}
	if (strcmp(url, "/healthz") == 0) {
		code = wd_health_live(&body, &len);
		return respond(conn, (unsigned)code, JSON_TYPE, body, len);
	}
	if (strcmp(url, "/readyz") == 0) {
		code = wd_health_ready(&body, &len);
		return respond(conn, (unsigned)code, JSON_TYPE, body, len);
	}
	if (strcmp(url, "/status") == 0) {
		body = wd_status_json(&len);
		return respond(conn, MHD_HTTP_OK, JSON_TYPE, body, len);
	}
	return text(conn, MHD_HTTP_NOT_FOUND,
	            "not found: /metrics, /healthz, /readyz, /status\n");
}

struct wd_http *wd_http_start(const char *listen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct wd_http *h;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (wd_listen_parse(listen, &ss, &sslen) < 0) {
		snprintf(err, errlen, "http: listen \"%s\" is not ADDRESS:PORT",
		         listen);
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* epoll: no FD_SETSIZE ceiling however many clients connect. */
	if (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES)
		flags |= MHD_USE_EPOLL;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	/* The logger first: libmicrohttpd reports on options as it reads
	 * them. */
	h->mhd = MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, NULL, MHD_OPTION_EXTERNAL_LOGGER,
	    on_mhd_error, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)WD_HTTP_MAX_CONNECTIONS,
	    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)WD_HTTP_TIMEOUT_S,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)WD_HTTP_MEMORY_LIMIT,
	    MHD_OPTION_END);
	if (!h->mhd) {
		snprintf(err, errlen, "http: cannot listen on %s: %s", listen,
		         errno ? strerror(errno) : "libmicrohttpd refused");
		free(h);
		return NULL;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	h->port = info ? info->port : 0;
	wd_log_info(
	    AREA, "serving /metrics, /healthz, /readyz and /status on %.*s:%d",
	    (int)(strrchr(listen, ':') - listen), listen, h->port);
	return h;
}

int wd_http_port(const struct wd_http *h)
{
	return h->port;
}

void wd_http_stop(struct wd_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}
