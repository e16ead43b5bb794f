/* harness.h - what integration tests share: the broker (a real RabbitMQ
 * node, from WARREN_TEST_AMQP_URL), warrend as a child process with a
 * generated config, and bounded waits on its log and on queues. */
#ifndef IT_HARNESS_H
#define IT_HARNESS_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/amqp_compat.h"

/* The broker URL; fails the test if WARREN_TEST_AMQP_URL is not set. */
const char *it_url(void);
/* WARREN_BUILD_DIR (where warrend, plugins and fixtures were built). */
const char *it_build_dir(void);
/* Whether the warrend under test is ThreadSanitizer's (the TSan pass sets
 * WARREN_TEST_TSAN): a test comparing speeds skips the comparison, since
 * TSan slows each thread by a factor of its own. */
bool it_tsan(void);
/* A name unique to this test process: "<prefix>.<pid>.<n>". */
void it_unique(char *buf, size_t len, const char *prefix);

/* Temporary files. Each test's files live in a directory of its own,
 *   ${TMPDIR:-/tmp}/warren-it-XXXXXX/<suite>.<test>/
 * (one warren-it-XXXXXX per test binary run). The harness removes it when
 * the test passes or is skipped, and keeps it when the test fails, times
 * out or crashes, naming each file it keeps in the failure output, e.g.
 *   [ERR ] routing::x failed: warrend log kept at
 *          /tmp/warren-it-Ab12Cd/routing.x/warrend-1.log   (one line)
 * The run's directory goes at the end if it is empty; if not, one more line
 * names it.
 *
 * This is done by report hooks in harness.c, which run in Criterion's
 * runner process, because only the runner knows how a test ended: the test
 * itself runs in a worker process that has no public "did this test fail",
 * a failed cr_expect does not stop it, and a failed cr_assert, a crash or a
 * timeout ends it before any cleanup of its own. PRE_ALL makes the run's
 * directory and passes it to the workers (WARREN_IT_TMP, in the environment
 * they are spawned with); POST_TEST removes the test's directory or names
 * what it kept (TEST_CRASH names it after a crash).
 *
 * So tests must not unlink what the harness made (a failed cr_expect would
 * lose the log it needs), and a test that needs a temporary file or
 * directory of its own makes it in it_tmp_dir(). */
/* This test's directory (made on first use). */
const char *it_tmp_dir(void);

/* A plain client connection (channel 1 open). */
amqp_connection_state_t it_connect(void);
/* The same, logged in as user/password instead of the URL's. */
amqp_connection_state_t it_connect_as(const char *user, const char *password);
void it_close(amqp_connection_state_t c);
/* Publish body to exchange/rk (persistent off). type_prop may be NULL. */
void it_publish(amqp_connection_state_t c, const char *exchange, const char *rk,
                const void *body, size_t len, const char *type_prop);
void it_publish_str(amqp_connection_state_t c, const char *exchange,
                    const char *rk, const char *body);
/* Ready messages in a queue (passive declare), or -1 if it does not exist. */
long it_queue_ready(const char *queue);
/* Wait until it_queue_ready(queue) == n, at most timeout_ms; returns the
 * last count seen. */
long it_wait_queue(const char *queue, long n, int timeout_ms);
/* basic.get one message (acked); returns a malloc'd copy of its body with
 * *len set, or NULL if the queue is empty. */
char *it_get(const char *queue, size_t *len);
void it_delete_queue(const char *queue);
void it_delete_exchange(const char *exchange);

/* One test's names as it_conf uses them: exchange X (and X.dlx), queue Q
 * (and Q.dlq), unique to the test process. */
struct it_names {
	char x[128], q[128], dlq[160], dlx[160];
};
void it_names_init(struct it_names *n, const char *prefix);
/* Delete Q, Q.dlq, X and X.dlx (what it_conf declares). */
void it_names_delete(const struct it_names *n);

/* One message taken with basic.get (acked), with its properties. */
struct it_msg {
	bool got;
	bool redelivered; /* the broker delivered it before */
	char exchange[256], routing_key[256]; /* as delivered */
	const char *body; /* points into m; not NUL-terminated */
	size_t len;
	amqp_message_t m;
};
/* Returns false (and out->got false) if the queue is empty. */
bool it_get_msg(const char *queue, struct it_msg *out);
/* A header of m, or NULL. */
const amqp_field_value_t *it_msg_header(const struct it_msg *m,
                                        const char *name);
/* A string header copied into buf, or NULL if absent / not a string. */
const char *it_msg_str(const struct it_msg *m, const char *name, char *buf,
                       size_t len);
/* An integer header of any width; false if absent / not an integer. */
bool it_msg_int(const struct it_msg *m, const char *name, int64_t *out);
void it_msg_free(struct it_msg *m);
/* Publish a NUL-terminated body with the given properties. */
void it_publish_props(amqp_connection_state_t c, const char *exchange,
                      const char *rk, const char *body,
                      const amqp_basic_properties_t *props);

struct it_daemon {
	pid_t pid;
	char conf[256];
	char log[300];
	int status; /* wait status after it exited */
	bool exited;
};

/* Write conf_text to warrend-<n>.conf in it_tmp_dir() and start warrend
 * on it (stdout and stderr to warrend-<n>.log next to it). If
 * wait_started, wait (bounded) for its "started" line and fail the test if
 * it exits or does not start. */
void it_daemon_start(struct it_daemon *d, const char *conf_text,
                     bool wait_started);
/* Run warrend with extra args (e.g. "-t") on conf_text to completion;
 * returns its exit code and puts its stderr in out (malloc'd). Its conf and
 * log are kept like it_daemon_start's. */
