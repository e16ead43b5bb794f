/* A plugin written outside the tree, against the installed header and
 * `pkg-config warren`, loads into the installed warrend and handles
 * messages from the real broker. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

Test(sdk_install, out_of_tree_plugin_builds_and_handles, .timeout = 180)
{
	char dir[300], cmd[4096], bin[600], so[600], x[128], q[128];
	struct it_daemon d;

	it_sdk_install(dir, sizeof(dir));
	snprintf(so, sizeof(so), "%s/greeter.so", dir);
	/* Only the installed tree: no -I into the source, no build dir. */
	snprintf(cmd, sizeof(cmd),
	         "export PKG_CONFIG_PATH='%s/lib/pkgconfig'; "
	         "cc -std=c11 -Wall -Wextra -Werror -shared -fPIC "
	         "$(pkg-config --cflags warren) "
	         "'%s/tests/integration/outside/greeter.c' "
	         "-o '%s'",
	         dir, WARREN_SOURCE_DIR, so);
	cr_assert_eq(it_sh(cmd), 0,
	             "building the plugin against the installed SDK failed");

	snprintf(bin, sizeof(bin), "%s/bin", dir);
	it_warrend_dir = bin;
	it_unique(x, sizeof(x), "sdk.x");
	it_unique(q, sizeof(q), "sdk.q");
	char *conf = it_conf(x, q, so, "greet=greet", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, x, "k", "{\"type\":\"greet\",\"name\":\"outside\"}");
	it_close(c);
	cr_assert_eq(
	    it_log_wait(&d, "[plugin:p] hello, outside (type greet)", 1, 20000),
	    1, "%s", it_log_read(&d));
	it_daemon_stop(&d);
	cr_assert_eq(d.status, 0);
	cr_assert_eq(it_queue_ready(q), 0);
	/* The sample config and example plugins were installed too. */
	snprintf(cmd, sizeof(cmd),
	         "test -f '%s/etc/warren/warren.conf' && "
	         "test -f '%s/lib/warren/plugins/order_created.so' && "
	         "test -f '%s/include/warren.h'",
	         dir, dir, dir);
	cr_assert_eq(it_sh(cmd), 0, "install layout incomplete");
	/* The build was configured for another prefix: the moved install
	 * finds its own conf (the default -c) and plugin dir (the conf's
	 * default), relative to its warrend. */
	snprintf(cmd, sizeof(cmd),
	         "cd / && env -u WARREN_PLUGIN_DIR '%s/bin/warrend' -t "
	         ">'%s/t.out' 2>&1 && grep -q 'is ok: 3 plugin(s)' '%s/t.out' "
	         "&& '%s/bin/warrend' -h | grep -qF \"$(realpath "
	         "'%s/etc/warren/warren.conf')\"",
	         dir, dir, dir, dir, dir);
	cr_assert_eq(it_sh(cmd), 0,
	             "the moved install's warrend -t failed or uses another "
	             "conf (see %s/t.out)",
	             dir);
	/* The example applications' confs, installed beside the docs, pass
	 * -t with the installed plugins (their plugin dir is the default). */
	static const char *const examples[] = {"orders", "notifications"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(
		    cmd, sizeof(cmd),
		    "cd / && env -u WARREN_PLUGIN_DIR '%s/bin/warrend' -t "
		    "-c '%s/share/doc/warren/examples/%s.conf' >'%s/t.out' "
		    "2>&1 && grep -q 'is ok: 1 plugin(s), 4 route(s)' "
		    "'%s/t.out'",
		    dir, dir, examples[i], dir, dir);
		cr_assert_eq(it_sh(cmd), 0,
		             "the installed %s.conf fails warrend -t (see "
		             "%s/t.out)",
		             examples[i], dir);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	it_sh(cmd);
	free(conf);
}

/* Configured for /usr, as a Debian package is: warren.pc lands in the
 * multiarch LIBDIR and still finds /usr/include from there, and the conf
 * goes to /etc/warren (not /usr/etc). Configure only: no build needed. */
Test(sdk_install, usr_prefix_paths, .timeout = 120)
{
	char dir[300], cmd[4096];

	snprintf(dir, sizeof(dir), "%s/usr-XXXXXX", it_tmp_dir());
	cr_assert(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd),
	         "set -e; b='%s/build'; root='%s/root'; "
	         "cmake -S '%s' -B \"$b\" -DCMAKE_INSTALL_PREFIX=/usr "
	         "-DWARREN_TESTS=OFF >\"$b.log\" 2>&1; "
	         "libdir=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "
	         "\"$b/CMakeCache.txt\"); "
	         "mkdir -p \"$root/usr/$libdir/pkgconfig\" "
	         "\"$root/usr/include\" \"$root/usr/$libdir/warren/plugins\"; "
	         "cp \"$b/warren.pc\" \"$root/usr/$libdir/pkgconfig/\"; "
	         "export PKG_CONFIG_PATH=\"$root/usr/$libdir/pkgconfig\"; "
	         "test \"$(realpath \"$(pkg-config --variable=includedir "
	         "warren)\")\" = \"$(realpath \"$root/usr/include\")\"; "
	         "test \"$(realpath \"$(pkg-config --variable=plugindir "
	         "warren)\")\" = "
	         "\"$(realpath \"$root/usr/$libdir/warren/plugins\")\"; "
	         "pkg-config --libs warren | grep -q -- -ljansson; "
	         "grep -q '\"/etc/warren\"' \"$b/cmake_install.cmake\"",
	         dir, dir, WARREN_SOURCE_DIR);
	cr_assert_eq(it_sh(cmd), 0, "the /usr install paths are wrong (see %s)",
	             dir);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	it_sh(cmd);
}
