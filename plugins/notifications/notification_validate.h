/*
 * notification_validate.h - the checks of a notification, as the
 * tutorial's sendNotification publishes it:
 *
 *   {id, type: "email"|"sms"|"push"|"websocket", recipient, message,
 *    priority: "high"|"normal", timestamp: ISO string, attempts: 0,
 *    maxAttempts: 3}
 *
 * A pure function, apart from the plugin, so the unit tests link it alone.
 */
#ifndef NOTIFICATION_VALIDATE_H
#define NOTIFICATION_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

/*
 * notification_validate - check `obj` as a notification for `channel`
 * (e.g. "email"): id a non-empty string or an integer, type equal to the
 * channel, recipient a non-empty string (with an '@' for email), message
 * a string, priority "high" or "normal", timestamp a string, attempts and
 * maxAttempts (if present) integers >= 0.
 *
 * Returns 0 if it passes; -1 otherwise with a reason in why (whylen
 * bytes, NUL-terminated; may be NULL) that names the first field that
 * failed, e.g. "notification.email: recipient must be ...".
 */
int notification_validate(const char *channel, const json_t *obj, char *why,
                          size_t whylen);

#endif /* NOTIFICATION_VALIDATE_H */
