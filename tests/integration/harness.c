/* harness.c - see harness.h. Every wait here is bounded. */
#include "harness.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *it_url_override;
const char *it_http_listen;
const char *it_warrend_dir;
const char *it_daemon_opt;
bool it_as_journal;

int it_broker_ctl(const char *args)
{
	const char *dir = getenv("WARREN_TEST_BROKER_DIR");
	char cmd[1024];
	int rc;

	if (!dir || !*dir)
		return -1;
	snprintf(
	    cmd, sizeof(cmd),
	    "bash '%s/tests/harness/broker.sh' ctl '%s' %s >/dev/null 2>&1",
	    WARREN_SOURCE_DIR, dir, args);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int it_broker_ctl_out(const char *args, char **out)
{
	const char *dir = getenv("WARREN_TEST_BROKER_DIR");
	char cmd[1400], buf[4096];
	size_t len = 0, n;
	FILE *p, *o;
	int rc;

	*out = NULL;
	if (!dir || !*dir)
		return -1;
	snprintf(cmd, sizeof(cmd),
	         "bash '%s/tests/harness/broker.sh' ctl '%s' %s 2>/dev/null",
	         WARREN_SOURCE_DIR, dir, args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	o = open_memstream(out, &len);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, n, o);
	fclose(o);
	rc = pclose(p);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int it_sh(const char *cmd)
{
	int rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

int it_sh_out(const char *cmd, char **out)
{
	char buf[4096];
	size_t len = 0, n;
	FILE *o = open_memstream(out, &len), *p = popen(cmd, "r");
	int st;

	cr_assert(o && p, "cannot run %s", cmd);
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
		fwrite(buf, 1, n, o);
	fclose(o);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void it_sdk_install(char *dir, size_t len)
{
	char cmd[1200];
	int w = snprintf(dir, len, "%s/prefix-XXXXXX", it_tmp_dir());

	cr_assert(w > 0 && (size_t)w < len, "prefix path too long");
	cr_assert(mkdtemp(dir), "cannot make %s: %s", dir, strerror(errno));
	snprintf(cmd, sizeof(cmd),
	         "cmake --install '%s' --prefix '%s' >/dev/null",
	         it_build_dir(), dir);
	cr_assert_eq(it_sh(cmd), 0, "cmake --install into %s failed", dir);
}

/* ---- a node of the test's own ------------------------------------------- */

/* Nodes live in the test's directory, as node-<name>; the runner stops any
 * still running when the test ends, however it ended (stop_nodes_in). */
#define NODE_PREFIX "node-"

static void broker_sh(char *cmd, size_t len, const char *verb, const char *dir)
{
	snprintf(cmd, len, "bash '%s/tests/harness/broker.sh' %s '%s'",
	         WARREN_SOURCE_DIR, verb, dir);
}

static void node_start(struct it_node *n, const char *name,
                       const struct it_node *cluster)
{
	char cmd[2000], line[512];
	FILE *f;

	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "%s/" NODE_PREFIX "%s", it_tmp_dir(),
	         name);
	broker_sh(cmd, sizeof(cmd), "start", n->dir);
	if (cluster)
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
		         " --join '%s'", cluster->dir);
	snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd), " 2>'%s.log'",
	         n->dir);
	f = popen(cmd, "r");
	cr_assert(f, "popen: %s", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "amqp://", 7) == 0)
			snprintf(n->url, sizeof(n->url), "%.*s",
			         (int)strcspn(line, "\r\n"), line);
	int rc = pclose(f);
	cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 0 && n->url[0],
	          "cannot start a RabbitMQ node in %s (see %s.log)", n->dir,
	          n->dir);
	n->up = true;
	/* This test's broker from now on: every helper, and warrend. */
	setenv("WARREN_TEST_AMQP_URL", n->url, 1);
	setenv("WARREN_TEST_BROKER_DIR", n->dir, 1);
}

void it_node_start(struct it_node *n, const char *name)
{
	node_start(n, name, NULL);
}

void it_node_join(struct it_node *n, const char *name,
                  const struct it_node *cluster)
{
	node_start(n, name, cluster);
}

