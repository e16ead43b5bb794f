/* What a service manager sees of warrend, without a broker: the watchdog
 * pings over a real NOTIFY_SOCKET (and withholds them while the main loop
 * is stuck), the journal's priority prefixes, and the locked pid file. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/series.h"
#include "daemon/notify.h"
#include "daemon/pidfile.h"

static char dir[] = "/tmp/warren-service-XXXXXX";

static void remove_dir(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

/* A directory of the test's own, removed when its process exits. */
static void make_dir(void)
{
	cr_assert_not_null(mkdtemp(dir));
	atexit(remove_dir);
}

/* A unix datagram socket at DIR/notify, named in NOTIFY_SOCKET. */
static int notify_socket(void)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/notify", dir);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	setenv("NOTIFY_SOCKET", a.sun_path, 1);
	return fd;
}

/* The datagrams holding needle that arrive within ms. */
static int count_within(int fd, const char *needle, int ms)
{
	int64_t end = wd_now_ms() + ms;
	int n = 0;

	for (int64_t now; (now = wd_now_ms()) < end;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char buf[512];
		if (poll(&p, 1, (int)(end - now)) <= 0)
			continue;
		ssize_t r = recv(fd, buf, sizeof(buf) - 1, 0);
		cr_assert(r >= 0);
		buf[r] = '\0';
		if (strstr(buf, needle))
			n++;
	}
	return n;
}

Test(watchdog, pings_only_while_the_main_loop_turns, .timeout = 30)
{
	make_dir();
	int fd = notify_socket();

	setenv("WATCHDOG_USEC", "100000", 1); /* a ping every 50 ms */
	unsetenv("WATCHDOG_PID");
	wd_series_main_alive_until(wd_now_ms() + 60000);
	cr_assert_eq(wd_notify_watchdog_start(), 0);
	int healthy = count_within(fd, "WATCHDOG=1", 600);
	cr_expect_geq(healthy, 5, "%d pings in 600 ms at 50 ms", healthy);

	/* The main loop promised less than it took: no more pings (one
	 * may be on its way). */
	wd_series_main_alive_until(wd_now_ms() - 1);
	count_within(fd, "WATCHDOG=1", 100);
	int stuck = count_within(fd, "WATCHDOG=1", 500);
	cr_expect_eq(stuck, 0, "%d pings while the main loop is stuck", stuck);

	wd_series_main_alive_until(wd_now_ms() + 60000);
	int again = count_within(fd, "WATCHDOG=1", 600);
	cr_expect_geq(again, 5, "%d pings once it turns again", again);
	wd_notify_watchdog_stop();
	count_within(fd, "WATCHDOG=1", 100);
	cr_expect_eq(count_within(fd, "WATCHDOG=1", 300), 0,
	             "pings after the watchdog stopped");
}

Test(watchdog, not_asked_for_no_thread)
{
	make_dir();
	int fd = notify_socket();

	unsetenv("WATCHDOG_USEC");
	cr_assert_eq(wd_notify_watchdog_start(), 0);
	cr_expect_eq(count_within(fd, "WATCHDOG=1", 300), 0);
	wd_notify_watchdog_stop();
}

/* Log one line of each level into a file that stands for stderr; returns
 * the file's text. JOURNAL_STREAM: as systemd sets it for that file when
 * `journal`, else the given value. */
