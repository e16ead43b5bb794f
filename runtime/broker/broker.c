/* broker.c - URL, credentials, connect and login. */
#include "broker/broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/amqp_fields.h"
#include "base/log.h"

static char *read_password_file(const char *path, char *err, size_t errlen)
{
	char line[1024];
	FILE *f = fopen(path, "r");

	if (!f) {
		snprintf(err, errlen, "password_file %s: %s", path,
		         strerror(errno));
		return NULL;
	}
	if (!fgets(line, sizeof(line), f))
		line[0] = '\0';
	fclose(f);
	line[strcspn(line, "\r\n")] = '\0';
	return strdup(line);
}

int wd_broker_init(struct wd_broker *b, const struct wd_conf_broker *conf,
                   char *err, size_t errlen)
{
	const char *env = getenv("WARREN_AMQP_PASSWORD");

	memset(b, 0, sizeof(*b));
	b->heartbeat = conf->heartbeat;
	b->connect_timeout = conf->connect_timeout;
	b->verify_peer = conf->verify_peer;
	/* Copies: the pool outlives the conf it started with (reload). */
	b->url_buf = strdup(conf->url);
	if (!b->url_buf ||
	    (conf->ca_cert && !(b->ca_cert = strdup(conf->ca_cert))) ||
	    (conf->client_cert &&
	     !(b->client_cert = strdup(conf->client_cert))) ||
	    (conf->client_key && !(b->client_key = strdup(conf->client_key)))) {
		snprintf(err, errlen, "out of memory");
		wd_broker_free(b);
		return -1;
	}
	amqp_default_connection_info(&b->info);
	if (amqp_parse_url(b->url_buf, &b->info) != AMQP_STATUS_OK) {
		/* The URL may hold a password: name the problem, not it. */
		snprintf(err, errlen,
		         "broker url is not a valid amqp:// or amqps:// URL");
		wd_broker_free(b);
		return -1;
	}
	if (env && *env)
		b->password = strdup(env);
	else if (conf->password_file)
		b->password =
		    read_password_file(conf->password_file, err, errlen);
	else
		b->password = strdup(b->info.password);
	if (!b->password) {
		wd_broker_free(b);
		return -1;
	}
	/* No path means vhost "/", as in amqp_parse_url(). */
	snprintf(b->redacted, sizeof(b->redacted), "%s://%s@%s:%d%s%s",
	         b->info.ssl ? "amqps" : "amqp", b->info.user, b->info.host,
	         b->info.port, strcmp(b->info.vhost, "/") == 0 ? "" : "/",
	         strcmp(b->info.vhost, "/") == 0 ? "" : b->info.vhost);
	return 0;
}

void wd_broker_free(struct wd_broker *b)
{
	free(b->url_buf);
	free(b->ca_cert);
	free(b->client_cert);
	free(b->client_key);
	if (b->password) {
		/* Keep the secret's lifetime short in memory dumps. */
		memset(b->password, 0, strlen(b->password));
		free(b->password);
	}
	memset(b, 0, sizeof(*b));
}

const char *wd_broker_reply_str(amqp_rpc_reply_t r, char *buf, size_t len)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		snprintf(buf, len, "ok");
		break;
	case AMQP_RESPONSE_NONE:
		snprintf(buf, len, "missing RPC reply");
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		snprintf(buf, len, "%s", amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			snprintf(buf, len, "%.*s (%u)", (int)m->reply_text.len,
			         (const char *)m->reply_text.bytes,
			         m->reply_code);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			snprintf(buf, len, "%.*s (%u)", (int)m->reply_text.len,
			         (const char *)m->reply_text.bytes,
			         m->reply_code);
		} else {
			snprintf(buf, len, "unexpected method 0x%08x",
			         r.reply.id);
		}
		break;
	}
	return buf;
}

/* Why the broker's certificate was refused, by the thread that connects:
 * rabbitmq-c 0.11 says only "SSL handshake failed" and keeps OpenSSL's
 * verify result to itself, so a verify callback writes it down here. */
static _Thread_local char tls_verify_why[256];

static int note_verify_error(int ok, X509_STORE_CTX *store)
{
	if (!ok && !tls_verify_why[0]) {
		X509 *cert = X509_STORE_CTX_get_current_cert(store);
		char subject[128] = "?";

		if (cert)
			X509_NAME_oneline(X509_get_subject_name(cert), subject,
			                  sizeof(subject));
		snprintf(tls_verify_why, sizeof(tls_verify_why),
		         "the broker's certificate is not trusted: %s "
		         "(depth %d, %s)",
		         X509_verify_cert_error_string(
		             X509_STORE_CTX_get_error(store)),
		         X509_STORE_CTX_get_error_depth(store), subject);
	}
	return ok;
}

