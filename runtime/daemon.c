/* daemon.c - start, the signal loop, and a bounded graceful stop.
 *
 * Signals are blocked in every thread and taken synchronously by the main
 * thread with sigtimedwait(), so no work ever happens in a signal handler. */
#include "daemon.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "routes.h"

static struct wd_routes *load(const char *conf_path)
{
	char err[2048];
	struct wd_conf *conf = wd_conf_load(conf_path, err, sizeof(err));
	struct wd_routes *routes;

	if (!conf) {
		wd_log_error("conf", "%s", err);
		return NULL;
	}
	wd_log_set_level((enum wd_log_level)conf->log_level);
	routes = wd_routes_build(conf, err, sizeof(err));
	if (!routes)
		wd_log_error("conf", "%s", err);
	return routes;
}

int wd_daemon_check(const char *conf_path)
{
	struct wd_routes *routes = load(conf_path);

	if (!routes) {
		fprintf(stderr, "warrend: configuration %s test failed\n",
		        conf_path);
		return 1;
	}
	fprintf(stderr,
	        "warrend: configuration %s is ok: %zu plugin(s), %zu "
	        "route(s), %zu queue(s)\n",
	        conf_path, routes->nplugins, routes->nroutes,
	        routes->conf->nqueues);
	wd_routes_free(routes);
	return 0;
}

int wd_daemon_run(const char *conf_path)
{
	struct wd_routes *routes;
	struct wd_pool *pool;
	sigset_t set;
	siginfo_t info;
	struct timespec tick = {.tv_sec = 1};
	char err[2048];
	int sig, timeout;

	/* Block before any thread exists, so all threads inherit the mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	routes = load(conf_path);
	if (!routes)
		return 1;
	timeout = routes->conf->shutdown_timeout;
	pool = wd_pool_start(routes, err, sizeof(err));
	if (!pool) {
		wd_log_error("pool", "%s", err);
		wd_routes_free(routes);
		return 1;
	}
	wd_log_info("daemon", "warrend %s started (pid %d): %zu route(s), "
	            "%zu plugin(s)", WARREN_VERSION, (int)getpid(),
	            routes->nroutes, routes->nplugins);

	for (;;) {
		sig = sigtimedwait(&set, &info, &tick);
		if (sig < 0)
			continue; /* EAGAIN: the tick; EINTR */
		if (sig == SIGHUP) {
			wd_log_warnx("daemon", "SIGHUP: reload is not supported "
			             "by this version; ignored");
			continue;
		}
		break;
	}
	wd_log_info("daemon", "%s: stopping (waiting up to %d s for "
	            "handlers)", sig == SIGINT ? "SIGINT" : "SIGTERM",
	            timeout);
	wd_pool_stop(pool, timeout);
	if (wd_pool_join(pool) < 0) {
		wd_metrics_log("at exit");
		wd_log_error("daemon", "stopped with handlers still running "
		             "after %d s; their messages will be redelivered",
		             timeout);
		/* A handler still runs plugin code: nothing may be freed
		 * or unloaded under it. */
		_exit(1);
	}
	wd_pool_free(pool);
	wd_metrics_log("at exit");
	wd_routes_free(routes);
	wd_log_info("daemon", "stopped");
	return 0;
}
