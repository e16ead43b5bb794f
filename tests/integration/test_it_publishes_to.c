/* publishes_to (SDK 1.4) against the real broker: an exchange a plugin
 * names at init that the conf does not declare and the broker does not have
 * refuses the start and fails a reload (the old generation keeps serving);
 * one declared by the conf, one that exists on the broker, and a standard
 * amq.* one all pass; warrend -t stays offline and names in a warning the
 * exchanges only the broker can vouch for. The plugin is
 * tests/fixtures/fx_props.c (param publishes_to). */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

static const char *props_so(void)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_props.so",
	         it_build_dir());
	return path;
}

static char *conf_naming(const struct it_names *n, const char *exchange)
{
	char params[300];

	snprintf(params, sizeof(params), "publishes_to = \"%s\"", exchange);
	return it_conf(n->x, n->q, props_so(), "t=props", NULL, NULL, NULL,
	               params);
}

static void declare_exchange(const char *name)
{
	amqp_connection_state_t c = it_connect();

	amqp_exchange_declare(c, 1, amqp_cstring_bytes(name),
	                      amqp_cstring_bytes("fanout"), 0, 0, 0, 0,
	                      amqp_empty_table);
	cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	it_close(c);
}

static void rewrite_conf(const struct it_daemon *d, const char *text)
{
	char tmp[300];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.new", d->conf);
	f = fopen(tmp, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(rename(tmp, d->conf), 0);
}

static void expect_log(const struct it_daemon *d, const char *needle)
{
	if (it_log_wait(d, needle, 1, WAIT_MS) < 1) {
		char *log = it_log_read(d);
		cr_assert_fail("no \"%s\" in the log:\n%s", needle, log);
	}
}

static void publish_id(const struct it_names *n, const char *id)
{
	amqp_basic_properties_t p = {._flags = AMQP_BASIC_MESSAGE_ID_FLAG,
	                             .message_id = amqp_cstring_bytes(id)};
	amqp_connection_state_t c = it_connect();

	it_publish_props(c, n->x, "rk", "{\"type\":\"t\"}", &p);
	it_close(c);
}

Test(publishes_to, missing_exchange_refuses_the_start)
{
	struct it_names n;
	struct it_daemon d;
	char missing[160], want[1200], *conf, *log;

	it_names_init(&n, "pt.start");
	snprintf(missing, sizeof(missing), "%s.typo", n.x);
	conf = conf_naming(&n, missing);
	it_daemon_start(&d, conf, false);
	cr_assert_eq(it_daemon_wait(&d, WAIT_MS), 1,
	             "warrend did not refuse to start");
	log = it_log_read(&d);
	snprintf(want, sizeof(want),
	         "plugin \"p\" (%s) publishes to exchange \"%s\" "
	         "(publishes_to in its init), which the conf does not "
	         "declare and the broker does not have (",
	         props_so(), missing);
	cr_expect(strstr(log, want), "no \"%s\" in:\n%s", want, log);
	cr_expect(strstr(log, "NOT_FOUND"), "%s", log);
	cr_expect(strstr(log, "create it on the broker"), "%s", log);
	cr_expect_eq(it_count(log, "started"), 0, "%s", log);
	free(log);
	free(conf);
	it_names_delete(&n);
}

Test(publishes_to, declared_existing_or_standard_exchanges_pass)
{
	struct it_names n;
	struct it_daemon d;
	char other[160], *conf, *log;
	const char *names[3];

	it_names_init(&n, "pt.pass");
	snprintf(other, sizeof(other), "%s.made-by-hand", n.x);
	declare_exchange(other);
	names[0] = n.x;   /* declared by the conf */
	names[1] = other; /* on the broker only */
	names[2] = "amq.topic";
	for (size_t i = 0; i < 3; i++) {
		conf = conf_naming(&n, names[i]);
		it_daemon_start(&d, conf, true);
		log = it_stop_and_log(&d);
		cr_expect_eq(it_count(log, "publishes to exchange"), 0,
		             "%s: %s", names[i], log);
		free(log);
		free(conf);
	}
	it_delete_exchange(other);
	it_names_delete(&n);
}

Test(publishes_to, check_mode_stays_offline_and_warns)
{
	struct it_names n;
	char missing[160], want[1200], *conf, *out;

	it_names_init(&n, "pt.t");
	snprintf(missing, sizeof(missing), "%s.elsewhere", n.x);
	/* Not on the broker, not in the conf: -t cannot know, and says so. */
	conf = conf_naming(&n, missing);
	cr_assert_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
	snprintf(want, sizeof(want),
	         "publishes to exchange \"%s\", which the conf does not "
	         "declare: warrend checks that it exists on the broker at "
	         "start and at each reload (-t does not connect)",
	         missing);
	cr_expect(strstr(out, want), "no \"%s\" in:\n%s", want, out);
	cr_expect(strstr(out, "is ok"), "%s", out);
	free(out);
	free(conf);
	/* A misspelt amq.* is not one of the standard ones. */
	conf = conf_naming(&n, "amq.topc");
	cr_assert_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
	cr_expect(strstr(out, "exchange \"amq.topc\", which the conf does "
	                      "not declare"),
	          "%s", out);
	free(out);
	free(conf);
	/* Declared by the conf, a standard one, the default: no warning. */
	const char *fine[] = {n.x, "amq.direct", ""};
	for (size_t i = 0; i < 3; i++) {
		conf = conf_naming(&n, fine[i]);
		cr_assert_eq(it_warrend_run(conf, "-t", &out), 0, "%s", out);
		cr_expect_eq(it_count(out, "publishes to exchange"), 0,
		             "\"%s\": %s", fine[i], out);
		free(out);
		free(conf);
	}
	it_names_delete(&n);
}

Test(publishes_to, missing_exchange_fails_the_reload)
{
	struct it_names n;
	struct it_daemon d;
	char missing[160], want[1200], *conf, *bad, *log;

	it_names_init(&n, "pt.reload");
	snprintf(missing, sizeof(missing), "%s.later", n.x);
	conf = conf_naming(&n, n.x);
	it_daemon_start(&d, conf, true);
	/* Only the plugin's param changes: the topology is the same, and
	 * the exchange is still checked. */
	bad = conf_naming(&n, missing);
	rewrite_conf(&d, bad);
	it_daemon_signal(&d, SIGHUP);
	expect_log(&d, "reload: generation 2 failed");
	log = it_log_read(&d);
	snprintf(want, sizeof(want),
	         "generation 1 keeps serving: plugin \"p\" (%s) publishes to "
	         "exchange \"%s\" (publishes_to in its init), which the conf "
	         "does not declare and the broker does not have",
	         props_so(), missing);
	cr_expect(strstr(log, want), "no \"%s\" in:\n%s", want, log);
	free(log);
	/* The old generation still handles messages. */
	publish_id(&n, "after-failed-reload");
	expect_log(&d, "props id=after-failed-reload ");
	/* Once the exchange exists, the same conf reloads. */
	declare_exchange(missing);
	it_daemon_signal(&d, SIGHUP);
	expect_log(&d, "reload: generation 3 ready");
	publish_id(&n, "after-good-reload");
	expect_log(&d, "props id=after-good-reload ");
	log = it_stop_and_log(&d);
	cr_expect_eq(it_queue_ready(n.dlq), 0, "%s", log);
	free(log);
	free(bad);
	free(conf);
	it_delete_exchange(missing);
	it_names_delete(&n);
}
