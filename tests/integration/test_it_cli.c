/* warrend's command line, -t, refusing bad configs and plugins before it
 * starts anything, and keeping credentials out of its output. No Criterion
 * .timeout here: with it, Criterion 2.4 leaks 48 bytes in its runner under
 * LeakSanitizer; every wait in the harness is bounded anyway. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static char *fixture(const char *name)
{
	static char path[512];
	snprintf(path, sizeof(path), "%s/tests/fixtures/%s.so", it_build_dir(),
	         name);
	return path;
}

static int run(const char *args, char **out)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s/warrend %s 2>&1", it_build_dir(), args);
	FILE *p = popen(cmd, "r");
	size_t n = 0, cap = 65536;
	*out = calloc(1, cap);
	n = fread(*out, 1, cap - 1, p);
	(*out)[n] = '\0';
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(cli, version_help_and_bad_option)
{
	char *out;
	cr_assert_eq(run("-V", &out), 0);
	cr_assert(strstr(out, "warrend ") && strstr(out, "plugin ABI 1."), "%s",
	          out);
	free(out);
	cr_assert_eq(run("-h", &out), 0);
	cr_assert(strstr(out, "usage: warrend"), "%s", out);
	free(out);
	cr_assert_eq(run("-Z", &out), 2);
	free(out);
}

Test(cli, check_good_config)
{
	char *conf = it_conf("x", "q", fixture("fx_good"), "a=ok", NULL, NULL,
	                     NULL, NULL),
	     *out;
	cr_assert_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
	cr_assert(strstr(out, "is ok: 1 plugin(s), 1 route(s), 2 queue(s)"),
	          "%s", out);
	free(out);
	free(conf);
}

Test(cli, check_refuses_route_to_missing_handler)
{
	char *conf = it_conf("x", "q", fixture("fx_good"), "a=ok;b=nope", NULL,
	                     NULL, NULL, NULL),
	     *out;
	cr_assert_neq(it_warrend_run(conf, "-t", &out), 0);
	cr_assert(strstr(out, "route \"b\": plugin \"p\"") &&
	              strstr(out, "has no handler \"nope\" (it has: ok, "
	                          "reject, retry, bogus)"),
	          "%s", out);
	/* FILE:LINE names the line of route "b" in the generated conf. */
	int line = 1;
	for (const char *p = conf; p < strstr(conf, "route \"b\""); p++)
		line += *p == '\n';
	char where[32];
	snprintf(where, sizeof(where), ":%d: route \"b\"", line);
	cr_assert(strstr(out, it_tmp_dir()) && strstr(out, where),
	          "expected %s in:\n%s", where, out);
	free(out);
	free(conf);
}

Test(cli, refuses_wrong_abi_and_missing_plugin)
{
	char *conf = it_conf("x", "q", fixture("fx_wrong_abi"), "a=ok", NULL,
	                     NULL, NULL, NULL),
	     *out;
	cr_assert_neq(it_warrend_run(conf, "-t", &out), 0);
	cr_assert(strstr(out, "fx_wrong_abi.so") &&
	              strstr(out, "not binary compatible") &&
	              strstr(out, "rebuild"),
	          "%s", out);
	free(out);
	free(conf);
	/* Without -t too: the daemon refuses to start at all. */
	conf = it_conf("x", "q", "/nonexistent/plugin.so", "a=ok", NULL, NULL,
	               NULL, NULL);
	cr_assert_eq(it_warrend_run(conf, NULL, &out), 1);
	cr_assert(strstr(out, "/nonexistent/plugin.so") &&
	              strstr(out, "cannot load"),
	          "%s", out);
	cr_assert_null(strstr(out, "started"), "%s", out);
	free(out);
	free(conf);
}

Test(cli, unreachable_broker_fails_fast_without_password)
{
	char *conf = it_conf("x", "q", fixture("fx_good"), "a=ok", NULL,
	                     "  connect_timeout = 2\n  startup = \"fail\"",
	                     NULL, NULL),
	     *out;
	it_url_override = "amqp://guest:Sup3rSecretPw@127.0.0.1:1/";
	cr_assert_eq(it_warrend_run(conf, NULL, &out), 1);
	cr_assert(strstr(out, "cannot connect to amqp://guest@127.0.0.1:1"),
	          "%s", out);
	cr_assert_null(strstr(out, "Sup3rSecretPw"), "%s", out);
	free(out);
	free(conf);
}

Test(cli, wrong_password_is_not_logged)
{
	char url[512], *out;
	const char *real = it_url();
	const char *at = strchr(real + 7, '@');
	cr_assert(at);
	/* guest:guest@host:port -> guest:Wr0ngPassw0rd@host:port */
	snprintf(url, sizeof(url), "amqp://guest:Wr0ngPassw0rd%s", at);
	it_url_override = url;
	char *conf = it_conf("x", "q", fixture("fx_good"), "a=ok", NULL, NULL,
	                     NULL, NULL);
	cr_assert_eq(it_warrend_run(conf, NULL, &out), 1);
	cr_assert(strstr(out, "cannot log in to amqp://guest@"), "%s", out);
	cr_assert_null(strstr(out, "Wr0ngPassw0rd"), "%s", out);
	free(out);
	free(conf);
}

Test(cli, password_from_file_and_environment)
{
	char url[512], pwfile[300], extra[600], *out;
	const char *real = it_url();
	const char *at = strchr(real + 7, '@');
	struct it_daemon d;
	int fd;

	snprintf(pwfile, sizeof(pwfile), "%s/pw-XXXXXX", it_tmp_dir());
	fd = mkstemp(pwfile);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "guest\n", 6), 6);
	close(fd);
	snprintf(url, sizeof(url), "amqp://guest:not-the-password%s", at);
	it_url_override = url;
	snprintf(extra, sizeof(extra), "  password_file = \"%s\"", pwfile);
	char *conf = it_conf("cli.x", "cli.q", fixture("fx_good"), "a=ok", NULL,
	                     extra, NULL, NULL);
	it_daemon_start(&d, conf, true); /* fails the test if login fails */
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	free(conf);
	unlink(pwfile);

	setenv("WARREN_AMQP_PASSWORD", "guest", 1);
	conf = it_conf("cli.x", "cli.q", fixture("fx_good"), "a=ok", NULL, NULL,
	               NULL, NULL);
	it_daemon_start(&d, conf, true);
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	char *log = it_log_read(&d);
	cr_assert_null(strstr(log, "not-the-password"), "%s", log);
	free(log);
	free(conf);
	(void)out;
}
