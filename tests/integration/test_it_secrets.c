/* The broker password in none of warrend's or warrenctl's output, in any
 * form it is given (the URL, percent-encoded; password_file; the
 * environment) and through everything that prints: warrend's log at debug
 * (start, a dead-letter, a reload, a reconnect, shutdown), -t, its failures
 * (a vhost refused, nothing listening, TLS to a plain port, a URL that does
 * not parse), /status, /metrics, /healthz, /readyz, a 404, and warrenctl's
 * status, top, report and dlq. Every output is kept and searched, raw and
 * percent-encoded (both cases), for a fragment of the password that every
 * form of it holds. No Criterion .timeout (test_it_cli.c says why): every
 * wait is bounded. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define USER "warren_it_secret"
/* Every character a URL must encode: ; / @ : % */
#define PW           "S3cr;t/p@ss:w%rd-Zq7x9K"
#define PW_ENC       "S3cr%3Bt%2Fp%40ss%3Aw%25rd-Zq7x9K"
#define PW_ENC_LOWER "S3cr%3bt%2fp%40ss%3aw%25rd-Zq7x9K"
/* In every form above: found, it is a leak whatever the encoding. */
#define PW_FRAGMENT "Zq7x9K"
#define WAIT_MS     20000

/* Every output of the test, each under a heading. */
static char *all;
static size_t all_len;
static FILE *all_f;

static void keep(const char *what, const char *text)
{
	fprintf(all_f, "==== %s\n%s\n", what, text ? text : "(none)");
}

/* host:port of the test broker, from its URL. */
static void broker_hostport(char *buf, size_t len)
{
	const char *at = strrchr(it_url(), '@');

	cr_assert_not_null(at, "no @ in %s", it_url());
	snprintf(buf, len, "%s", at + 1);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
}

static void tool(const char *what, const char *args, int want)
{
	char cmd[2048], *out = NULL;
	int rc;

	snprintf(cmd, sizeof(cmd), "timeout 60 '%s/warrenctl' %s 2>&1",
	         it_build_dir(), args);
	rc = it_sh_out(cmd, &out);
	keep(what, out);
	cr_expect_eq(rc, want, "warrenctl %s: exit %d:\n%s", args, rc, out);
	free(out);
}

static void http(int port, const char *path, int want)
{
	char *body = NULL, what[64];
	int status = it_http_get(port, path, &body);

	snprintf(what, sizeof(what), "GET %s", path);
	keep(what, body);
	cr_expect_eq(status, want, "%s: %d", what, status);
	free(body);
}

/* warrend run to its end on conf (startup = "fail"): it must fail, and
 * its error is kept. */
static void failure(const char *what, const char *url, const char *conf)
{
	char *out = NULL;

	it_url_override = url;
	int rc = it_warrend_run(conf, NULL, &out);
	keep(what, out);
	cr_expect_neq(rc, 0, "%s: warrend exited 0:\n%s", what, out);
	free(out);
}

