/* warrenctl new-plugin: what it writes builds against the installed SDK
 * with its own Makefile, installs into the SDK's plugin dir, and runs
 * from its own conf snippet on the real broker; NAME is checked, nothing
 * is overwritten without --force. The README's two plugin examples (one
 * message, a batch) are built and run the same way, from the README's own
 * text, so they cannot drift from what compiles.
 *
 * No Criterion .timeout (see test_it_cli.c): every wait is bounded, and
 * every command runs under timeout(1). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define WAIT_MS 30000

/* Run cmd (under sh, stderr with stdout); returns its exit code and its
 * output in *out (malloc'd). */
static int run(const char *cmd, char **out)
{
	char full[8192], buf[1024];
	size_t len = 0;
	FILE *o = open_memstream(out, &len), *p;
	int st;

	snprintf(full, sizeof(full), "( %s ) 2>&1", cmd);
	p = popen(full, "r");
	cr_assert_not_null(p);
	while (fgets(buf, sizeof(buf), p))
		fputs(buf, o);
	fclose(o);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* This build's warrenctl new-plugin ARGS, run in directory cwd. */
static int new_plugin(const char *cwd, const char *args, char **out)
{
	char cmd[4096];

	snprintf(cmd, sizeof(cmd),
	         "cd '%s' && timeout 60 '%s/warrenctl' new-plugin %s", cwd,
	         it_build_dir(), args);
	return run(cmd, out);
}

static char *slurp(const char *path)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	if (getdelim(&text, &len, '\0', f) < 0) {
		free(text);
		text = strdup("");
	}
	fclose(f);
	return text;
}

static bool exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* Build a plugin source against the SDK installed in prefix, as a user
 * would: nothing from the source tree, -Werror, no undefined symbols. */
static void build_outside(const char *prefix, const char *src, const char *so)
{
	char cmd[4096], *out;

	snprintf(cmd, sizeof(cmd),
	         "export PKG_CONFIG_PATH='%s/lib/pkgconfig'; timeout 120 cc "
	         "-std=c11 -Wall -Wextra -Werror -shared -fPIC "
	         "-Wl,--no-undefined $(pkg-config --cflags warren) '%s' -o "
	         "'%s' $(pkg-config --libs warren)",
	         prefix, src, so);
	cr_assert_eq(run(cmd, &out), 0, "building %s failed:\n%s", src, out);
	free(out);
}

/* The queues and exchanges a generated NAME.conf declares. */
static void delete_generated(const char *name)
{
	char q[160];

	it_delete_queue(name);
	snprintf(q, sizeof(q), "%s.dlq", name);
	it_delete_queue(q);
	snprintf(q, sizeof(q), "%s.retry.5000", name);
	it_delete_queue(q);
	it_delete_exchange(name);
	snprintf(q, sizeof(q), "%s.dlx", name);
	it_delete_exchange(q);
}