/* The first error OpenSSL queued on this thread since the last
 * ERR_clear_error() (e.g. "tlsv13 alert certificate required": the broker
 * wanted a client certificate), or NULL; the queue is emptied. */
static const char *tls_error(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();
	const char *reason = e ? ERR_reason_error_string(e) : NULL;

	ERR_clear_error();
	if (!e)
		return NULL;
	if (reason)
		snprintf(buf, len, "%s", reason);
	else
		ERR_error_string_n(e, buf, len);
	return buf;
}

/* verify_peer = false on amqps: said at every connect, since each one may
 * reach someone else. */
static void warn_unverified(const struct wd_broker *b)
{
	if (b->info.ssl && !b->verify_peer)
		wd_log_warnx(
		    "conn",
		    "connected to %s without verifying its certificate "
		    "(broker.verify_peer = false): the broker is not "
		    "authenticated, a man-in-the-middle could read the "
		    "messages and the password",
		    b->redacted);
}

/* Why a TLS connect failed, as far as rabbitmq-c and OpenSSL tell. */
static const char *tls_connect_cause(const struct wd_broker *b, int rc,
                                     char *buf, size_t len)
{
	unsigned char ip[sizeof(struct in6_addr)];
	char queued[256];

	if (rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
		bool is_ip = inet_pton(AF_INET, b->info.host, ip) == 1 ||
		             inet_pton(AF_INET6, b->info.host, ip) == 1;
		snprintf(buf, len, "the broker's certificate is not for %s%s",
		         b->info.host,
		         is_ip ? " (an IP address never matches here: "
		                 "connect to a host name the certificate "
		                 "names, e.g. localhost)"
		               : "");
	} else if (tls_verify_why[0]) {
		snprintf(buf, len, "%s", tls_verify_why);
	} else if (tls_error(queued, sizeof(queued))) {
		snprintf(buf, len, "%s", queued);
	} else {
		return NULL;
	}
	return buf;
}

/* Why the broker dropped a TLS connection at the login. With TLS 1.3 it
 * judges the client certificate after the client's side of the handshake
 * is done, so its refusal arrives here: as an alert in OpenSSL's queue if
 * rabbitmq-c read it, or, if the broker's close came first (the header's
 * write is reset, about one time in five here), as a guess. */
static const char *tls_login_cause(const struct wd_broker *b,
                                   amqp_rpc_reply_t r, char *buf, size_t len)
{
	if (!b->info.ssl || r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION)
		return NULL;
	if (tls_error(buf, len))
		return buf;
	if (r.library_error != AMQP_STATUS_SSL_ERROR &&
	    r.library_error != AMQP_STATUS_CONNECTION_CLOSED &&
	    r.library_error != AMQP_STATUS_SOCKET_ERROR)
		return NULL;
	if (b->client_cert)
		snprintf(buf, len,
		         "the broker closed the connection: does it refuse "
		         "the client certificate %s? (its log says)",
		         b->client_cert);
	else
		snprintf(
		    buf, len,
		    "the broker closed the connection: does it require a "
		    "client certificate? (none is configured: client_cert, "
		    "client_key)");
	return buf;
}

static amqp_socket_t *new_socket(const struct wd_broker *b,
                                 amqp_connection_state_t conn, char *err,
                                 size_t errlen)
{
	amqp_socket_t *s;

	if (!b->info.ssl) {
		s = amqp_tcp_socket_new(conn);
		if (!s)
			snprintf(err, errlen, "cannot create a TCP socket");
		return s;
	}
	s = amqp_ssl_socket_new(conn);
	if (!s) {
		snprintf(err, errlen, "cannot create a TLS socket");
		return NULL;
	}
	amqp_ssl_socket_set_verify_peer(s, b->verify_peer);
	amqp_ssl_socket_set_verify_hostname(s, b->verify_peer);
	/* rabbitmq-c checks the verify result after the handshake; failing
	 * the handshake itself sends no client certificate to a broker not
	 * trusted, and the callback keeps the reason. */
	if (b->verify_peer)
		SSL_CTX_set_verify(amqp_ssl_socket_get_context(s),
		                   SSL_VERIFY_PEER, note_verify_error);
	/* No ca_cert: the system's CAs (rabbitmq-c 0.11 would trust none). */
	if (b->verify_peer && !b->ca_cert &&
	    SSL_CTX_set_default_verify_paths(amqp_ssl_socket_get_context(s)) !=
	        1) {
		snprintf(err, errlen,
		         "the system's CA certificates cannot be loaded "
		         "(set broker.ca_cert)");
		return NULL;
	}
	if (b->ca_cert && amqp_ssl_socket_set_cacert(s, b->ca_cert)) {
		snprintf(err, errlen, "ca_cert %s: cannot be loaded",
		         b->ca_cert);
		return NULL;
	}
	if (b->client_cert && b->client_key &&
	    amqp_ssl_socket_set_key(s, b->client_cert, b->client_key)) {
		snprintf(err, errlen,
		         "client_cert %s / client_key %s: cannot be "
		         "loaded",
		         b->client_cert, b->client_key);
		return NULL;
	}
	return s;
}

