/* notify.c - systemd's notify protocol through libsystemd's sd_notify(3),
 * and the watchdog thread. */
#include "daemon/notify.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/series.h"
#include "observe/health.h"

static bool ready_sent;
static char last_status[256];

/* STATUS= only when it says something new: the main loop calls every
 * turn. */
static void status(const char *s)
{
	if (strcmp(s, last_status) == 0)
		return;
	snprintf(last_status, sizeof(last_status), "%s", s);
	sd_notifyf(0, "STATUS=%s", s);
}

struct slots_seen {
	int nslots, consuming;
	int first_other; /* the first slot that does not consume, or -1 */
	int other_state;
};

static void count_slots(const struct wd_series_view *v, void *arg)
{
	struct slots_seen *s = arg;

	s->nslots = v->nslots;
	s->first_other = -1;
	for (int i = 0; i < v->nslots; i++) {
		int state = atomic_load(&v->slots[i].state);
		if (state == WD_SLOT_CONSUMING) {
			s->consuming++;
		} else if (s->first_other < 0) {
			s->first_other = i;
			s->other_state = state;
		}
	}
}

bool wd_notify_serving(uintmax_t generation, size_t nroutes)
{
	struct slots_seen s = {0};
	char line[256];
	int n;

	wd_series_visit(count_slots, &s);
	n = snprintf(line, sizeof(line),
	             "generation %ju: %d of %d slot(s) consuming, %zu "
	             "route(s)",
	             generation, s.consuming, s.nslots, nroutes);
	if (s.first_other >= 0 && n > 0 && (size_t)n < sizeof(line))
		snprintf(line + n, sizeof(line) - (size_t)n, "; slot %d %s",
		         s.first_other, wd_slot_state_names[s.other_state]);
	/* Ready as /readyz means it: every slot consumes. */
	if (!ready_sent && s.nslots > 0 && s.consuming == s.nslots) {
		snprintf(last_status, sizeof(last_status), "%s", line);
		sd_notifyf(0, "READY=1\nSTATUS=%s", line);
		ready_sent = true;
		return true;
	}
	status(line);
	return ready_sent;
}

void wd_notify_waiting(const char *why, int64_t wait_ms)
{
	char line[256];

	snprintf(line, sizeof(line), "waiting for the broker: %s", why);
	status(line);
	if (!ready_sent)
		sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%jd",
		           (intmax_t)wait_ms * 1000);
}

void wd_notify_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(last_status, sizeof(last_status), "reloading");
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%jd\nSTATUS=reloading",
	           (intmax_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000);
}

void wd_notify_reloaded(bool ok, uintmax_t generation)
{
	snprintf(last_status, sizeof(last_status),
	         ok ? "reloaded: generation %ju"
	            : "reload failed, still generation %ju (see the log)",
	         generation);
	sd_notifyf(0, "READY=1\nSTATUS=%s", last_status);
}

void wd_notify_stopping(int timeout_s)
{
	if (timeout_s > 0)
		snprintf(last_status, sizeof(last_status),
		         "stopping: waiting up to %d s for handlers",
		         timeout_s);
	else
		snprintf(last_status, sizeof(last_status),
		         "stopping before the broker was reached");
	sd_notifyf(0, "STOPPING=1\nSTATUS=%s", last_status);
}

/* The watchdog thread. */
static pthread_t dog;
static bool dog_running;
static pthread_mutex_t dog_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t dog_wake;
static bool dog_stop;

static void *watchdog(void *arg)
{
	int64_t interval_ms = *(int64_t *)arg;
	bool quiet = false; /* the last turn withheld the ping */
	struct timespec at;

	free(arg);
	clock_gettime(CLOCK_MONOTONIC, &at);
	pthread_mutex_lock(&dog_lock);
	while (!dog_stop) {
		char *body = NULL;
		size_t len = 0;
		int code;

		pthread_mutex_unlock(&dog_lock);
		code = wd_health_live(&body, &len);
		if (code == 200) {
			sd_notify(0, "WATCHDOG=1");
			if (quiet)
				wd_log_info("daemon", "healthy again: pinging "
				                      "the watchdog");
			quiet = false;
		} else if (!quiet) {
			/* Said once: systemd restarts warrend if it lasts
			 * past WatchdogSec=. */
			wd_log_error("daemon", "not pinging the watchdog: %.*s",
			             body && len ? (int)len - 1 : 0,
			             body ? body : "");
			quiet = true;
		}
		free(body);
		pthread_mutex_lock(&dog_lock);
		at.tv_nsec += (long)(interval_ms % 1000) * 1000000;
		at.tv_sec += interval_ms / 1000 + at.tv_nsec / 1000000000;
		at.tv_nsec %= 1000000000;
		while (!dog_stop &&
		       pthread_cond_timedwait(&dog_wake, &dog_lock, &at) == 0)
			;
	}
	pthread_mutex_unlock(&dog_lock);
	return NULL;
}

int wd_notify_watchdog_start(void)
{
	uint64_t usec = 0;
	pthread_condattr_t ca;
	int64_t *interval, ms;

	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return 0;
	interval = malloc(sizeof(*interval));
	if (!interval)
		return -1;
	/* Half the period, as sd_watchdog_enabled(3) advises; at least
	 * 1 ms. */
	ms = (int64_t)(usec / 2000) > 0 ? (int64_t)(usec / 2000) : 1;
	*interval = ms;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dog_wake, &ca);
	pthread_condattr_destroy(&ca);
	dog_stop = false;
	if (pthread_create(&dog, NULL, watchdog, interval) != 0) {
		free(interval);
		pthread_cond_destroy(&dog_wake);
		return -1;
	}
	dog_running = true;
	wd_log_info("daemon", "pinging systemd's watchdog every %jd ms",
	            (intmax_t)ms);
	return 0;
}

void wd_notify_watchdog_stop(void)
{
	if (!dog_running)
		return;
	pthread_mutex_lock(&dog_lock);
	dog_stop = true;
	pthread_cond_signal(&dog_wake);
	pthread_mutex_unlock(&dog_lock);
	pthread_join(dog, NULL);
	pthread_cond_destroy(&dog_wake);
	dog_running = false;
}