Test(new_plugin, generated_plugin_builds_installs_and_handles)
{
	char prefix[300], dir[400], name[64], cmd[4096], path[600], dlq[100];
	char body[256], text[512], *out, *conf, *metrics, *log;
	struct it_daemon d;
	struct it_msg m;

	it_sdk_install(prefix, sizeof(prefix));
	/* A name of this process: the broker is shared with other tests. */
	snprintf(name, sizeof(name), "np_demo_%ld", (long)getpid());
	/* DIR's parent does not exist either: both are made. */
	snprintf(dir, sizeof(dir), "%s/src/%s", prefix, name);
	/* The installed warrenctl, as a user has it. */
	snprintf(cmd, sizeof(cmd),
	         "timeout 60 '%s/bin/warrenctl' new-plugin %s '%s'", prefix,
	         name, dir);
	cr_assert_eq(run(cmd, &out), 0, "%s", out);
	snprintf(path, sizeof(path), "wrote %s/%s.c", dir, name);
	cr_assert(strstr(out, path), "%s", out);
	free(out);

	/* Its Makefile, only the installed SDK on PKG_CONFIG_PATH; -Werror on
	 * top of its -Wall -Wextra. make install: the SDK's plugindir. */
	snprintf(cmd, sizeof(cmd),
	         "export PKG_CONFIG_PATH='%s/lib/pkgconfig'; "
	         "CFLAGS='-O2 -Werror' timeout 120 make -C '%s' && "
	         "timeout 60 make -C '%s' install",
	         prefix, dir, dir);
	cr_assert_eq(run(cmd, &out), 0, "make failed:\n%s", out);
	cr_expect(strstr(out, "--no-undefined"), "%s", out);
	free(out);
	snprintf(path, sizeof(path), "%s/lib/warren/plugins/%s.so", prefix,
	         name);
	cr_assert(exists(path), "make install put no %s", path);

	/* The conf snippet as it is (its plugin path is relative: the
	 * installed warrend's plugin dir), run by the installed warrend. */
	snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
	conf = slurp(path);
	cr_assert_not_null(conf, "no %s", path);
	snprintf(path, sizeof(path), "%s/bin", prefix);
	it_warrend_dir = path;
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	amqp_connection_state_t c = it_connect();
	snprintf(cmd, sizeof(cmd), "%s.hello", name);
	snprintf(body, sizeof(body),
	         "{\"type\":\"%s:hello\",\"name\":\"outside\"}", name);
	it_publish_str(c, name, cmd, body);
	snprintf(body, sizeof(body), "{\"type\":\"%s:hello\",\"id\":2}", name);
	it_publish_str(c, name, cmd, body);
	it_close(c);

	snprintf(text, sizeof(text), "[plugin:%s] hello, outside (attempt 1)",
	         name);
	cr_assert_eq(it_log_wait(&d, text, 1, WAIT_MS), 1, "%s",
	             it_log_read(&d));
	snprintf(dlq, sizeof(dlq), "%s.dlq", name);
	cr_assert_eq(it_wait_queue(dlq, 1, WAIT_MS), 1);
	cr_assert_eq(it_wait_queue(name, 0, WAIT_MS), 0);
	cr_assert(it_get_msg(dlq, &m));
	cr_expect_eq(m.len, strlen(body));
	cr_expect(it_msg_str(&m, "x-warren-reason-text", text, sizeof(text)) &&
	              strstr(text, "\"name\" must be a string"),
	          "reason: %s", text);
	it_msg_free(&m);
	cr_assert_eq(it_http_get(port, "/metrics", &metrics), 200);
	snprintf(
	    text, sizeof(text),
	    "warren_plugin_events_total{plugin=\"%s\",name=\"greeted\"} 1\n",
	    name);
	cr_expect(strstr(metrics, text), "no %s in:\n%s", text, metrics);
	free(metrics);
	log = it_stop_and_log(&d);
	snprintf(text, sizeof(text), "[plugin:%s] ready (greeting \"hello\")",
	         name);
	cr_expect(strstr(log, text), "%s", log);
	IT_EXPECT_METRIC(log, "acked", 1);
	IT_EXPECT_METRIC(log, "rejected", 1);
	free(log);
	free(conf);
	delete_generated(name);
}

Test(new_plugin, names_are_checked)
{
	char long_ok[65], too_long[66], args[200], path[600], *out;
	const char *tmp = it_tmp_dir();
	static const struct {
		const char *arg, *why;
	} bad[] = {
	    {"''", "it is empty"},
	    {"Demo", "must start with a lowercase letter"},
	    {"1demo", "must start with a lowercase letter"},
	    {"_demo", "must start with a lowercase letter"},
	    {"de-mo", "may only hold a-z, 0-9 and _"},
	    {"'de mo'", "may only hold a-z, 0-9 and _"},
	    {"demo.x", "may only hold a-z, 0-9 and _"},
	    {"../demo", "must start with a lowercase letter"},
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_expect_eq(new_plugin(tmp, bad[i].arg, &out), 2, "%s: %s",
		             bad[i].arg, out);
		cr_expect(strstr(out, "cannot be a plugin name") &&
		              strstr(out, bad[i].why),
		          "%s: %s", bad[i].arg, out);
		free(out);
	}
	memset(too_long, 'a', 65);
	too_long[65] = '\0';
	cr_expect_eq(new_plugin(tmp, too_long, &out), 2, "%s", out);
	cr_expect(strstr(out, "longer than 64 characters"), "%s", out);
	free(out);
	snprintf(path, sizeof(path), "%s/%s", tmp, too_long);
	cr_expect(!exists(path), "a bad name made %s", path);

	/* The bounds themselves are fine; DIR defaults to ./NAME. */
	memset(long_ok, 'z', 64);
	long_ok[64] = '\0';
	cr_expect_eq(new_plugin(tmp, long_ok, &out), 0, "%s", out);
	free(out);
	snprintf(path, sizeof(path), "%s/%s/%s.conf", tmp, long_ok, long_ok);
	cr_expect(exists(path), "no %s", path);
	cr_expect_eq(new_plugin(tmp, "a_1", &out), 0, "%s", out);
	free(out);
	snprintf(path, sizeof(path), "%s/a_1/a_1.c", tmp);
	cr_expect(exists(path), "no %s", path);
	/* A DIR with a trailing slash: the same place, named cleanly. */
	cr_expect_eq(new_plugin(tmp, "b b_dir/", &out), 0, "%s", out);
	cr_expect(strstr(out, "wrote b_dir/b.c\n"), "%s", out);
	free(out);

	/* Usage errors: 2, with the usage. */
	static const char *const usage[] = {"", "a b c", "--bogus a", "-x a",
	                                    "a ''"};
	for (size_t i = 0; i < sizeof(usage) / sizeof(usage[0]); i++) {
		snprintf(args, sizeof(args), "%s", usage[i]);
		cr_expect_eq(new_plugin(tmp, args, &out), 2, "'%s': %s", args,
		             out);
		cr_expect(strstr(out, "usage: warrenctl new-plugin"), "%s",
		          out);
		free(out);
	}
	cr_expect_eq(new_plugin(tmp, "--help", &out), 0, "%s", out);
	free(out);
}

