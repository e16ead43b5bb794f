/*
 * order_validate.c - the checks of an order message, shared by the
 * real-time processor's order:created (plugins/order_created) and the order
 * application's order.created (plugins/orders): one set of rules, two type
 * names.
 */
#include "order_validate.h"

#include <stdio.h>

static int fail(char *why, size_t whylen, const char *type, const char *reason)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "%s: %s", type, reason);
	return -1;
}

/* An empty id identifies nothing (the tutorial's `!orderId` agrees). */
int order_id_present(const json_t *v)
{
	return json_is_integer(v) ||
	       (json_is_string(v) && json_string_length(v) > 0);
}

int order_validate_as(const char *type, const json_t *obj, char *why,
                      size_t whylen)
{
	const json_t *items, *total;

	if (!json_is_object(obj))
		return fail(why, whylen, type, "body must be a JSON object");
	if (!order_id_present(json_object_get(obj, "orderId")))
		return fail(why, whylen, type,
		            "orderId must be a non-empty string or an integer");
	if (!order_id_present(json_object_get(obj, "userId")))
		return fail(why, whylen, type,
		            "userId must be a non-empty string or an integer");
	items = json_object_get(obj, "items");
	if (!json_is_array(items) || json_array_size(items) == 0)
		return fail(why, whylen, type,
		            "items must be a non-empty array");
	total = json_object_get(obj, "totalAmount");
	if (!json_is_number(total))
		return fail(why, whylen, type, "totalAmount must be a number");
	/* jansson never parses NaN or infinity, so a plain compare is safe. */
	if (json_number_value(total) < 0)
		return fail(why, whylen, type,
		            "totalAmount must not be negative");
	return 0;
}

int order_validate(const json_t *obj, char *why, size_t whylen)
{
	return order_validate_as("order:created", obj, why, whylen);
}
