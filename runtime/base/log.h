/* log.h - one line per event on stderr: time, level, area, text.
 * Callers put the cause (a broker's reply, strerror(errno)) into the text
 * themselves, at the level that knows the file, plugin or queue. The level
 * is set by a reload while other threads log: it is an atomic. */
#ifndef WD_LOG_H
#define WD_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum wd_log_level {
	WD_LOG_ERROR = 0,
	WD_LOG_WARN = 1,
	WD_LOG_INFO = 2,
	WD_LOG_DEBUG = 3,
};

#define WD_PRINTF(f, a) __attribute__((format(printf, f, a)))

void wd_log_set_level(enum wd_log_level level);
enum wd_log_level wd_log_get_level(void);
/* Parses "error", "warn", "info", "debug"; returns -1 if unknown. */
int wd_log_level_parse(const char *name, enum wd_log_level *out);

/* log_format: "text" (the default) or "json": one JSON object per line,
 * {"time","level","area","text"} and, for a line about a message, its
 * "queue", "slot", "tag" and "message_id". Set by a reload too. */
enum wd_log_format { WD_LOG_TEXT = 0, WD_LOG_JSON = 1 };
void wd_log_set_format(enum wd_log_format f);

/* When stderr is the journal's stream (systemd sets JOURNAL_STREAM to its
 * "device:inode"), every line starts with its syslog priority, "<3>" for
 * an error to "<7>" for debug, so that `journalctl -p warning` works, and
 * a text line drops its timestamp (the journal has its own). Call once at
 * start, before any thread logs. Returns whether it is the journal. */
bool wd_log_detect_journal(void);

/* The message the calling thread's log lines are about: set around the
 * work on one delivery, cleared (NULL) after; the strings are borrowed
 * for as long as it is set. JSON lines carry it as fields; text lines of
 * the runtime's own areas end with "[queue=Q slot=N tag=T message-id=M]",
 * so that a line about an outcome names the message, not just its tag
 * (tags repeat across channels). */
struct wd_log_subject {
	/* Borrowed from the delivery: whoever hands it over to be freed (an
	 * ack, a requeue) clears the subject first. */
	const char *queue;
	const char *route; /* its route's type, or NULL */
	int slot;
	unsigned long long tag;
	const char *message_id; /* not NUL-terminated: message_id_len */
	int message_id_len;
};
void wd_log_about(const struct wd_log_subject *s);

void wd_logv(enum wd_log_level level, const char *area, const char *fmt,
             va_list ap);
void wd_log(enum wd_log_level level, const char *area, const char *fmt, ...)
    WD_PRINTF(3, 4);

#define wd_log_error(area, ...) wd_log(WD_LOG_ERROR, area, __VA_ARGS__)
#define wd_log_warnx(area, ...) wd_log(WD_LOG_WARN, area, __VA_ARGS__)
#define wd_log_info(area, ...)  wd_log(WD_LOG_INFO, area, __VA_ARGS__)
/* Checked before the call: debug lines sit on per-message paths. */
#define wd_log_debug(area, ...)                                                \
	do {                                                                   \
		if (wd_log_get_level() >= WD_LOG_DEBUG)                        \
			wd_log(WD_LOG_DEBUG, area, __VA_ARGS__);               \
	} while (0)
#endif
