/* log.c - stderr logging, one write(2) per line so that lines from several
 * threads never interleave. */
#include "base/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"

/* Written by a reload on the main thread, read by every thread. Relaxed:
 * a line logged at the old level around a reload is harmless. */
static atomic_int log_level = WD_LOG_INFO;

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const json_levels[] = {"error", "warn", "info", "debug"};
static atomic_int log_format = WD_LOG_TEXT;
/* Set once at start, before other threads exist. */
static bool to_journal;
/* syslog(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char *const priorities[] = {"<3>", "<4>", "<6>", "<7>"};
static _Thread_local const struct wd_log_subject *subject;

void wd_log_set_format(enum wd_log_format f)
{
	atomic_store_explicit(&log_format, (int)f, memory_order_relaxed);
}

void wd_log_about(const struct wd_log_subject *s)
{
	subject = s;
}

/* Append s (n bytes) to line as JSON string content; returns the new
 * length, never past cap (a cut escape is dropped whole). */
static size_t json_escaped(char *line, size_t len, size_t cap, const char *s,
                           size_t n)
{
	for (size_t i = 0; i < n && len + 7 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			line[len++] = '\\';
			line[len++] = (char)c;
		} else if (c < 0x20 || c == 0x7f) {
			len += (size_t)snprintf(line + len, cap - len,
			                        "\\u%04x", c);
		} else {
			line[len++] = (char)c;
		}
	}
	return len;
}

/* " [queue=Q slot=N tag=T message-id=M]" after a text line's message. */
static size_t text_subject(char *line, size_t n, size_t cap)
{
	const struct wd_log_subject *s = subject;
	size_t m;
	int r;

	if (n + 1 >= cap)
		return n;
	/* Each piece only if it fits whole: a cut one is left out. */
	r = snprintf(line + n, cap - n, " [queue=%s slot=%d tag=%llu",
	             s->queue ? s->queue : "?", s->slot, s->tag);
	if (r < 0 || (size_t)r >= cap - n)
		return n;
	m = n + (size_t)r;
	if (s->message_id && s->message_id_len > 0) {
		r = snprintf(line + m, cap - m, " message-id=%.*s",
		             s->message_id_len > 128 ? 128 : s->message_id_len,
		             s->message_id);
		if (r < 0 || (size_t)r >= cap - m)
			return n;
		m += (size_t)r;
	}
	if (m + 1 >= cap)
		return n;
	line[m++] = ']';
	return m;
}

/* The JSON line of one event: text is the formatted message. */
static size_t json_line(char *line, size_t cap, const char *stamp,
                        enum wd_log_level level, const char *area,
                        const char *text, size_t tlen)
{
	const struct wd_log_subject *s = subject;
	/* What the escaped strings may fill: the closing always fits. */
	size_t room = cap - 128;
	size_t n = (size_t)snprintf(line, cap,
	                            "{\"time\":\"%s\",\"level\":\"%s\","
	                            "\"area\":\"",
	                            stamp, json_levels[level]);

	n = json_escaped(line, n, room, area, strlen(area));
	n += (size_t)snprintf(line + n, cap - n, "\",\"text\":\"");
	n = json_escaped(line, n, room - 256, text, tlen);
	if (s) {
		n += (size_t)snprintf(line + n, cap - n, "\",\"queue\":\"");
		n = json_escaped(line, n, room - 160, s->queue ? s->queue : "",
		                 s->queue ? strlen(s->queue) : 0);
		n += (size_t)snprintf(line + n, cap - n,
		                      "\",\"slot\":%d,\"tag\":%llu,"
		                      "\"message_id\":\"",
		                      s->slot, s->tag);
		n = json_escaped(line, n, room,
		                 s->message_id ? s->message_id : "",
		                 s->message_id ? (size_t)s->message_id_len : 0);
		if (s->route) {
			n += (size_t)snprintf(line + n, cap - n,
			                      "\",\"route\":\"");
			n = json_escaped(line, n, room, s->route,
			                 strlen(s->route));
		}
	}
	n += (size_t)snprintf(line + n, cap - n, "\"}");
	return n;
}

bool wd_log_detect_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char tail;

	to_journal = false;
	if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2 ||
	    fstat(STDERR_FILENO, &st) < 0)
		return false;
	/* A stderr redirected elsewhere keeps the variable it inherited:
	 * only the very stream counts. */
	to_journal = (unsigned long long)st.st_dev == dev &&
	             (unsigned long long)st.st_ino == ino;
	return to_journal;
}

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
	char line[8192 + 512], stamp[32];
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
	n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + n, sizeof(stamp) - n, ".%03ldZ",
	         (long)(now_ms % 1000));
	/* The priority, if any, then the line after it. */
	size_t p = to_journal ? 3 : 0;
	if (p)
		memcpy(line, priorities[level], p);
	if (atomic_load_explicit(&log_format, memory_order_relaxed) ==
	    WD_LOG_JSON) {
		char text[4096];
		r = vsnprintf(text, sizeof(text), fmt, ap);
		n = p + json_line(line + p, sizeof(line) - 1 - p, stamp, level,
		                  area, text,
		                  r < 0 ? 0
		                  : (size_t)r < sizeof(text)
		                      ? (size_t)r
		                      : sizeof(text) - 1);
	} else {
		if (to_journal)
			r = snprintf(line + p, sizeof(line) - p, "%-5s [%s] ",
			             level_names[level], area);
		else
			r = snprintf(line, sizeof(line), "%s %-5s [%s] ", stamp,
			             level_names[level], area);
		n = p + (r > 0 ? (size_t)r : 0);
		r = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
		if (r > 0)
			n += (size_t)r < sizeof(line) - n - 1
			         ? (size_t)r
			         : sizeof(line) - n - 2;
		/* A plugin's own lines are its to word. */
		if (subject && strncmp(area, "plugin", 6) != 0)
			n = text_subject(line, n, sizeof(line) - 1);
	}
	/* One event, one line: a newline inside the text would let a message
	 * body forge log lines (JSON escapes it already). */
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
