/* log.c - stderr logging, one write(2) per line so that lines from several
 * threads never interleave. */
#include "base/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static volatile int log_level = WD_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void wd_log_set_level(enum wd_log_level level) { log_level = level; }

enum wd_log_level wd_log_get_level(void) { return log_level; }

int wd_log_level_parse(const char *name, enum wd_log_level *out)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	for (int i = 0; i < 4; i++) {
		if (strcasecmp(name, names[i]) == 0) {
			*out = (enum wd_log_level)i;
			return 0;
		}
	}
	return -1;
}

void wd_logv(enum wd_log_level level, const char *area, const char *fmt,
             va_list ap)
{
	char line[4096 + 256];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if ((int)level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s [%s] ",
	             ts.tv_nsec / 1000000L, level_names[level], area);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	if (r > 0)
		n += (size_t)r < sizeof(line) - n - 1 ? (size_t)r
		                                      : sizeof(line) - n - 2;
	/* One event, one line: a newline inside the text would let a message
	 * body forge log lines. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	line[n++] = '\n';
	for (size_t off = 0; off < n;) {
		ssize_t w = write(STDERR_FILENO, line + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void wd_log(enum wd_log_level level, const char *area, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wd_logv(level, area, fmt, ap);
	va_end(ap);
}

void wd_log_warn(const char *area, const char *fmt, ...)
{
	char buf[4096];
	int saved = errno;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	wd_log(WD_LOG_WARN, area, "%s: %s", buf, strerror(saved));
}

void wd_fatal(const char *area, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	wd_logv(WD_LOG_ERROR, area, fmt, ap);
	va_end(ap);
	exit(1);
}
