/*
 * test_plugin_validation.c - the checks of the example plugins
 * (plugins/<name>/<x>_validate.c), linked directly, without a plugin or a
 * runtime: each case asserts both the verdict and that the reason names
 * the field that failed.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <string.h>

#include "email_validate.h"
#include "notification_validate.h"
#include "order_validate.h"
#include "orders_validate.h"
#include "signup_validate.h"
#include "stock.h"

typedef int (*validate_fn)(const json_t *, char *, size_t);

/* Parse `text` (a test's literal, so a parse error is the test's bug). */
static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	cr_assert_not_null(j, "bad test JSON at %d: %s", e.position, e.text);
	return j;
}

static void expect_ok(validate_fn fn, const char *text)
{
	json_t *j = parse(text);
	char why[256] = "untouched";

	cr_expect_eq(fn(j, why, sizeof(why)), 0, "%s: rejected: %s", text, why);
	json_decref(j);
}

/* `needle` is a piece of the reason that names the field, e.g.
 * "order:created: items " (with the space, so "items" cannot match the
 * inside of another word). */
static void expect_bad(validate_fn fn, const char *text, const char *needle)
{
	json_t *j = parse(text);
	char why[256] = "";

	cr_expect_eq(fn(j, why, sizeof(why)), -1, "%s: accepted", text);
	cr_expect_not_null(strstr(why, needle),
	                   "%s: reason \"%s\" does not name \"%s\"", text, why,
	                   needle);
	json_decref(j);
}

#define ORDER_ITEMS "\"items\": [{\"sku\": \"A1\", \"qty\": 2}]"

Test(order_validate, valid_integer_ids_real_amount)
{
	expect_ok(order_validate,
	          "{\"orderId\": 1001, \"userId\": 42, " ORDER_ITEMS
	          ", \"totalAmount\": 59.98}");
}

Test(order_validate, valid_string_ids_integer_amount_zero)
{
	expect_ok(order_validate,
	          "{\"orderId\": \"o-1\", \"userId\": \"u-1\", " ORDER_ITEMS
	          ", \"totalAmount\": 0}");
}

Test(order_validate, missing_order_id)
{
	expect_bad(order_validate,
	           "{\"userId\": 42, " ORDER_ITEMS ", \"totalAmount\": 10}",
	           "order:created: orderId ");
}

Test(order_validate, order_id_wrong_type)
{
	expect_bad(order_validate,
	           "{\"orderId\": true, \"userId\": 42, " ORDER_ITEMS
	           ", \"totalAmount\": 10}",
	           "order:created: orderId ");
}

Test(order_validate, order_id_empty_string)
{
	expect_bad(order_validate,
	           "{\"orderId\": \"\", \"userId\": 42, " ORDER_ITEMS
	           ", \"totalAmount\": 10}",
	           "order:created: orderId ");
}

Test(order_validate, missing_user_id)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, " ORDER_ITEMS ", \"totalAmount\": 10}",
	           "order:created: userId ");
}

Test(order_validate, missing_items)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, \"userId\": 42, \"totalAmount\": 10}",
	           "order:created: items ");
}

Test(order_validate, items_not_array)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, \"userId\": 42, "
	           "\"items\": {\"sku\": \"A1\"}, \"totalAmount\": 10}",
	           "order:created: items ");
}

Test(order_validate, items_empty)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, \"userId\": 42, "
	           "\"items\": [], \"totalAmount\": 10}",
	           "order:created: items must be a non-empty array");
}

Test(order_validate, missing_total_amount)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, \"userId\": 42, " ORDER_ITEMS "}",
	           "order:created: totalAmount ");
}

Test(order_validate, total_amount_string)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, \"userId\": 42, " ORDER_ITEMS
	           ", \"totalAmount\": \"59.98\"}",
	           "order:created: totalAmount must be a number");
}

Test(order_validate, total_amount_negative)
{
	expect_bad(order_validate,
	           "{\"orderId\": 1, \"userId\": 42, " ORDER_ITEMS
	           ", \"totalAmount\": -0.01}",
	           "order:created: totalAmount must not be negative");
}

Test(order_validate, not_an_object)
{
	json_t *j = parse("[1, 2]");
	char why[256] = "";

	cr_expect_eq(order_validate(j, why, sizeof(why)), -1);
	cr_expect_eq(order_validate(NULL, why, sizeof(why)), -1);
	cr_expect_not_null(strstr(why, "body"), "reason: %s", why);
	json_decref(j);
}

