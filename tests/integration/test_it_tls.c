/* TLS to the broker (issue 11, item 7). The runner starts two private
 * nodes with a TLS listener (tests/harness/broker.sh --tls), on certificates
 * made by openssl for this run (tests/harness/tls_certs.sh):
 *   "verify": ssl_options.verify = verify_peer, fail_if_no_peer_cert =
 *             false: a client certificate is checked if one is sent;
 *   "mutual": fail_if_no_peer_cert = true: mutual TLS.
 * Each has a user with a distinctive password that no log line may hold.
 * Test clients publish over the nodes' plain loopback listener; warrend
 * only gets the amqps:// URL.
 *
 * Checked: a verified connection consumes and acks; an unknown CA, a
 * certificate for another host name and an IP address are refused at
 * start, with the broker (without password) and the reason, even under
 * broker.startup = "wait"; mutual TLS works with client_cert / client_key
 * and is refused without them, or with a certificate of another CA;
 * verify_peer = false connects and warns at every connect, a reconnect
 * too. No .timeout: see test_it_cli.c; every wait is bounded. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define TLS_USER         "warren-tls"
#define TLS_PASS         "pw-Tls-7f3a-never-logged"
#define UNVERIFIED_VHOST "tls-unverified"

/* ---------------------------------------------------------------- runner */

/* The runner's: the directory of the run's certificates and nodes. */
static char tls_dir[256];

static int sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static const char *broker_sh(void)
{
	const char *b = getenv("WARREN_BROKER_SH");
	return b && *b ? b : WARREN_SOURCE_DIR "/tests/harness/broker.sh";
}

/* KEY's value in the node's DIR/env (broker.sh writes it), or "". */
static void node_env(const char *node, const char *key, char *buf, size_t len)
{
	char path[512], line[512];
	size_t klen = strlen(key);
	FILE *f;

	buf[0] = '\0';
	snprintf(path, sizeof(path), "%s/%s/env", tls_dir, node);
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
			line[strcspn(line, "\n")] = '\0';
			snprintf(buf, len, "%s", line + klen + 1);
		}
	fclose(f);
}

/* Certificates, both nodes (started side by side: ~8 s each), the user
 * on each and the vhost of the unverified test. A failure is handed to the
 * tests, which fail with it (the runner cannot fail a test). This hook
 * runs next to harness.c's: Criterion names a hook after its line
 * (hook_l<LINE>_impl, not static), so a "multiple definition" at link time
 * means both files have one on the same line. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[4096], port[32], env[64];
	const char *fail = NULL;

	(void)set;
	snprintf(tls_dir, sizeof(tls_dir), "%s/warren-tls-XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tls_dir)) {
		tls_dir[0] = '\0';
		setenv("WARREN_TLS_SETUP", "cannot create the TLS directory",
		       1);
		return;
	}
	snprintf(
	    cmd, sizeof(cmd),
	    "exec >'%1$s/setup.log' 2>&1; d='%1$s' b='%2$s';"
	    "ctl() { n=$1; shift; bash \"$b\" ctl \"$d/$n\" -q \"$@\"; };"
	    "bash '%3$s/tests/harness/tls_certs.sh' \"$d/certs\" || exit 1;"
	    "bash \"$b\" start \"$d/verify\" --tls \"$d/certs\" & v=$!;"
	    "bash \"$b\" start \"$d/mutual\" --tls \"$d/certs\" --mutual & "
	    "m=$!;"
	    "rv=0 rm=0; wait $v || rv=$?; wait $m || rm=$?;"
	    "[ $rv = 0 ] && [ $rm = 0 ] || exit 1;"
	    "for n in verify mutual; do"
	    "  ctl $n add_user " TLS_USER " " TLS_PASS " >/dev/null &&"
	    "  ctl $n set_permissions " TLS_USER " '.*' '.*' '.*' || exit 1;"
	    "done;"
	    "ctl verify add_vhost " UNVERIFIED_VHOST " &&"
	    "ctl verify set_permissions -p " UNVERIFIED_VHOST " " TLS_USER
	    " '.*' '.*' '.*'",
	    tls_dir, broker_sh(), WARREN_SOURCE_DIR);
	if (sh(cmd) != 0)
		fail = "setup failed";
	/* The workers are spawned after this, with this environment. */
	for (int i = 0; i < 2 && !fail; i++) {
		const char *node = i ? "mutual" : "verify";
		node_env(node, "AMQPS_PORT", port, sizeof(port));
		snprintf(env, sizeof(env), "WARREN_TLS_%s_AMQPS_PORT",
		         i ? "MUTUAL" : "VERIFY");
		setenv(env, port, 1);
		node_env(node, "AMQP_PORT", port, sizeof(port));
		snprintf(env, sizeof(env), "WARREN_TLS_%s_AMQP_PORT",
		         i ? "MUTUAL" : "VERIFY");
		setenv(env, port, 1);
		if (!port[0])
			fail = "no ports in the nodes' env files";
	}
	if (fail) {
		snprintf(cmd, sizeof(cmd), "%s (see %s/setup.log)", fail,
		         tls_dir);
		setenv("WARREN_TLS_SETUP", cmd, 1);
		return;
	}
	setenv("WARREN_TLS_DIR", tls_dir, 1);
	/* it_broker_ctl() then talks to the "verify" node. */
	snprintf(cmd, sizeof(cmd), "%s/verify", tls_dir);
	setenv("WARREN_TEST_BROKER_DIR", cmd, 1);
}