static char *log_lines(bool journal, const char *other)
{
	char path[300], js[64], *text;
	struct stat st;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/stderr", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(fstat(fd, &st), 0);
	snprintf(js, sizeof(js), "%ju:%ju", (uintmax_t)st.st_dev,
	         (uintmax_t)st.st_ino);
	if (journal || other)
		setenv("JOURNAL_STREAM", journal ? js : other, 1);
	else
		unsetenv("JOURNAL_STREAM");
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	bool is = wd_log_detect_journal();
	wd_log_set_level(WD_LOG_DEBUG);
	wd_log_error("t", "an error");
	wd_log_warnx("t", "a warning");
	wd_log_info("t", "some news");
	wd_log_debug("t", "a detail");
	dup2(saved, STDERR_FILENO);
	close(saved);
	cr_expect_eq(is, journal);
	f = fdopen(fd, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)n + 1);
	cr_assert_eq(fread(text, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	return text;
}

Test(journal, priorities_and_no_timestamp_on_the_journal_stream)
{
	make_dir();
	char *t = log_lines(true, NULL);

	cr_expect(strstr(t, "<3>ERROR [t] an error\n") != NULL, "%s", t);
	cr_expect(strstr(t, "<4>WARN  [t] a warning\n") != NULL, "%s", t);
	cr_expect(strstr(t, "<6>INFO  [t] some news\n") != NULL, "%s", t);
	cr_expect(strstr(t, "<7>DEBUG [t] a detail\n") != NULL, "%s", t);
	cr_expect(strstr(t, "Z ") == NULL, "a timestamp in: %s", t);
	free(t);
}

Test(journal, json_lines_get_the_prefix_too)
{
	make_dir();
	wd_log_set_format(WD_LOG_JSON);
	char *t = log_lines(true, NULL);

	cr_expect(strstr(t, "<4>{\"time\":\"") != NULL, "%s", t);
	cr_expect(strstr(t, "\"level\":\"warn\",\"area\":\"t\",\"text\":\"a "
	                    "warning\"}\n") != NULL,
	          "%s", t);
	free(t);
}

Test(journal, another_stream_or_garbage_is_not_the_journal)
{
	make_dir();
	const char *others[] = {"1:2", "garbage", "", "12:34:56", NULL};

	for (int i = 0; others[i]; i++) {
		char *t = log_lines(false, others[i]);
		cr_expect(strchr(t, '<') == NULL, "JOURNAL_STREAM=%s: %s",
		          others[i], t);
		cr_expect(strstr(t, "Z ERROR [t] an error\n") != NULL,
		          "JOURNAL_STREAM=%s: %s", others[i], t);
		free(t);
	}
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

Test(pidfile, written_refused_while_held_taken_over_when_stale, .timeout = 30)
{
	char path[300], err[512];
	int ready[2];

	make_dir();
	snprintf(path, sizeof(path), "%s/warrend.pid", dir);
	cr_assert_eq(pipe(ready), 0);
	pid_t child = fork();
	cr_assert(child >= 0);
	if (child == 0) {
		char e[512];
		if (wd_pidfile_take(path, e, sizeof(e)) < 0)
			_exit(1);
		(void)!write(ready[1], "x", 1);
		pause();
		_exit(0);
	}
	char c;
	cr_assert_eq(read(ready[0], &c, 1), 1);
	cr_expect_eq(pid_in(path), child);

	cr_expect_eq(wd_pidfile_take(path, err, sizeof(err)), -1);
	char want[128];
	snprintf(want, sizeof(want), "held by a running warrend (pid %d)",
	         (int)child);
	cr_expect(strstr(err, want) != NULL, "%s", err);
	cr_expect(strstr(err, path) != NULL, "%s", err);

	/* Killed: the file stays, with its pid, but nobody holds it. */
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	cr_expect_eq(pid_in(path), child);
	cr_assert_eq(wd_pidfile_take(path, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(pid_in(path), getpid());
	wd_pidfile_remove();
	cr_expect_eq(access(path, F_OK), -1, "the file is left after exit");
}

Test(pidfile, a_directory_that_is_not_there_is_named)
{
	char path[300], err[512];

	make_dir();
	snprintf(path, sizeof(path), "%s/no/such/dir/warrend.pid", dir);
	cr_expect_eq(wd_pidfile_take(path, err, sizeof(err)), -1);
	cr_expect(strstr(err, path) != NULL, "%s", err);
	cr_expect(strstr(err, "No such file or directory") != NULL, "%s", err);
}
