/*
 * orders_validate.c - the checks of the order application's follow-ups.
 */
#include "orders_validate.h"

#include <stdio.h>

#include "../common/order_validate.h"

static int fail(char *why, size_t whylen, const char *type, const char *reason)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s: %s", type, reason);
	return -1;
}

static int ids(const json_t *obj, char *why, size_t whylen, const char *type,
               int want_user)
{
	if (!json_is_object(obj))
		return fail(why, whylen, type, "body must be a JSON object");
	if (!order_id_present(json_object_get(obj, "orderId")))
		return fail(why, whylen, type,
		            "orderId must be a non-empty string or an integer");
	if (want_user && !order_id_present(json_object_get(obj, "userId")))
		return fail(why, whylen, type,
		            "userId must be a non-empty string or an integer");
	return 0;
}

int payment_validate(const json_t *obj, char *why, size_t whylen)
{
	const char *type = "payment.process";
	const json_t *amount;

	if (ids(obj, why, whylen, type, 1) < 0)
		return -1;
	amount = json_object_get(obj, "amount");
	if (!json_is_number(amount) || json_number_value(amount) < 0)
		return fail(why, whylen, type,
		            "amount must be a number, not negative");
	return 0;
}

int reserve_validate(const json_t *obj, char *why, size_t whylen)
{
	const char *type = "inventory.reserve";
	const json_t *items;

	if (ids(obj, why, whylen, type, 0) < 0)
		return -1;
	items = json_object_get(obj, "items");
	if (!json_is_array(items) || json_array_size(items) == 0)
		return fail(why, whylen, type,
		            "items must be a non-empty array");
	return 0;
}

int order_notice_validate(const json_t *obj, char *why, size_t whylen)
{
	const char *type = "notification.send";
	const json_t *event;

	if (ids(obj, why, whylen, type, 1) < 0)
		return -1;
	event = json_object_get(obj, "event");
	if (!json_is_string(event) || json_string_length(event) == 0)
		return fail(why, whylen, type,
		            "event must be a non-empty string");
	return 0;
}
