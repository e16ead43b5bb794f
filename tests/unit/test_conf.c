/*
 * test_conf.c - wd_conf_load(): the shipped conf loads with the documented
 * values; every kind of mistake is refused with "FILE:LINE: what", naming
 * the right file and the right line; the environment overrides work.
 *
 * Each case writes its config text to a fresh mkstemp() file under /tmp,
 * loads it and removes it, and pins the line of each error.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/conf_diff.h"

static void clear_env(void)
{
	unsetenv("WARREN_AMQP_URL");
	unsetenv("WARREN_PLUGIN_DIR");
	unsetenv("WARREN_AMQP_PASSWORD");
}

TestSuite(conf, .init = clear_env);

/* The path of the last temp conf written, for the expected messages. */
static char conf_path[64];
static char err[1024];

/* Write `text` to a new temp file; its path is left in conf_path. */
static void write_conf(const char *text)
{
	FILE *f;
	int fd;

	snprintf(conf_path, sizeof(conf_path), "/tmp/warren-test-conf-XXXXXX");
	fd = mkstemp(conf_path);
	cr_assert_geq(fd, 0, "mkstemp failed");
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	cr_assert_eq(fputs(text, f) >= 0, 1);
	cr_assert_eq(fclose(f), 0);
}

/* Load `text` from a temp file (removed again before returning). */
static struct wd_conf *load_text(const char *text)
{
	struct wd_conf *c;

	write_conf(text);
	memset(err, 'x', sizeof(err) - 1);
	err[sizeof(err) - 1] = '\0';
	c = wd_conf_load(conf_path, err, sizeof(err));
	unlink(conf_path);
	return c;
}

/* `text` must be refused with exactly "PATH:LINE: MSG". */
static void expect_error(const char *text, int line, const char *msg)
{
	char want[1200];
	struct wd_conf *c = load_text(text);

	snprintf(want, sizeof(want), "%s:%d: %s", conf_path, line, msg);
	if (c)
		wd_conf_free(c);
	cr_assert_null(c, "accepted, expected \"%s\"", want);
	cr_assert_str_eq(err, want);
}

/* The smallest valid conf: 10 lines, so additions start at line 11. */
#define BASE                                                                   \
	"queue \"q\" { dead_letter_exchange = \"dlx\"\n" /* 1 */               \
	"}\n"                                            /* 2 */               \
	"plugin \"p\" {\n"                               /* 3 */               \
	"    path = \"p.so\"\n"                          /* 4 */               \
	"}\n"                                            /* 5 */               \
	"route \"t\" {\n"                                /* 6 */               \
	"    queue = \"q\"\n"                            /* 7 */               \
	"    plugin = \"p\"\n"                           /* 8 */               \
	"    handler = \"h\"\n"                          /* 9 */               \
	"}\n"                                            /* 10 */

static struct wd_conf *load_ok(const char *text)
{
	struct wd_conf *c = load_text(text);

	cr_assert_not_null(c, "refused: %s", err);
	cr_assert_str_eq(err, "", "err set on success: %s", err);
	return c;
}

/* ---- the shipped conf ------------------------------------------------ */

static struct wd_conf *load_shipped(void)
{
	struct wd_conf *c = wd_conf_load(WARREN_SOURCE_DIR "/conf/warren.conf",
	                                 err, sizeof(err));

	cr_assert_not_null(c, "conf/warren.conf refused: %s", err);
	return c;
}

Test(conf, shipped_conf_loads_with_documented_values)
{
	struct wd_conf *c = load_shipped();
	long q, dlq;

	cr_expect_str_eq(c->file, WARREN_SOURCE_DIR "/conf/warren.conf");
	cr_expect_eq(c->log_level, 2 /* info */);
	cr_expect_eq(c->workers, 4);
	cr_expect_eq(c->shutdown_timeout, 30);
	cr_expect_str_eq(c->broker.urls[0],
	                 "amqp://guest:guest@127.0.0.1:5672");
	cr_expect_null(c->broker.password_file);
	cr_expect_eq(c->broker.heartbeat, 60);
	cr_expect_eq(c->broker.connect_timeout, 10);
	cr_expect_eq(c->broker.pool_size, 2);
	cr_expect_eq(c->broker.prefetch, WD_PREFETCH_AUTO);
	cr_expect_eq(c->broker.prefetch_min, 10);
	cr_expect_eq(c->broker.prefetch_max, 1000);
	cr_expect(c->broker.verify_peer);
	cr_expect_eq(c->broker.ack_batch, 100);
	cr_expect_eq(c->broker.ack_delay_ms, 10);
	cr_expect_eq(c->broker.publish_timeout, 30);

	cr_assert_eq(c->nexchanges, 3);
	cr_expect_str_eq(c->exchanges[0].name, "events");
	cr_expect_str_eq(c->exchanges[0].type, "topic");
	cr_expect_str_eq(c->exchanges[1].name, "events.dlx");
	cr_expect_str_eq(c->exchanges[1].type, "fanout");
	cr_expect_str_eq(c->exchanges[2].name, "orders");
	cr_expect_str_eq(c->exchanges[2].type, "direct");

	cr_assert_eq(c->nqueues, 4);
	q = wd_conf_queue_index(c, "events");
	dlq = wd_conf_queue_index(c, "events.dlq");
	cr_assert_eq(q, 0);
	cr_assert_eq(dlq, 1);
	cr_expect_eq(wd_conf_queue_index(c, "nope"), -1);
	cr_expect_eq(c->queues[q].type_from, WD_TYPE_FROM_JSON);
	cr_expect_str_eq(c->queues[q].type_field, "type");
	cr_expect_str_eq(c->queues[q].dead_letter_exchange, "events.dlx");
	cr_expect_null(c->queues[q].dead_letter_routing_key);
	cr_expect_not(c->queues[q].quorum);
	cr_expect(c->queues[q].durable);
	cr_expect_eq(c->queues[q].prefetch,
	             WD_PREFETCH_AUTO);          /* broker.prefetch */
	cr_expect_eq(c->queues[q].consumers, 2); /* 0 = pool_size */
	cr_expect_eq(c->queues[q].nargs, 0);
	cr_expect(c->queues[q].consumed);
	cr_expect_not(c->queues[dlq].consumed);
	cr_expect_eq(c->queues[q].max_body_size, 1048576);
	cr_expect_eq(c->queues[q].on_unknown_type, WD_BAD_DEAD_LETTER);
	cr_expect_eq(c->queues[q].on_unparseable, WD_BAD_DEAD_LETTER);
	cr_expect_eq(c->queues[q].on_too_large, WD_BAD_DEAD_LETTER);
	cr_assert_eq(c->queues[q].nretry_delays, 3);
	cr_expect_eq(c->queues[q].retry_delays[0], 5000);
	cr_expect_eq(c->queues[q].retry_delays[1], 10000);
	cr_expect_eq(c->queues[q].retry_delays[2], 20000);
	cr_expect_eq(c->routes[0].policy.max_attempts, 4);
	cr_expect_eq(c->routes[0].policy.retry_delay_ms, 5000);
	cr_expect_eq(c->routes[0].policy.retry_max_delay_ms, 60000);
	cr_expect_eq(c->routes[0].policy.batch_size, 1);

	cr_assert_eq(c->nbindings, 4);
	cr_expect_str_eq(c->bindings[0].exchange, "orders");
	cr_expect_str_eq(c->bindings[0].queue, "payment.process");
	cr_expect_str_eq(c->bindings[0].key, "payment.process");
	cr_expect_str_eq(c->bindings[1].queue, "inventory.update");
	cr_expect_str_eq(c->bindings[2].exchange, "events");
	cr_expect_str_eq(c->bindings[2].queue, "events");
	cr_expect_str_eq(c->bindings[2].key, "#");
	cr_expect_str_eq(c->bindings[3].exchange, "events.dlx");
	cr_expect_str_eq(c->bindings[3].queue, "events.dlq");
	cr_expect_str_eq(c->bindings[3].key, "");

	cr_assert_eq(c->nplugins, 3);
	cr_assert_eq(c->nroutes, 3);
	wd_conf_free(c);
}

Test(conf, shipped_conf_routes)
{
	struct wd_conf *c = load_shipped();
	static const char *const want[3][3] = {
	    {"user:signup", "user_signup", "signup"},
	    {"order:created", "order_created", "created"},
	    {"email:send", "email_send", "send"},
	};

	cr_assert_eq(c->nroutes, 3);
	for (size_t i = 0; i < 3; i++) {
		const struct wd_conf_route *r = &c->routes[i];
		cr_expect_str_eq(r->type, want[i][0]);
		cr_expect_eq(r->queue, 0, "route %zu on queue %zu", i,
		             r->queue);
		cr_assert_lt(r->plugin, c->nplugins);
		cr_expect_str_eq(c->plugins[r->plugin].name, want[i][1]);
		cr_expect_str_eq(r->handler, want[i][2]);
	}
	wd_conf_free(c);
}

Test(conf, shipped_conf_plugins_and_params)
{
	struct wd_conf *c = load_shipped();
	long e = wd_conf_plugin_index(c, "email_send");
	long u = wd_conf_plugin_index(c, "user_signup");
	char want[4096];

	cr_assert_geq(e, 0);
	cr_assert_geq(u, 0);
	cr_expect_eq(wd_conf_plugin_index(c, "nope"), -1);
	/* plugin_dir is commented out: the compiled-in default, absolute. */
	cr_assert_not_null(c->plugin_dir);
	cr_expect_eq(c->plugin_dir[0], '/', "plugin_dir %s", c->plugin_dir);
	snprintf(want, sizeof(want), "%s/user_signup.so", c->plugin_dir);
	cr_expect_str_eq(c->plugins[u].path, want);
	snprintf(want, sizeof(want), "%s/email_send.so", c->plugin_dir);
	cr_expect_str_eq(c->plugins[e].path, want);

	cr_expect_eq(c->plugins[u].nparams, 0);
	long o = wd_conf_plugin_index(c, "order_created");
	cr_assert_geq(o, 0);
	cr_assert_eq(c->plugins[o].nparams, 1);
	cr_expect_str_eq(c->plugins[o].params[0].key, "followup_exchange");
	cr_expect_str_eq(c->plugins[o].params[0].value, "orders");
	cr_assert_eq(c->plugins[e].nparams, 1);
	cr_expect_str_eq(c->plugins[e].params[0].key, "from");
	cr_expect_str_eq(c->plugins[e].params[0].value, "noreply@example.com");
	wd_conf_free(c);
}

