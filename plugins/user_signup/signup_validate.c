/*
 * signup_validate.c - the checks of a user:signup message.
 */
#include "signup_validate.h"

#include <stdio.h>

static int fail(char *why, size_t whylen, const char *reason)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "user:signup: %s", reason);
	return -1;
}

int signup_validate(const json_t *obj, char *why, size_t whylen)
{
	const json_t *id, *email;

	if (!json_is_object(obj))
		return fail(why, whylen, "body must be a JSON object");
	/* An empty id identifies nobody: treat it as missing. */
	id = json_object_get(obj, "userId");
	if (!json_is_integer(id) &&
	    !(json_is_string(id) && json_string_length(id) > 0))
		return fail(why, whylen,
		            "userId must be a non-empty string or an integer");
	email = json_object_get(obj, "email");
	if (!json_is_string(email) || json_string_length(email) == 0)
		return fail(why, whylen, "email must be a non-empty string");
	return 0;
}