Test(new_plugin, refuses_to_overwrite_unless_forced)
{
	char dir[400], args[1400], c_file[600], mk[600], conf[600], *out, *text;

	snprintf(dir, sizeof(dir), "%s/keep", it_tmp_dir());
	snprintf(args, sizeof(args), "keep '%s'", dir);
	cr_assert_eq(new_plugin(it_tmp_dir(), args, &out), 0, "%s", out);
	free(out);
	snprintf(c_file, sizeof(c_file), "%s/keep.c", dir);
	snprintf(mk, sizeof(mk), "%s/Makefile", dir);
	snprintf(conf, sizeof(conf), "%s/keep.conf", dir);

	/* The user's own work in keep.c, the Makefile gone: nothing is
	 * written, not even the missing Makefile, and each file that is in
	 * the way is named. */
	write_text(c_file, "/* mine */\n");
	cr_assert_eq(unlink(mk), 0);
	cr_assert_eq(new_plugin(it_tmp_dir(), args, &out), 1, "%s", out);
	snprintf(args, sizeof(args), "%s exists", c_file);
	cr_expect(strstr(out, args), "%s", out);
	snprintf(args, sizeof(args), "%s exists", conf);
	cr_expect(strstr(out, args), "%s", out);
	cr_expect(strstr(out, "nothing written (--force overwrites)"), "%s",
	          out);
	cr_expect_null(strstr(out, "Makefile exists"), "%s", out);
	free(out);
	cr_expect(!exists(mk), "the Makefile was written");
	text = slurp(c_file);
	cr_expect_str_eq(text, "/* mine */\n");
	free(text);

	/* --force, after the arguments too: all three written anew. */
	snprintf(args, sizeof(args), "keep '%s' --force", dir);
	cr_assert_eq(new_plugin(it_tmp_dir(), args, &out), 0, "%s", out);
	free(out);
	text = slurp(c_file);
	cr_expect(text && strstr(text, ".name = \"keep\""), "%s", text);
	cr_expect(text && !strstr(text, "skeleton"), "a placeholder is left");
	free(text);
	text = slurp(mk);
	cr_expect(text && strstr(text, "keep.so: keep.c"), "%s", text);
	free(text);

	/* Without the SDK, its Makefile says what is missing. */
	snprintf(args, sizeof(args),
	         "PKG_CONFIG_LIBDIR=/nonexistent PKG_CONFIG_PATH= timeout 60 "
	         "make -C '%s'",
	         dir);
	cr_expect_neq(run(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "pkg-config finds no warren SDK"), "%s", out);
	free(out);

	/* DIR that is a file: an error naming it, exit 1. */
	snprintf(args, sizeof(args), "other '%s'", c_file);
	cr_expect_eq(new_plugin(it_tmp_dir(), args, &out), 1, "%s", out);
	cr_expect(strstr(out, c_file), "%s", out);
	free(out);
}