Test(conf, shipped_conf_with_plugin_dir_env)
{
	struct wd_conf *c;

	setenv("WARREN_PLUGIN_DIR", "/opt/warren-test/plugins", 1);
	c = load_shipped();
	cr_expect_str_eq(c->plugin_dir, "/opt/warren-test/plugins");
	for (size_t i = 0; i < c->nplugins; i++) {
		char want[256];
		snprintf(want, sizeof(want), "/opt/warren-test/plugins/%s.so",
		         c->plugins[i].name);
		cr_expect_str_eq(c->plugins[i].path, want);
	}
	wd_conf_free(c);
}

Test(conf, minimal_conf_defaults)
{
	struct wd_conf *c = load_ok(BASE);

	cr_expect_str_eq(c->file, conf_path);
	cr_expect_eq(c->log_level, 2);
	cr_expect_eq(c->workers, 4);
	cr_expect_eq(c->shutdown_timeout, 30);
	cr_expect_eq(c->broker.heartbeat, 60);
	cr_expect_eq(c->broker.prefetch, WD_PREFETCH_AUTO, "default: auto");
	cr_expect_eq(c->broker.pool_size, 2);
	cr_expect_eq(c->broker.connect_timeout, 10);
	cr_expect_str_eq(c->broker.urls[0],
	                 "amqp://guest:guest@127.0.0.1:5672");
	cr_assert_eq(c->nqueues, 1);
	cr_expect(c->queues[0].durable);
	cr_expect_not(c->queues[0].quorum);
	cr_expect_str_eq(c->queues[0].dead_letter_exchange, "dlx");
	cr_expect_eq(c->queues[0].type_from, WD_TYPE_FROM_JSON);
	cr_expect_str_eq(c->queues[0].type_field, "type");
	cr_expect_eq(c->queues[0].delivery_limit, 0);
	cr_expect_eq(c->nexchanges, 0);
	cr_expect_eq(c->nbindings, 0);
	cr_assert_eq(c->nroutes, 1);
	cr_expect_str_eq(c->routes[0].type, "t");
	cr_expect_str_eq(c->routes[0].handler, "h");
	cr_expect_eq(c->routes[0].line, 9, "route line is its handler key's");
	cr_assert_eq(c->nplugins, 1);
	cr_expect_eq(c->plugins[0].line, 4, "plugin line is its path key's");
	wd_conf_free(c);
}

Test(conf, values_are_read)
{
	struct wd_conf *c =
	    load_ok("log_level = \"debug\"\n"
	            "workers = 7\n"
	            "shutdown_timeout = 5\n"
	            "broker {\n"
	            "    url = \"amqps://u:p@h:5671/v\"\n"
	            "    heartbeat = 0\n"
	            "    pool_size = 3\n"
	            "    prefetch = 100\n"
	            "    verify_peer = false\n"
	            "}\n"
	            "queue \"q\" { dead_letter_exchange = \"dlx\"\n"
	            "    type = \"quorum\"\n"
	            "    delivery_limit = 5\n"
	            "    message_ttl = 60000\n"
	            "    max_length = 1000\n"
	            "    dead_letter_routing_key = \"dead\"\n"
	            "    type_field = \"kind\"\n"
	            "    prefetch = 3\n"
	            "    consumers = 2\n"
	            "}\n"
	            "plugin \"p\" {\n"
	            "    path = \"p.so\"\n"
	            "}\n"
	            "route \"t\" {\n"
	            "    queue = \"q\"\n"
	            "    plugin = \"p\"\n"
	            "    handler = \"h\"\n"
	            "}\n");

	cr_expect_eq(c->log_level, 3);
	cr_expect_eq(c->workers, 7);
	cr_expect_eq(c->shutdown_timeout, 5);
	cr_expect_str_eq(c->broker.urls[0], "amqps://u:p@h:5671/v");
	cr_expect_eq(c->broker.heartbeat, 0);
	cr_expect_eq(c->broker.pool_size, 3);
	cr_expect_eq(c->broker.prefetch, 100);
	cr_expect_not(c->broker.verify_peer);
	cr_expect(c->queues[0].quorum);
	cr_expect_eq(c->queues[0].delivery_limit, 5);
	cr_expect_eq(c->queues[0].message_ttl, 60000);
	cr_expect_eq(c->queues[0].max_length, 1000);
	cr_expect_str_eq(c->queues[0].dead_letter_routing_key, "dead");
	cr_expect_str_eq(c->queues[0].type_field, "kind");
	cr_expect_eq(c->queues[0].prefetch, 3);
	cr_expect_eq(c->queues[0].consumers, 2);
	wd_conf_free(c);
}

/* ---- errors, each with its line --------------------------------------- */

/* The same load from a buffer (wd_conf_load_text: what the fuzz target
 * runs): errors and conf->file under the name given, a NUL byte within
 * the length an error, the same model as from the file. */
Test(conf, load_text_from_a_buffer)
{
	static const char text[] = "bogus = 1\n" BASE;
	static const char nul[] = BASE "log_level = \"info\"\0junk\n";
	struct wd_conf *c;

	c = wd_conf_load_text("inline.conf", text, sizeof(text) - 1, err,
	                      sizeof(err));
	cr_assert_null(c);
	cr_expect_str_eq(err, "inline.conf:1: no such option 'bogus'");
	c = wd_conf_load_text("inline.conf", nul, sizeof(nul) - 1, err,
	                      sizeof(err));
	cr_assert_null(c);
	cr_expect_str_eq(err, "inline.conf:11: a NUL byte: the file is not "
	                      "text (saved by a binary tool?)");
	/* Without its first line it loads; the length bounds the text. */
	c = wd_conf_load_text("inline.conf", text + 10, sizeof(text) - 11, err,
	                      sizeof(err));
	cr_assert_not_null(c, "%s", err);
	cr_expect_str_eq(err, "");
	cr_expect_str_eq(c->file, "inline.conf");
	cr_expect_eq(c->nqueues, 1);
	cr_expect_str_eq(c->queues[0].name, "q");
	wd_conf_free(c);
	c = wd_conf_load_text("inline.conf", BASE, 0, err, sizeof(err));
	cr_assert_null(c, "an empty text has no route");
	cr_expect(strncmp(err, "inline.conf:", 12) == 0, "%s", err);
}

Test(conf, unknown_top_level_key)
{
	expect_error("bogus = 1\n" BASE, 1, "no such option 'bogus'");
}

Test(conf, unknown_key_in_queue)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    durable = true\n"
	                  "    foo = 1\n"
	                  "}\n",
	             13, "no such option 'foo'");
}

Test(conf, unknown_key_in_route)
{
	expect_error(
	    "queue \"q\" {\n}\nplugin \"p\" {\n    path = \"p.so\"\n}\n"
	    "route \"t\" {\n"
	    "    queue = \"q\"\n"
	    "    plugin = \"p\"\n"
	    "    handlr = \"h\"\n"
	    "}\n",
	    9, "no such option 'handlr'");
}

/* A missing key has no line of its own: libconfuse gives the section the
 * line its parse ended on, i.e. the closing brace. */
Test(conf, route_without_handler)
{
	expect_error("queue \"q\" {\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n"
	             "route \"t\" {\n"
	             "    queue = \"q\"\n"
	             "    plugin = \"p\"\n"
	             "}\n",
	             9, "route: \"handler\" is required");
}

Test(conf, route_without_queue)
{
	expect_error("queue \"q\" {\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n"
	             "route \"t\" {\n"
	             "    plugin = \"p\"\n"
	             "    handler = \"h\"\n"
	             "}\n",
	             9, "route: \"queue\" is required");
}

Test(conf, plugin_without_path)
{
	expect_error("queue \"q\" {\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "}\n"
	             "route \"t\" {\n"
	             "    queue = \"q\"\n"
	             "    plugin = \"p\"\n"
	             "    handler = \"h\"\n"
	             "}\n",
	             4, "plugin: \"path\" is required");
}

Test(conf, route_to_undefined_plugin)
{
	expect_error("queue \"q\" {\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n"
	             "route \"t\" {\n"
	             "    queue = \"q\"\n"
	             "    plugin = \"zz\"\n"
	             "    handler = \"h\"\n"
	             "}\n",
	             8, "route \"t\": plugin \"zz\" is not defined");
}

Test(conf, route_to_undeclared_queue)
{
	expect_error("queue \"q\" {\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n"
	             "route \"t\" {\n"
	             "    queue = \"zz\"\n"
	             "    plugin = \"p\"\n"
	             "    handler = \"h\"\n"
	             "}\n",
	             7, "route \"t\": queue \"zz\" is not declared");
}

Test(conf, binding_to_undeclared_queue)
{
	expect_error(BASE "binding {\n"
	                  "    exchange = \"amq.topic\"\n"
	                  "    queue = \"zz\"\n"
	                  "}\n",
	             13, "binding: queue \"zz\" is not declared");
}

Test(conf, binding_to_undeclared_exchange)
{
	expect_error(BASE "binding {\n"
	                  "    exchange = \"nope\"\n"
	                  "    queue = \"q\"\n"
	                  "}\n",
	             12, "binding: exchange \"nope\" is not declared");
}

Test(conf, binding_to_amq_exchange_needs_no_declaration)
{
	struct wd_conf *c = load_ok(BASE "binding {\n"
	                                 "    exchange = \"amq.direct\"\n"
	                                 "    queue = \"q\"\n"
	                                 "    key = \"k\"\n"
	                                 "}\n");

	cr_assert_eq(c->nbindings, 1);
	cr_expect_str_eq(c->bindings[0].exchange, "amq.direct");
	cr_expect_str_eq(c->bindings[0].key, "k");
	cr_expect_eq(c->bindings[0].line, 12);
	wd_conf_free(c);
}

Test(conf, bad_queue_type)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    type = \"lazy\"\n"
	                  "}\n",
	             12, "type: \"lazy\" is not one of classic, quorum");
}

Test(conf, bad_type_from)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    type_from = \"header\"\n"
	                  "}\n",
	             12,
	             "type_from: \"header\" is not one of json, property, "
	             "routing_key");
}

Test(conf, bad_exchange_type)
{
	expect_error(
	    BASE "exchange \"e\" {\n"
	         "    type = \"x\"\n"
	         "}\n",
	    12, "type: \"x\" is not one of direct, fanout, topic, headers");
}

Test(conf, bad_log_level)
{
	expect_error("workers = 2\nlog_level = \"loud\"\n" BASE, 2,
	             "log_level: \"loud\" is not one of error, warn, info, "
	             "debug");
}

