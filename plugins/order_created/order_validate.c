/*
 * order_validate.c - the checks of an order:created message.
 */
#include "order_validate.h"

#include <stdio.h>

static int fail(char *why, size_t whylen, const char *reason)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "order:created: %s", reason);
	return -1;
}

/* An id is present if it is an integer or a string with something in it:
 * an empty id identifies nothing (the tutorial's `!orderId` agrees). */
static int id_present(const json_t *v)
{
	return json_is_integer(v) ||
	       (json_is_string(v) && json_string_length(v) > 0);
}

int order_validate(const json_t *obj, char *why, size_t whylen)
{
	const json_t *items, *total;

	if (!json_is_object(obj))
		return fail(why, whylen, "body must be a JSON object");
	if (!id_present(json_object_get(obj, "orderId")))
		return fail(why, whylen,
		            "orderId must be a non-empty string or an integer");
	if (!id_present(json_object_get(obj, "userId")))
		return fail(why, whylen,
		            "userId must be a non-empty string or an integer");
	items = json_object_get(obj, "items");
	if (!json_is_array(items) || json_array_size(items) == 0)
		return fail(why, whylen, "items must be a non-empty array");
	total = json_object_get(obj, "totalAmount");
	if (!json_is_number(total))
		return fail(why, whylen, "totalAmount must be a number");
	/* jansson never parses NaN or infinity, so a plain compare is safe. */
	if (json_number_value(total) < 0)
		return fail(why, whylen, "totalAmount must not be negative");
	return 0;
}