Test(secrets, the_password_is_in_no_output)
{
	char hostport[128], url[512], plain_url[512], bad[640], pwfile[300];
	char args[1024], plugin[512], path[600], extra[400], *out = NULL;
	struct it_names n;
	struct it_daemon d;
	FILE *f;

	if (it_broker_ctl("status") < 0)
		cr_skip_test("needs the test's own broker (rabbitmqctl)");
	all_f = open_memstream(&all, &all_len);
	cr_assert_not_null(all_f);
	it_broker_ctl("delete_user " USER);
	cr_assert_eq(it_broker_ctl("add_user " USER " '" PW "'"), 0);
	cr_assert_eq(
	    it_broker_ctl("set_permissions -p / " USER " '.*' '.*' '.*'"), 0);
	broker_hostport(hostport, sizeof(hostport));
	snprintf(url, sizeof(url), "amqp://%s:%s@%s", USER, PW_ENC, hostport);
	snprintf(plain_url, sizeof(plain_url), "amqp://" USER "@%s", hostport);

	snprintf(plugin, sizeof(plugin), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_names_init(&n, "secrets");
	char *conf = it_conf(n.x, n.q, plugin, "t:flow=flow", NULL,
	                     "  startup = \"fail\"", NULL, NULL);

	/* 1. The URL form, through a running daemon at debug. */
	it_url_override = url;
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":1}");
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":2,\"reject\":true}");
	it_close(c);
	cr_assert_eq(it_wait_queue(n.dlq, 1, WAIT_MS), 1);
	http(port, "/status", 200);
	http(port, "/metrics", 200);
	http(port, "/healthz", 200);
	http(port, "/readyz", 200);
	http(port, "/no-such-page", 404);
	snprintf(args, sizeof(args), "--url http://127.0.0.1:%d status", port);
	tool("warrenctl status", args, 0);
	snprintf(args, sizeof(args), "--url http://127.0.0.1:%d top --once",
	         port);
	tool("warrenctl top", args, 0);
	snprintf(path, sizeof(path), "%s/secrets-report.json", it_tmp_dir());
	snprintf(args, sizeof(args), "--url http://127.0.0.1:%d report '%s'",
	         port, path);
	tool("warrenctl report", args, 0);
	snprintf(bad, sizeof(bad), "cat '%s'", path);
	cr_assert_eq(it_sh_out(bad, &out), 0);
	keep("report.json", out);
	free(out);
	/* A reload, then a reconnect: both log the broker again. */
	it_daemon_signal(&d, SIGHUP);
	cr_expect_eq(it_log_wait(&d, "reload: generation 2 ready", 1, WAIT_MS),
	             1);
	cr_assert_eq(it_broker_ctl("close_all_connections secrets-test"), 0);
	cr_expect_geq(it_log_wait(&d, "reconnected to", 1, WAIT_MS), 1);
	char *log = it_stop_and_log(&d);
	keep("warrend (url)", log);
	/* The output searched is the real one: it names the user. */
	cr_expect_not_null(strstr(log, "amqp://" USER "@"), "%s", log);
	free(log);

	/* 2. -t. */
	cr_expect_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
	keep("warrend -t", out);
	free(out);

	/* 3. warrenctl dlq, the URL given and the conf's. */
	snprintf(args, sizeof(args), "dlq --amqp '%s' ls %s", url, n.dlq);
	tool("warrenctl dlq --amqp", args, 0);
	snprintf(args, sizeof(args), "dlq --amqp '%s' ls no-such-queue-%d", url,
	         (int)getpid());
	tool("warrenctl dlq, no such queue", args, 1);

	/* 4. password_file and the environment, the URL without it. */
	snprintf(pwfile, sizeof(pwfile), "%s/secrets-pw", it_tmp_dir());
	f = fopen(pwfile, "w");
	cr_assert_not_null(f);
	fprintf(f, "%s\n", PW);
	fclose(f);
	cr_assert_eq(chmod(pwfile, 0600), 0);
	snprintf(extra, sizeof(extra), "  password_file = \"%s\"", pwfile);
	char *conf_file =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, extra, NULL, NULL);
	it_url_override = plain_url;
	it_daemon_start(&d, conf_file, true);
	keep("warrend (password_file)", log = it_stop_and_log(&d));
	free(log);
	snprintf(args, sizeof(args),
	         "WARREN_AMQP_URL='%s' timeout 60 '%s/warrenctl' dlq -c "
	         "'%s' ls %s 2>&1",
	         plain_url, it_build_dir(), d.conf, n.dlq);
	cr_expect_eq(it_sh_out(args, &out), 0, "%s", out);
	keep("warrenctl dlq -c (password_file)", out);
	free(out);
	setenv("WARREN_AMQP_PASSWORD", PW, 1);
	it_daemon_start(&d, conf, true);
	keep("warrend (WARREN_AMQP_PASSWORD)", log = it_stop_and_log(&d));
	free(log);
	unsetenv("WARREN_AMQP_PASSWORD");

	/* 5. Failures that name the broker. */
	snprintf(bad, sizeof(bad), "%s/no-such-vhost", url);
	failure("a vhost refused", bad, conf);
	snprintf(bad, sizeof(bad), "amqp://%s:%s@127.0.0.1:1", USER, PW_ENC);
	failure("nothing listening", bad, conf);
	snprintf(bad, sizeof(bad), "amqps://%s:%s@%s", USER, PW_ENC, hostport);
	char *conf_tls =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL,
	            "  startup = \"fail\"\n  verify_peer = false", NULL, NULL);
	failure("TLS to a plain port", bad, conf_tls);
	snprintf(bad, sizeof(bad), "amqp://%s:%s@127.0.0.1:not-a-port", USER,
	         PW_ENC);
	failure("a URL that does not parse", bad, conf);
	it_url_override = NULL;

	fclose(all_f);
	static const char *const forms[] = {PW, PW_ENC, PW_ENC_LOWER,
	                                    PW_FRAGMENT};
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		const char *at = strstr(all, forms[i]);
		const char *from = at && at - all > 300 ? at - 300 : all;
		cr_expect_null(at, "\"%s\" in the output:\n%.600s", forms[i],
		               from);
	}
	/* And each output is there, its failures for the right reason. */
	cr_expect_geq(it_count(all, "==== "), 19);
	static const char *const said[] = {
	    "cannot log in to amqp://" USER "@",
	    "vhost no-such-vhost not found",
	    "Connection refused",
	    "SSL handshake failed",
	    "url is not a valid amqp:// or amqps:// URL",
	    "reconnected to amqp://" USER "@"};
	for (size_t i = 0; i < sizeof(said) / sizeof(said[0]); i++)
		cr_expect_not_null(strstr(all, said[i]), "no \"%s\" in:\n%s",
		                   said[i], all);

	it_broker_ctl("delete_user " USER);
	it_names_delete(&n);
	unlink(pwfile);
	free(conf);
	free(conf_file);
	free(conf_tls);
	free(all);
}
