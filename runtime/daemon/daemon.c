/* daemon.c - start, the signal loop, reloads, and a bounded graceful stop.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigtimedwait(), so no work ever happens in a signal handler.
 * A reload runs on this thread too: SIGHUPs that arrive meanwhile stay
 * pending as one, and start one more reload after it. */
#include "daemon/daemon.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/series.h"
#include "daemon/notify.h"
#include "daemon/pidfile.h"
#include "daemon/reload.h"
#include "host/targets.h"
#include "observe/http.h"
#include "observe/summary.h"
#include "slot/pool.h"

int wd_daemon_check(const char *conf_path)
{
	struct wd_gen *g = wd_reload_load(conf_path, 1);

	if (!g) {
		fprintf(stderr, "warrend: configuration %s test failed\n",
		        conf_path);
		return 1;
	}
	/* Offline, as -t runs under systemd (ExecStartPre=, ExecReload=)
	 * while the broker may be down: an exchange only the broker can
	 * vouch for is named, and checked at start. */
	wd_targets_check_conf(g->routes);
	fprintf(stderr,
	        "warrend: configuration %s is ok: %zu plugin(s), %zu "
	        "route(s), %zu queue(s)\n",
	        conf_path, g->routes->nplugins, g->routes->nroutes,
	        g->routes->conf->nqueues);
	wd_gen_unref(g);
	wd_gen_free(g);
	return 0;
}

/* How long the main loop may go without a turn before /healthz calls it
 * stuck: its tick, or a reload (plugin inits, a topology declare bounded
 * by connect_timeout), with room to spare. */
static void main_alive(const struct wd_reloader *r, int64_t busy_ms)
{
	int64_t rpc = (int64_t)r->current->routes->conf->broker.connect_timeout;

	wd_series_main_alive_until(wd_now_ms() + busy_ms + 2 * rpc * 1000 +
	                           10000);
}

/* The HTTP endpoint of the first generation's conf, or none. -1 if it is
 * configured and cannot listen (fatal at start, like a bad URL). */
static int start_http(const struct wd_reloader *r, struct wd_http **http)
{
	const char *listen = r->current->routes->conf->http_listen;
	char err[512];

	*http = NULL;
	if (!*listen)
		return 0;
	*http = wd_http_start(listen, err, sizeof(err));
	if (!*http) {
		wd_log_error("daemon",
		             "%s (set http { listen = \"\" } to turn "
		             "the endpoint off)",
		             err);
		return -1;
	}
	return 0;
}

/* Every way out of a running daemon: the pid file goes, and systemd
 * hears no more pings. */
static int leave(int code)
{
	wd_notify_watchdog_stop();
	wd_pidfile_remove();
	return code;
}

int wd_daemon_run(const char *conf_path, const char *pidfile)
{
	struct wd_reloader r;
	struct wd_http *http;
	sigset_t set;
	siginfo_t info;
	int sig, timeout;
	int64_t sampled = 0;
	bool ready = false;
	char err[512];
	struct wd_summary summary;

	/* Block before any thread exists, so all threads inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (wd_reload_first(&r, conf_path) < 0)
		return 1;
	/* Taken before connecting: a second warrend given the same file
	 * stops here, before it consumes anything. */
	if (pidfile && wd_pidfile_take(pidfile, err, sizeof(err)) < 0) {
		wd_log_error("daemon", "%s", err);
		wd_gen_free(r.current);
		return 1;
	}
	/* Serving before the pool connects: /readyz says "starting" until
	 * every slot consumes. */
	main_alive(&r, 0);
	if (start_http(&r, &http) < 0) {
		wd_gen_free(r.current);
		return leave(1);
	}
	if (wd_notify_watchdog_start() < 0)
		wd_log_warnx("daemon", "cannot start the watchdog thread: "
		                       "systemd will restart warrend at "
		                       "WatchdogSec=");
	switch (wd_reload_serve(&r)) {
	case 0:
		break;
	case 1: /* asked to stop while waiting for the broker */
		wd_notify_stopping(0);
		wd_http_stop(http);
		return leave(0);
	default:
		wd_http_stop(http);
		return leave(1);
	}
	wd_summary_init(&summary, wd_now_ms());
	wd_log_info("daemon",
	            "warrend %s started (pid %d): %zu route(s), "
	            "%zu plugin(s)",
	            WARREN_VERSION, (int)getpid(), r.current->routes->nroutes,
	            r.current->routes->nplugins);

	for (;;) {
		/* Retired generations are freed soon after their last
		 * message settles: look often while there are some. Until
		 * every slot consumes at start, turn every 100 ms: systemd
		 * hears READY=1 soon after they do. */
		long ms = r.nretired ? 20 : !ready ? 100 : 1000;
		struct timespec tick = {.tv_sec = ms / 1000,
		                        .tv_nsec = (ms % 1000) * 1000000L};
		int64_t now;

		main_alive(&r, 1000);
		sig = sigtimedwait(&set, &info, &tick);
		wd_reload_collect(&r);
		now = wd_now_ms();
		if (now - sampled >= 1000) {
			wd_series_sample(now); /* for /status' rates */
			sampled = now;
		}
		wd_summary_tick(&summary, r.current->routes->conf, now);
		ready = wd_notify_serving(r.current->number,
		                          r.current->routes->nroutes);
		if (sig < 0)
			continue; /* EAGAIN: the tick; EINTR */
		if (sig == SIGHUP) {
			/* A reload may start a new pool and drain the old one
			 * (shutdown_timeout) before it returns. */
			main_alive(&r, 30000 + 2000LL * r.current->routes->conf
			                                    ->shutdown_timeout);
			wd_notify_reloading();
			int rc = wd_reload(&r);
			wd_notify_reloaded(rc == 0, r.current->number);
			continue;
		}
		break;
	}
	timeout = r.current->routes->conf->shutdown_timeout;
	wd_notify_stopping(timeout);
	wd_log_info("daemon",
	            "%s: stopping (waiting up to %d s for "
	            "handlers)",
	            sig == SIGINT ? "SIGINT" : "SIGTERM", timeout);
	/* The endpoint keeps answering while the pool drains (/readyz:
	 * stopping). */
	main_alive(&r, (int64_t)timeout * 1000);
	wd_pool_stop(r.pool, timeout);
	if (wd_pool_join(r.pool) < 0) {
		wd_metrics_log("at exit", NULL);
		wd_log_error("daemon",
		             "stopped with handlers still running "
		             "after %d s; their messages will be redelivered",
		             timeout);
		/* A handler still runs plugin code: nothing may be freed
		 * or unloaded under it. */
		wd_pidfile_remove();
		_exit(1);
	}
	wd_pool_free(r.pool);
	r.pool = NULL;
	wd_http_stop(http);
	wd_reload_finish(&r);
	wd_metrics_log("at exit", NULL);
	wd_log_info("daemon", "stopped");
	return leave(0);
}