Test(conf, workers_out_of_range)
{
	expect_error("workers = 0\n" BASE, 1,
	             "workers: 0 is out of range 1..1024");
}

/* The range named is broker.prefetch's (see queue_prefetch_zero_is_unset):
 * only the part that is right either way is pinned. */
Test(conf, queue_prefetch_out_of_range)
{
	char want[128];
	struct wd_conf *c = load_text(BASE "queue \"r\" {\n"
	                                   "    prefetch = 70000\n"
	                                   "}\n");

	if (c)
		wd_conf_free(c);
	cr_assert_null(c);
	snprintf(want, sizeof(want), "%s:12: prefetch: 70000 is out of range ",
	         conf_path);
	cr_expect_eq(strncmp(err, want, strlen(want)), 0, "err: %s", err);
}

/* A queue's prefetch has its own range: 0 means "use broker.prefetch". */
Test(conf, queue_prefetch_zero_is_unset)
{
	struct wd_conf *c = load_ok("broker {\n"
	                            "    prefetch = 50\n"
	                            "}\n" BASE "queue \"r\" {\n"
	                            "    prefetch = 0\n"
	                            "}\n");

	cr_expect_eq(c->queues[1].prefetch, 50);
	wd_conf_free(c);
}

/* Errors inside the single `broker` section name the file too. */
Test(conf, broker_pool_size_zero)
{
	expect_error("broker {\n"
	             "    pool_size = 0\n"
	             "}\n" BASE,
	             2, "pool_size: 0 is out of range 1..64");
}

Test(conf, broker_prefetch_out_of_range)
{
	expect_error("broker {\n"
	             "    prefetch = 70000\n"
	             "}\n" BASE,
	             2, "prefetch: 70000 is out of range 1..65535");
}

Test(conf, broker_client_cert_without_key)
{
	expect_error("broker {\n"
	             "    url = \"amqps://u:p@localhost\"\n"
	             "    client_cert = \"client.pem\"\n"
	             "}\n" BASE,
	             3, "broker: client_cert is set without client_key");
	expect_error("broker {\n"
	             "    client_key = \"client.key\"\n"
	             "}\n" BASE,
	             2, "broker: client_key is set without client_cert");
}

/* A secret file of the given mode under /tmp; its path in `path`. */
static void secret_file(char *path, size_t len, mode_t mode)
{
	int fd;

	snprintf(path, len, "/tmp/warren-test-secret-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "s3cret-Zq7\n", 11), 11);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

Test(conf, secrets_open_to_others_are_refused)
{
	char pw[64], key[64], text[1024], msg[512];
	struct wd_conf *c;

	secret_file(pw, sizeof(pw), 0644);
	secret_file(key, sizeof(key), 0600);
	snprintf(text, sizeof(text),
	         "broker {\n"
	         "    password_file = \"%s\"\n"
	         "}\n" BASE,
	         pw);
	snprintf(msg, sizeof(msg),
	         "broker: password_file %s is open to others (mode 0644): "
	         "anyone on this machine could read it: chmod o-rw %s",
	         pw, pw);
	expect_error(text, 2, msg);
	cr_expect_null(strstr(err, "s3cret"), "%s", err);

	/* Group access is the packaged layout (root:warren 0640). */
	cr_assert_eq(chmod(pw, 0640), 0);
	c = load_ok(text);
	cr_expect_str_eq(c->broker.password_file, pw);
	wd_conf_free(c);

	snprintf(text, sizeof(text),
	         "broker {\n"
	         "    url = \"amqps://u@localhost\"\n"
	         "    client_cert = \"client.pem\"\n"
	         "    client_key = \"%s\"\n"
	         "}\n" BASE,
	         key);
	c = load_ok(text);
	wd_conf_free(c);
	cr_assert_eq(chmod(key, 0602), 0);
	snprintf(msg, sizeof(msg),
	         "broker: client_key %s is open to others (mode 0602): "
	         "anyone on this machine could change it: chmod o-rw %s",
	         key, key);
	expect_error(text, 4, msg);

	unlink(key);
	snprintf(msg, sizeof(msg),
	         "broker: client_key %s: No such file or directory", key);
	expect_error(text, 4, msg);
	unlink(pw);
}

Test(conf, broker_unknown_key)
{
	expect_error("broker {\n"
	             "    hearbeat = 5\n"
	             "}\n" BASE,
	             2, "no such option 'hearbeat'");
}

Test(conf, duplicate_queue_title)
{
	expect_error(BASE "queue \"q\" {\n"
	                  "}\n",
	             11, "found duplicate title 'q'");
}

Test(conf, duplicate_plugin_title)
{
	expect_error(BASE "plugin \"p\" {\n"
	                  "    path = \"other.so\"\n"
	                  "}\n",
	             11, "found duplicate title 'p'");
}

/* Route titles are unique names (libconfuse would otherwise merge two
 * sections of the same title into one, silently). */
Test(conf, duplicate_route_title)
{
	struct wd_conf *c = load_text(BASE "route \"t\" {\n"
	                                   "    queue = \"q\"\n"
	                                   "    plugin = \"p\"\n"
	                                   "    handler = \"h2\"\n"
	                                   "}\n");

	if (c)
		wd_conf_free(c);
	cr_assert_null(c, "a duplicate route was accepted");
	cr_expect_not_null(strstr(err, "found duplicate title 't'"), "err: %s",
	                   err);
}

/* The same type twice on one queue, under two route names. */
Test(conf, duplicate_type_on_one_queue)
{
	struct wd_conf *c = load_text(BASE "route \"t2\" {\n"
	                                   "    type = \"t\"\n"
	                                   "    queue = \"q\"\n"
	                                   "    plugin = \"p\"\n"
	                                   "    handler = \"h2\"\n"
	                                   "}\n");

	if (c)
		wd_conf_free(c);
	cr_assert_null(c, "a duplicate route was accepted");
	cr_expect_not_null(strstr(err, "route \"t2\": type \"t\" is already "
	                               "routed on queue \"q\""),
	                   "err: %s", err);
	char want[512];
	snprintf(want, sizeof(want), "%s:13: ", conf_path);
	cr_expect_eq(strncmp(err, want, strlen(want)), 0, "err: %s", err);
}

/* One type on two queues is legal: routes are keyed by (queue, type). */
Test(conf, same_type_on_two_queues)
{
	struct wd_conf *c =
	    load_ok("queue \"q\" { dead_letter_exchange = \"dlx\" }\n"
	            "queue \"q2\" { dead_letter_exchange = \"dlx\" }\n"
	            "plugin \"p\" {\n    path = \"p.so\"\n}\n"
	            "route \"t\" {\n"
	            "    queue = \"q\"\n"
	            "    plugin = \"p\"\n"
	            "    handler = \"h\"\n"
	            "}\n"
	            "route \"t-again\" {\n"
	            "    type = \"t\"\n"
	            "    queue = \"q2\"\n"
	            "    plugin = \"p\"\n"
	            "    handler = \"h\"\n"
	            "}\n");

	cr_expect_eq(c->nroutes, 2);
	wd_conf_free(c);
}

Test(conf, delivery_limit_on_classic_queue)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    durable = true\n"
	                  "    delivery_limit = 5\n"
	                  "}\n",
	             13,
	             "queue \"r\": delivery_limit needs type = \"quorum\" "
	             "(classic queues ignore it)");
}

Test(conf, quorum_queue_must_be_durable)
{
	struct wd_conf *c = load_text(BASE "queue \"r\" {\n"
	                                   "    type = \"quorum\"\n"
	                                   "    durable = false\n"
	                                   "}\n");

	cr_assert_null(c);
	cr_expect_not_null(strstr(err, "queue \"r\": quorum queues must be "
	                               "durable"),
	                   "err: %s", err);
	cr_expect_eq(strncmp(err, conf_path, strlen(conf_path)), 0, "err: %s",
	             err);
}

Test(conf, bad_argument)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    arguments = {\"novalue\"}\n"
	                  "}\n",
	             12,
	             "queue \"r\": argument \"novalue\" is not \"key=value\"");
}

/* A section left open in the middle: its opening line is named. */
Test(conf, syntax_missing_brace_mid_file)
{
	expect_error("queue \"q\" {\n"
	             "    durable = true\n"
	             "\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n",
	             1,
	             "this section is not closed ('}' missing) at the end "
	             "of the file");
}

Test(conf, syntax_extra_closing_brace)
{
	expect_error(BASE "}\n", 11, "unexpected closing brace");
}

Test(conf, syntax_unterminated_string)
{
	struct wd_conf *c = load_text("log_level = \"info\n" BASE);

	if (c)
		wd_conf_free(c);
	cr_assert_null(c);
	cr_expect_eq(strncmp(err, conf_path, strlen(conf_path)), 0, "err: %s",
	             err);
}

/* libconfuse 3.3 accepts a file that ends inside a section; warren checks
 * for it (a truncated file must not load). */
Test(conf, syntax_missing_final_brace)
{
	struct wd_conf *c = load_text(BASE "queue \"r\" {\n"
	                                   "    durable = true\n");

	if (c)
		wd_conf_free(c);
	cr_assert_null(c, "a conf with an unclosed section was accepted");
	cr_expect_eq(strncmp(err, conf_path, strlen(conf_path)), 0, "err: %s",
	             err);
}

/* libconfuse 3.3 advances its line counter by 3 per `#` comment line;
 * warren blanks comments out before parsing so lines stay right. */
Test(conf, lines_after_comments)
{
	expect_error("# a comment\n"
	             "workers = 2\n"
	             "bogus = 1\n" BASE,
	             3, "no such option 'bogus'");
}

Test(conf, no_routes)
{
	expect_error("queue \"q\" {\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n",
	             6, "no route: nothing would be consumed");
}

Test(conf, nonexistent_file)
{
	struct wd_conf *c =
	    wd_conf_load("/nonexistent/warren-test/x.conf", err, sizeof(err));

	cr_assert_null(c);
	cr_expect_str_eq(err, "/nonexistent/warren-test/x.conf:0: cannot read: "
	                      "No such file or directory");
}

Test(conf, error_is_cut_to_errlen)
{
	char small[16];
	struct wd_conf *c;

	write_conf("bogus = 1\n" BASE);
	memset(small, 'x', sizeof(small));
	c = wd_conf_load(conf_path, small, sizeof(small));
	unlink(conf_path);
	cr_assert_null(c);
	cr_expect_eq(small[sizeof(small) - 1], '\0');
	cr_expect_eq(strncmp(small, conf_path, sizeof(small) - 1), 0);
}

