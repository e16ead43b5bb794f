/*
 * email_validate.c - the checks of an email:send message.
 */
#include "email_validate.h"

#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t whylen, const char *reason)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "email:send: %s", reason);
	return -1;
}

int email_validate(const json_t *obj, char *why, size_t whylen)
{
	const json_t *to;

	if (!json_is_object(obj))
		return fail(why, whylen, "body must be a JSON object");
	to = json_object_get(obj, "to");
	if (!json_is_string(to))
		return fail(why, whylen, "to must be a string");
	/* A JSON string may hold "\u0000" (if the body was parsed with
	 * JSON_ALLOW_NUL); every C API a mailer hands the address to would
	 * cut it there, so such an address is not the one the sender meant. */
	if (strlen(json_string_value(to)) != json_string_length(to))
		return fail(why, whylen, "to must not contain a NUL byte");
	if (strchr(json_string_value(to), '@') == NULL)
		return fail(why, whylen,
		            "to must be an email address (no '@' in it)");
	return 0;
}