/* Stop what PRE_ALL started; keep the directory (certificates, node logs)
 * if a test failed. */
ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	char cmd[1024];

	if (!tls_dir[0])
		return;
	snprintf(cmd, sizeof(cmd),
	         "for n in verify mutual; do bash '%s' stop '%s/'$n "
	         ">>'%s/setup.log' 2>&1; done",
	         broker_sh(), tls_dir, tls_dir);
	sh(cmd);
	if (stats->tests_failed || stats->tests_crashed || stats->errors) {
		cr_log_error("tls: certificates and broker logs kept under %s",
		             tls_dir);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tls_dir);
	sh(cmd);
}

/* ---------------------------------------------------------------- tests */

static const char *tls_dir_of_run(void)
{
	const char *fail = getenv("WARREN_TLS_SETUP");
	const char *dir = getenv("WARREN_TLS_DIR");

	cr_assert(!fail, "TLS test setup: %s", fail);
	cr_assert(dir && *dir, "WARREN_TLS_DIR is not set");
	return dir;
}

static const char *cert(const char *name)
{
	static char paths[8][512];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/certs/%s", tls_dir_of_run(), name);
	return p;
}

static int port_of(const char *node, const char *listener)
{
	char env[64];
	const char *v;

	tls_dir_of_run();
	snprintf(env, sizeof(env), "WARREN_TLS_%s_%s_PORT", node, listener);
	v = getenv(env);
	cr_assert(v && atoi(v) > 0, "%s is not set", env);
	return atoi(v);
}

/* warrend gets amqps://TLS_USER:TLS_PASS@HOST:PORT[/vhost] on node
 * ("VERIFY" or "MUTUAL"); the test's own clients use the node's plain
 * listener, same vhost. */
static char amqps_url[256], redacted[256];

static void use_node(const char *node, const char *host, int amqps_port,
                     const char *vhost)
{
	char plain[256];

	snprintf(amqps_url, sizeof(amqps_url), "amqps://%s:%s@%s:%d%s%s",
	         TLS_USER, TLS_PASS, host, amqps_port, vhost ? "/" : "",
	         vhost ? vhost : "");
	snprintf(redacted, sizeof(redacted), "amqps://%s@%s:%d%s%s", TLS_USER,
	         host, amqps_port, vhost ? "/" : "", vhost ? vhost : "");
	it_url_override = amqps_url;
	snprintf(plain, sizeof(plain), "amqp://%s:%s@127.0.0.1:%d%s%s",
	         TLS_USER, TLS_PASS, port_of(node, "AMQP"), vhost ? "/" : "",
	         vhost ? vhost : "");
	setenv("WARREN_TEST_AMQP_URL", plain, 1); /* it_connect() */
}