/* ---- environment overrides and value parsing --------------------------- */

Test(conf, amqp_url_env_overrides)
{
	struct wd_conf *c;

	setenv("WARREN_AMQP_URL", "amqps://env:pw@broker.example:5671/prod", 1);
	c = load_ok("broker {\n"
	            "    url = \"amqp://file@h\"\n"
	            "}\n" BASE);
	cr_expect_str_eq(c->broker.urls[0],
	                 "amqps://env:pw@broker.example:5671/prod");
	wd_conf_free(c);
}

Test(conf, empty_amqp_url_env_is_ignored)
{
	struct wd_conf *c;

	setenv("WARREN_AMQP_URL", "", 1);
	c = load_ok("broker {\n"
	            "    url = \"amqp://file@h\"\n"
	            "}\n" BASE);
	cr_expect_str_eq(c->broker.urls[0], "amqp://file@h");
	wd_conf_free(c);
}

Test(conf, non_amqp_url_env_refused)
{
	struct wd_conf *c;

	setenv("WARREN_AMQP_URL", "http://broker.example/", 1);
	c = load_text(BASE);
	if (c)
		wd_conf_free(c);
	cr_assert_null(c);
	cr_expect_not_null(strstr(err, "broker: url must start with amqp:// or "
	                               "amqps:// (it comes from "
	                               "WARREN_AMQP_URL)"),
	                   "err: %s", err);
	cr_expect_eq(strncmp(err, conf_path, strlen(conf_path)), 0, "err: %s",
	             err);
}

Test(conf, non_amqp_url_in_file_refused)
{
	struct wd_conf *c = load_text("broker {\n"
	                              "    url = \"http://x\"\n"
	                              "}\n" BASE);

	if (c)
		wd_conf_free(c);
	cr_assert_null(c);
	cr_expect_not_null(strstr(err, "broker: url must start with amqp:// or "
	                               "amqps://"),
	                   "err: %s", err);
	cr_expect_null(strstr(err, "WARREN_AMQP_URL"), "err: %s", err);
	cr_expect_eq(strncmp(err, conf_path, strlen(conf_path)), 0, "err: %s",
	             err);
}

Test(conf, plugin_dir_from_file)
{
	struct wd_conf *c = load_ok("plugin_dir = \"/srv/plugins\"\n" BASE);

	cr_expect_str_eq(c->plugin_dir, "/srv/plugins");
	cr_expect_str_eq(c->plugins[0].path, "/srv/plugins/p.so");
	wd_conf_free(c);
}

Test(conf, plugin_dir_env_overrides_file)
{
	struct wd_conf *c;

	setenv("WARREN_PLUGIN_DIR", "/env/plugins", 1);
	c = load_ok("plugin_dir = \"/srv/plugins\"\n" BASE);
	cr_expect_str_eq(c->plugin_dir, "/env/plugins");
	cr_expect_str_eq(c->plugins[0].path, "/env/plugins/p.so");
	wd_conf_free(c);
}

Test(conf, absolute_plugin_path_kept)
{
	struct wd_conf *c;

	setenv("WARREN_PLUGIN_DIR", "/env/plugins", 1);
	c = load_ok("plugin_dir = \"/srv/plugins\"\n"
	            "queue \"q\" { dead_letter_exchange = \"dlx\" }\n"
	            "plugin \"p\" {\n    path = \"/abs/dir/p.so\"\n}\n"
	            "route \"t\" {\n"
	            "    queue = \"q\"\n"
	            "    plugin = \"p\"\n"
	            "    handler = \"h\"\n"
	            "}\n");
	cr_expect_str_eq(c->plugins[0].path, "/abs/dir/p.so");
	wd_conf_free(c);
}

Test(conf, plugin_params)
{
	struct wd_conf *c =
	    load_ok("queue \"q\" { dead_letter_exchange = \"dlx\" }\n"
	            "plugin \"p\" {\n"
	            "    path = \"p.so\"\n"
	            "    params {\n"
	            "        a = \"1\"\n"
	            "        b = \"two words\"\n"
	            "    }\n"
	            "}\n"
	            "route \"t\" {\n"
	            "    queue = \"q\"\n"
	            "    plugin = \"p\"\n"
	            "    handler = \"h\"\n"
	            "}\n");

	cr_assert_eq(c->plugins[0].nparams, 2);
	cr_expect_str_eq(c->plugins[0].params[0].key, "a");
	cr_expect_str_eq(c->plugins[0].params[0].value, "1");
	cr_expect_str_eq(c->plugins[0].params[1].key, "b");
	cr_expect_str_eq(c->plugins[0].params[1].value, "two words");
	wd_conf_free(c);
}

Test(conf, queue_arguments_int_and_string)
{
	struct wd_conf *c = load_ok(
	    BASE
	    "queue \"r\" {\n"
	    "    arguments = {\"x-max-priority=10\",\"x-queue-mode=lazy\"}\n"
	    "}\n");
	const struct wd_conf_queue *q;

	cr_assert_eq(c->nqueues, 2);
	q = &c->queues[1];
	cr_assert_eq(q->nargs, 2);
	cr_expect_str_eq(q->args[0].key, "x-max-priority");
	cr_expect(q->args[0].is_int);
	cr_expect_eq(q->args[0].ival, 10);
	cr_expect_str_eq(q->args[1].key, "x-queue-mode");
	cr_expect_not(q->args[1].is_int);
	cr_expect_str_eq(q->args[1].sval, "lazy");
	wd_conf_free(c);
}

Test(conf, exchange_arguments_int_and_string)
{
	struct wd_conf *c = load_ok(
	    BASE "exchange \"n\" {\n"
	         "    type = \"topic\"\n"
	         "    arguments = {\"alternate-exchange=unrouted\",\"x-n=5\"}\n"
	         "}\n"
	         "exchange \"plain\" { }\n");
	const struct wd_conf_exchange *x;

	cr_assert_eq(c->nexchanges, 2);
	x = &c->exchanges[0];
	cr_assert_eq(x->nargs, 2);
	cr_expect_str_eq(x->args[0].key, "alternate-exchange");
	cr_expect_not(x->args[0].is_int);
	cr_expect_str_eq(x->args[0].sval, "unrouted");
	cr_expect_str_eq(x->args[1].key, "x-n");
	cr_expect(x->args[1].is_int);
	cr_expect_eq(x->args[1].ival, 5);
	cr_expect_eq(c->exchanges[1].nargs, 0);
	cr_expect(wd_conf_declares_exchange(c, "plain"));
	cr_expect_not(wd_conf_declares_exchange(c, "unrouted"));
	wd_conf_free(c);
}

Test(conf, bad_exchange_argument)
{
	expect_error(BASE "exchange \"n\" {\n"
	                  "    arguments = {\"=x\"}\n"
	                  "}\n",
	             12,
	             "exchange \"n\": argument \"=x\" is not \"key=value\"");
}

/* A reload declares again only if the topology changed: an exchange's
 * arguments are part of it. */
Test(conf, exchange_arguments_change_the_topology)
{
	const char *a = BASE "exchange \"n\" {\n"
	                     "    arguments = {\"alternate-exchange=u1\"}\n"
	                     "}\n";
	const char *b = BASE "exchange \"n\" {\n"
	                     "    arguments = {\"alternate-exchange=u2\"}\n"
	                     "}\n";
	const char *none = BASE "exchange \"n\" { }\n";
	struct wd_conf *ca = load_ok(a), *ca2 = load_ok(a), *cb = load_ok(b),
	               *cn = load_ok(none);

	cr_expect(wd_conf_same_topology(ca, ca2));
	cr_expect_not(wd_conf_same_topology(ca, cb));
	cr_expect_not(wd_conf_same_topology(ca, cn));
	cr_expect_not(wd_conf_same_topology(cn, ca));
	wd_conf_free(ca);
	wd_conf_free(ca2);
	wd_conf_free(cb);
	wd_conf_free(cn);
}

Test(conf, queue_argument_number_prefix_stays_string)
{
	struct wd_conf *c =
	    load_ok(BASE "queue \"r\" {\n"
	                 "    arguments = {\"x-a=10s\",\"x-b=\",\"x-c=-3\"}\n"
	                 "}\n");
	const struct wd_conf_queue *q = &c->queues[1];

	cr_assert_eq(q->nargs, 3);
	cr_expect_not(q->args[0].is_int);
	cr_expect_str_eq(q->args[0].sval, "10s");
	cr_expect_not(q->args[1].is_int);
	cr_expect_str_eq(q->args[1].sval, "");
	cr_expect(q->args[2].is_int);
	cr_expect_eq(q->args[2].ival, -3);
	wd_conf_free(c);
}

Test(conf, type_from_values)
{
	struct wd_conf *c = load_ok(BASE "queue \"a\" {\n"
	                                 "    type_from = \"property\"\n"
	                                 "}\n"
	                                 "queue \"b\" {\n"
	                                 "    type_from = \"routing_key\"\n"
	                                 "}\n"
	                                 "queue \"c\" {\n"
	                                 "    type_from = \"json\"\n"
	                                 "}\n");

	cr_assert_eq(c->nqueues, 4);
	cr_expect_eq(c->queues[1].type_from, WD_TYPE_FROM_PROPERTY);
	cr_expect_eq(c->queues[2].type_from, WD_TYPE_FROM_ROUTING_KEY);
	cr_expect_eq(c->queues[3].type_from, WD_TYPE_FROM_JSON);
	wd_conf_free(c);
}

Test(conf, consumers_clamped_to_pool_size)
{
	struct wd_conf *c = load_ok("broker {\n"
	                            "    pool_size = 3\n"
	                            "}\n" BASE "queue \"big\" {\n"
	                            "    consumers = 10\n"
	                            "}\n"
	                            "queue \"one\" {\n"
	                            "    consumers = 1\n"
	                            "}\n");

	cr_assert_eq(c->nqueues, 3);
	cr_expect_eq(c->queues[0].consumers, 3, "0 means all");
	cr_expect_eq(c->queues[1].consumers, 3, "10 is clamped to pool_size");
	cr_expect_eq(c->queues[2].consumers, 1);
	wd_conf_free(c);
}

Test(conf, queue_prefetch_overrides_broker)
{
	struct wd_conf *c = load_ok("broker {\n"
	                            "    prefetch = 50\n"
	                            "}\n" BASE "queue \"r\" {\n"
	                            "    prefetch = 5\n"
	                            "}\n");

	cr_expect_eq(c->queues[0].prefetch, 50);
	cr_expect_eq(c->queues[1].prefetch, 5);
	wd_conf_free(c);
}

