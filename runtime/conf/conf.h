/* conf.h - the configuration model, loaded from a libconfuse file and
 * checked whole: a conf that loads is consistent (every route names a
 * declared queue and a defined plugin; every consumed queue is declared). */
#ifndef WD_CONF_H
#define WD_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "message/envelope.h"
#include "message/policy.h"
#include "warren.h"

/* `prefetch = "auto"` (README: Adaptive prefetch): the window follows what
 * warrend measures, within prefetch_min..prefetch_max. */
#define WD_PREFETCH_AUTO (-1)
/* broker.prefetch's default: adaptive (tests/bench/prefetch.sh measured it
 * against static 10 .. 1000: README, Adaptive prefetch). */
#define WD_PREFETCH_DEFAULT WD_PREFETCH_AUTO
/* The bounds of `auto` (README: Adaptive prefetch says why these). */
#define WD_PREFETCH_MIN_DEFAULT 10
#define WD_PREFETCH_MAX_DEFAULT 1000

/* The HTTP endpoint's default address (README: Monitoring). */
#define WD_HTTP_DEFAULT_LISTEN "127.0.0.1:9466"

struct wd_conf_broker {
	/* The broker's addresses (a cluster's nodes), as configured or from
	 * WARREN_AMQP_URL; at least one. */
	char **urls;
	size_t nurls;
	char *password_file;
	int heartbeat;       /* seconds, 0 = off */
	int connect_timeout; /* seconds */
	int pool_size;
	int prefetch;     /* a number, or WD_PREFETCH_AUTO */
	int prefetch_min; /* auto's bounds */
	int prefetch_max;
	char *ca_cert;
	char *client_cert;
	char *client_key;
	bool verify_peer;
	int ack_batch;       /* acks coalesced into one multiple-ack, 1 = off */
	int ack_delay_ms;    /* longest an ack waits to be coalesced */
	int publish_timeout; /* seconds a publisher confirm may take */
	bool startup_wait;   /* startup = "wait": an unreachable broker at start
	                        is waited for, not fatal */
};

/* What happens to a message no handler can take. */
enum wd_bad_input {
	WD_BAD_DEAD_LETTER = 0, /* republish to the dead-letter exchange */
	WD_BAD_DROP = 1,        /* ack it away; counted and logged */
};

/* An extra queue or exchange argument from `arguments = {"key=value"}`. */
struct wd_conf_arg {
	char *key;
	bool is_int;
	long ival;
	char *sval;
};

struct wd_conf_exchange {
	char *name;
	char *type;
	bool durable;
	struct wd_conf_arg *args; /* e.g. alternate-exchange */
	size_t nargs;
	int line;
};

struct wd_conf_queue {
	char *name;
	bool durable;
	bool quorum;
	char *dead_letter_exchange;    /* NULL = unset */
	char *dead_letter_routing_key; /* NULL = unset */
	long message_ttl;              /* 0 = unset */
	long max_length;               /* 0 = unset */
	long delivery_limit;           /* 0 = unset, quorum only */
	struct wd_conf_arg *args;
	size_t nargs;
	enum wd_type_source type_from;
	char *type_field;
	int prefetch; /* resolved: the queue's or broker.prefetch; may be
	                 WD_PREFETCH_AUTO */
	int prefetch_min, prefetch_max; /* resolved: auto's bounds */
	/* Input policy, resolved from the queue's keys or `policy`. */
	long max_body_size;            /* bytes; a longer body is "too-large" */
	struct wd_input_limits limits; /* beyond it: "too-large" too */
	enum wd_bad_input on_unknown_type, on_unparseable, on_too_large;
	/* Distinct retry delays of the routes on this queue, ascending: one
	 * retry queue "<name>.retry.<ms>" each. */
	long *retry_delays;
	size_t nretry_delays;
	int consumers; /* resolved: 1..pool_size */
	bool consumed; /* some route reads from it */
	int line;
};

struct wd_conf_binding {
	char *exchange;
	char *queue;
	char *key;
	int line;
};

struct wd_conf_plugin {
	char *name;
	char *path; /* resolved against plugin_dir */
	warren_param *params;
	size_t nparams;
	int line;
	/* plugin_insecure (top level): load it whoever could have written
	 * it (host/plugin.c; base/trust.h). */
	bool insecure;
};

struct wd_conf_route {
	char *type;
	size_t queue;  /* index into wd_conf.queues */
	size_t plugin; /* index into wd_conf.plugins */
	char *handler;
	struct wd_policy policy;
	int line;
};

struct wd_conf {
	char *file;
	int log_level;
	int log_format; /* enum wd_log_format */
	int workers;
	int shutdown_timeout; /* seconds */
	int metrics_interval; /* s between metrics log lines; 0 = none */
	/* The memory watch, at each metrics line: resident memory over
	 * memory_warn_mb (0 = no limit), or grown by more than
	 * memory_warn_growth_kb at each of memory_warn_samples lines. */
	long memory_warn_mb;
	int memory_warn_samples;
	long memory_warn_growth_kb;
	char *plugin_dir;
	char *http_listen; /* "ADDRESS:PORT" of the HTTP endpoint; "" = off */
	struct wd_conf_broker broker;
	struct wd_conf_exchange *exchanges;
	size_t nexchanges;
	struct wd_conf_queue *queues;
	size_t nqueues;
	struct wd_conf_binding *bindings;
	size_t nbindings;
	struct wd_conf_plugin *plugins;
	size_t nplugins;
	struct wd_conf_route *routes;
	size_t nroutes;
};

/*
 * Load and check `path`. Environment overrides applied here:
 * WARREN_AMQP_URL (broker.url), WARREN_PLUGIN_DIR (plugin_dir),
 * WARREN_HTTP_LISTEN (http.listen).
 * On error returns NULL and writes "FILE:LINE: what is wrong" into err.
 */
struct wd_conf *wd_conf_load(const char *path, char *err, size_t errlen);
/* The same for len bytes of text (any bytes: a NUL among them is an
 * error) read from elsewhere, its errors and conf->file under `name`. */
struct wd_conf *wd_conf_load_text(const char *name, const char *text,
                                  size_t len, char *err, size_t errlen);
void wd_conf_free(struct wd_conf *conf);

/* Index of the queue / plugin named `name`, or -1. */
long wd_conf_queue_index(const struct wd_conf *conf, const char *name);
long wd_conf_plugin_index(const struct wd_conf *conf, const char *name);

/* Whether conf declares an exchange called `name`. */
bool wd_conf_declares_exchange(const struct wd_conf *conf, const char *name);

/* Acks coalesced per frame on a consumer of q: broker.ack_batch, but at
 * most half the prefetch window, so the broker always has credit to send
 * the next deliveries while the first half's acks are on their way
 * (waiting for a full window would stall the consumer until the time
 * bound, broker.ack_delay_ms). */
/* With prefetch = auto, the cap for the largest window (prefetch_max):
 * the consumer lowers it to half its window as the window moves. */
int wd_conf_ack_batch(const struct wd_conf *conf,
                      const struct wd_conf_queue *q);

/* What changed between two confs: conf/conf_diff.h. */

#endif