static char *record_conf(struct it_names *n, const char *broker_extra)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_record.so",
	         it_build_dir());
	it_names_init(n, "tls");
	return it_conf(n->x, n->q, path, "r=record", NULL, broker_extra, NULL,
	               NULL);
}

static void publish_record(const struct it_names *n, int id)
{
	char body[64];
	amqp_connection_state_t c = it_connect();

	snprintf(body, sizeof(body), "{\"type\":\"r\",\"id\":%d}", id);
	it_publish_str(c, n->x, "k", body);
	it_close(c);
}

static void expect_no_password(const char *log)
{
	cr_expect(!strstr(log, TLS_PASS), "the password is in the log:\n%s",
	          log);
}

/* A conf that must not start: warrend exits 1 at once, under the default
 * broker.startup = "wait" (a TLS error is no outage), saying which broker
 * and `reason` (or `or_reason`, unless NULL). Returns the log (malloc'd). */
static char *expect_refused(const char *broker_extra, const char *reason,
                            const char *or_reason)
{
	struct it_names n;
	char *conf = record_conf(&n, broker_extra), *out;
	int64_t t0 = it_now_ms();
	int rc = it_warrend_run(conf, NULL, &out);

	cr_expect_eq(rc, 1, "warrend exit %d, want 1:\n%s", rc, out);
	cr_expect_lt(it_now_ms() - t0, 20000, "warrend took long to fail");
	cr_expect(strstr(out, redacted), "the log does not name %s:\n%s",
	          redacted, out);
	cr_expect(strstr(out, reason) || (or_reason && strstr(out, or_reason)),
	          "the log does not say \"%s\"%s%s:\n%s", reason,
	          or_reason ? " or " : "", or_reason ? or_reason : "", out);
	cr_expect(!strstr(out, "not reachable yet"),
	          "a TLS error was waited for as an outage:\n%s", out);
	expect_no_password(out);
	free(conf);
	return out;
}

/* Start warrend on conf, have it consume and ack message `id`. */
static void expect_consumes(struct it_daemon *d, const struct it_names *n,
                            const char *conf, int id)
{
	char needle[64];

	it_daemon_start(d, conf, true);
	publish_record(n, id);
	snprintf(needle, sizeof(needle), "record type=r id=%d ", id);
	cr_assert_eq(it_log_wait(d, needle, 1, 20000), 1,
	             "message %d not handled:\n%s", id, it_log_read(d));
}

Test(tls, verified_connection_consumes_and_acks)
{
	struct it_names n;
	struct it_daemon d;
	char extra[1024], *conf, *log;

	use_node("VERIFY", "localhost", port_of("VERIFY", "AMQPS"), NULL);
	snprintf(extra, sizeof(extra), "  ca_cert = \"%s\"", cert("ca.pem"));
	conf = record_conf(&n, extra);
	expect_consumes(&d, &n, conf, 1);
	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "the message was not acked");
	cr_expect_eq(it_count(log, "is not authenticated"), 0, "%s", log);
	expect_no_password(log);
	it_names_delete(&n);
	free(log);
	free(conf);
}

Test(tls, unknown_ca_refused)
{
	char extra[1024];

	use_node("VERIFY", "localhost", port_of("VERIFY", "AMQPS"), NULL);
	snprintf(extra, sizeof(extra), "  ca_cert = \"%s\"",
	         cert("other-ca.pem"));
	/* The broker sends its chain: the test CA, self-signed, unknown. */
	char *log = expect_refused(extra,
	                           "SSL handshake failed: the broker's "
	                           "certificate is not trusted: ",
	                           NULL);
	cr_expect(strstr(log, "CN=warren test CA"), "%s", log);
	free(log);
}