Test(conf, route_type_too_long)
{
	char text[1024], type[257];

	memset(type, 'a', 256);
	type[256] = '\0';
	snprintf(text, sizeof(text),
	         "queue \"q\" {\n}\nplugin \"p\" {\n    path = \"p.so\"\n}\n"
	         "route \"%s\" {\n"
	         "    queue = \"q\"\n"
	         "    plugin = \"p\"\n"
	         "    handler = \"h\"\n"
	         "}\n",
	         type);
	expect_error(text, 10,
	             "route: the message type must be 1 to 255 bytes");
}

/* ---- delivery policy, ack coalescing, publisher confirms --------------- */

#define EPS 1e-9

/* A valid conf whose route section is left open at line 8: a route key
 * appended to it is on line 9, and "}\n" closes it on line 10. */
#define ROUTE_OPEN                                                             \
	"queue \"q\" { dead_letter_exchange = \"dlx\" }\n" /* 1 */             \
	"plugin \"p\" {\n"                                 /* 2 */             \
	"    path = \"p.so\"\n"                            /* 3 */             \
	"}\n"                                              /* 4 */             \
	"route \"t\" {\n"                                  /* 5 */             \
	"    queue = \"q\"\n"                              /* 6 */             \
	"    plugin = \"p\"\n"                             /* 7 */             \
	"    handler = \"h\"\n"                            /* 8 */

/* q's retry delays must be exactly want[0..n), ascending. */
static void expect_delays(const struct wd_conf_queue *q, const long *want,
                          size_t n)
{
	cr_assert_eq(q->nretry_delays, n,
	             "queue \"%s\": %zu retry delays, "
	             "want %zu",
	             q->name, q->nretry_delays, n);
	for (size_t i = 0; i < n; i++)
		cr_expect_eq(q->retry_delays[i], want[i],
		             "queue \"%s\": delay %zu is %ld, want %ld",
		             q->name, i, q->retry_delays[i], want[i]);
}

/* The resolved policy of route `r` must be exactly these values. */
static void expect_policy(const struct wd_conf_route *r, int max_attempts,
                          long delay, double multiplier, long max_delay,
                          double jitter)
{
	const struct wd_policy *p = &r->policy;

	cr_expect_eq(p->max_attempts, max_attempts, "route %s: max_attempts %d",
	             r->type, p->max_attempts);
	cr_expect_eq(p->retry_delay_ms, delay, "route %s: retry_delay_ms %ld",
	             r->type, p->retry_delay_ms);
	cr_expect_float_eq(p->retry_multiplier, multiplier, EPS,
	                   "route %s: retry_multiplier %g", r->type,
	                   p->retry_multiplier);
	cr_expect_eq(p->retry_max_delay_ms, max_delay,
	             "route %s: retry_max_delay_ms %ld", r->type,
	             p->retry_max_delay_ms);
	cr_expect_float_eq(p->retry_jitter, jitter, EPS,
	                   "route %s: retry_jitter %g", r->type,
	                   p->retry_jitter);
}

Test(conf, policy_defaults)
{
	static const long delays[] = {5000, 10000, 20000};
	struct wd_conf *c = load_ok(BASE "queue \"idle\" {\n}\n");
	const struct wd_conf_queue *q;

	cr_expect_eq(c->broker.ack_batch, 100);
	cr_expect_eq(c->broker.ack_delay_ms, 10);
	cr_expect_eq(c->broker.publish_timeout, 30);

	cr_assert_eq(c->nroutes, 1);
	expect_policy(&c->routes[0], 4, 5000, 2.0, 60000, 0.1);
	cr_expect_eq(c->routes[0].policy.batch_size, 1);
	cr_expect_eq(c->routes[0].policy.batch_timeout_ms, 100);

	cr_assert_eq(c->nqueues, 2);
	q = &c->queues[0];
	cr_expect_eq(q->max_body_size, 1048576);
	cr_expect_eq(q->on_unknown_type, WD_BAD_DEAD_LETTER);
	cr_expect_eq(q->on_unparseable, WD_BAD_DEAD_LETTER);
	cr_expect_eq(q->on_too_large, WD_BAD_DEAD_LETTER);
	/* 5000 * 2^(attempt-1) for attempts 1..3 (max_attempts 4). */
	expect_delays(q, delays, 3);

	/* A queue no route reads has no retry queues (and needs no
	 * dead_letter_exchange); its input policy still resolves. */
	q = &c->queues[1];
	cr_expect_not(q->consumed);
	cr_expect_eq(q->nretry_delays, 0);
	cr_expect_eq(q->max_body_size, 1048576);
	cr_expect_eq(q->on_unknown_type, WD_BAD_DEAD_LETTER);
	cr_expect_eq(q->on_unparseable, WD_BAD_DEAD_LETTER);
	cr_expect_eq(q->on_too_large, WD_BAD_DEAD_LETTER);
	wd_conf_free(c);
}

Test(conf, broker_ack_and_confirm_values_are_read)
{
	struct wd_conf *c = load_ok("broker {\n"
	                            "    ack_batch = 1\n"
	                            "    ack_delay_ms = 0\n"
	                            "    publish_timeout = 5\n"
	                            "}\n" BASE);

	cr_expect_eq(c->broker.ack_batch, 1);
	cr_expect_eq(c->broker.ack_delay_ms, 0);
	cr_expect_eq(c->broker.publish_timeout, 5);
	wd_conf_free(c);
}

/* The `policy` section is the default of every route and every queue. */
Test(conf, policy_section_applies_to_every_route_and_queue)
{
	/* 1000, 1500, 2250 capped at 2000. */
	static const long delays[] = {1000, 1500, 2000};
	struct wd_conf *c =
	    load_ok("policy {\n"
	            "    max_attempts = 4\n"
	            "    retry_delay_ms = 1000\n"
	            "    retry_multiplier = 1.5\n"
	            "    retry_max_delay_ms = 2000\n"
	            "    retry_jitter = 0.25\n"
	            "    max_body_size = 4096\n"
	            "    on_unknown_type = \"drop\"\n"
	            "    on_unparseable = \"drop\"\n"
	            "    on_too_large = \"drop\"\n"
	            "}\n" BASE "queue \"q2\" { dead_letter_exchange = "
	            "\"dlx\" }\n"
	            "route \"u\" {\n"
	            "    queue = \"q2\"\n"
	            "    plugin = \"p\"\n"
	            "    handler = \"h\"\n"
	            "}\n");

	cr_assert_eq(c->nroutes, 2);
	cr_assert_eq(c->nqueues, 2);
	for (size_t i = 0; i < 2; i++) {
		const struct wd_conf_queue *q = &c->queues[i];

		expect_policy(&c->routes[i], 4, 1000, 1.5, 2000, 0.25);
		/* Not policy keys: the route defaults stay. */
		cr_expect_eq(c->routes[i].policy.batch_size, 1);
		cr_expect_eq(c->routes[i].policy.batch_timeout_ms, 100);
		cr_expect_eq(q->max_body_size, 4096, "queue %s", q->name);
		cr_expect_eq(q->on_unknown_type, WD_BAD_DROP, "queue %s",
		             q->name);
		cr_expect_eq(q->on_unparseable, WD_BAD_DROP, "queue %s",
		             q->name);
		cr_expect_eq(q->on_too_large, WD_BAD_DROP, "queue %s", q->name);
		expect_delays(q, delays, 3);
	}
	wd_conf_free(c);
}

/* Each route key overrides the policy's for that key alone. */
Test(conf, route_overrides_beat_policy_per_key)
{
	static const long delays[] = {1000, 2000,  3000, 6000,
	                              9000, 27000, 50000};
	struct wd_conf *c = load_ok(
	    "policy {\n"
	    "    max_attempts = 3\n"
	    "    retry_delay_ms = 1000\n"
	    "    retry_multiplier = 3.0\n"
	    "    retry_max_delay_ms = 50000\n"
	    "    retry_jitter = 0.5\n"
	    "}\n"
	    "queue \"q\" { dead_letter_exchange = \"dlx\" }\n"
	    "plugin \"p\" { path = \"p.so\" }\n"
	    "route \"none\" { queue = \"q\" plugin = \"p\" handler = \"h\" }\n"
	    "route \"a\" { queue = \"q\" plugin = \"p\" handler = \"h\"\n"
	    "    max_attempts = 7 }\n"
	    "route \"d\" { queue = \"q\" plugin = \"p\" handler = \"h\"\n"
	    "    retry_delay_ms = 2000 }\n"
	    "route \"m\" { queue = \"q\" plugin = \"p\" handler = \"h\"\n"
	    "    retry_multiplier = 1.0 }\n"
	    "route \"x\" { queue = \"q\" plugin = \"p\" handler = \"h\"\n"
	    "    retry_max_delay_ms = 1000 }\n"
	    "route \"j\" { queue = \"q\" plugin = \"p\" handler = \"h\"\n"
	    "    retry_jitter = 0.0 }\n"
	    "route \"b\" { queue = \"q\" plugin = \"p\" handler = \"h\"\n"
	    "    batch_size = 50\n"
	    "    batch_timeout_ms = 250 }\n");

	cr_assert_eq(c->nroutes, 7);
	cr_expect_str_eq(c->routes[0].type, "none");
	expect_policy(&c->routes[0], 3, 1000, 3.0, 50000, 0.5);
	expect_policy(&c->routes[1], 7, 1000, 3.0, 50000, 0.5);
	expect_policy(&c->routes[2], 3, 2000, 3.0, 50000, 0.5);
	expect_policy(&c->routes[3], 3, 1000, 1.0, 50000, 0.5);
	expect_policy(&c->routes[4], 3, 1000, 3.0, 1000, 0.5);
	expect_policy(&c->routes[5], 3, 1000, 3.0, 50000, 0.0);
	expect_policy(&c->routes[6], 3, 1000, 3.0, 50000, 0.5);
	for (size_t i = 0; i < 6; i++) {
		cr_expect_eq(c->routes[i].policy.batch_size, 1);
		cr_expect_eq(c->routes[i].policy.batch_timeout_ms, 100);
	}
	cr_expect_str_eq(c->routes[6].type, "b");
	cr_expect_eq(c->routes[6].policy.batch_size, 50);
	cr_expect_eq(c->routes[6].policy.batch_timeout_ms, 250);
	/* none, j, b: 1000 3000; a: 1000 3000 9000 27000 50000 (81000
	 * capped) 50000; d: 2000 6000; m: 1000 1000; x: 1000 1000. */
	cr_assert_eq(c->nqueues, 1);
	expect_delays(&c->queues[0], delays,
	              sizeof(delays) / sizeof(delays[0]));
	wd_conf_free(c);
}

