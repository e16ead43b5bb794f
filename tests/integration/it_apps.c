/* it_apps.c - what the tests of the example applications share. */
#include "it_apps.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *it_apps_vhost(void)
{
	static char url[512], vhost[128];
	char cmd[512];
	const char *base = it_url();
	size_t n = strlen(base);

	if (!getenv("WARREN_TEST_BROKER_DIR"))
		cr_skip_test("needs the harness's broker (rabbitmqctl) for a "
		             "vhost of its own");
	snprintf(vhost, sizeof(vhost), "apps-%d-%ld", (int)getpid(),
	         (long)time(NULL));
	snprintf(cmd, sizeof(cmd), "add_vhost %s", vhost);
	cr_assert_eq(it_broker_ctl(cmd), 0, "rabbitmqctl %s failed", cmd);
	snprintf(cmd, sizeof(cmd), "set_permissions -p %s guest '.*' '.*' '.*'",
	         vhost);
	cr_assert_eq(it_broker_ctl(cmd), 0, "rabbitmqctl %s failed", cmd);
	/* A URL without a path means vhost "/": cut any "/" or "/vh". */
	const char *slash = strchr(strstr(base, "://") + 3, '/');
	if (slash)
		n = (size_t)(slash - base);
	snprintf(url, sizeof(url), "%.*s/%s", (int)n, base, vhost);
	setenv("WARREN_TEST_AMQP_URL", url, 1);
	return vhost;
}

char *it_apps_queue_arguments(const char *vhost)
{
	char cmd[1024], path[512], *text;
	long len;
	FILE *f;

	snprintf(path, sizeof(path), "%s/list_queues.out", it_tmp_dir());
	snprintf(cmd, sizeof(cmd),
	         "bash '%s/tests/harness/broker.sh' ctl '%s' list_queues -q -p "
	         "'%s' name arguments >'%s' 2>&1",
	         WARREN_SOURCE_DIR, getenv("WARREN_TEST_BROKER_DIR"), vhost,
	         path);
	cr_assert_eq(it_sh(cmd), 0, "rabbitmqctl list_queues failed (%s)",
	             path);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)len + 1);
	cr_assert_not_null(text);
	cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return text;
}

static char *read_example(const char *file)
{
	char path[512], *text = NULL;
	size_t len = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/conf/examples/%s", WARREN_SOURCE_DIR,
	         file);
	f = fopen(path, "r");
	cr_assert_not_null(f, "cannot read %s", path);
	FILE *m = open_memstream(&text, &len);
	int ch;
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(f);
	fclose(m);
	return text;
}

/* Put `params` before the line that closes the first params block. */
static void put_with_params(FILE *out, const char *text, const char *params)
{
	const char *p = params ? strstr(text, "    params {") : NULL;
	const char *close = p ? strstr(p, "\n    }\n") : NULL;

	if (close == NULL) {
		cr_assert_null(params, "no params block to put params in");
		fputs(text, out);
		return;
	}
	fprintf(out, "%.*s\n%s", (int)(close - text), text, params);
	fputs(close, out);
}

char *it_apps_conf2(const char *file0, const char *params0, const char *file1,
                    const char *params1)
{
	const char *files[2] = {file0, file1}, *params[2] = {params0, params1};
	char *conf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&conf, &len);

	fprintf(out, "plugin_dir = \"%s/plugins\"\n", it_build_dir());
	for (int i = 0; i < 2 && files[i]; i++) {
		char *text = read_example(files[i]);
		put_with_params(out, text, params[i]);
		free(text);
	}
	fclose(out);
	return conf;
}

char *it_apps_conf(const char *file, const char *params)
{
	return it_apps_conf2(file, params, NULL, NULL);
}

void it_apps_publish(amqp_connection_state_t c, const char *exchange,
                     const char *rk, const char *id, int priority,
                     const char *body)
{
	amqp_basic_properties_t p = {0};

	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
	           AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
	           AMQP_BASIC_TIMESTAMP_FLAG;
	p.content_type = amqp_cstring_bytes("application/json");
	p.delivery_mode = 2;
	p.message_id = amqp_cstring_bytes(id);
	p.timestamp = (uint64_t)time(NULL);
	if (priority > 0) {
		p._flags |= AMQP_BASIC_PRIORITY_FLAG;
		p.priority = (uint8_t)priority;
	}
	it_publish_props(c, exchange, rk, body, &p);
}

char *it_apps_drain_dead(const char *queue)
{
	char *text = NULL, got[256], why[1024];
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	struct it_msg m;

	for (int i = 0; i < 10000 && it_get_msg(queue, &m); i++) {
		fprintf(out, "%s: %s\n",
		        it_msg_str(&m, "x-warren-reason", got, sizeof(got))
		            ? got
		            : "(no reason)",
		        it_msg_str(&m, "x-warren-reason-text", why, sizeof(why))
		            ? why
		            : "(no text)");
		it_msg_free(&m);
	}
	fclose(out);
	return text;
}

void it_apps_expect_dead(const char *dead, const char *reason, const char *text)
{
	char head[256];
	const char *line = dead;

	snprintf(head, sizeof(head), "%s: ", reason);
	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char *one = strndup(line, n);
		bool ok = strncmp(one, head, strlen(head)) == 0 &&
		          strstr(one, text) != NULL;

		free(one);
		if (ok)
			return;
		line = end ? end + 1 : NULL;
	}
	cr_expect_fail("no dead-letter \"%s%s...\" among:\n%s", head, text,
	               dead);
}
