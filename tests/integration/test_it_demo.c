/* ./dev.sh demo, bounded (--seconds), on a vhost of its own of the test
 * broker: both applications run on one warrend, warren-load's mixes reach
 * every route, and the final report (warrenctl summary) counts what was
 * handled, retried and dead-lettered by queue and reason. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it_apps.h"

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	cr_assert_not_null(f, "no %s", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)len + 1);
	cr_assert_not_null(text);
	cr_assert_eq(fread(text, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return text;
}

/* The report's row of a route: "  <type> <plugin>/<handler>" and then a
 * handled count above zero. */
static void expect_route(const char *out, const char *label)
{
	const char *row = strstr(out, label);
	long handled = 0;

	cr_expect_not_null(row, "no row \"%s\" in the report:\n%s", label, out);
	if (row)
		handled = strtol(row + strlen(label) + 1, NULL, 10);
	cr_expect_gt(handled, 0, "%s handled nothing:\n%s", label, out);
}

Test(demo, bounded_run_prints_the_final_report, .timeout = 300)
{
	char cmd[2048], out_path[512];

	it_apps_vhost();
	snprintf(out_path, sizeof(out_path), "%s/demo.out", it_tmp_dir());
	snprintf(cmd, sizeof(cmd),
	         "timeout -k 10 240 bash '%s/dev.sh' demo all --seconds 10 "
	         "'%s' </dev/null >'%s' 2>&1",
	         WARREN_SOURCE_DIR, it_url(), out_path);
	int rc = it_sh(cmd);
	char *out = slurp(out_path);
	cr_assert_eq(rc, 0, "./dev.sh demo exited %d:\n%s", rc, out);

	/* Both loads ran their mix, bad messages included. */
	cr_expect_not_null(strstr(out, "valid order,"), "%s", out);
	cr_expect_not_null(strstr(out, "malformed notification,"), "%s", out);
	/* The live view while it ran (status frames: not a terminal). */
	cr_expect_not_null(strstr(out, "QUEUE / ROUTE"), "%s", out);
	const char *report = strstr(out, ": final report after ");
	cr_assert_not_null(report, "no final report:\n%s", out);
	cr_expect_not_null(strstr(report, "in flight 0"), "%s", report);
	expect_route(report, "order.created orders/order_created");
	expect_route(report, "payment.process orders/payment");
	expect_route(report, "inventory.reserve orders/inventory");
	expect_route(report, "notification.send orders/notify");
	expect_route(report, "email notifications/email");
	expect_route(report, "sms notifications/sms");
	expect_route(report, "push notifications/push");
	expect_route(report, "websocket notifications/websocket");
	/* Out-of-stock and malformed orders, declined payments. */
	cr_expect_not_null(strstr(report, "order.created                       "
	                                  "     handler-reject"),
	                   "%s", report);
	cr_expect_not_null(strstr(report, "order.created                       "
	                                  "     unparseable"),
	                   "%s", report);
	cr_expect_not_null(strstr(report, "payment.process                     "
	                                  "     handler-reject"),
	                   "%s", report);
	cr_expect_not_null(strstr(report, "orders_out_of_stock"), "%s", report);
	cr_expect_not_null(strstr(report, "payments_declined"), "%s", report);
	free(out);
}