int it_node_ctl(const struct it_node *n, const char *args)
{
	char cmd[1200];
	int rc;

	broker_sh(cmd, sizeof(cmd), "ctl", n->dir);
	snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
	         " %s >/dev/null 2>&1", args);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

void it_node_stop(struct it_node *n)
{
	char cmd[1200];

	if (!n->up)
		return;
	broker_sh(cmd, sizeof(cmd), "stop", n->dir);
	snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
	         " >/dev/null 2>&1");
	cr_expect_eq(system(cmd), 0, "cannot stop the node in %s", n->dir);
	n->up = false;
}

/* The runner's side: stop every node a test left in its directory (it
 * failed, crashed or timed out before it_node_stop). */
static void stop_nodes_in(const char *test_dir)
{
	struct dirent *e;
	DIR *dir = opendir(test_dir);

	if (!dir)
		return;
	while ((e = readdir(dir))) {
		char path[1024], env[1100], cmd[1400];
		struct stat st;
		if (strncmp(e->d_name, NODE_PREFIX, strlen(NODE_PREFIX)) != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", test_dir, e->d_name);
		snprintf(env, sizeof(env), "%s/env", path);
		if (stat(env, &st) < 0)
			continue;
		broker_sh(cmd, sizeof(cmd), "stop", path);
		snprintf(cmd + strlen(cmd), sizeof(cmd) - strlen(cmd),
		         " >/dev/null 2>&1");
		if (system(cmd) != 0)
			fprintf(stderr, "harness: cannot stop the node in %s\n",
			        path);
	}
	closedir(dir);
}

int64_t it_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

const char *it_url(void)
{
	const char *u = getenv("WARREN_TEST_AMQP_URL");
	cr_assert(u && *u, "WARREN_TEST_AMQP_URL is not set: run the tests "
	                   "through ./dev.sh test");
	return u;
}

bool it_tsan(void)
{
	const char *t = getenv("WARREN_TEST_TSAN");
	return t && *t && strcmp(t, "0") != 0;
}

const char *it_build_dir(void)
{
	const char *b = getenv("WARREN_BUILD_DIR");
	return b && *b ? b : WARREN_DEFAULT_BUILD_DIR;
}

void it_unique(char *buf, size_t len, const char *prefix)
{
	static int n;
	snprintf(buf, len, "%s.%d.%d.%ld", prefix, (int)getpid(), ++n,
	         (long)(it_now_ms() % 100000));
}

amqp_connection_state_t it_connect(void)
{
	return it_connect_as(NULL, NULL);
}

amqp_connection_state_t it_connect_as(const char *user, const char *password)
{
	char *url = strdup(it_url());
	struct amqp_connection_info info;
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	struct timeval tv = {10, 0};
	amqp_rpc_reply_t r;

	cr_assert(amqp_parse_url(url, &info) == AMQP_STATUS_OK);
	cr_assert(amqp_socket_open_noblock(s, info.host, info.port, &tv) ==
	              AMQP_STATUS_OK,
	          "cannot connect to the test broker");
	amqp_set_rpc_timeout(c, &tv);
	r = amqp_login(c, info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN,
	               user ? user : info.user,
	               password ? password : info.password);
	cr_assert(r.reply_type == AMQP_RESPONSE_NORMAL, "test login failed");
	amqp_channel_open(c, 1);
	cr_assert(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL);
	free(url);
	return c;
}

void it_close(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

void it_publish(amqp_connection_state_t c, const char *exchange, const char *rk,
                const void *body, size_t len, const char *type_prop)
{
	amqp_basic_properties_t p = {0};
	amqp_bytes_t b = {.len = len, .bytes = (void *)body};

	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	if (type_prop) {
		p._flags |= AMQP_BASIC_TYPE_FLAG;
		p.type = amqp_cstring_bytes(type_prop);
	}
	cr_assert(amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange),
	                             amqp_cstring_bytes(rk), 0, 0, &p,
	                             b) == AMQP_STATUS_OK);
}

void it_publish_str(amqp_connection_state_t c, const char *exchange,
                    const char *rk, const char *body)
{
	it_publish(c, exchange, rk, body, strlen(body), NULL);
}