Test(order_validate, reason_is_cut_and_terminated)
{
	json_t *j = parse("{}");
	char why[8];

	memset(why, 'x', sizeof(why));
	cr_expect_eq(order_validate(j, why, sizeof(why)), -1);
	cr_expect_eq(why[sizeof(why) - 1], '\0');
	/* A NULL reason buffer is allowed. */
	cr_expect_eq(order_validate(j, NULL, 0), -1);
	json_decref(j);
}

Test(signup_validate, valid_integer_id)
{
	expect_ok(signup_validate,
	          "{\"userId\": 42, \"email\": \"ada@example.com\"}");
}

Test(signup_validate, valid_string_id)
{
	expect_ok(signup_validate,
	          "{\"userId\": \"u-42\", \"email\": \"ada@example.com\"}");
}

Test(signup_validate, missing_email)
{
	expect_bad(signup_validate, "{\"userId\": 42}", "user:signup: email ");
}

Test(signup_validate, email_not_string)
{
	expect_bad(signup_validate, "{\"userId\": 42, \"email\": 7}",
	           "user:signup: email ");
}

Test(signup_validate, missing_user_id)
{
	expect_bad(signup_validate, "{\"email\": \"ada@example.com\"}",
	           "user:signup: userId ");
}

Test(email_validate, valid)
{
	expect_ok(email_validate, "{\"to\": \"ada@example.com\", "
	                          "\"subject\": \"hi\"}");
}

Test(email_validate, missing_to)
{
	expect_bad(email_validate, "{\"subject\": \"hi\"}",
	           "email:send: to must be a string");
}

Test(email_validate, to_not_string)
{
	expect_bad(email_validate, "{\"to\": 5}",
	           "email:send: to must be a string");
}

Test(email_validate, to_without_at)
{
	expect_bad(email_validate, "{\"to\": \"ada.example.com\"}",
	           "email:send: to must be an email address");
}

Test(email_validate, to_with_nul_rejected)
{
	/* "ada\0@example.com" would reach a mailer as "ada": refuse it. */
	json_error_t e;
	json_t *j = json_loads("{\"to\": \"ada\\u0000@example.com\"}",
	                       JSON_ALLOW_NUL, &e);
	char why[256] = "";

	cr_assert_not_null(j, "bad test JSON: %s", e.text);
	cr_expect_eq(email_validate(j, why, sizeof(why)), -1);
	cr_expect_not_null(strstr(why, "email:send: to "), "reason: %s", why);
	json_decref(j);
}

/* The order application's order.created: the same rules, its own name. */
static int order_dotted(const json_t *j, char *why, size_t len)
{
	return order_validate_as("order.created", j, why, len);
}

Test(order_validate, dotted_type_named_in_the_reason)
{
	expect_ok(order_dotted,
	          "{\"orderId\": \"o-1\", \"userId\": \"u\", " ORDER_ITEMS
	          ", \"totalAmount\": 1}");
	expect_bad(order_dotted,
	           "{\"orderId\": \"o-1\", \"userId\": \"u\", "
	           "\"items\": [], \"totalAmount\": 1}",
	           "order.created: items ");
}

Test(orders_validate, payment)
{
	expect_ok(payment_validate,
	          "{\"orderId\": \"o-1\", \"userId\": 3, \"amount\": 9.5}");
	expect_bad(payment_validate, "{\"orderId\": \"o-1\", \"amount\": 9.5}",
	           "payment.process: userId ");
	expect_bad(payment_validate,
	           "{\"orderId\": \"o-1\", \"userId\": 3, \"amount\": -1}",
	           "payment.process: amount ");
}

Test(orders_validate, reserve_and_notice)
{
	expect_ok(reserve_validate, "{\"orderId\": 1, " ORDER_ITEMS "}");
	expect_bad(reserve_validate, "{\"orderId\": 1, \"items\": {}}",
	           "inventory.reserve: items ");
	expect_ok(order_notice_validate,
	          "{\"orderId\": 1, \"userId\": 2, \"event\": \"paid\"}");
	expect_bad(order_notice_validate,
	           "{\"orderId\": 1, \"userId\": 2, \"event\": \"\"}",
	           "notification.send: event ");
}

#define NOTE_OK                                                                \
	"\"id\": \"n-1\", \"recipient\": \"ada@example.com\", \"message\": "   \
	"\"hi\", \"timestamp\": \"2026-01-01T00:00:00Z\", \"attempts\": 0, "   \
	"\"maxAttempts\": 3"

static int note_email(const json_t *j, char *why, size_t len)
{
	return notification_validate("email", j, why, len);
}

static int note_sms(const json_t *j, char *why, size_t len)
{
	return notification_validate("sms", j, why, len);
}