/* No ca_cert: the system's CAs, which do not know the test CA (and not
 * "trust anything"). */
Test(tls, no_ca_cert_uses_the_system_cas)
{
	use_node("VERIFY", "localhost", port_of("VERIFY", "AMQPS"), NULL);
	free(expect_refused(NULL,
	                    "SSL handshake failed: the broker's certificate "
	                    "is not trusted: ",
	                    NULL));
}

Test(tls, ip_address_refused)
{
	char extra[1024];

	/* server.pem names DNS:localhost only. */
	use_node("VERIFY", "127.0.0.1", port_of("VERIFY", "AMQPS"), NULL);
	snprintf(extra, sizeof(extra), "  ca_cert = \"%s\"", cert("ca.pem"));
	free(expect_refused(extra,
	                    "SSL hostname verification failed: the broker's "
	                    "certificate is not for 127.0.0.1 (an IP address "
	                    "never matches",
	                    NULL));
}

/* A TLS server with a trusted certificate for another name:
 * `openssl s_server` (the hostname check is the client's, after the
 * handshake: no broker needed). Returns its pid; *port is where. */
static pid_t start_wrong_name_server(int *port)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	char accept[32], log[600], pem[512], key[512];
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int64_t end;
	pid_t pid;

	/* Everything the child needs, before it is forked: it must not
	 * assert (Criterion counts only the worker). */
	snprintf(log, sizeof(log), "%s/s_server.log", it_tmp_dir());
	snprintf(pem, sizeof(pem), "%s", cert("wrong-name.pem"));
	snprintf(key, sizeof(key), "%s", cert("wrong-name.key"));

	/* A free port: the kernel's pick, released for s_server. */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	          getsockname(fd, (struct sockaddr *)&a, &alen) == 0);
	*port = ntohs(a.sin_port);
	close(fd);
	snprintf(accept, sizeof(accept), "127.0.0.1:%d", *port);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int in = open("/dev/null", O_RDONLY);
		if (out < 0 || in < 0)
			_exit(127);
		dup2(in, STDIN_FILENO);
		dup2(out, STDOUT_FILENO);
		dup2(out, STDERR_FILENO);
		execlp("openssl", "openssl", "s_server", "-www", "-accept",
		       accept, "-cert", pem, "-key", key, (char *)NULL);
		_exit(127);
	}
	/* Listening? (a probe connection it serves and forgets) */
	for (end = it_now_ms() + 10000;;) {
		int s = socket(AF_INET, SOCK_STREAM, 0), ok, st;
		ok = connect(s, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(s);
		if (ok)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid)
			cr_assert_fail("openssl s_server exited (%d)", st);
		if (it_now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			cr_assert_fail("openssl s_server not listening on %s",
			               accept);
		}
		nanosleep(&(struct timespec){0, 20000000}, NULL);
	}
	return pid;
}

Test(tls, certificate_for_another_name_refused)
{
	char extra[1024];
	int port;
	pid_t server = start_wrong_name_server(&port);

	use_node("VERIFY", "localhost", port, NULL);
	snprintf(extra, sizeof(extra), "  ca_cert = \"%s\"", cert("ca.pem"));
	free(expect_refused(extra,
	                    "SSL hostname verification failed: the broker's "
	                    "certificate is not for localhost",
	                    NULL));
	kill(server, SIGTERM);
	waitpid(server, NULL, 0);
}

Test(tls, mutual_with_client_certificate)
{
	struct it_names n;
	struct it_daemon d;
	char extra[2048], *conf, *log;

	use_node("MUTUAL", "localhost", port_of("MUTUAL", "AMQPS"), NULL);
	snprintf(extra, sizeof(extra),
	         "  ca_cert = \"%s\"\n  client_cert = \"%s\"\n"
	         "  client_key = \"%s\"",
	         cert("ca.pem"), cert("client.pem"), cert("client.key"));
	conf = record_conf(&n, extra);
	expect_consumes(&d, &n, conf, 1);
	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.q), 0, "the message was not acked");
	expect_no_password(log);
	it_names_delete(&n);
	free(log);
	free(conf);
}