/* Each queue key overrides the policy's for that key alone, both ways. */
Test(conf, queue_overrides_beat_policy_per_key)
{
	struct wd_conf *c =
	    load_ok("policy {\n"
	            "    max_body_size = 4096\n"
	            "    on_unknown_type = \"drop\"\n"
	            "    on_unparseable = \"drop\"\n"
	            "    on_too_large = \"drop\"\n"
	            "}\n" BASE "queue \"size\" { max_body_size = 100 }\n"
	            "queue \"unknown\" {\n"
	            "    on_unknown_type = \"dead-letter\"\n"
	            "}\n"
	            "queue \"unparseable\" {\n"
	            "    on_unparseable = \"dead-letter\"\n"
	            "}\n"
	            "queue \"large\" {\n"
	            "    on_too_large = \"dead-letter\"\n"
	            "}\n");
	static const struct {
		const char *name;
		long size;
		enum wd_bad_input unknown, unparseable, large;
	} want[] = {
	    {"q", 4096, WD_BAD_DROP, WD_BAD_DROP, WD_BAD_DROP},
	    {"size", 100, WD_BAD_DROP, WD_BAD_DROP, WD_BAD_DROP},
	    {"unknown", 4096, WD_BAD_DEAD_LETTER, WD_BAD_DROP, WD_BAD_DROP},
	    {"unparseable", 4096, WD_BAD_DROP, WD_BAD_DEAD_LETTER, WD_BAD_DROP},
	    {"large", 4096, WD_BAD_DROP, WD_BAD_DROP, WD_BAD_DEAD_LETTER},
	};

	cr_assert_eq(c->nqueues, 5);
	for (size_t i = 0; i < 5; i++) {
		const struct wd_conf_queue *q = &c->queues[i];

		cr_expect_str_eq(q->name, want[i].name);
		cr_expect_eq(q->max_body_size, want[i].size, "queue %s",
		             q->name);
		cr_expect_eq(q->on_unknown_type, want[i].unknown, "queue %s",
		             q->name);
		cr_expect_eq(q->on_unparseable, want[i].unparseable, "queue %s",
		             q->name);
		cr_expect_eq(q->on_too_large, want[i].large, "queue %s",
		             q->name);
	}
	wd_conf_free(c);
}

/* Without a `policy` section a queue key overrides the defaults. */
Test(conf, queue_overrides_beat_defaults)
{
	struct wd_conf *c = load_ok(BASE "queue \"r\" {\n"
	                                 "    max_body_size = 1\n"
	                                 "    on_unknown_type = \"drop\"\n"
	                                 "    on_unparseable = \"drop\"\n"
	                                 "    on_too_large = \"drop\"\n"
	                                 "}\n");
	const struct wd_conf_queue *q = &c->queues[1];

	cr_expect_eq(c->queues[0].max_body_size, 1048576);
	cr_expect_eq(c->queues[0].on_unknown_type, WD_BAD_DEAD_LETTER);
	cr_expect_eq(q->max_body_size, 1);
	cr_expect_eq(q->on_unknown_type, WD_BAD_DROP);
	cr_expect_eq(q->on_unparseable, WD_BAD_DROP);
	cr_expect_eq(q->on_too_large, WD_BAD_DROP);
	wd_conf_free(c);
}

/* Two routes on one queue: one retry queue per distinct delay, sorted. */
Test(conf, retry_delays_of_two_routes_merge)
{
	/* t: 5000 10000 20000; u: 10000 15000 22500. */
	static const long delays[] = {5000, 10000, 15000, 20000, 22500};
	struct wd_conf *c = load_ok(BASE "route \"u\" {\n"
	                                 "    queue = \"q\"\n"
	                                 "    plugin = \"p\"\n"
	                                 "    handler = \"h\"\n"
	                                 "    retry_delay_ms = 10000\n"
	                                 "    retry_multiplier = 1.5\n"
	                                 "}\n");

	cr_assert_eq(c->nqueues, 1);
	expect_delays(&c->queues[0], delays, 5);
	wd_conf_free(c);
}

Test(conf, max_attempts_one_gives_no_retry_delays)
{
	struct wd_conf *c = load_ok("policy {\n"
	                            "    max_attempts = 1\n"
	                            "}\n" BASE);

	cr_expect_eq(c->routes[0].policy.max_attempts, 1);
	cr_expect_eq(c->queues[0].nretry_delays, 0);
	wd_conf_free(c);
}

/* One route without retries beside one with: the queue keeps the other's. */
Test(conf, max_attempts_one_on_one_route_only)
{
	static const long delays[] = {5000, 10000, 20000};
	struct wd_conf *c = load_ok(BASE "route \"u\" {\n"
	                                 "    queue = \"q\"\n"
	                                 "    plugin = \"p\"\n"
	                                 "    handler = \"h\"\n"
	                                 "    max_attempts = 1\n"
	                                 "}\n");

	cr_expect_eq(c->routes[1].policy.max_attempts, 1);
	expect_delays(&c->queues[0], delays, 3);
	wd_conf_free(c);
}

Test(conf, retry_max_delay_caps_the_delays)
{
	/* 1000, 10000, then 100000 and on capped at 25000. */
	static const long delays[] = {1000, 10000, 25000};
	struct wd_conf *c =
	    load_ok(ROUTE_OPEN "    max_attempts = 6\n"
	                       "    retry_delay_ms = 1000\n"
	                       "    retry_multiplier = 10\n"
	                       "    retry_max_delay_ms = 25000\n"
	                       "}\n");

	expect_policy(&c->routes[0], 6, 1000, 10.0, 25000, 0.1);
	expect_delays(&c->queues[0], delays, 3);
	wd_conf_free(c);
}

/* retry_max_delay_ms equal to retry_delay_ms: every retry waits as long. */
Test(conf, retry_max_delay_equal_to_delay)
{
	static const long delays[] = {3000};
	struct wd_conf *c = load_ok(ROUTE_OPEN "    retry_delay_ms = 3000\n"
	                                       "    retry_max_delay_ms = 3000\n"
	                                       "}\n");

	expect_delays(&c->queues[0], delays, 1);
	wd_conf_free(c);
}

Test(conf, policy_delay_ms)
{
	struct wd_policy p = {
	    .max_attempts = 10,
	    .retry_delay_ms = 1000,
	    .retry_multiplier = 1.0,
	    .retry_max_delay_ms = 60000,
	    .retry_jitter = 0.5,
	};

	/* Multiplier 1.0: every delay is the first. */
	for (int a = 1; a <= 10; a++)
		cr_expect_eq(wd_policy_delay_ms(&p, a), 1000, "attempt %d", a);

	/* Attempt 1 is retry_delay_ms whatever the multiplier. */
	p.retry_multiplier = 7.0;
	cr_expect_eq(wd_policy_delay_ms(&p, 1), 1000);
	cr_expect_eq(wd_policy_delay_ms(&p, 2), 7000);
	cr_expect_eq(wd_policy_delay_ms(&p, 3), 49000);
	/* 343000 capped; and no overflow however many attempts. */
	cr_expect_eq(wd_policy_delay_ms(&p, 4), 60000);
	cr_expect_eq(wd_policy_delay_ms(&p, 1000), 60000);

	/* Fractional multipliers round to the millisecond. */
	p.retry_multiplier = 1.5;
	p.retry_delay_ms = 1001;
	cr_expect_eq(wd_policy_delay_ms(&p, 2), 1502); /* 1501.5 */
	cr_expect_eq(wd_policy_delay_ms(&p, 3), 2252); /* 2252.25 */

	/* The cap is exact, and a first delay at the cap stays there. */
	p.retry_multiplier = 2.0;
	p.retry_delay_ms = 15000;
	cr_expect_eq(wd_policy_delay_ms(&p, 3), 60000); /* 60000 exactly */
	cr_expect_eq(wd_policy_delay_ms(&p, 4), 60000);
	p.retry_delay_ms = 60000;
	cr_expect_eq(wd_policy_delay_ms(&p, 1), 60000);
	cr_expect_eq(wd_policy_delay_ms(&p, 2), 60000);

	/* The largest allowed values. */
	p.retry_delay_ms = 86400000;
	p.retry_max_delay_ms = 86400000;
	p.retry_multiplier = 100.0;
	cr_expect_eq(wd_policy_delay_ms(&p, 999), 86400000);
}

/* ---- delivery policy errors, each with its line ----------------------- */

Test(conf, policy_max_attempts_zero)
{
	expect_error("policy {\n"
	             "    max_attempts = 0\n"
	             "}\n" BASE,
	             2, "max_attempts: 0 is out of range 1..1000");
}

Test(conf, route_max_attempts_too_many)
{
	expect_error(ROUTE_OPEN "    max_attempts = 1001\n"
	                        "}\n",
	             9, "max_attempts: 1001 is out of range 1..1000");
}

Test(conf, route_retry_multiplier_below_one)
{
	expect_error(ROUTE_OPEN "    retry_multiplier = 0.5\n"
	                        "}\n",
	             9, "retry_multiplier: 0.5 is out of range 1..100");
}

Test(conf, policy_retry_multiplier_below_one)
{
	expect_error("policy {\n"
	             "    retry_multiplier = 0.5\n"
	             "}\n" BASE,
	             2, "retry_multiplier: 0.5 is out of range 1..100");
}

Test(conf, policy_retry_jitter_above_one)
{
	expect_error("policy {\n"
	             "    retry_jitter = 1.5\n"
	             "}\n" BASE,
	             2, "retry_jitter: 1.5 is out of range 0..1");
}

Test(conf, route_retry_jitter_above_one)
{
	expect_error(ROUTE_OPEN "    retry_jitter = 1.5\n"
	                        "}\n",
	             9, "retry_jitter: 1.5 is out of range 0..1");
}

Test(conf, queue_bad_on_unknown_type)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    on_unknown_type = \"ignore\"\n"
	                  "}\n",
	             12,
	             "on_unknown_type: \"ignore\" is not one of dead-letter, "
	             "drop");
}