long it_queue_ready(const char *queue)
{
	amqp_connection_state_t c = it_connect();
	amqp_queue_declare_ok_t *ok = amqp_queue_declare(
	    c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
	long n = ok ? (long)ok->message_count : -1;
	if (ok)
		it_close(c);
	else
		amqp_destroy_connection(c);
	return n;
}

long it_wait_queue(const char *queue, long n, int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	long seen;
	while ((seen = it_queue_ready(queue)) != n && it_now_ms() < end)
		nap_ms(50);
	return seen;
}

char *it_get(const char *queue, size_t *len)
{
	amqp_connection_state_t c = it_connect();
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 1);
	amqp_message_t m;
	char *out = NULL;

	cr_assert(r.reply_type == AMQP_RESPONSE_NORMAL, "basic.get %s failed",
	          queue);
	if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
		cr_assert(amqp_read_message(c, 1, &m, 0).reply_type ==
		          AMQP_RESPONSE_NORMAL);
		out = malloc(m.body.len + 1);
		if (m.body.len)
			memcpy(out, m.body.bytes, m.body.len);
		out[m.body.len] = '\0';
		*len = m.body.len;
		amqp_destroy_message(&m);
	}
	it_close(c);
	return out;
}

bool it_get_msg(const char *queue, struct it_msg *out)
{
	amqp_connection_state_t c = it_connect();
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 1);

	memset(out, 0, sizeof(*out));
	cr_assert(r.reply_type == AMQP_RESPONSE_NORMAL, "basic.get %s failed",
	          queue);
	if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
		amqp_basic_get_ok_t *ok = r.reply.decoded;
		out->redelivered = ok->redelivered;
		snprintf(out->exchange, sizeof(out->exchange), "%.*s",
		         (int)ok->exchange.len,
		         (const char *)ok->exchange.bytes);
		snprintf(out->routing_key, sizeof(out->routing_key), "%.*s",
		         (int)ok->routing_key.len,
		         (const char *)ok->routing_key.bytes);
		cr_assert(amqp_read_message(c, 1, &out->m, 0).reply_type ==
		          AMQP_RESPONSE_NORMAL);
		out->got = true;
		out->body = out->m.body.bytes;
		out->len = out->m.body.len;
	}
	it_close(c);
	return out->got;
}

const amqp_field_value_t *it_msg_header(const struct it_msg *m,
                                        const char *name)
{
	const amqp_basic_properties_t *p = &m->m.properties;

	if (!m->got || !(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	for (int i = 0; i < p->headers.num_entries; i++)
		if (p->headers.entries[i].key.len == strlen(name) &&
		    memcmp(p->headers.entries[i].key.bytes, name,
		           strlen(name)) == 0)
			return &p->headers.entries[i].value;
	return NULL;
}

const char *it_msg_str(const struct it_msg *m, const char *name, char *buf,
                       size_t len)
{
	const amqp_field_value_t *v = it_msg_header(m, name);

	if (!v || (v->kind != AMQP_FIELD_KIND_UTF8 &&
	           v->kind != AMQP_FIELD_KIND_BYTES))
		return NULL;
	snprintf(buf, len, "%.*s", (int)v->value.bytes.len,
	         (const char *)v->value.bytes.bytes);
	return buf;
}

bool it_msg_int(const struct it_msg *m, const char *name, int64_t *out)
{
	const amqp_field_value_t *v = it_msg_header(m, name);

	if (!v)
		return false;
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8:
		*out = v->value.i8;
		return true;
	case AMQP_FIELD_KIND_U8:
		*out = v->value.u8;
		return true;
	case AMQP_FIELD_KIND_I16:
		*out = v->value.i16;
		return true;
	case AMQP_FIELD_KIND_U16:
		*out = v->value.u16;
		return true;
	case AMQP_FIELD_KIND_I32:
		*out = v->value.i32;
		return true;
	case AMQP_FIELD_KIND_U32:
		*out = v->value.u32;
		return true;
	case AMQP_FIELD_KIND_I64:
		*out = v->value.i64;
		return true;
	case AMQP_FIELD_KIND_U64:
		*out = (int64_t)v->value.u64;
		return true;
	default:
		return false;
	}
}

void it_msg_free(struct it_msg *m)
{
	if (m->got)
		amqp_destroy_message(&m->m);
	memset(m, 0, sizeof(*m));
}

void it_publish_props(amqp_connection_state_t c, const char *exchange,
                      const char *rk, const char *body,
                      const amqp_basic_properties_t *props)
{
	amqp_bytes_t b = {.len = strlen(body), .bytes = (void *)body};

	cr_assert(amqp_basic_publish(c, 1, amqp_cstring_bytes(exchange),
	                             amqp_cstring_bytes(rk), 0, 0, props,
	                             b) == AMQP_STATUS_OK);
}

void it_delete_queue(const char *queue)
{
	amqp_connection_state_t c = it_connect();
	amqp_queue_delete(c, 1, amqp_cstring_bytes(queue), 0, 0);
	it_close(c);
}

void it_delete_exchange(const char *exchange)
{
	amqp_connection_state_t c = it_connect();
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(exchange), 0);
	it_close(c);
}

