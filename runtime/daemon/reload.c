/* reload.c - build, check, swap and retire generations. */
#include "daemon/reload.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/grow.h"
#include "base/log.h"
#include "base/metrics.h"
#include "base/series.h"
#include "broker/broker.h"
#include "broker/topology.h"
#include "conf/conf_diff.h"
#include "daemon/notify.h"
#include "host/targets.h"

static const char AREA[] = "reload";

/* Conf, plugins (private copies), routes, init: generation `number`, or
 * NULL with err set. */
static struct wd_gen *build(const char *conf_path, uint64_t number, bool first,
                            char *err, size_t errlen)
{
	struct wd_conf *conf = wd_conf_load(conf_path, err, errlen);
	struct wd_routes *routes;
	struct wd_gen *g;

	if (!conf)
		return NULL;
	if (first) {
		/* The plugins' lines from here on are in the conf's level
		 * and format already. */
		wd_log_set_level((enum wd_log_level)conf->log_level);
		wd_log_set_format((enum wd_log_format)conf->log_format);
	}
	routes = wd_routes_build(conf, err, errlen); /* takes conf */
	if (!routes)
		return NULL;
	g = wd_gen_new(routes, number);
	if (!g)
		snprintf(err, errlen, "out of memory");
	return g;
}

struct wd_gen *wd_reload_load(const char *conf_path, uint64_t number)
{
	char err[2048];
	struct wd_gen *g = build(conf_path, number, true, err, sizeof(err));

	if (!g)
		wd_log_error("conf", "%s", err);
	return g;
}

/* What /metrics says the serving generation runs (warren_plugin_info). */
static void publish_plugins(const struct wd_gen *g)
{
	const struct wd_routes *rs = g->routes;
	struct wd_plugin_info info[rs->nplugins + 1];

	for (size_t i = 0; i < rs->nplugins; i++) {
		const char *v = rs->plugins[i].desc->version;
		info[i] = (struct wd_plugin_info){
		    .plugin = (char *)rs->plugins[i].conf->name,
		    .version = (char *)(v ? v : "?"),
		    .generation = g->number};
	}
	if (wd_series_set_plugins(info, rs->nplugins) < 0)
		wd_log_warnx(AREA, "out of memory: warren_plugin_info still "
		                   "shows the previous generation");
}

int wd_reload_first(struct wd_reloader *r, const char *conf_path)
{
	memset(r, 0, sizeof(*r));
	r->conf_path = conf_path;
	r->current = wd_reload_load(conf_path, ++r->last_number);
	if (!r->current)
		return -1;
	wd_log_set_level(
	    (enum wd_log_level)r->current->routes->conf->log_level);
	wd_log_set_format(
	    (enum wd_log_format)r->current->routes->conf->log_format);
	return 0;
}

/* Sleep up to ms, or until SIGINT / SIGTERM (which are blocked: taken
 * here, synchronously). Returns true if one came. */
static bool stop_requested_within(int64_t ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000L};
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	return sigtimedwait(&set, NULL, &ts) > 0;
}

int wd_reload_serve(struct wd_reloader *r)
{
	const struct wd_conf_broker *b = &r->current->routes->conf->broker;
	unsigned seed = (unsigned)getpid() ^ (unsigned)wd_now_ms();
	char err[2048];
	bool outage;

	for (int attempt = 1;; attempt++) {
		r->pool = wd_pool_start(r->current, err, sizeof(err), &outage);
		if (r->pool)
			break;
		if (!outage || !b->startup_wait) {
			wd_log_error("pool", "%s", err);
			wd_gen_free(r->current);
			r->current = NULL;
			return -1;
		}
		/* Exponential backoff with full jitter: a fleet of warrends
		 * does not come back in step. */
		int64_t cap = 500LL << (attempt < 7 ? attempt : 6);
		int64_t wait = cap > 30000 ? 30000 : cap;
		wait = 1 + (int64_t)((double)wait *
		                     (rand_r(&seed) / (RAND_MAX + 1.0)));
		wd_log_warnx(
		    "pool",
		    "%s: the broker is not reachable yet (attempt %d), "
		    "retrying in %jd ms (broker.startup = \"fail\" "
		    "exits instead)",
		    err, attempt, (intmax_t)wait);
		int64_t budget =
		    wait + 2 * (int64_t)b->connect_timeout * 1000 + 10000;
		wd_series_main_alive_until(wd_now_ms() + budget);
		wd_notify_waiting(err, budget);
		if (stop_requested_within(wait)) {
			wd_log_info("pool",
			            "stopped before the broker could be "
			            "reached");
			wd_gen_free(r->current);
			r->current = NULL;
			return 1;
		}
	}
	atomic_store(&wd_metrics.generation, r->current->number);
	publish_plugins(r->current);
	return 0;
}

