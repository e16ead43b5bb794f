/*
 * notification_validate.c - the checks of a notification.
 */
#include "notification_validate.h"

#include <stdio.h>
#include <string.h>

static int fail(char *why, size_t whylen, const char *channel,
                const char *reason)
{
	if (why != NULL && whylen > 0)
		snprintf(why, whylen, "notification.%s: %s", channel, reason);
	return -1;
}

static int nonempty(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

static int count_ok(const json_t *v)
{
	return v == NULL || (json_is_integer(v) && json_integer_value(v) >= 0);
}

int notification_validate(const char *channel, const json_t *obj, char *why,
                          size_t whylen)
{
	const json_t *id, *type, *to, *prio;

	if (!json_is_object(obj))
		return fail(why, whylen, channel, "body must be a JSON object");
	id = json_object_get(obj, "id");
	if (!json_is_integer(id) && !nonempty(id))
		return fail(why, whylen, channel,
		            "id must be a non-empty string or an integer");
	type = json_object_get(obj, "type");
	if (!json_is_string(type) || strcmp(json_string_value(type), channel))
		return fail(why, whylen, channel,
		            "type must be the channel of its queue");
	to = json_object_get(obj, "recipient");
	if (!nonempty(to))
		return fail(why, whylen, channel,
		            "recipient must be a non-empty string");
	/* strchr stops at a "\u0000": an address cut there is no address. */
	if (strcmp(channel, "email") == 0 &&
	    (strlen(json_string_value(to)) != json_string_length(to) ||
	     strchr(json_string_value(to), '@') == NULL))
		return fail(why, whylen, channel,
		            "recipient must be an e-mail address");
	if (!json_is_string(json_object_get(obj, "message")))
		return fail(why, whylen, channel, "message must be a string");
	prio = json_object_get(obj, "priority");
	if (!json_is_string(prio) ||
	    (strcmp(json_string_value(prio), "high") != 0 &&
	     strcmp(json_string_value(prio), "normal") != 0))
		return fail(why, whylen, channel,
		            "priority must be \"high\" or \"normal\"");
	if (!json_is_string(json_object_get(obj, "timestamp")))
		return fail(why, whylen, channel,
		            "timestamp must be a string (ISO 8601)");
	if (!count_ok(json_object_get(obj, "attempts")) ||
	    !count_ok(json_object_get(obj, "maxAttempts")))
		return fail(why, whylen, channel,
		            "attempts and maxAttempts must be integers >= 0");
	return 0;
}