void it_names_init(struct it_names *n, const char *prefix)
{
	char p[64];

	snprintf(p, sizeof(p), "%s.x", prefix);
	it_unique(n->x, sizeof(n->x), p);
	snprintf(p, sizeof(p), "%s.q", prefix);
	it_unique(n->q, sizeof(n->q), p);
	snprintf(n->dlq, sizeof(n->dlq), "%s.dlq", n->q);
	snprintf(n->dlx, sizeof(n->dlx), "%s.dlx", n->x);
}

void it_names_delete(const struct it_names *n)
{
	it_delete_queue(n->q);
	it_delete_queue(n->dlq);
	it_delete_exchange(n->x);
	it_delete_exchange(n->dlx);
}

/* Temporary files (see harness.h). The runner's hooks below and the
 * worker's it_tmp_dir() agree on a test's directory through this. */
#define RUN_DIR_ENV "WARREN_IT_TMP"

static int test_dir(char *buf, size_t len, const char *run,
                    const struct criterion_test *t)
{
	return snprintf(buf, len, "%s/%s.%s", run, t->category, t->name);
}

/* The runner's: the run's directory, made at PRE_ALL. */
static char run_dir[256];

/* Remove `name` (relative to parent), and everything under it if it is a
 * directory. Symlinks are removed, never followed. */