/* Declare g's topology (if `topology`) on a connection of its own, so that
 * a queue or exchange whose new arguments the broker refuses fails the
 * reload, not the swap, and new queues exist before any consumer asks for
 * them; then check that the exchanges g's plugins publish to exist. */
static int declare(const struct wd_pool *p, const struct wd_gen *g,
                   bool topology, char *err, size_t errlen)
{
	char name[64];
	amqp_connection_state_t conn;
	int rc;

	snprintf(name, sizeof(name), "warrend pid %d reload %ju", (int)getpid(),
	         (uintmax_t)g->number);
	conn = wd_broker_connect_any(&p->broker, name, err, errlen, NULL, NULL);
	if (!conn)
		return -1;
	rc = wd_broker_channel_open(conn, 1, err, errlen);
	if (rc == 0 && topology)
		rc = wd_topology_declare(conn, 1, g->routes->conf, err, errlen);
	if (rc == 0)
		rc = wd_targets_check_broker(g->routes, conn, 1, err, errlen);
	wd_broker_close(conn);
	return rc;
}

static int retire(struct wd_reloader *r, struct wd_gen *g)
{
	if (WD_GROW(r->retired, r->capretired, r->nretired + 1, 8) < 0)
		return -1;
	r->retired[r->nretired++] = g;
	return 0;
}

/* ---- reload -------------------------------------------------------------- */

static int failed(struct wd_reloader *r, uint64_t number, int64_t t0,
                  const char *why)
{
	wd_metric_inc(reload_failures);
	wd_log_error(AREA,
	             "reload: generation %ju failed after %jd ms, "
	             "generation %ju keeps serving: %s",
	             (uintmax_t)number, (intmax_t)(wd_now_ms() - t0),
	             (uintmax_t)r->current->number, why);
	return -1;
}

/* The broker settings changed: a new pool for g, then the old one stops
 * the way a shutdown does (its in-flight deliveries finish on the old
 * generation and are acked on their own connections). */
static int replace_pool(struct wd_reloader *r, struct wd_gen *g, char *err,
                        size_t errlen)
{
	struct wd_pool *old = r->pool;
	struct wd_pool *p = wd_pool_start(g, err, errlen, NULL);
	int timeout = r->current->routes->conf->shutdown_timeout;

	if (!p)
		return -1;
	r->pool = p;
	wd_pool_stop(old, timeout);
	if (wd_pool_join(old) < 0) {
		/* Its handlers still run the old code: neither the pool nor
		 * its generation may be freed. Kept (leaked) on purpose. */
		wd_log_error(AREA,
		             "the old connections still had handlers "
		             "running after %d s: their messages will be "
		             "redelivered; generation %ju stays loaded",
		             timeout, (uintmax_t)r->current->number);
		wd_gen_ref(r->current);
		return 0;
	}
	wd_pool_free(old); /* drops its reference to the old generation */
	return 0;
}

