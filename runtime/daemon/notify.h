/* notify.h - what the service manager hears: systemd's notify protocol
 * (sd_notify(3)) for a Type=notify unit, and its watchdog.
 *
 * Every call is a no-op when NOTIFY_SOCKET is unset (not started by
 * systemd, or by a unit of another type), so warrend needs no flag for it.
 * Called from the main thread only, except the watchdog's own thread. */
#ifndef WD_NOTIFY_H
#define WD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One main-loop turn while serving: sends STATUS= when what it says
 * changed ("generation G: N of M slot(s) consuming, R route(s)", or which
 * slot is not consuming), and READY=1 the first time every slot consumes.
 * Returns whether READY=1 was sent (now or earlier). */
bool wd_notify_serving(uintmax_t generation, size_t nroutes);

/* Start has to wait for the broker (broker.startup = "wait"): STATUS= says
 * why, and EXTEND_TIMEOUT_USEC= gives the start job wait_ms more, so that
 * TimeoutStartSec= does not kill a daemon doing what it was told. */
void wd_notify_waiting(const char *why, int64_t wait_ms);

/* RELOADING=1 with MONOTONIC_USEC= (the systemd versions that read it
 * match it with the reload job), and STATUS=. */
void wd_notify_reloading(void);
/* READY=1 after a reload, and STATUS= with its outcome. */
void wd_notify_reloaded(bool ok, uintmax_t generation);

/* STOPPING=1 and STATUS= at shutdown: handlers get timeout_s, or 0: the
 * stop came while start waited for the broker. */
void wd_notify_stopping(int timeout_s);

/* If the unit has WatchdogSec= (WATCHDOG_USEC= in the environment, for
 * this pid), start a thread that sends WATCHDOG=1 every half of it, but
 * only while /healthz would answer 200 (the main loop and every slot
 * thread turned in time): a stuck warrend is then restarted by systemd.
 * 0 if started or not asked for, -1 if the thread could not start. */
int wd_notify_watchdog_start(void);
void wd_notify_watchdog_stop(void);

#endif
