/* warrend as a systemd Type=notify service, against a real broker and a
 * real NOTIFY_SOCKET (a unix datagram socket this test binds): READY=1
 * only once every slot consumes, RELOADING=1 with MONOTONIC_USEC= and
 * READY=1 around a reload (a failed one too), STOPPING=1 at SIGTERM, and
 * WATCHDOG=1 at half of WATCHDOG_USEC; the journal's priority prefixes;
 * -p/--pidfile; the unit passes `systemd-analyze verify`. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "it_proxy.h"

#define WAIT_MS 30000

/* The socket warrend's sd_notify writes to. */
static int notify_open(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	int n =
	    snprintf(a.sun_path, sizeof(a.sun_path), "%s/notify", it_tmp_dir());

	cr_assert(fd >= 0);
	cr_assert(n > 0 && (size_t)n < sizeof(a.sun_path), "path too long");
	unlink(a.sun_path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setenv("NOTIFY_SOCKET", a.sun_path, 1);
	return fd;
}

/* The next datagram that is not a watchdog ping, within ms (into buf);
 * false if none came. Pings are counted into *pings if not NULL. */
static bool next_state(int fd, char *buf, size_t len, int ms, int *pings)
{
	int64_t end = it_now_ms() + ms;

	for (int64_t now; (now = it_now_ms()) < end;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		ssize_t r = recv(fd, buf, len - 1, 0);
		cr_assert(r >= 0);
		buf[r] = '\0';
		if (strcmp(buf, "WATCHDOG=1") == 0) {
			if (pings)
				(*pings)++;
			continue;
		}
		return true;
	}
	return false;
}

/* Skip STATUS= updates until a datagram holding needle, within ms. */
static bool wait_state(int fd, const char *needle, char *buf, size_t len,
                       int ms)
{
	int64_t end = it_now_ms() + ms;
	int64_t left;

	while ((left = end - it_now_ms()) > 0) {
		if (!next_state(fd, buf, len, (int)left, NULL))
			return false;
		if (strstr(buf, needle))
			return true;
		/* Only status lines may come between the states. */
		cr_assert(strncmp(buf, "STATUS=", 7) == 0 ||
		              strncmp(buf, "EXTEND_TIMEOUT_USEC=", 20) == 0,
		          "unexpected before %s: %s", needle, buf);
	}
	return false;
}

static int64_t monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *flow_conf(struct it_names *n, const char *extra_broker)
{
	char plugin[512];

	snprintf(plugin, sizeof(plugin), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_names_init(n, "sd");
	return it_conf(n->x, n->q, plugin, "t:flow=flow", NULL, extra_broker,
	               NULL, NULL);
}

Test(systemd, ready_when_consuming_then_reloads_and_stops, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char buf[512], *body;
	int fd = notify_open();
	char *conf = flow_conf(&n, "  pool_size = 2\n");

	unsetenv("WATCHDOG_USEC");
	it_daemon_start(&d, conf, false);
	cr_assert(wait_state(fd, "READY=1", buf, sizeof(buf), WAIT_MS),
	          "no READY=1:\n%s", it_log_read(&d));
	/* Not at exec: after the pool consumes. */
	cr_expect_eq(it_log_count(&d, " started (pid "), 1, "%s",
	             it_log_read(&d));
	cr_expect(strstr(buf, "STATUS=generation 1: 2 of 2 slot(s) consuming, "
	                      "1 route(s)") != NULL,
	          "%s", buf);
	cr_expect_eq(it_http_get(it_http_port(&d), "/readyz", &body), 200);
	free(body);

	/* A reload: RELOADING=1 stamped with the monotonic clock, then
	 * READY=1 once the new generation serves. */
	int64_t before = monotonic_usec();
	it_daemon_signal(&d, SIGHUP);
	cr_assert(wait_state(fd, "RELOADING=1", buf, sizeof(buf), WAIT_MS));
	int64_t after = monotonic_usec();
	char *m = strstr(buf, "MONOTONIC_USEC=");
	cr_assert_not_null(m, "%s", buf);
	long long stamp = atoll(m + 15);
	cr_expect(stamp >= before && stamp <= after, "%lld not in [%lld, %lld]",
	          stamp, (long long)before, (long long)after);
	cr_assert(next_state(fd, buf, sizeof(buf), WAIT_MS, NULL));
	cr_expect(strstr(buf, "READY=1") && strstr(buf, "STATUS=reloaded: "
	                                                "generation 2"),
	          "after RELOADING=1: %s", buf);

	/* A reload that fails keeps generation 2, and says so. */
	FILE *f = fopen(d.conf, "w");
	cr_assert_not_null(f);
	fputs("workers = \"many\"\n", f);
	fclose(f);
	it_daemon_signal(&d, SIGHUP);
	cr_assert(wait_state(fd, "RELOADING=1", buf, sizeof(buf), WAIT_MS));
	cr_assert(next_state(fd, buf, sizeof(buf), WAIT_MS, NULL));
	cr_expect(strstr(buf, "READY=1") &&
	              strstr(buf, "STATUS=reload failed, still generation 2"),
	          "after a failed reload: %s", buf);

	it_daemon_signal(&d, SIGTERM);
	cr_assert(wait_state(fd, "STOPPING=1", buf, sizeof(buf), WAIT_MS));
	cr_expect(strstr(buf, "STATUS=stopping: waiting up to") != NULL, "%s",
	          buf);
	cr_expect_eq(it_daemon_wait(&d, WAIT_MS), 0, "%s", it_log_read(&d));
	free(conf);
}

Test(systemd, not_ready_while_the_broker_is_unreachable, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char buf[512];
	int fd = notify_open();
	/* A port nothing listens on yet (a proxy that closed would count as
	 * a refused login, which is fatal). */
	struct it_proxy *p = it_proxy_start(it_url_port());
	int port = it_proxy_port(p);
	char *conf = flow_conf(&n, "  pool_size = 1\n");

	unsetenv("WATCHDOG_USEC");
	it_url_override = it_proxy_url(p);
	it_proxy_stop(p);
	it_daemon_start(&d, conf, false);
	/* Start waits for the broker: systemd hears why, and gets more
	 * time for the start job, but no READY=1. */
	cr_assert(next_state(fd, buf, sizeof(buf), WAIT_MS, NULL),
	          "nothing sent:\n%s", it_log_read(&d));
	cr_expect(strstr(buf, "STATUS=waiting for the broker: ") != NULL, "%s",
	          buf);
	cr_assert(next_state(fd, buf, sizeof(buf), WAIT_MS, NULL));
	cr_expect(strncmp(buf, "EXTEND_TIMEOUT_USEC=", 20) == 0, "%s", buf);
	cr_expect_gt(atoll(buf + 20), 0, "%s", buf);
	cr_assert_eq(
	    it_log_wait(&d, "not reachable yet (attempt 2)", 1, WAIT_MS), 1,
	    "%s", it_log_read(&d));
	cr_expect_eq(it_log_count(&d, " started (pid "), 0);

	p = it_proxy_start_at(it_url_port(), port);
	cr_assert(wait_state(fd, "READY=1", buf, sizeof(buf), 60000),
	          "no READY=1 once the broker answers:\n%s", it_log_read(&d));
	cr_expect_eq(it_log_count(&d, " started (pid "), 1);
	it_daemon_stop(&d);
	cr_expect_eq(d.status, 0);
	it_proxy_stop(p);
	free((char *)it_url_override);
	it_url_override = NULL;
	free(conf);
}

Test(systemd, watchdog_pings_at_half_its_period, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char buf[512];
	int pings = 0, fd = notify_open();
	char *conf = flow_conf(&n, NULL);

	setenv("WATCHDOG_USEC", "400000", 1); /* a ping every 200 ms */
	it_daemon_start(&d, conf, false);
	cr_assert(wait_state(fd, "READY=1", buf, sizeof(buf), WAIT_MS),
	          "no READY=1:\n%s", it_log_read(&d));
	int64_t t0 = it_now_ms();
	cr_expect(!next_state(fd, buf, sizeof(buf), 2000, &pings), "%s", buf);
	int64_t took = it_now_ms() - t0;
	/* 2 s at 200 ms: 10, give or take a slow machine. */
	cr_expect(pings >= 6 && pings <= 12, "%d pings in %lld ms", pings,
	          (long long)took);
	cr_expect_eq(it_log_count(&d, "pinging systemd's watchdog every 200 "
	                              "ms"),
	             1, "%s", it_log_read(&d));
	it_daemon_stop(&d);
	cr_expect_eq(d.status, 0);
	free(conf);
}

Test(systemd, journal_lines_carry_their_priority, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char *conf = flow_conf(&n, NULL);

	unsetenv("NOTIFY_SOCKET");
	it_as_journal = true;
	it_daemon_start(&d, conf, true);
	char *log = it_stop_and_log(&d);
	it_as_journal = false;
	char line[1024];
	cr_assert(it_log_line(log, " started (pid ", line, sizeof(line)), "%s",
	          log);
	cr_expect(strncmp(line, "<6>INFO  [daemon] warrend ", 26) == 0, "%s",
	          line);
	/* Every line starts with a priority, none with a timestamp. */
	for (char *l = log; *l; l = strchr(l, '\n') + 1) {
		cr_expect(l[0] == '<' && l[2] == '>' && l[1] >= '3' &&
		              l[1] <= '7',
		          "a line without its priority: %.80s", l);
		if (!strchr(l, '\n'))
			break;
	}
	free(log);
	free(conf);
}

static long pid_in(const char *path)
{
	char buf[32] = {0};
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return strtol(buf, NULL, 10);
}

Test(systemd, pidfile_names_the_daemon_and_refuses_a_second, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d, second;
	char path[300], opt[320], *out;
	char *conf = flow_conf(&n, NULL);

	unsetenv("NOTIFY_SOCKET");
	snprintf(path, sizeof(path), "%s/warrend.pid", it_tmp_dir());
	snprintf(opt, sizeof(opt), "--pidfile=%s", path);
	it_daemon_opt = opt;
	it_daemon_start(&d, conf, true);
	cr_expect_eq(pid_in(path), d.pid);

	/* A second daemon with the same file stops before it connects. */
	it_daemon_start(&second, conf, false);
	cr_expect_eq(it_daemon_wait(&second, WAIT_MS), 1);
	out = it_log_read(&second);
	char want[400];
	snprintf(want, sizeof(want),
	         "pid file %s is held by a running warrend (pid %d)", path,
	         (int)d.pid);
	cr_expect(strstr(out, want) != NULL, "%s", out);
	cr_expect_eq(it_count(out, "consuming"), 0, "%s", out);
	free(out);
	cr_expect_eq(pid_in(path), d.pid, "the second one wrote over it");

	/* kill -HUP $(cat FILE) reaches it. */
	kill((pid_t)pid_in(path), SIGHUP);
	cr_expect_eq(it_log_wait(&d, "reload: generation 2 ready", 1, WAIT_MS),
	             1, "%s", it_log_read(&d));
	it_daemon_stop(&d);
	it_daemon_opt = NULL;
	cr_expect_eq(d.status, 0);
	cr_expect_eq(access(path, F_OK), -1, "the pid file is left after exit");
	free(conf);
}

Test(systemd, the_unit_passes_systemd_analyze_verify, .timeout = 120)
{
	char cmd[2048], unit[512], *out = NULL;
	size_t len = 0;

	if (system("command -v systemd-analyze >/dev/null 2>&1") != 0)
		cr_skip_test("systemd-analyze is not installed");
	snprintf(cmd, sizeof(cmd), "%s/doc/warrend.8", it_build_dir());
	if (access(cmd, R_OK) != 0)
		cr_skip_test("no man pages in this build (no scdoc)");
	/* The unit as built, run from the build tree (verify checks that the
	 * command exists), and its Documentation= pages found in the build's
	 * doc/ (verify runs man on each). */
	snprintf(unit, sizeof(unit), "%s/warrend.service", it_tmp_dir());
	snprintf(cmd, sizeof(cmd),
	         "set -e; d='%s'; b='%s'; mkdir -p \"$d/man/man5\" "
	         "\"$d/man/man8\"; ln -sf \"$b/doc/warrend.8\" "
	         "\"$d/man/man8/\"; ln -sf \"$b/doc/warren.conf.5\" "
	         "\"$d/man/man5/\"; sed \"s#^ExecStart=[^ ]*#ExecStart=$b/"
	         "warrend#\" \"$b/warrend.service\" > '%s'; set +e; "
	         "MANPATH=\"$d/man\" systemd-analyze verify '%s' 2>&1; "
	         "echo rc=$?",
	         it_tmp_dir(), it_build_dir(), unit, unit);
	FILE *o = open_memstream(&out, &len), *p = popen(cmd, "r");
	char line[1024];
	cr_assert_not_null(p);
	while (fgets(line, sizeof(line), p))
		fputs(line, o);
	pclose(p);
	fclose(o);
	cr_expect(strstr(out, "rc=0\n") != NULL, "%s", out);
	/* Nothing but the rc line: any warning is a finding. */
	cr_expect_eq(it_count(out, "\n"), 1, "%s", out);
	free(out);
}