int wd_reload(struct wd_reloader *r)
{
	int64_t t0 = wd_now_ms();
	uint64_t number = ++r->last_number;
	struct wd_gen *g, *old = r->current;
	const struct wd_conf *conf;
	bool keep_pool;
	struct wd_conf_diff d;
	char err[2048];

	wd_log_info(AREA, "SIGHUP: reloading %s as generation %ju",
	            r->conf_path, (uintmax_t)number);
	g = build(r->conf_path, number, false, err, sizeof(err));
	if (!g)
		return failed(r, number, t0, err);
	conf = g->routes->conf;
	/* The current generation has the pool's settings: it was started
	 * with them, or swapped in because it had the same. */
	keep_pool = wd_conf_same_pool(r->current->routes->conf, conf);
	if (keep_pool) {
		/* Most reloads bring new code, not a new topology: then the
		 * broker has nothing to declare, and is only asked whether
		 * the exchanges the plugins publish to, that the conf does
		 * not declare, exist (they may be gone since). */
		bool topology =
		    !wd_conf_same_topology(r->current->routes->conf, conf);
		if ((topology || wd_targets_need_broker(g->routes)) &&
		    declare(r->pool, g, topology, err, sizeof(err)) < 0) {
			wd_gen_free(g);
			return failed(r, number, t0, err);
		}
		old = wd_pool_swap(r->pool, g);
		if (!old) {
			wd_gen_free(g);
			return failed(r, number, t0,
			              "cannot start its batch "
			              "thread");
		}
		/* The pool's reference to old is ours now: dropped below,
		 * once it is on the retired list. */
	} else if (replace_pool(r, g, err, sizeof(err)) < 0) {
		wd_gen_free(g);
		return failed(r, number, t0, err);
	} else {
		/* The old pool dropped its reference when it was freed. */
		wd_gen_ref(old);
	}
	if (retire(r, old) < 0) {
		/* Cannot track it: keep it loaded, never free it in use. */
		wd_log_error(AREA, "out of memory: generation %ju stays loaded",
		             (uintmax_t)old->number);
	} else {
		wd_gen_unref(old);
	}
	r->current = g;
	wd_log_set_level((enum wd_log_level)conf->log_level);
	wd_log_set_format((enum wd_log_format)conf->log_format);
	wd_conf_diff(old->routes->conf, conf, &d);
	wd_metric_inc(reloads);
	atomic_store(&wd_metrics.generation, number);
	publish_plugins(g);
	if (strcmp(old->routes->conf->http_listen, conf->http_listen) != 0)
		wd_log_warnx(AREA,
		             "http listen changed from \"%s\" to \"%s\": "
		             "it takes effect when warrend restarts",
		             old->routes->conf->http_listen, conf->http_listen);
	wd_log_info(AREA,
	            "reload: generation %ju ready in %jd ms: %zu "
	            "plugin(s) loaded, routes +%zu -%zu ~%zu, consumed queues "
	            "+%zu -%zu, %s; generation %ju retires once its last "
	            "message is settled",
	            (uintmax_t)number, (intmax_t)(wd_now_ms() - t0),
	            g->routes->nplugins, d.routes_added, d.routes_removed,
	            d.routes_changed, d.queues_added, d.queues_removed,
	            keep_pool ? "connections kept"
	                      : "new connections (broker settings changed)",
	            (uintmax_t)old->number);
	wd_metrics_log("after reload", NULL);
	return 0;
}

size_t wd_reload_collect(struct wd_reloader *r)
{
	size_t keep = 0;

	for (size_t i = 0; i < r->nretired; i++) {
		struct wd_gen *g = r->retired[i];
		if (!wd_gen_unused(g)) {
			r->retired[keep++] = g;
			continue;
		}
		uint64_t number = g->number;
		wd_gen_free(g);
		wd_log_info(AREA,
		            "generation %ju retired: its plugins are "
		            "finished and unloaded",
		            (uintmax_t)number);
	}
	r->nretired = keep;
	return keep;
}

void wd_reload_finish(struct wd_reloader *r)
{
	if (r->current && !wd_gen_unused(r->current))
		wd_log_error(AREA,
		             "generation %ju is still in use at exit: "
		             "left loaded",
		             (uintmax_t)r->current->number);
	else
		wd_gen_free(r->current);
	r->current = NULL;
	if (wd_reload_collect(r) > 0)
		wd_log_error(AREA,
		             "%zu retired generation(s) still in use at "
		             "exit: left loaded",
		             r->nretired);
	free(r->retired);
	r->retired = NULL;
	r->nretired = 0;
}