static void remove_tree_at(int parent, const char *name)
{
	struct stat st;
	struct dirent *e;
	DIR *dir;
	int fd;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (!S_ISDIR(st.st_mode)) {
		unlinkat(parent, name, 0);
		return;
	}
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
	if (fd < 0)
		return;
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return;
	}
	/* Removing entries already returned is fine while reading on. */
	while ((e = readdir(dir)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			remove_tree_at(fd, e->d_name);
	closedir(dir);
	unlinkat(parent, name, AT_REMOVEDIR);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Name, one line each, what a failed test kept: the failure output is
 * where whoever reads about the failure looks. */
static void announce_kept(const struct criterion_test *t, const char *dir,
                          const char *why)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;

	if (!d)
		return; /* the test made no files */
	while ((e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **more = realloc(names, (cap = cap ? 2 * cap : 8) *
			                                 sizeof(*names));
			if (!more)
				break;
			names = more;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names[i]);
		struct stat st;
		char path[512];
		const char *what = "file";

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			what = "directory";
		else if (strncmp(names[i], "warrend-", 8) == 0 && l > 4 &&
		         strcmp(names[i] + l - 4, ".log") == 0)
			what = "warrend log";
		else if (strncmp(names[i], "warrend-", 8) == 0 && l > 5 &&
		         strcmp(names[i] + l - 5, ".conf") == 0)
			what = "warrend conf";
		cr_log_error("%s::%s %s: %s kept at %s", t->category, t->name,
		             why, what, path);
		free(names[i]);
	}
	free(names);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	const char *tmp = getenv("TMPDIR");

	(void)set;
	snprintf(run_dir, sizeof(run_dir), "%s/warren-it-XXXXXX",
	         tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(run_dir)) {
		cr_log_error("harness: cannot create %s: %s", run_dir,
		             strerror(errno));
		run_dir[0] = '\0';
		return; /* it_tmp_dir() then fails each test that needs it */
	}
	/* The workers are spawned after this, with the runner's environment. */
	setenv(RUN_DIR_ENV, run_dir, 1);
}

ReportHook(POST_TEST)(struct criterion_test_stats *stats)
{
	char dir[512];

	if (!run_dir[0])
		return;
	test_dir(dir, sizeof(dir), run_dir, stats->test);
	stop_nodes_in(dir);
	if (stats->test_status == CR_STATUS_FAILED)
		announce_kept(stats->test, dir,
		              stats->timed_out ? "timed out" : "failed");
	else
		remove_tree_at(AT_FDCWD, dir);
}

/* A crash during the test reaches the hooks as TEST_CRASH, not POST_TEST. */
ReportHook(TEST_CRASH)(struct criterion_test_stats *stats)
{
	char dir[512];

	if (!run_dir[0])
		return;
	test_dir(dir, sizeof(dir), run_dir, stats->test);
	stop_nodes_in(dir);
	announce_kept(stats->test, dir, "crashed");
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	if (run_dir[0] && rmdir(run_dir) < 0 && errno != ENOENT)
		cr_log_error("harness: the files of failed tests are kept "
		             "under %s",
		             run_dir);
}

const char *it_tmp_dir(void)
{
	static char dir[256];
	const char *run = getenv(RUN_DIR_ENV);
	char buf[sizeof(dir)];
	int n;

	if (dir[0])
		return dir;
	cr_assert(run && *run,
	          RUN_DIR_ENV " is not set: the runner could "
	                      "not make the run's temporary directory");
	n = test_dir(buf, sizeof(buf), run, criterion_current_test);
	cr_assert(n > 0 && (size_t)n < sizeof(buf), "path too long: %s", buf);
	cr_assert(mkdir(buf, 0700) == 0 || errno == EEXIST,
	          "cannot create %s: %s", buf, strerror(errno));
	memcpy(dir, buf, sizeof(dir));
	return dir;
}

/* A fresh warrend-<n>.conf holding text, and its warrend-<n>.log name, in
 * this test's directory. */
static void write_conf(struct it_daemon *d, const char *text)
{
	static int n;
	size_t len = strlen(text);
	int fd, w;

	++n;
	w = snprintf(d->conf, sizeof(d->conf), "%s/warrend-%d.conf",
	             it_tmp_dir(), n);
	cr_assert(w > 0 && (size_t)w < sizeof(d->conf), "path too long: %s",
	          d->conf);
	snprintf(d->log, sizeof(d->log), "%s/warrend-%d.log", it_tmp_dir(), n);
	fd = open(d->conf, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert(fd >= 0, "cannot create %s: %s", d->conf, strerror(errno));
	cr_assert(write(fd, text, len) == (ssize_t)len);
	close(fd);
}

static pid_t spawn(const char *conf, const char *arg, const char *log)
{
	char bin[512];
	pid_t pid;

	pid_t parent = getpid();

	snprintf(bin, sizeof(bin), "%s/warrend",
	         it_warrend_dir ? it_warrend_dir : it_build_dir());
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		/* It goes with the test's process: a failed assertion ends a
		 * test before its it_daemon_stop, and no warrend may outlive
		 * the run. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
			_exit(127);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0)
			_exit(127);
		dup2(fd, STDERR_FILENO);
		dup2(fd, STDOUT_FILENO);
		if (it_as_journal) {
			struct stat st;
			char js[64];
			if (fstat(fd, &st) < 0)
				_exit(127);
			snprintf(js, sizeof(js), "%ju:%ju",
			         (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
			setenv("JOURNAL_STREAM", js, 1);
		}
		setenv("WARREN_AMQP_URL",
		       it_url_override ? it_url_override : it_url(), 1);
		unsetenv("WARREN_PLUGIN_DIR");
		/* Tests run side by side: each warrend's endpoint on a port
		 * of its own (it logs which); a test may ask for another. */
		setenv("WARREN_HTTP_LISTEN",
		       it_http_listen ? it_http_listen : "127.0.0.1:0", 1);
		const char *argv[6] = {bin}, **a = argv + 1;
		if (arg)
			*a++ = arg;
		if (it_daemon_opt)
			*a++ = it_daemon_opt;
		*a++ = "-c";
		*a++ = conf;
		execv(bin, (char *const *)argv);
		_exit(127);
	}
	return pid;
}

void it_daemon_start(struct it_daemon *d, const char *conf_text,
                     bool wait_started)
{
	int64_t end = it_now_ms() + 30000;

	memset(d, 0, sizeof(*d));
	write_conf(d, conf_text);
	d->pid = spawn(d->conf, NULL, d->log);
	if (!wait_started)
		return;
	while (it_log_count(d, "] warrend ") == 0 ||
	       it_log_count(d, " started (pid ") == 0) {
		int st;
		if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->exited = true;
			d->status = st;
			char *log = it_log_read(d);
			cr_assert_fail("warrend exited during start:\n%s", log);
		}
		if (it_now_ms() > end) {
			char *log = it_log_read(d);
			it_daemon_stop(d);
			cr_assert_fail("warrend did not start within 30 s:\n%s",
			               log);
		}
		nap_ms(20);
	}
}

