/* broker.c - URL, credentials, connect and login. */
#define _GNU_SOURCE /* memmem() */
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
#include <time.h>
#include <unistd.h>

#include "base/amqp_fields.h"
#include "base/log.h"

/* Free a secret, overwritten first: its lifetime in memory dumps short. */
static void wipe(char *secret)
{
	if (!secret)
		return;
	memset(secret, 0, strlen(secret));
	free(secret);
}

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

static int init_addr(struct wd_broker_addr *a, const char *url,
                     const char *password, size_t index, size_t n, char *err,
                     size_t errlen)
{
	char which[48] = "";

	if (n > 1)
		snprintf(which, sizeof(which), " %zu of %zu", index + 1, n);
	if (!(a->url_buf = strdup(url))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	amqp_default_connection_info(&a->info);
	if (amqp_parse_url(a->url_buf, &a->info) != AMQP_STATUS_OK) {
		/* The URL may hold a password: name the problem, not it. */
		snprintf(err, errlen,
		         "broker url%s is not a valid amqp:// or amqps:// URL",
		         which);
		return -1;
	}
	if (!(a->password = strdup(password ? password : a->info.password))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	/* No path means vhost "/", as in amqp_parse_url(). */
	snprintf(a->redacted, sizeof(a->redacted), "%s://%s@%s:%d%s%s",
	         a->info.ssl ? "amqps" : "amqp", a->info.user, a->info.host,
	         a->info.port, strcmp(a->info.vhost, "/") == 0 ? "" : "/",
	         strcmp(a->info.vhost, "/") == 0 ? "" : a->info.vhost);
	snprintf(a->node, sizeof(a->node),
	         strchr(a->info.host, ':') ? "[%s]:%d" : "%s:%d", a->info.host,
	         a->info.port);
	return 0;
}

/* Fisher-Yates over the address indexes. */
static void shuffle(size_t *order, size_t n)
{
	unsigned rnd = (unsigned)getpid() ^ (unsigned)time(NULL);

	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)rand_r(&rnd) % i, t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

int wd_broker_init(struct wd_broker *b, const struct wd_conf_broker *conf,
                   char *err, size_t errlen)
{
	const char *env = getenv("WARREN_AMQP_PASSWORD");
	char *password = NULL;

	memset(b, 0, sizeof(*b));
	b->heartbeat = conf->heartbeat;
	b->connect_timeout = conf->connect_timeout;
	b->verify_peer = conf->verify_peer;
	/* Copies: the pool outlives the conf it started with (reload). */
	b->addrs = calloc(conf->nurls ? conf->nurls : 1, sizeof(*b->addrs));
	b->order = calloc(conf->nurls ? conf->nurls : 1, sizeof(*b->order));
	if (!b->addrs || !b->order ||
	    (conf->ca_cert && !(b->ca_cert = strdup(conf->ca_cert))) ||
	    (conf->client_cert &&
	     !(b->client_cert = strdup(conf->client_cert))) ||
	    (conf->client_key && !(b->client_key = strdup(conf->client_key)))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (conf->nurls == 0) {
		snprintf(err, errlen, "broker: no url");
		goto fail;
	}
	if (env && *env) {
		if (!(password = strdup(env))) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
	} else if (conf->password_file &&
	           !(password = read_password_file(conf->password_file, err,
	                                           errlen))) {
		goto fail;
	}
	for (size_t i = 0; i < conf->nurls; i++) {
		b->naddrs++; /* freed with the rest, whatever init_addr did */
		if (init_addr(&b->addrs[i], conf->urls[i], password, i,
		              conf->nurls, err, errlen) < 0)
			goto fail;
	}
	shuffle(b->order, b->naddrs);
	wipe(password);
	return 0;
fail:
	wipe(password);
	wd_broker_free(b);
	return -1;
}

void wd_broker_free(struct wd_broker *b)
{
	for (size_t i = 0; b->addrs && i < b->naddrs; i++) {
		free(b->addrs[i].url_buf);
		wipe(b->addrs[i].password);
	}
	free(b->addrs);
	free(b->order);
	free(b->ca_cert);
	free(b->client_cert);
	free(b->client_key);
	memset(b, 0, sizeof(*b));
}

size_t wd_broker_addr_at(const struct wd_broker *b, int slot, unsigned k)
{
	return b->order[((size_t)slot + k) % b->naddrs];
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
static void warn_unverified(const struct wd_broker *b,
                            const struct wd_broker_addr *a)
{
	if (a->info.ssl && !b->verify_peer)
		wd_log_warnx(
		    "conn",
		    "connected to %s without verifying its certificate "
		    "(broker.verify_peer = false): the broker is not "
		    "authenticated, a man-in-the-middle could read the "
		    "messages and the password",
		    a->redacted);
}

/* Why a TLS connect failed, as far as rabbitmq-c and OpenSSL tell. */
static const char *tls_connect_cause(const struct wd_broker_addr *a, int rc,
                                     char *buf, size_t len)
{
	unsigned char ip[sizeof(struct in6_addr)];
	char queued[256];

	if (rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
		bool is_ip = inet_pton(AF_INET, a->info.host, ip) == 1 ||
		             inet_pton(AF_INET6, a->info.host, ip) == 1;
		snprintf(buf, len, "the broker's certificate is not for %s%s",
		         a->info.host,
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
                                   const struct wd_broker_addr *a,
                                   amqp_rpc_reply_t r, char *buf, size_t len)
{
	if (!a->info.ssl || r.reply_type != AMQP_RESPONSE_LIBRARY_EXCEPTION)
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

static amqp_socket_t *new_socket(const struct wd_broker *b, bool ssl,
                                 amqp_connection_state_t conn, char *err,
                                 size_t errlen)
{
	amqp_socket_t *s;

	if (!ssl) {
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
static const char *connect_cause(const struct wd_broker *b,
                                 const struct wd_broker_addr *a, char *buf,
                                 size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	struct timeval tv = {.tv_sec = b->connect_timeout};
	char port[16];
	int fd, rc;

	snprintf(port, sizeof(port), "%d", a->info.port);
	rc = getaddrinfo(a->info.host, port, &hints, &ai);
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
                                          size_t addr, const char *name,
                                          char *err, size_t errlen,
                                          bool *outage)
{
	const struct wd_broker_addr *a = &b->addrs[addr];
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
	sock = new_socket(b, a->info.ssl, conn, err, errlen);
	if (!sock)
		goto fail;
	tls_verify_why[0] = '\0';
	ERR_clear_error();
	rc = amqp_socket_open_noblock(sock, a->info.host, a->info.port, &tv);
	if (rc != AMQP_STATUS_OK) {
		/* Only "nothing answered" is an outage; a TLS handshake or
		 * certificate refused is a config error. */
		*outage = rc == AMQP_STATUS_SOCKET_ERROR ||
		          rc == AMQP_STATUS_TIMEOUT ||
		          rc == AMQP_STATUS_HOSTNAME_RESOLUTION_FAILED;
		if (rc <= AMQP_STATUS_SSL_ERROR &&
		    rc > _AMQP_STATUS_SSL_NEXT_VALUE &&
		    tls_connect_cause(a, rc, why, sizeof(why)))
			snprintf(err, errlen, "cannot connect to %s: %s: %s",
			         a->redacted, amqp_error_string2(rc), why);
		else if (rc == AMQP_STATUS_SOCKET_ERROR)
			snprintf(err, errlen, "cannot connect to %s: %s (%s)",
			         a->redacted, amqp_error_string2(rc),
			         connect_cause(b, a, why, sizeof(why)));
		else
			snprintf(err, errlen, "cannot connect to %s: %s",
			         a->redacted, amqp_error_string2(rc));
		goto fail;
	}
	warn_unverified(b, a);
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
	    conn, a->info.vhost, 0, 131072, b->heartbeat, &props_table,
	    AMQP_SASL_METHOD_PLAIN, a->info.user, a->password);
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		char tls[256];
		bool t = tls_login_cause(b, a, r, tls, sizeof(tls)) != NULL;
		snprintf(err, errlen, "cannot log in to %s: %s%s%s",
		         a->redacted, wd_broker_reply_str(r, why, sizeof(why)),
		         t ? ": " : "", t ? tls : "");
		goto fail;
	}
	return conn;
fail:
	amqp_destroy_connection(conn);
	return NULL;
}

amqp_connection_state_t wd_broker_connect_any(const struct wd_broker *b,
                                              const char *name, char *err,
                                              size_t errlen, bool *outage,
                                              size_t *addr)
{
	bool all_outage = true, one;

	for (size_t i = 0; i < b->naddrs; i++) {
		amqp_connection_state_t conn =
		    wd_broker_connect(b, i, name, err, errlen, &one);
		if (conn) {
			if (addr)
				*addr = i;
			return conn;
		}
		all_outage = all_outage && one;
	}
	if (outage)
		*outage = all_outage;
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

static bool has(amqp_bytes_t text, const char *word)
{
	return text.bytes && memmem(text.bytes, text.len, word, strlen(word));
}

bool wd_broker_is_consumer_timeout(int reply_code, amqp_bytes_t text)
{
	/* 406 alone is any precondition (a queue redeclared with other
	 * arguments, an unknown delivery tag): the words tell them apart. */
	return reply_code == AMQP_PRECONDITION_FAILED &&
	       has(text, "acknowledgement") && has(text, "timed out");
}