Test(notification_validate, the_tutorials_shape)
{
	expect_ok(note_email,
	          "{" NOTE_OK ", \"type\": \"email\", \"priority\": "
	          "\"high\"}");
	expect_ok(note_sms, "{" NOTE_OK ", \"type\": \"sms\", \"priority\": "
	                    "\"normal\"}");
}

Test(notification_validate, each_field_named)
{
	expect_bad(note_email,
	           "{" NOTE_OK ", \"type\": \"email\", \"priority\": "
	           "\"urgent\"}",
	           "notification.email: priority ");
	expect_bad(note_email,
	           "{" NOTE_OK ", \"type\": \"sms\", \"priority\": "
	           "\"high\"}",
	           "notification.email: type ");
	expect_bad(note_email,
	           "{\"id\": \"n\", \"type\": \"email\", "
	           "\"recipient\": \"nobody\", \"message\": \"m\", "
	           "\"priority\": \"high\", \"timestamp\": \"t\"}",
	           "notification.email: recipient must be an e-mail");
	expect_bad(note_sms,
	           "{\"type\": \"sms\", \"recipient\": \"+1\", "
	           "\"message\": \"m\", \"priority\": \"high\", "
	           "\"timestamp\": \"t\"}",
	           "notification.sms: id ");
	expect_bad(note_sms,
	           "{\"id\": 1, \"type\": \"sms\", \"recipient\": "
	           "\"+1\", \"message\": \"m\", \"priority\": "
	           "\"high\", \"timestamp\": \"t\", \"attempts\": -1}",
	           "notification.sms: attempts ");
}

/* The order application's inventory (plugins/orders/stock.c). */
static int stock_verdict(struct stock *st, int reserve, const char *items,
                         char *why, size_t len)
{
	json_t *j = parse(items);
	int rc = reserve ? stock_reserve(st, "t", j, why, len)
	                 : stock_check(st, "t", j, why, len);

	json_decref(j);
	return rc;
}

Test(stock, missing_items_named_duplicates_summed_reserve_all_or_none)
{
	struct stock st;
	char err[256] = "", why[512] = "";

	cr_assert_eq(stock_init(&st, "p-1:3,7:1", err, sizeof(err)), 0, "%s",
	             err);
	cr_expect_eq(
	    stock_verdict(&st, 0,
	                  "[{\"productId\": \"p-1\", \"quantity\": 2}, "
	                  "{\"productId\": 7, \"quantity\": 1}]",
	                  why, sizeof(why)),
	    0, "%s", why);
	/* p-1 twice: 2 + 2 wanted, 3 there; p-9 unknown. */
	cr_expect_eq(
	    stock_verdict(&st, 1,
	                  "[{\"productId\": \"p-1\", \"quantity\": 2}, "
	                  "{\"productId\": \"p-9\", \"quantity\": 1}, "
	                  "{\"productId\": \"p-1\", \"quantity\": 2}]",
	                  why, sizeof(why)),
	    -1);
	cr_expect_str_eq(why, "t: out of stock: p-1 (want 4, have 3), p-9 "
	                      "(want 1, have 0)");
	/* Nothing was taken by the refused reservation. */
	cr_expect_eq(
	    stock_verdict(&st, 1, "[{\"productId\": \"p-1\", \"quantity\": 3}]",
	                  why, sizeof(why)),
	    0, "%s", why);
	cr_expect_eq(
	    stock_verdict(&st, 0, "[{\"productId\": \"p-1\", \"quantity\": 1}]",
	                  why, sizeof(why)),
	    -1);
	cr_expect_eq(stock_verdict(&st, 0,
	                           "[{\"productId\": \"p-1\", \"quantity\": "
	                           "1.5}]",
	                           why, sizeof(why)),
	             -2);
	cr_expect(strstr(why, "items[0].quantity ") != NULL, "%s", why);
	/* Quantities whose sum passes the integer's limit: refused, not
	 * wrapped into a sum the stock would satisfy (UBSan sees a wrap). */
	cr_expect_eq(stock_verdict(&st, 1,
	                           "[{\"productId\": \"p-1\", \"quantity\": "
	                           "9223372036854775807}, {\"productId\": "
	                           "\"p-1\", \"quantity\": "
	                           "9223372036854775807}]",
	                           why, sizeof(why)),
	             -1);
	cr_expect(strstr(why, "p-1 (want 9223372036854775807, have 0)") != NULL,
	          "%s", why);
	stock_fini(&st);
	cr_expect_eq(stock_init(&st, "p-1", err, sizeof(err)), -1);
	cr_expect(strstr(err, "productId:quantity") != NULL, "%s", err);
}