int it_warrend_run(const char *conf_text, const char *arg, char **out)
{
	struct it_daemon d = {0};
	int rc;

	write_conf(&d, conf_text);
	d.pid = spawn(d.conf, arg, d.log);
	rc = it_daemon_wait(&d, 30000);
	*out = it_log_read(&d);
	return rc;
}

void it_daemon_signal(struct it_daemon *d, int sig)
{
	if (!d->exited)
		kill(d->pid, sig);
}

int it_daemon_wait(struct it_daemon *d, int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;

	while (!d->exited) {
		pid_t r = waitpid(d->pid, &d->status, WNOHANG);
		if (r == d->pid) {
			d->exited = true;
			break;
		}
		if (it_now_ms() > end) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, &d->status, 0);
			d->exited = true;
			return -1;
		}
		nap_ms(10);
	}
	return WIFEXITED(d->status) ? WEXITSTATUS(d->status) : -1;
}

void it_daemon_stop(struct it_daemon *d)
{
	if (!d->pid)
		return;
	it_daemon_signal(d, SIGTERM);
	it_daemon_wait(d, 40000);
}

char *it_log_read(const struct it_daemon *d)
{
	FILE *f = fopen(d->log, "r");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	n = (long)fread(buf, 1, (size_t)n, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

int it_log_count(const struct it_daemon *d, const char *needle)
{
	char *log = it_log_read(d);
	int n = 0;
	for (char *p = strstr(log, needle); p; p = strstr(p + 1, needle))
		n++;
	free(log);
	return n;
}

int it_log_wait(const struct it_daemon *d, const char *needle, int n,
                int timeout_ms)
{
	int64_t end = it_now_ms() + timeout_ms;
	int seen;
	while ((seen = it_log_count(d, needle)) < n && it_now_ms() < end)
		nap_ms(20);
	return seen;
}

bool it_log_line(const char *log, const char *needle, char *buf, size_t len)
{
	const char *p = strstr(log, needle), *s, *e;

	if (!p)
		return false;
	for (s = p; s > log && s[-1] != '\n'; s--)
		;
	e = strchr(p, '\n');
	if (!e)
		e = p + strlen(p);
	snprintf(buf, len, "%.*s", (int)(e - s), s);
	return true;
}

int64_t it_line_ms(const char *line)
{
	struct tm tm = {0};
	int ms;

	if (sscanf(line, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon,
	           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

char *it_stop_and_log(struct it_daemon *d)
{
	it_daemon_signal(d, SIGTERM);
	int rc = it_daemon_wait(d, 30000);
	char *log = it_log_read(d);
	cr_assert_eq(rc, 0, "warrend did not exit 0 (%d):\n%s", rc, log);
	return log;
}

int it_count(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

long it_exit_metric(const char *log, const char *key)
{
	const char *line = strstr(log, "[metrics] at exit: ");
	size_t klen = strlen(key);

	if (!line)
		return -1;
	const char *eol = strchr(line, '\n');
	for (const char *p = strstr(line, key); p && (!eol || p < eol);
	     p = strstr(p + 1, key)) {
		if ((p[-1] == ' ' || p[-1] == '(') && p[klen] == '=')
			return strtol(p + klen + 1, NULL, 10);
	}
	return -1;
}

char *it_conf(const char *x, const char *q, const char *plugin_path,
              const char *routes, const char *extra_global,
              const char *extra_broker, const char *extra_queue,
              const char *plugin_params)
{
	char *out = NULL, *r = strdup(routes), *save = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	fprintf(f,
	        "log_level = \"debug\"\n%s\n"
	        "broker {\n  heartbeat = 10\n  pool_size = 2\n  prefetch = "
	        "10\n%s\n}\n"
	        "exchange \"%s\" { type = \"topic\" }\n"
	        "exchange \"%s.dlx\" { type = \"fanout\" }\n"
	        "queue \"%s\" {\n  dead_letter_exchange = \"%s.dlx\"\n%s\n}\n"
	        "queue \"%s.dlq\" { }\n"
	        "binding { exchange = \"%s\" queue = \"%s\" key = \"#\" }\n"
	        "binding { exchange = \"%s.dlx\" queue = \"%s.dlq\" }\n"
	        "plugin \"p\" {\n  path = \"%s\"\n  params { %s }\n}\n",
	        extra_global ? extra_global : "",
	        extra_broker ? extra_broker : "", x, x, q, x,
	        extra_queue ? extra_queue : "", q, x, q, x, q, plugin_path,
	        plugin_params ? plugin_params : "");
	for (char *t = strtok_r(r, ";", &save); t;
	     t = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(t, '=');
		cr_assert(eq, "route spec \"%s\" is not type=handler", t);
		*eq = '\0';
		fprintf(f,
		        "route \"%s\" { queue = \"%s\" plugin = \"p\" "
		        "handler = \"%s\" }\n",
		        t, q, eq + 1);
	}
	fclose(f);
	free(r);
	return out;
}

int it_http_port(const struct it_daemon *d)
{
	char *log, line[512];
	const char *p;
	int port = 0;

	cr_assert_eq(it_log_wait(d, "serving /metrics", 1, 30000), 1,
	             "warrend logged no HTTP endpoint");
	log = it_log_read(d);
	cr_assert(it_log_line(log, "serving /metrics", line, sizeof(line)));
	free(log);
	p = strrchr(line, ':');
	cr_assert_not_null(p, "%s", line);
	port = atoi(p + 1);
	cr_assert_gt(port, 0, "%s", line);
	return port;
}

int it_http_raw(int port, const char *request, char **response, int timeout_ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port)};
	int64_t end = it_now_ms() + timeout_ms;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	int fd, status = 0;

	cr_assert_not_null(f);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert(fd >= 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0,
	             "connect to 127.0.0.1:%d: %s", port, strerror(errno));
	for (size_t off = 0, n = strlen(request); off < n;) {
		ssize_t w = write(fd, request + off, n - off);
		if (w <= 0)
			break; /* the server may cut a hostile request short */
		off += (size_t)w;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char buf[4096];
		int64_t left = end - it_now_ms();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		r = read(fd, buf, sizeof(buf));
		if (r <= 0)
			break;
		fwrite(buf, 1, (size_t)r, f);
	}
	close(fd);
	fclose(f);
	if (out)
		sscanf(out, "HTTP/1.%*d %d", &status);
	if (response)
		*response = out;
	else
		free(out);
	return status;
}

int it_http_get(int port, const char *path, char **body)
{
	char req[512], *resp = NULL, *b;
	int status;

	snprintf(req, sizeof(req),
	         "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: "
	         "close\r\n\r\n",
	         path);
	status = it_http_raw(port, req, &resp, 10000);
	b = resp ? strstr(resp, "\r\n\r\n") : NULL;
	*body = strdup(b ? b + 4 : "");
	free(resp);
	return status;
}
