/* A broken plugin file (truncated, as a cp over it or a cut download leaves
 * it) never kills warrend: refused with the file and the reason by -t, at
 * start, and on reload, where the running generation keeps serving. So is
 * one that others could have written. */
#define _GNU_SOURCE /* asprintf() */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

#define WAIT_MS 30000

/* Copy the first `len` bytes of src (all if len is 0) to dst by rename, as
 * an install does. */
static void install_cut(const char *src, const char *dst, size_t len)
{
	char tmp[600], buf[65536];
	FILE *in = fopen(src, "rb"), *out;
	size_t n, left = len ? len : (size_t)-1;

	snprintf(tmp, sizeof(tmp), "%s.new", dst);
	cr_assert_not_null(in, "%s", src);
	out = fopen(tmp, "wb");
	cr_assert_not_null(out, "%s", tmp);
	while (left > 0 &&
	       (n = fread(buf, 1, left < sizeof(buf) ? left : sizeof(buf),
	                  in)) > 0) {
		cr_assert_eq(fwrite(buf, 1, n, out), n);
		left -= n;
	}
	fclose(in);
	fclose(out);
	cr_assert_eq(rename(tmp, dst), 0);
}

/* The fixture plugin's path (src), where the test installs it (plugin)
 * and a conf routing t:flow to it, under names `what`. */
static char *setup(struct it_names *n, const char *what, char src[512],
                   char plugin[512])
{
	snprintf(src, 512, "%s/tests/fixtures/fx_flow.so", it_build_dir());
	snprintf(plugin, 512, "%s/plugin.so", it_tmp_dir());
	it_names_init(n, what);
	return it_conf(n->x, n->q, plugin, "t:flow=flow", NULL, NULL, NULL,
	               NULL);
}

Test(broken_plugin, refused_by_check_at_start_and_on_reload, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char src[512], plugin[512], *out = NULL;

	char *conf = setup(&n, "broken", src, plugin);

	/* -t and start: refused, with the reason, no crash. */
	install_cut(src, plugin, 4000);
	int rc = it_warrend_run(conf, "-t", &out);
	cr_expect_eq(rc, 1, "warrend -t exited %d: %s", rc, out);
	cr_expect(strstr(out, plugin) && strstr(out, "truncated"), "%s", out);
	free(out);
	it_daemon_start(&d, conf, false);
	cr_expect_eq(it_daemon_wait(&d, WAIT_MS), 1,
	             "start with a broken plugin");
	cr_expect_eq(it_log_count(&d, "truncated"), 1);

	/* Reload: a good plugin serves, a truncated one is refused, the good
	 * one keeps serving. */
	install_cut(src, plugin, 0);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":1}");
	cr_assert_eq(it_log_wait(&d, "flow id=1 ", 1, WAIT_MS), 1);
	const size_t cuts[] = {100, 4000, 12000};
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		char id[64], needle[64];
		install_cut(src, plugin, cuts[i]);
		it_daemon_signal(&d, SIGHUP);
		snprintf(needle, sizeof(needle),
		         "reload: generation %zu failed", i + 2);
		cr_assert_eq(it_log_wait(&d, needle, 1, WAIT_MS), 1,
		             "cut at %zu bytes", cuts[i]);
		snprintf(id, sizeof(id), "{\"type\":\"t:flow\",\"id\":%zu}",
		         10 + i);
		it_publish_str(c, n.x, "k", id);
		snprintf(needle, sizeof(needle), "flow id=%zu ", 10 + i);
		cr_expect_eq(it_log_wait(&d, needle, 1, WAIT_MS), 1,
		             "generation 1 stopped serving after a cut at %zu",
		             cuts[i]);
	}
	it_close(c);
	char *log = it_stop_and_log(&d);
	cr_expect_geq(it_count(log, "cannot load"), 3, "%s", log);
	free(log);
	it_names_delete(&n);
	free(conf);
}

/* A plugin others could have written (group- or world-writable) is refused
 * the same way: by -t and on reload, naming the file, its mode and the
 * fix, while the running generation keeps serving; plugin_insecure = true
 * loads it. */
Test(broken_plugin, refused_when_others_could_write_it, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char src[512], plugin[512], *out = NULL, *insecure;

	char *conf = setup(&n, "insecure", src, plugin);

	install_cut(src, plugin, 0);
	cr_assert_eq(chmod(plugin, 0666), 0);
	int rc = it_warrend_run(conf, "-t", &out);
	cr_expect_eq(rc, 1, "warrend -t exited %d: %s", rc, out);
	cr_expect(strstr(out, plugin) && strstr(out, "refused") &&
	              strstr(out, "writable by group and others (mode "
	                          "0666)") &&
	              strstr(out, "chmod go-w"),
	          "%s", out);
	free(out);
	cr_assert_geq(asprintf(&insecure, "plugin_insecure = true\n%s", conf),
	              0);
	rc = it_warrend_run(insecure, "-t", &out);
	cr_expect_eq(rc, 0, "plugin_insecure: -t exited %d: %s", rc, out);
	free(out);
	free(insecure);

	cr_assert_eq(chmod(plugin, 0644), 0);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":1}");
	cr_assert_eq(it_log_wait(&d, "flow id=1 ", 1, WAIT_MS), 1);
	cr_assert_eq(chmod(plugin, 0664), 0);
	it_daemon_signal(&d, SIGHUP);
	cr_assert_eq(it_log_wait(&d, "reload: generation 2 failed", 1, WAIT_MS),
	             1);
	cr_expect_eq(it_log_count(&d, "writable by its group (mode 0664)"), 1);
	it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":2}");
	cr_expect_eq(it_log_wait(&d, "flow id=2 ", 1, WAIT_MS), 1,
	             "generation 1 stopped serving");
	it_close(c);
	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
}
