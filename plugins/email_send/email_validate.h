/*
 * email_validate.h - the checks of an email:send message.
 *
 * A pure function, apart from the plugin, so the unit tests link it alone.
 */
#ifndef EMAIL_VALIDATE_H
#define EMAIL_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

/*
 * email_validate - check the body of an email:send message: `to` is a
 * string that contains an '@'. Deliberately no fuller address check: the
 * mail server is the authority on what it accepts.
 *
 * Returns 0 if `obj` passes. Returns -1 otherwise and writes into why
 * (whylen bytes, NUL-terminated; may be NULL) a reason that names the
 * field, e.g. "email:send: to must be a string". A `to` holding a NUL
 * byte fails too.
 */
int email_validate(const json_t *obj, char *why, size_t whylen);

#endif /* EMAIL_VALIDATE_H */
