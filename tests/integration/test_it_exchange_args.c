/* Exchange `arguments` in the conf against the real broker: with
 * alternate-exchange, a message no binding routes lands in the alternate
 * exchange's queue instead of vanishing; a reload that changes the argument
 * is refused by the broker (inequivalent arg) and fails cleanly, naming the
 * exchange, while the old generation keeps serving. And the passive
 * declare those checks share: an undeclared, missing dead-letter exchange
 * refuses the start. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

/* Exchange A (direct, alternate-exchange = `alt`), fanout exchanges A.alt
 * and A.alt2, each bound to a queue of its own, and queue A.routed bound to
 * A with key "known"; pasted into it_conf's conf. */
struct names {
	char a[128], alt[160], alt2[160], unrouted[160], unrouted2[160],
	    routed[160];
};

static void names_init(struct names *m)
{
	it_unique(m->a, sizeof(m->a), "xa.a");
	snprintf(m->alt, sizeof(m->alt), "%s.alt", m->a);
	snprintf(m->alt2, sizeof(m->alt2), "%s.alt2", m->a);
	snprintf(m->unrouted, sizeof(m->unrouted), "%s.unrouted", m->a);
	snprintf(m->unrouted2, sizeof(m->unrouted2), "%s.unrouted2", m->a);
	snprintf(m->routed, sizeof(m->routed), "%s.routed", m->a);
}

static void names_delete(const struct names *m)
{
	it_delete_queue(m->unrouted);
	it_delete_queue(m->unrouted2);
	it_delete_queue(m->routed);
	it_delete_exchange(m->a);
	it_delete_exchange(m->alt);
	it_delete_exchange(m->alt2);
}

static char *conf_with(const struct it_names *n, const struct names *m,
                       const char *alt)
{
	char extra[4096], path[512];

	snprintf(extra, sizeof(extra),
	         "exchange \"%s\" {\n  type = \"direct\"\n  arguments = "
	         "{\"alternate-exchange=%s\", \"x-warren-test=5\"}\n}\n"
	         "exchange \"%s\" { type = \"fanout\" }\n"
	         "exchange \"%s\" { type = \"fanout\" }\n"
	         "queue \"%s\" { }\nqueue \"%s\" { }\nqueue \"%s\" { }\n"
	         "binding { exchange = \"%s\" queue = \"%s\" }\n"
	         "binding { exchange = \"%s\" queue = \"%s\" }\n"
	         "binding { exchange = \"%s\" queue = \"%s\" key = \"known\" }",
	         m->a, alt, m->alt, m->alt2, m->unrouted, m->unrouted2,
	         m->routed, m->alt, m->unrouted, m->alt2, m->unrouted2, m->a,
	         m->routed);
	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_good.so",
	         it_build_dir());
	return it_conf(n->x, n->q, path, "t=ok", extra, NULL, NULL, NULL);
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

Test(exchange_args, alternate_exchange_takes_the_unroutable)
{
	struct it_names n;
	struct names m;
	struct it_daemon d;
	char *conf;

	it_names_init(&n, "xa");
	names_init(&m);
	conf = conf_with(&n, &m, m.alt);
	it_daemon_start(&d, conf, true);
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, m.a, "no.such.key", "{\"n\":1}");
	it_publish_str(c, m.a, "known", "{\"n\":2}");
	it_close(c);
	cr_expect_eq(it_wait_queue(m.unrouted, 1, WAIT_MS), 1,
	             "the unroutable message did not reach the alternate "
	             "exchange's queue");
	cr_expect_eq(it_wait_queue(m.routed, 1, WAIT_MS), 1);
	cr_expect_eq(it_queue_ready(m.unrouted2), 0);
	it_daemon_stop(&d);
	free(conf);
	names_delete(&m);
	it_names_delete(&n);
}

Test(exchange_args, changed_argument_fails_the_reload)
{
	struct it_names n;
	struct names m;
	struct it_daemon d;
	char *conf, *changed, *log, line[4096], want[300];

	it_names_init(&n, "xa.reload");
	names_init(&m);
	conf = conf_with(&n, &m, m.alt);
	changed = conf_with(&n, &m, m.alt2);
	it_daemon_start(&d, conf, true);
	rewrite_conf(&d, changed);
	it_daemon_signal(&d, SIGHUP);
	if (it_log_wait(&d, "reload: generation 2 failed", 1, WAIT_MS) < 1) {
		log = it_log_read(&d);
		cr_assert_fail("the reload did not fail:\n%s", log);
	}
	log = it_log_read(&d);
	cr_assert(it_log_line(log, "reload: generation 2 failed", line,
	                      sizeof(line)));
	snprintf(want, sizeof(want), "cannot declare exchange \"%s\"", m.a);
	cr_expect(strstr(line, want), "no \"%s\" in: %s", want, line);
	cr_expect(strstr(line, "inequivalent arg"), "%s", line);
	cr_expect(strstr(line, "generation 1 keeps serving"), "%s", line);
	free(log);
	/* Still routed by the first declaration. */
	amqp_connection_state_t c = it_connect();
	it_publish_str(c, m.a, "nowhere", "{\"n\":3}");
	it_close(c);
	cr_expect_eq(it_wait_queue(m.unrouted, 1, WAIT_MS), 1);
	cr_expect_eq(it_queue_ready(m.unrouted2), 0);
	/* The old generation still consumes. */
	c = it_connect();
	it_publish_str(c, n.x, "rk", "{\"type\":\"t\"}");
	it_close(c);
	cr_expect_eq(it_wait_queue(n.q, 0, WAIT_MS), 0);
	log = it_stop_and_log(&d);
	cr_expect_geq(it_exit_metric(log, "acked"), 1, "%s", log);
	free(log);
	free(changed);
	free(conf);
	names_delete(&m);
	it_names_delete(&n);
}

/* The dead-letter exchange check asks the broker the same way (one passive
 * declare for both, broker/topology.c): one neither declared nor on the
 * broker refuses the start. */
Test(exchange_args, undeclared_dead_letter_exchange_refuses_the_start)
{
	struct it_names n;
	struct it_daemon d;
	char z[128], extra[1024], path[512], want[600], *conf, *log;

	it_names_init(&n, "xa.dlx");
	it_unique(z, sizeof(z), "xa.z");
	snprintf(extra, sizeof(extra),
	         "queue \"%s\" { dead_letter_exchange = \"%s.nowhere\" }\n"
	         "route \"z\" { queue = \"%s\" plugin = \"p\" handler = "
	         "\"ok\" }",
	         z, z, z);
	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_good.so",
	         it_build_dir());
	conf = it_conf(n.x, n.q, path, "t=ok", extra, NULL, NULL, NULL);
	it_daemon_start(&d, conf, false);
	cr_assert_eq(it_daemon_wait(&d, WAIT_MS), 1,
	             "warrend did not refuse to start");
	log = it_log_read(&d);
	snprintf(want, sizeof(want),
	         "queue \"%s\": dead_letter_exchange \"%s.nowhere\" is not "
	         "declared in the conf and does not exist on the broker: ",
	         z, z);
	cr_expect(strstr(log, want), "no \"%s\" in:\n%s", want, log);
	cr_expect(strstr(log, "NOT_FOUND"), "%s", log);
	free(log);
	free(conf);
	it_delete_queue(z);
	it_names_delete(&n);
}
