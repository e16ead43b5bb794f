/* log.c - stderr logging, one write(2) per line so that lines from several
 * threads never interleave. */
#include "base/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

/* Written by a reload on the main thread, read by every thread. Relaxed:
 * a line logged at the old level around a reload is harmless. */
static atomic_int log_level = WD_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void wd_log_set_level(enum wd_log_level level)
{
	atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum wd_log_level wd_log_get_level(void)
{
	return (enum wd_log_level)atomic_load_explicit(&log_level,
	                                               memory_order_relaxed);
}

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
	int64_t now_ms;
	time_t sec;
	struct tm tm;
	size_t n;
	int r;

	if (level > wd_log_get_level())
		return;
	now_ms = wd_wall_ms();
	sec = (time_t)(now_ms / 1000);
	gmtime_r(&sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s [%s] ",
	             (long)(now_ms % 1000), level_names[level], area);
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
