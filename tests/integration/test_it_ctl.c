/* warrenctl against a running warrend: status and top --once show the
 * queue, route and slots; report writes a JSON snapshot with system
 * information; against a stopped daemon top says "disconnected". */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "harness.h"

#define WAIT_MS 30000

/* Run a tool of this build with args (within 60 s); returns its exit code
 * and its stdout+stderr in *out. */
static int run_tool(const char *tool, const char *args, char **out)
{
	char cmd[1200], buf[1024];
	size_t len = 0;
	FILE *o = open_memstream(out, &len), *p;
	int st;

	snprintf(cmd, sizeof(cmd), "timeout 60 '%s/%s' %s 2>&1", it_build_dir(),
	         tool, args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (fgets(buf, sizeof(buf), p))
		fputs(buf, o);
	fclose(o);
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int ctl(const char *args, char **out)
{
	return run_tool("warrenctl", args, out);
}

Test(ctl, status_top_and_report, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char plugin[512], args[1024], *out, path[512];

	snprintf(plugin, sizeof(plugin), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_names_init(&n, "ctl");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	amqp_connection_state_t c = it_connect();
	for (int i = 0; i < 5; i++)
		it_publish_str(c, n.x, "k", "{\"type\":\"t:flow\",\"id\":1}");
	it_publish_str(c, n.x, "k",
	               "{\"type\":\"t:flow\",\"id\":2,\"reject\":"
	               "true}");
	it_close(c);
	cr_assert_eq(it_wait_queue(n.dlq, 1, WAIT_MS), 1);
	cr_assert_eq(it_log_wait(&d, "flow id=1", 5, WAIT_MS), 5);

	snprintf(args, sizeof(args), "--url http://127.0.0.1:%d status", port);
	cr_expect_eq(ctl(args, &out), 0, "%s", out);
	cr_expect(strstr(out, n.q) != NULL, "no queue in: %s", out);
	cr_expect(strstr(out, "t:flow p/flow") != NULL, "no route in: %s", out);
	cr_expect(strstr(out, "0 consuming") && strstr(out, "1 consuming"),
	          "%s", out);
	cr_expect(strstr(out, "dead-letters 1 (totals)") != NULL, "%s", out);
	/* 80 columns at most. */
	for (char *l = out; l && *l;) {
		char *e = strchr(l, '\n');
		size_t w = e ? (size_t)(e - l) : strlen(l);
		cr_expect_leq(w, 80, "a line of %zu columns: %.*s", w, (int)w,
		              l);
		l = e ? e + 1 : NULL;
	}
	free(out);

	snprintf(args, sizeof(args),
	         "--url http://127.0.0.1:%d top --once --error-pct 1", port);
	cr_expect_eq(ctl(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "QUEUE / ROUTE") != NULL, "%s", out);
	free(out);

	snprintf(path, sizeof(path), "%s/report.json", it_tmp_dir());
	snprintf(args, sizeof(args), "--url http://127.0.0.1:%d report '%s'",
	         port, path);
	cr_expect_eq(ctl(args, &out), 0, "%s", out);
	free(out);
	json_error_t err;
	json_t *r = json_load_file(path, 0, &err);
	cr_assert_not_null(r, "report: %s", err.text);
	cr_expect(json_is_string(
	    json_object_get(json_object_get(r, "system"), "kernel")));
	json_t *st = json_object_get(r, "status");
	cr_expect(json_is_string(json_object_get(st, "version")));
	cr_expect_gt(json_number_value(json_object_get(
	                 json_object_get(st, "process"), "uptime_s")),
	             0);
	cr_expect_eq(json_integer_value(json_object_get(
	                 json_object_get(st, "totals"), "received")),
	             6);
	json_decref(r);

	free(it_stop_and_log(&d));
	/* The daemon is gone: said so, not a crash. */
	snprintf(args, sizeof(args), "--url http://127.0.0.1:%d top --once",
	         port);
	cr_expect_eq(ctl(args, &out), 1, "%s", out);
	cr_expect(strstr(out, "disconnected from http://127.0.0.1:") != NULL,
	          "%s", out);
	free(out);
	cr_expect_eq(ctl("--url nope status", &out), 1, "%s", out);
	cr_expect(strstr(out, "not http://HOST:PORT") != NULL, "%s", out);
	free(out);
	cr_expect_eq(ctl("frobnicate", &out), 2, "%s", out);
	free(out);
	it_names_delete(&n);
	free(conf);
}

/* warren-load against the test broker. */
static int load(const char *args, char **out)
{
	char all[1100];

	snprintf(all, sizeof(all), "--url '%s' %s", it_url(), args);
	return run_tool("warren-load", all, out);
}

Test(ctl, load_publishes_exactly_n_at_the_rate_asked, .timeout = 90)
{
	char q[128], args[512], *out;
	long sent = -1, conf = -1;
	double secs = 0, rate = 0;

	it_unique(q, sizeof(q), "ctl.load");
	amqp_connection_state_t c = it_connect();
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 0, 0, 0,
	                   amqp_empty_table);
	cr_assert_eq(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	it_close(c);

	snprintf(args, sizeof(args),
	         "--queue '%s' --count 1500 --rate 500 --publishers 3 "
	         "--type order:created --size 300 --persistent",
	         q);
	cr_assert_eq(load(args, &out), 0, "%s", out);
	const char *sum = strstr(out, "summary: ");
	cr_assert_not_null(sum, "%s", out);
	cr_assert_eq(sscanf(sum,
	                    "summary: sent %ld confirmed %ld nacked %*d "
	                    "returned %*d in %lf s: %lf msg/s",
	                    &sent, &conf, &secs, &rate),
	             4, "%s", sum);
	cr_expect_eq(sent, 1500);
	cr_expect_eq(conf, 1500);
	cr_expect(rate > 450 && rate < 550, "%.1f msg/s for 500 asked", rate);
	cr_expect_eq(it_wait_queue(q, 1500, 10000), 1500,
	             "the broker holds what was confirmed");
	size_t len;
	char *body = it_get(q, &len);
	cr_assert_not_null(body);
	cr_expect_geq(len, 300, "padded to --size");
	cr_expect(strstr(body, "\"type\":\"order:created\"") != NULL, "%.*s",
	          (int)len, body);
	free(body);
	free(out);
	it_delete_queue(q);

	cr_expect_eq(load("--queue x --count 0", &out), 2, "%s", out);
	free(out);
	cr_expect_eq(load("--queue x --publishers 65", &out), 2, "%s", out);
	free(out);
}

Test(ctl, load_watches_warrend_end_to_end, .timeout = 120)
{
	struct it_names n;
	struct it_daemon d;
	char plugin[512], args[1024], *out;

	snprintf(plugin, sizeof(plugin), "%s/tests/fixtures/fx_flow.so",
	         it_build_dir());
	it_names_init(&n, "ctl.watch");
	char *conf =
	    it_conf(n.x, n.q, plugin, "t:flow=flow", NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);
	int port = it_http_port(&d);
	snprintf(args, sizeof(args),
	         "--exchange '%s' --routing-key k --type t:flow --count 600 "
	         "--rate 300 --watch http://127.0.0.1:%d",
	         n.x, port);
	cr_assert_eq(load(args, &out), 0, "%s", out);
	cr_expect(strstr(out, "e2e p99") != NULL, "%s", out);
	cr_assert_eq(it_log_wait(&d, "flow id=", 600, WAIT_MS), 600);
	/* A row whose e2e p99 is above zero: warrend saw the send times. */
	bool seen = false;
	for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
		int sec;
		double e99 = 0;
		if (sscanf(l, "%d %*d %*d %*d %*f %*f %*f %lf", &sec, &e99) ==
		        2 &&
		    e99 > 0)
			seen = true;
	}
	cr_expect(seen, "no end-to-end latency in the rows");
	free(out);
	free(it_stop_and_log(&d));
	it_names_delete(&n);
	free(conf);
}