int it_warrend_run(const char *conf_text, const char *arg, char **out);
void it_daemon_signal(struct it_daemon *d, int sig);
/* Wait for exit, at most timeout_ms; returns the exit code, or -1 if it is
 * still running (it is then killed) or died by a signal. */
int it_daemon_wait(struct it_daemon *d, int timeout_ms);
/* Stop (SIGTERM) and wait; kill if needed. Always call at the end. */
void it_daemon_stop(struct it_daemon *d);

/* Occurrences of `needle` in the daemon's log so far. */
int it_log_count(const struct it_daemon *d, const char *needle);
/* Wait until the log holds at least n occurrences of needle, at most
 * timeout_ms. Returns the count seen last. */
int it_log_wait(const struct it_daemon *d, const char *needle, int n,
                int timeout_ms);
/* The whole log, malloc'd (for assertions and failure messages). */
char *it_log_read(const struct it_daemon *d);
/* SIGTERM, wait (30 s), fail the test unless warrend exited 0; returns the
 * whole log (malloc'd). */
char *it_stop_and_log(struct it_daemon *d);
/* Occurrences of needle in hay. */
int it_count(const char *hay, const char *needle);
/* The first line of `log` holding `needle`, copied into buf; false if
 * there is none. */
bool it_log_line(const char *log, const char *needle, char *buf, size_t len);
/* The time of a log line ("2024-05-01T10:00:00.123Z ..."), ms since the
 * epoch, or -1. */
int64_t it_line_ms(const char *line);
/* A counter of the "[metrics] at exit:" line (key=N, also inside its
 * parentheses), or -1 if the line or the key is not there. */
long it_exit_metric(const char *log, const char *key);
#define IT_EXPECT_METRIC(log, name, want)                                      \
	cr_expect_eq(it_exit_metric((log), (name)), (want),                    \
	             "metric %s = %ld, want %d", (name),                       \
	             it_exit_metric((log), (name)), (want))

/* A conf with one topic exchange X, one queue Q bound with "#", dead-
 * lettering through a fanout X.dlx to Q.dlq, one plugin and routes.
 * `extra_queue` and `extra_global` are pasted into the queue section and
 * the top level. routes: "type=handler" pairs separated by ';'. */
char *it_conf(const char *x, const char *q, const char *plugin_path,
              const char *routes, const char *extra_global,
              const char *extra_broker, const char *extra_queue,
              const char *plugin_params);

int64_t it_now_ms(void);

/* The port of d's HTTP endpoint, from its "serving /metrics ... on
 * ADDRESS:PORT" log line (waited for, bounded); fails the test if none. */
int it_http_port(const struct it_daemon *d);
/* Send `request` as it is to 127.0.0.1:port and read the answer until the
 * server closes (at most timeout_ms). Returns the HTTP status (0 if there
 * was none) and the whole answer, headers too, in *response (malloc'd,
 * NUL-terminated; may be NULL). */
int it_http_raw(int port, const char *request, char **response, int timeout_ms);
/* GET path; returns the status and the body (malloc'd) in *body. */
int it_http_get(int port, const char *path, char **body);

/* If set, warrend gets this WARREN_AMQP_URL instead of the test broker's. */
extern const char *it_url_override;
/* If set, warrend gets this WARREN_HTTP_LISTEN instead of 127.0.0.1:0 (a
 * free port: the log says which, it_http_port). */
extern const char *it_http_listen;
/* If set, the directory holding the warrend to run (default: the build). */
extern const char *it_warrend_dir;
/* If set, one more option for warrend started by it_daemon_start, e.g.
 * "--pidfile=/path". */
extern const char *it_daemon_opt;
/* If true, warrend's stderr is announced as the journal's stream
 * (JOURNAL_STREAM set to the log file's device:inode), as systemd does. */
extern bool it_as_journal;

/* Run rabbitmqctl against the test broker (tests/harness/broker.sh ctl);
 * returns its exit code, or -1 if WARREN_TEST_BROKER_DIR is not set (an
 * external broker: the caller skips). */
int it_broker_ctl(const char *args);
/* The same, with its standard output in *out (malloc'd, NUL-terminated;
 * NULL if it could not run): e.g. "list_channels -q --no-table-headers
 * ...". */
int it_broker_ctl_out(const char *args, char **out);

/* Run cmd with sh -c; its exit code, or -1 if it died by a signal. */
int it_sh(const char *cmd);
/* The same, with its standard output in *out (malloc'd, NUL-terminated):
 * add 2>&1 to the command for its errors too. */
int it_sh_out(const char *cmd, char **out);
/* Install this build as a user would (cmake --install) into a new prefix
 * under it_tmp_dir(), whose path goes into dir: the SDK header, warren.pc
 * (PKG_CONFIG_PATH=dir/lib/pkgconfig), warrend, warrenctl and the example
 * plugins. Fails the test if the install fails. */
void it_sdk_install(char *dir, size_t len);

/* A RabbitMQ node of the test's own (tests/harness/broker.sh), for faults
 * that touch a whole node (a resource alarm, a restart) and must not touch
 * other tests: from it_node_start on it is this test's broker
 * (WARREN_TEST_AMQP_URL and WARREN_TEST_BROKER_DIR point at it, for every
 * helper and for warrend). Start takes some 10 s; fails the test if the
 * node does not start. The runner stops a node the test left running. */
struct it_node {
	char dir[512];
	char url[256];
	bool up;
};
void it_node_start(struct it_node *n, const char *name);
/* The same, joined to the cluster of the running node `cluster`. */
void it_node_join(struct it_node *n, const char *name,
                  const struct it_node *cluster);
/* rabbitmqctl ARGS against the node; its exit code. */
int it_node_ctl(const struct it_node *n, const char *args);
void it_node_stop(struct it_node *n);

#endif