/* The ```c block that follows README's marker line for `file`, written to
 * dir/file. */
static void readme_block(const char *readme, const char *file, const char *dir,
                         char *path, size_t len)
{
	char marker[200];
	const char *p, *start, *end;
	FILE *f;

	snprintf(marker, sizeof(marker),
	         "<!-- test_it_new_plugin builds and runs this block: %s -->\n",
	         file);
	p = strstr(readme, marker);
	cr_assert_not_null(p, "README.md has no \"%s\"", marker);
	p += strlen(marker);
	cr_assert_eq(strncmp(p, "```c\n", 5), 0,
	             "README.md: no ```c block right after the marker of %s",
	             file);
	start = p + 5;
	end = strstr(start, "\n```\n");
	cr_assert_not_null(end, "README.md: the block of %s does not end",
	                   file);
	snprintf(path, len, "%s/%s", dir, file);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fwrite(start, 1, (size_t)(end - start) + 1, f);
	fclose(f);
}

Test(new_plugin, readme_examples_build_and_run)
{
	char prefix[300], readme_path[600], src[700], greeter[700], tally[700];
	char *readme, *conf = NULL, *log;
	struct it_names n;
	struct it_daemon d;
	size_t len = 0;
	FILE *f;

	it_sdk_install(prefix, sizeof(prefix));
	snprintf(readme_path, sizeof(readme_path), "%s/README.md",
	         WARREN_SOURCE_DIR);
	readme = slurp(readme_path);
	cr_assert_not_null(readme);
	readme_block(readme, "greeter.c", prefix, src, sizeof(src));
	snprintf(greeter, sizeof(greeter), "%s/greeter.so", prefix);
	build_outside(prefix, src, greeter);
	readme_block(readme, "tally.c", prefix, src, sizeof(src));
	snprintf(tally, sizeof(tally), "%s/tally.so", prefix);
	build_outside(prefix, src, tally);
	free(readme);

	/* Both on one queue; one connection, so that the three tally
	 * messages make one batch of three (the timeout is far). */
	it_names_init(&n, "np.readme");
	f = open_memstream(&conf, &len);
	fprintf(f,
	        "policy { max_attempts = 1 }\n"
	        "broker { pool_size = 1 }\n"
	        "exchange \"%s\" { type = \"topic\" }\n"
	        "exchange \"%s\" { type = \"fanout\" }\n"
	        "queue \"%s\" { dead_letter_exchange = \"%s\" }\n"
	        "queue \"%s\" { }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"#\" }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" }\n"
	        "plugin \"greeter\" { path = \"%s\" }\n"
	        "route \"greet\" { queue = \"%s\" plugin = \"greeter\" "
	        "handler = \"greet\" }\n"
	        "plugin \"tally\" { path = \"%s\" }\n"
	        "route \"tally\" { queue = \"%s\" plugin = \"tally\" "
	        "handler = \"tally\"\n"
	        "  batch_size = 3 batch_timeout_ms = 60000 }\n",
	        n.x, n.dlx, n.q, n.dlx, n.dlq, n.x, n.q, n.dlx, n.dlq, greeter,
	        n.q, tally, n.q);
	fclose(f);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, n.x, "k", "{\"type\":\"greet\",\"name\":\"ada\"}");
	it_publish_str(c, n.x, "k", "{\"type\":\"tally\",\"amount\":1}");
	it_publish_str(c, n.x, "k", "{\"type\":\"tally\",\"amount\":\"x\"}");
	it_publish_str(c, n.x, "k", "{\"type\":\"tally\",\"amount\":2}");
	it_close(c);
	cr_assert_eq(it_log_wait(&d, "[plugin:greeter] hello, ada", 1, WAIT_MS),
	             1, "%s", it_log_read(&d));
	cr_assert_eq(it_log_wait(&d,
	                         "[plugin:tally] batch of 3: 2 added, sum 3", 1,
	                         WAIT_MS),
	             1, "%s", it_log_read(&d));
	cr_assert_eq(it_wait_queue(n.dlq, 1, WAIT_MS), 1);
	cr_assert_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);
	log = it_stop_and_log(&d);
	IT_EXPECT_METRIC(log, "acked", 3);
	IT_EXPECT_METRIC(log, "rejected", 1);
	free(log);
	free(conf);
	it_names_delete(&n);
}