Test(conf, policy_bad_on_too_large)
{
	expect_error("policy {\n"
	             "    on_unparseable = \"drop\"\n"
	             "    on_too_large = \"truncate\"\n"
	             "}\n" BASE,
	             3,
	             "on_too_large: \"truncate\" is not one of dead-letter, "
	             "drop");
}

Test(conf, route_batch_size_zero)
{
	expect_error(ROUTE_OPEN "    batch_size = 0\n"
	                        "}\n",
	             9, "batch_size: 0 is out of range 1..10000");
}

Test(conf, route_batch_timeout_zero)
{
	expect_error(ROUTE_OPEN "    batch_timeout_ms = 0\n"
	                        "}\n",
	             9, "batch_timeout_ms: 0 is out of range 1..60000");
}

Test(conf, route_retry_delay_zero)
{
	expect_error(ROUTE_OPEN "    retry_delay_ms = 0\n"
	                        "}\n",
	             9, "retry_delay_ms: 0 is out of range 1..86400000");
}

Test(conf, queue_max_body_size_zero)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    max_body_size = 0\n"
	                  "}\n",
	             12, "max_body_size: 0 is out of range 1..536870912");
}

Test(conf, broker_ack_batch_zero)
{
	expect_error("broker {\n"
	             "    ack_batch = 0\n"
	             "}\n" BASE,
	             2, "ack_batch: 0 is out of range 1..65535");
}

Test(conf, broker_ack_delay_too_long)
{
	expect_error("broker {\n"
	             "    ack_delay_ms = 10001\n"
	             "}\n" BASE,
	             2, "ack_delay_ms: 10001 is out of range 0..10000");
}

Test(conf, broker_publish_timeout_zero)
{
	expect_error("broker {\n"
	             "    publish_timeout = 0\n"
	             "}\n" BASE,
	             2, "publish_timeout: 0 is out of range 1..3600");
}

/* Refused at the route's line: the section's, i.e. its closing brace. */
Test(conf, retry_max_delay_below_retry_delay)
{
	expect_error(ROUTE_OPEN "    retry_delay_ms = 2000\n"
	                        "    retry_max_delay_ms = 1000\n"
	                        "}\n",
	             11,
	             "route \"t\": retry_max_delay_ms (1000) is shorter than "
	             "retry_delay_ms (2000)");
}

/* The same check on values the route inherits from `policy`. */
Test(conf, policy_retry_delay_above_default_max)
{
	expect_error("policy {\n"
	             "    retry_delay_ms = 120000\n"
	             "}\n" BASE,
	             13,
	             "route \"t\": retry_max_delay_ms (60000) is shorter than "
	             "retry_delay_ms (120000)");
}

/* Refused at the queue's line: the section's, i.e. its closing brace. */
Test(conf, consumed_queue_without_dead_letter_exchange)
{
	expect_error("queue \"q\" {\n"
	             "    durable = true\n"
	             "}\n"
	             "plugin \"p\" {\n"
	             "    path = \"p.so\"\n"
	             "}\n"
	             "route \"t\" {\n"
	             "    queue = \"q\"\n"
	             "    plugin = \"p\"\n"
	             "    handler = \"h\"\n"
	             "}\n",
	             3,
	             "queue \"q\": a consumed queue needs a "
	             "dead_letter_exchange (rejected and failing messages are "
	             "dead-lettered there)");
}

/* A conf with one queue of `len` bytes named 'a'..., consumed by a route
 * with `route_keys` added; the queue is on line 1. */
static const char *long_queue_conf(size_t len, const char *route_keys)
{
	static char text[2048];
	char name[300];

	cr_assert_lt(len, sizeof(name));
	memset(name, 'a', len);
	name[len] = '\0';
	snprintf(text, sizeof(text),
	         "queue \"%s\" { dead_letter_exchange = \"dlx\" }\n"
	         "plugin \"p\" {\n    path = \"p.so\"\n}\n"
	         "route \"t\" {\n"
	         "    queue = \"%s\"\n"
	         "    plugin = \"p\"\n"
	         "    handler = \"h\"\n"
	         "%s"
	         "}\n",
	         name, name, route_keys);
	return text;
}

Test(conf, queue_name_too_long_for_retry_queues)
{
	char want[1024], name[237];

	memset(name, 'a', 236);
	name[236] = '\0';
	snprintf(want, sizeof(want),
	         "queue \"%s\": the name is too long for its retry queues "
	         "(\"%s.retry.<ms>\"): at most 235 bytes",
	         name, name);
	expect_error(long_queue_conf(236, ""), 1, want);
}

Test(conf, queue_name_of_235_bytes_has_room)
{
	struct wd_conf *c = load_ok(long_queue_conf(235, ""));

	cr_expect_eq(strlen(c->queues[0].name), 235);
	cr_expect_eq(c->queues[0].nretry_delays, 3);
	wd_conf_free(c);
}

/* No retries, no retry queues: the long name is fine. */
Test(conf, long_queue_name_without_retries)
{
	struct wd_conf *c =
	    load_ok(long_queue_conf(236, "    max_attempts = 1\n"));

	cr_expect_eq(c->queues[0].nretry_delays, 0);
	wd_conf_free(c);
}

/* ---- what start would refuse, -t refuses too -------------------------- */

Test(conf, a_nul_byte_is_refused_at_its_line)
{
	static const char text[] = BASE "route \"t2\" { queue = \"q\" plugin = "
	                                "\"p\" handler = \"h\" }\n\0"
	                                "route \"t3\" { queue = \"q\" plugin = "
	                                "\"p\" handler = \"h\" }\n";
	char want[1200];
	struct wd_conf *c;
	FILE *f;
	int fd;

	snprintf(conf_path, sizeof(conf_path), "/tmp/warren-test-conf-XXXXXX");
	fd = mkstemp(conf_path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_eq(fwrite(text, 1, sizeof(text) - 1, f), sizeof(text) - 1);
	fclose(f);
	c = wd_conf_load(conf_path, err, sizeof(err));
	unlink(conf_path);
	cr_assert_null(c, "a file cut short by a NUL byte loaded");
	snprintf(want, sizeof(want),
	         "%s:12: a NUL byte: the file is not text (saved by a binary "
	         "tool?)",
	         conf_path);
	cr_expect_str_eq(err, want);
}

Test(conf, a_directory_is_said_to_be_one)
{
	char dir[] = "/tmp/warren-test-dir-XXXXXX", want[256];

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_null(wd_conf_load(dir, err, sizeof(err)));
	rmdir(dir);
	snprintf(want, sizeof(want), "%s:0: is a directory, not a config file",
	         dir);
	cr_expect_str_eq(err, want);
}

Test(conf, urls_start_would_refuse_are_refused_here)
{
	static const char *const bad[] = {
	    "amqp://guest:guest@127.0.0.1:notaport",
	    "amqp://guest:guest@[::1",
	    "amqp://guest:guest@127.0.0.1:5672/%zz",
	};
	char text[512], want[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text),
		         BASE "broker {\n    url = \"%s\"\n}\n", bad[i]);
		snprintf(want, sizeof(want),
		         "broker: url is not a valid amqp:// or amqps:// URL "
		         "(host, port, percent escapes)");
		expect_error(text, 12, want);
		cr_expect(strstr(err, "guest:guest") == NULL,
		          "the URL (and its password) must not be repeated");
		/* From the environment: the variable is named. */
		setenv("WARREN_AMQP_URL", bad[i], 1);
		cr_expect_null(load_text(BASE));
		cr_expect(strstr(err, "(it comes from WARREN_AMQP_URL)"), "%s",
		          err);
		unsetenv("WARREN_AMQP_URL");
	}
}

/* ---- several broker addresses (a cluster's nodes) ---------------------- */

Test(conf, url_list_in_file)
{
	struct wd_conf *c = load_ok("broker {\n"
	                            "    url = {\"amqp://u:p@n1:5672\", "
	                            "\"amqp://u:p@n2:5673\",\n"
	                            "           \"amqps://u:p@n3\"}\n"
	                            "}\n" BASE);

	cr_assert_eq(c->broker.nurls, 3);
	cr_expect_str_eq(c->broker.urls[0], "amqp://u:p@n1:5672");
	cr_expect_str_eq(c->broker.urls[1], "amqp://u:p@n2:5673");
	cr_expect_str_eq(c->broker.urls[2], "amqps://u:p@n3");
	wd_conf_free(c);
}

Test(conf, url_list_from_env_split_on_spaces_and_commas)
{
	struct wd_conf *c;

	setenv("WARREN_AMQP_URL", " amqp://a@n1, amqp://a@n2  amqp://a@n3,", 1);
	c = load_ok(BASE);
	unsetenv("WARREN_AMQP_URL");
	cr_assert_eq(c->broker.nurls, 3);
	cr_expect_str_eq(c->broker.urls[0], "amqp://a@n1");
	cr_expect_str_eq(c->broker.urls[1], "amqp://a@n2");
	cr_expect_str_eq(c->broker.urls[2], "amqp://a@n3");
	wd_conf_free(c);
}

Test(conf, bad_url_in_list_named_by_position)
{
	expect_error(
	    BASE "broker {\n"
	         "    url = {\"amqp://a@n1\", \"amqp://a@n2:x\"}\n"
	         "}\n",
	    12,
	    "broker: url 2 of 2 is not a valid amqp:// or amqps:// URL "
	    "(host, port, percent escapes)");
	expect_error(BASE "broker {\n"
	                  "    url = {\"amqp://a@n1\", \"http://n2\"}\n"
	                  "}\n",
	             12,
	             "broker: url 2 of 2 must start with amqp:// or amqps://");
}

Test(conf, empty_url_list_refused)
{
	expect_error(BASE "broker {\n"
	                  "    url = {}\n"
	                  "}\n",
	             /* An empty list leaves no line of its own: the section's
	              * end. */
	             13, "broker: url is an empty list");
}

Test(conf, url_list_change_needs_a_new_pool)
{
	struct wd_conf *a =
	    load_ok("broker {\n"
	            "    url = {\"amqp://a@n1\", \"amqp://a@n2\"}\n"
	            "}\n" BASE);
	struct wd_conf *b =
	    load_ok("broker {\n"
	            "    url = {\"amqp://a@n1\", \"amqp://a@n2\"}\n"
	            "}\n" BASE);
	struct wd_conf *c =
	    load_ok("broker {\n"
	            "    url = {\"amqp://a@n2\", \"amqp://a@n1\"}\n"
	            "}\n" BASE);
	struct wd_conf *d = load_ok("broker {\n"
	                            "    url = \"amqp://a@n1\"\n"
	                            "}\n" BASE);

	cr_expect(wd_conf_same_pool(a, b));
	cr_expect_not(wd_conf_same_pool(a, c));
	cr_expect_not(wd_conf_same_pool(a, d));
	wd_conf_free(a);
	wd_conf_free(b);
	wd_conf_free(c);
	wd_conf_free(d);
}