/* rabbitmq-c says "a socket error occurred" for every failed connect (its
 * errno is gone by then): connect once more, plainly, to say which --
 * "Connection refused", "No route to host" -- as an operator needs. */
static const char *connect_cause(const struct wd_broker *b, char *buf,
                                 size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct timeval tv = {.tv_sec = b->connect_timeout};
	char port[16];
	int fd, rc;

	snprintf(port, sizeof(port), "%d", b->info.port);
	rc = getaddrinfo(b->info.host, port, &hints, &ai);
	if (rc != 0) {
		snprintf(buf, len, "%s", gai_strerror(rc));
		return buf;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(buf, len, "%s", strerror(errno));
	} else {
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			snprintf(buf, len, "it accepts connections now");
		else
			snprintf(buf, len, "%s",
			         errno == EINPROGRESS ? "connect timed out"
			                              : strerror(errno));
		close(fd);
	}
	freeaddrinfo(ai);
	return buf;
}

amqp_connection_state_t wd_broker_connect(const struct wd_broker *b,
                                          const char *name, char *err,
                                          size_t errlen, bool *outage)
{
	bool ignore;
	struct timeval tv = {.tv_sec = b->connect_timeout};
	amqp_connection_state_t conn = amqp_new_connection();
	amqp_table_entry_t caps[2], props[2];
	amqp_table_t caps_table = {.entries = caps};
	amqp_table_t props_table = {.entries = props};
	amqp_rpc_reply_t r;
	amqp_socket_t *sock;
	char why[256];
	int rc;

	if (!outage)
		outage = &ignore;
	*outage = false;
	if (!conn) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sock = new_socket(b, conn, err, errlen);
	if (!sock)
		goto fail;
	tls_verify_why[0] = '\0';
	ERR_clear_error();
	rc = amqp_socket_open_noblock(sock, b->info.host, b->info.port, &tv);
	if (rc != AMQP_STATUS_OK) {
		/* Only "nothing answered" is an outage; a TLS handshake or
		 * certificate refused is a config error. */
		*outage = rc == AMQP_STATUS_SOCKET_ERROR ||
		          rc == AMQP_STATUS_TIMEOUT ||
		          rc == AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED;
		if (rc <= AMQP_STATUS_SSL_ERROR &&
		    rc > _AMQP_STATUS_SSL_NEXT_VALUE &&
		    tls_connect_cause(b, rc, why, sizeof(why)))
			snprintf(err, errlen, "cannot connect to %s: %s: %s",
			         b->redacted, amqp_error_string2(rc), why);
		else if (rc == AMQP_STATUS_SOCKET_ERROR)
			snprintf(err, errlen, "cannot connect to %s: %s (%s)",
			         b->redacted, amqp_error_string2(rc),
			         connect_cause(b, why, sizeof(why)));
		else
			snprintf(err, errlen, "cannot connect to %s: %s",
			         b->redacted, amqp_error_string2(rc));
		goto fail;
	}
	warn_unverified(b);
	amqp_set_handshake_timeout(conn, &tv);
	amqp_set_rpc_timeout(conn, &tv);

	/* connection.blocked is sent only to clients that announce it. */
	wd_table_add_bool(&caps_table, "connection.blocked", true);
	wd_table_add_bool(&caps_table, "consumer_cancel_notify", true);
	wd_table_add_table(&props_table, "capabilities", caps_table);
	wd_table_add_str(&props_table, "connection_name",
	                 amqp_cstring_bytes(name));

	ERR_clear_error();
	r = amqp_login_with_properties(
	    conn, b->info.vhost, 0, 131072, b->heartbeat, &props_table,
	    AMQP_SASL_METHOD_PLAIN, b->info.user, b->password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		char tls[256];
		bool t = tls_login_cause(b, r, tls, sizeof(tls)) != NULL;
		snprintf(err, errlen, "cannot log in to %s: %s%s%s",
		         b->redacted, wd_broker_reply_str(r, why, sizeof(why)),
		         t ? ": " : "", t ? tls : "");
		goto fail;
	}
	return conn;
fail:
	amqp_destroy_connection(conn);
	return NULL;
}

void wd_broker_close(amqp_connection_state_t conn)
{
	if (!conn)
		return;
	amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(conn);
}

int wd_broker_channel_open(amqp_connection_state_t conn, amqp_channel_t ch,
                           char *err, size_t errlen)
{
	char why[256];

	amqp_channel_open(conn, ch);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		snprintf(err, errlen, "cannot open channel %u: %s", ch,
		         wd_broker_reply_str(r, why, sizeof(why)));
		return -1;
	}
	return 0;
}
