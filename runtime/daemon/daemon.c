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

#include "base/log.h"
#include "base/metrics.h"
#include "daemon/reload.h"
#include "slot/pool.h"

int wd_daemon_check(const char *conf_path)
{
	struct wd_gen *g = wd_reload_load(conf_path, 1);

	if (!g) {
		fprintf(stderr, "warrend: configuration %s test failed\n",
		        conf_path);
		return 1;
	}
	fprintf(stderr,
	        "warrend: configuration %s is ok: %zu plugin(s), %zu "
	        "route(s), %zu queue(s)\n",
	        conf_path, g->routes->nplugins, g->routes->nroutes,
	        g->routes->conf->nqueues);
	wd_gen_unref(g);
	wd_gen_free(g);
	return 0;
}

int wd_daemon_run(const char *conf_path)
{
	struct wd_reloader r;
	sigset_t set;
	siginfo_t info;
	int sig, timeout;

	/* Block before any thread exists, so all threads inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (wd_reload_start(&r, conf_path) < 0)
		return 1;
	wd_log_info("daemon",
	            "warrend %s started (pid %d): %zu route(s), "
	            "%zu plugin(s)",
	            WARREN_VERSION, (int)getpid(), r.current->routes->nroutes,
	            r.current->routes->nplugins);

	for (;;) {
		/* Retired generations are freed soon after their last
		 * message settles: look often while there are some. */
		struct timespec tick = {.tv_sec = r.nretired ? 0 : 1,
		                        .tv_nsec = r.nretired ? 20000000 : 0};
		sig = sigtimedwait(&set, &info, &tick);
		wd_reload_collect(&r);
		if (sig < 0)
			continue; /* EAGAIN: the tick; EINTR */
		if (sig == SIGHUP) {
			wd_reload(&r);
			continue;
		}
		break;
	}
	timeout = r.current->routes->conf->shutdown_timeout;
	wd_log_info("daemon",
	            "%s: stopping (waiting up to %d s for "
	            "handlers)",
	            sig == SIGINT ? "SIGINT" : "SIGTERM", timeout);
	wd_pool_stop(r.pool, timeout);
	if (wd_pool_join(r.pool) < 0) {
		wd_metrics_log("at exit");
		wd_log_error("daemon",
		             "stopped with handlers still running "
		             "after %d s; their messages will be redelivered",
		             timeout);
		/* A handler still runs plugin code: nothing may be freed
		 * or unloaded under it. */
		_exit(1);
	}
	wd_pool_free(r.pool);
	r.pool = NULL;
	wd_reload_finish(&r);
	wd_metrics_log("at exit");
	wd_log_info("daemon", "stopped");
	return 0;
}