/* ---- handler_timeout_warn -------------------------------------------- */

Test(conf, handler_timeout_warn_default_policy_and_route)
{
	struct wd_conf *c = load_ok(BASE);

	cr_expect_eq(c->routes[0].policy.handler_warn_ms, 300000,
	             "default: 5 min, well below the broker's 30");
	wd_conf_free(c);
	c = load_ok("policy { handler_timeout_warn = 60 }\n" BASE
	            "route \"own\" { queue = \"q\" plugin = \"p\" handler = "
	            "\"h\"\n    handler_timeout_warn = 2 }\n"
	            "route \"off\" { queue = \"q\" plugin = \"p\" handler = "
	            "\"h\"\n    handler_timeout_warn = 0 }\n");
	cr_assert_eq(c->nroutes, 3);
	cr_expect_eq(c->routes[0].policy.handler_warn_ms, 60000, "policy's");
	cr_expect_eq(c->routes[1].policy.handler_warn_ms, 2000, "route's");
	cr_expect_eq(c->routes[2].policy.handler_warn_ms, 0, "0: off");
	wd_conf_free(c);
}

Test(conf, handler_timeout_warn_out_of_range)
{
	expect_error("policy { handler_timeout_warn = -1 }\n" BASE, 1,
	             "handler_timeout_warn: -1 is out of range 0..86400");
	expect_error(BASE "route \"r\" { queue = \"q\" plugin = \"p\" handler "
	                  "= \"h\"\n    handler_timeout_warn = 86401 }\n",
	             12,
	             "handler_timeout_warn: 86401 is out of range 0..86400");
}

/* ---- concurrency and the prefetch that follows from it ---------------- */

Test(conf, concurrency_default_and_value)
{
	struct wd_conf *c = load_ok(BASE);

	cr_expect_eq(c->routes[0].policy.concurrency, 0, "default: no limit");
	cr_expect_eq(c->queues[0].prefetch, WD_PREFETCH_AUTO,
	             "broker.prefetch");
	wd_conf_free(c);
	c = load_ok(ROUTE_OPEN "    concurrency = 3\n"
	                       "}\n");
	cr_expect_eq(c->routes[0].policy.concurrency, 3);
	wd_conf_free(c);
}

Test(conf, concurrency_out_of_range)
{
	expect_error(ROUTE_OPEN "    concurrency = -1\n"
	                        "}\n",
	             9, "concurrency: -1 is out of range 0..1024");
	expect_error(ROUTE_OPEN "    concurrency = 1025\n"
	                        "}\n",
	             9, "concurrency: 1025 is out of range 0..1024");
}

/* A limit above workers would never bind: refused, at its own line. */
Test(conf, concurrency_above_workers)
{
	expect_error("workers = 2\n" ROUTE_OPEN "    max_attempts = 2\n"
	             "    concurrency = 3\n"
	             "}\n",
	             11,
	             "route \"t\": concurrency (3) is more than workers (2): "
	             "at most 2 calls run at once anyway");
	struct wd_conf *c =
	    load_ok("workers = 2\n" ROUTE_OPEN "    concurrency = 2\n"
	            "}\n");
	wd_conf_free(c);
}

/* Two routes with limits on one queue, pool_size 2 (2 consumers): 2 x
 * (3 + 2 x 5) / 2 = 13 per consumer; a route without limit, or an
 * explicit prefetch, and the rule does not apply. */
Test(conf, prefetch_follows_from_concurrency)
{
	const char *routes =
	    "plugin \"p\" { path = \"p.so\" }\n"
	    "route \"a\" { queue = \"q\" plugin = \"p\" handler = \"h\" "
	    "concurrency = 3 }\n"
	    "route \"b\" { queue = \"q\" plugin = \"p\" handler = \"h\" "
	    "concurrency = 2 batch_size = 5 }\n";
	char text[2048];
	struct wd_conf *c;

	snprintf(text, sizeof(text),
	         "queue \"q\" { dead_letter_exchange = \"dlx\" }\n%s", routes);
	c = load_ok(text);
	cr_expect_eq(c->queues[0].consumers, 2);
	cr_expect_eq(c->queues[0].prefetch, 13);
	wd_conf_free(c);

	/* One consumer: all of it. */
	snprintf(text, sizeof(text),
	         "queue \"q\" { dead_letter_exchange = \"dlx\" consumers = 1 "
	         "}\n%s",
	         routes);
	c = load_ok(text);
	cr_expect_eq(c->queues[0].prefetch, 26);
	wd_conf_free(c);

	/* An explicit prefetch wins. */
	snprintf(text, sizeof(text),
	         "queue \"q\" { dead_letter_exchange = \"dlx\" prefetch = 7 "
	         "}\n%s",
	         routes);
	c = load_ok(text);
	cr_expect_eq(c->queues[0].prefetch, 7);
	wd_conf_free(c);

	/* One route without a limit: broker.prefetch. */
	snprintf(text, sizeof(text),
	         "broker { prefetch = 40 }\n"
	         "queue \"q\" { dead_letter_exchange = \"dlx\" }\n%s"
	         "route \"c\" { queue = \"q\" plugin = \"p\" handler = \"h\" "
	         "}\n",
	         routes);
	c = load_ok(text);
	cr_expect_eq(c->queues[0].prefetch, 40);
	wd_conf_free(c);

	/* Odd totals round up: 2 x 1 / 2 consumers = 1, never 0. */
	c = load_ok(
	    "queue \"q\" { dead_letter_exchange = \"dlx\" }\n"
	    "plugin \"p\" { path = \"p.so\" }\n"
	    "route \"a\" { queue = \"q\" plugin = \"p\" handler = \"h\" "
	    "concurrency = 1 }\n"
	    "broker { pool_size = 3 }\n");
	cr_expect_eq(c->queues[0].consumers, 3);
	cr_expect_eq(c->queues[0].prefetch, 1);
	wd_conf_free(c);
}

/* ---- prefetch = "auto" ------------------------------------------------ */

/* The defaults: a static 10 (for now), auto's bounds 10..1000. */
Test(conf, prefetch_auto_defaults)
{
	struct wd_conf *c = load_ok(BASE);

	cr_expect_eq(c->broker.prefetch, WD_PREFETCH_DEFAULT);
	cr_expect_eq(c->broker.prefetch_min, 10);
	cr_expect_eq(c->broker.prefetch_max, 1000);
	cr_expect_eq(c->queues[0].prefetch_min, 10);
	cr_expect_eq(c->queues[0].prefetch_max, 1000);
	wd_conf_free(c);
}

/* "auto", quoted or not, in the broker section and per queue; a queue's
 * bounds override the broker's; a queue's number overrides broker auto. */
Test(conf, prefetch_auto_broker_and_queue)
{
	struct wd_conf *c = load_ok("broker {\n"
	                            "    prefetch = \"auto\"\n"
	                            "    prefetch_min = 5\n"
	                            "    prefetch_max = 300\n"
	                            "}\n" BASE "queue \"r\" {\n"
	                            "    prefetch = 7\n"
	                            "}\n"
	                            "queue \"s\" {\n"
	                            "    prefetch = auto\n"
	                            "    prefetch_max = 50\n"
	                            "}\n");

	cr_expect_eq(c->broker.prefetch, WD_PREFETCH_AUTO);
	cr_expect_eq(c->queues[0].prefetch, WD_PREFETCH_AUTO, "broker's");
	cr_expect_eq(c->queues[0].prefetch_min, 5);
	cr_expect_eq(c->queues[0].prefetch_max, 300);
	cr_expect_eq(c->queues[1].prefetch, 7);
	cr_expect_eq(c->queues[2].prefetch, WD_PREFETCH_AUTO);
	cr_expect_eq(c->queues[2].prefetch_min, 5);
	cr_expect_eq(c->queues[2].prefetch_max, 50);
	/* The ack batch's cap under auto: half of prefetch_max. */
	cr_expect_eq(wd_conf_ack_batch(c, &c->queues[0]), 100);
	cr_expect_eq(wd_conf_ack_batch(c, &c->queues[2]), 25);
	wd_conf_free(c);
}

Test(conf, prefetch_neither_number_nor_auto)
{
	expect_error("broker {\n"
	             "    prefetch = \"fast\"\n"
	             "}\n" BASE,
	             2, "prefetch: \"fast\" is neither a number nor \"auto\"");
}

Test(conf, prefetch_max_below_min)
{
	expect_error("broker {\n"
	             "    prefetch = auto\n"
	             "    prefetch_min = 50\n"
	             "    prefetch_max = 20\n"
	             "}\n" BASE,
	             4, "prefetch_max: 20 is below prefetch_min 50");
}

Test(conf, queue_prefetch_max_below_broker_min)
{
	expect_error(BASE "queue \"r\" {\n"
	                  "    prefetch = auto\n"
	                  "    prefetch_max = 5\n"
	                  "}\n",
	             13,
	             "queue \"r\": prefetch_max 5 is below prefetch_min 10");
}

Test(conf, prefetch_min_out_of_range)
{
	expect_error("broker {\n"
	             "    prefetch_min = 0\n"
	             "}\n" BASE,
	             2, "prefetch_min: 0 is out of range 1..65535");
}

/* A reload that switches auto and a number, or auto's bounds, changes
 * the consumer (it is re-created); the same auto keeps it. */
Test(conf, prefetch_auto_is_part_of_the_consumer)
{
	struct wd_conf *a = load_ok("broker { prefetch = auto }\n" BASE);
	struct wd_conf *b = load_ok("broker { prefetch = auto }\n" BASE);
	struct wd_conf *n = load_ok("broker { prefetch = 10 }\n" BASE);
	struct wd_conf *m =
	    load_ok("broker { prefetch = auto prefetch_max = 20 }\n" BASE);

	cr_expect(wd_conf_same_consumer(a, 0, b, 0));
	cr_expect_not(wd_conf_same_consumer(a, 0, n, 0));
	cr_expect_not(wd_conf_same_consumer(n, 0, a, 0));
	cr_expect_not(wd_conf_same_consumer(a, 0, m, 0));
	wd_conf_free(a);
	wd_conf_free(b);
	wd_conf_free(n);
	wd_conf_free(m);
}
