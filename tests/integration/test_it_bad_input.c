/* Malformed, unknown and rejected messages are dead-lettered (body
 * unchanged) while the daemon keeps serving. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

Test(bad_input, dead_lettered_and_daemon_keeps_serving, .timeout = 120)
{
	static const char *const bad[] = {
	    "not json at all",
	    "[1,2,3]",
	    "\"just a string\"",
	    "{\"id\":1}",                       /* no type */
	    "{\"type\":42}",                    /* numeric type */
	    "{\"type\":\"\"}",                  /* empty type */
	    "{\"type\":\"no:such:type\"}",      /* unknown type */
	    "{\"type\":\"fx:reject\",\"id\":3}", /* handler rejects */
	    "{\"type\":\"fx:bogus\",\"id\":4}",  /* invalid outcome */
	    "",                                  /* empty body */
	    "{\"type\":\"fx:ok\",\"bad\":\"\xff\xfe\"}", /* invalid UTF-8 */
	};
	const size_t nbad = sizeof(bad) / sizeof(bad[0]);
	char x[128], q[128], dlq[160], path[512], *conf;
	struct it_daemon d;

	snprintf(path, sizeof(path), "%s/tests/fixtures/fx_good.so",
	         it_build_dir());
	it_unique(x, sizeof(x), "bad.x");
	it_unique(q, sizeof(q), "bad.q");
	snprintf(dlq, sizeof(dlq), "%s.dlq", q);
	conf = it_conf(x, q, path, "fx:ok=ok;fx:reject=reject;fx:bogus=bogus",
	               NULL, NULL, NULL, NULL);
	it_daemon_start(&d, conf, true);

	amqp_connection_state_t c = it_connect();
	for (size_t i = 0; i < nbad; i++)
		it_publish_str(c, x, "k", bad[i]);
	/* A 10 KiB type and a deeply nested body (10,000 levels). */
	size_t n = 10240 + 64, depth = 10000;
	char *big = malloc(n), *deep = malloc(2 * depth + 64);
	int len = snprintf(big, n, "{\"type\":\"");
	memset(big + len, 'a', 10240);
	strcpy(big + len + 10240, "\"}");
	it_publish_str(c, x, "k", big);
	len = snprintf(deep, 64, "{\"type\":\"fx:ok\",\"d\":");
	memset(deep + len, '[', depth);
	memset(deep + len + depth, ']', depth);
	strcpy(deep + len + 2 * depth, "}");
	it_publish_str(c, x, "k", deep);
	/* And after all that, a good one is still handled. */
	it_publish_str(c, x, "k", "{\"type\":\"fx:ok\",\"id\":99}");
	it_close(c);

	cr_assert_eq(it_wait_queue(dlq, (long)nbad + 2, WAIT_MS), (long)nbad + 2,
	             "not every bad message reached the dead-letter queue");
	cr_assert_eq(it_wait_queue(q, 0, WAIT_MS), 0);
	it_daemon_signal(&d, SIGTERM);
	cr_assert_eq(it_daemon_wait(&d, 30000), 0);
	char *log = it_log_read(&d);
	cr_assert(strstr(log, "acked=1 "), "the good message was not acked:\n%s", log);
	cr_assert(strstr(log, "dead_lettered=13 "), "%s", log);
	cr_assert(strstr(log, "rejected: fixture reject"), "%s", log);
	cr_assert(strstr(log, "invalid outcome 99"), "%s", log);
	cr_assert(strstr(log, "unknown type \"no:such:type\""), "%s", log);
	cr_assert(strstr(log, "longer than 255"), "%s", log);
	cr_assert(strstr(log, "not a JSON object"), "%s", log);

	/* Bodies reach the dead-letter queue unchanged (in any order: two
	 * connections and several workers handle them concurrently). */
	char *got[32];
	size_t glen[32];
	for (size_t i = 0; i < nbad + 2; i++) {
		got[i] = it_get(dlq, &glen[i]);
		cr_assert(got[i], "dead-letter queue ran dry at %zu", i);
	}
	for (size_t i = 0; i < nbad; i++) {
		bool found = false;
		for (size_t j = 0; j < nbad + 2 && !found; j++)
			found = glen[j] == strlen(bad[i]) &&
			        memcmp(got[j], bad[i], glen[j]) == 0;
		cr_assert(found, "body %zu (%s) missing or changed", i, bad[i]);
	}
	for (size_t i = 0; i < nbad + 2; i++)
		free(got[i]);
	it_delete_queue(q);
	it_delete_queue(dlq);
	free(big);
	free(deep);
	free(log);
	free(conf);
}