Test(tls, mutual_without_client_certificate_refused)
{
	char extra[1024];

	use_node("MUTUAL", "localhost", port_of("MUTUAL", "AMQPS"), NULL);
	snprintf(extra, sizeof(extra), "  ca_cert = \"%s\"", cert("ca.pem"));
	/* TLS 1.3: the broker's alert, or, when its close resets the
	 * header's write before the alert is read (a race), the guess. */
	free(expect_refused(extra, "tlsv13 alert certificate required",
	                    "does it require a client certificate? (none is "
	                    "configured"));
}

Test(tls, mutual_with_untrusted_client_certificate_refused)
{
	char extra[2048];

	use_node("MUTUAL", "localhost", port_of("MUTUAL", "AMQPS"), NULL);
	snprintf(extra, sizeof(extra),
	         "  ca_cert = \"%s\"\n  client_cert = \"%s\"\n"
	         "  client_key = \"%s\"",
	         cert("ca.pem"), cert("other-client.pem"),
	         cert("other-client.key"));
	free(expect_refused(extra, "tlsv1 alert unknown ca",
	                    "does it refuse the client certificate"));
}

Test(tls, wrong_password_refused_and_not_logged)
{
	char extra[1024], url[256], *conf, *out;
	struct it_names n;

	use_node("VERIFY", "localhost", port_of("VERIFY", "AMQPS"), NULL);
	snprintf(url, sizeof(url), "amqps://%s:%s-wrong@localhost:%d", TLS_USER,
	         TLS_PASS, port_of("VERIFY", "AMQPS"));
	it_url_override = url;
	snprintf(extra, sizeof(extra), "  ca_cert = \"%s\"", cert("ca.pem"));
	conf = record_conf(&n, extra);
	cr_expect_eq(it_warrend_run(conf, NULL, &out), 1, "%s", out);
	cr_expect(strstr(out, redacted) && strstr(out, "ACCESS_REFUSED"), "%s",
	          out);
	expect_no_password(out); /* nor the wrong one: it starts the same */
	free(out);
	free(conf);
}

Test(tls, unverified_warns_at_every_connect)
{
	const char *warning = "without verifying its certificate "
	                      "(broker.verify_peer = false): the broker is "
	                      "not authenticated";
	struct it_names n;
	struct it_daemon d;
	char *conf, *log, line[1024];

	/* A vhost of its own: close_all_connections closes only ours. */
	use_node("VERIFY", "localhost", port_of("VERIFY", "AMQPS"),
	         UNVERIFIED_VHOST);
	conf = record_conf(&n, "  pool_size = 1\n  verify_peer = false");
	expect_consumes(&d, &n, conf, 1);
	/* Its consuming and its publishing connection. */
	cr_assert_eq(it_log_wait(&d, warning, 2, 10000), 2);

	cr_assert_eq(
	    it_broker_ctl("close_all_connections --vhost " UNVERIFIED_VHOST
	                  " test-tls-reconnect"),
	    0);
	cr_assert_eq(it_log_wait(&d, "reconnected to", 1, 20000), 1,
	             "no reconnect:\n%s", it_log_read(&d));
	publish_record(&n, 2);
	cr_assert_eq(it_log_wait(&d, "record type=r id=2 ", 1, 20000), 1);
	log = it_stop_and_log(&d);
	/* One slot's two connections (consuming, publishing), opened
	 * twice: four warnings. */
	cr_expect_eq(it_count(log, warning), 4, "%s", log);
	cr_assert(it_log_line(log, warning, line, sizeof(line)), "%s", log);
	cr_expect(strstr(line, " WARN ") && strstr(line, redacted) &&
	              strstr(line, "a man-in-the-middle could read the "
	                           "messages and the password"),
	          "%s", line);
	cr_expect_eq(it_queue_ready(n.q), 0);
	expect_no_password(log);
	it_names_delete(&n);
	free(log);
	free(conf);
}
