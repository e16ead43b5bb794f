/*
 * signup_validate.h - the checks of a user:signup message.
 *
 * A pure function, apart from the plugin, so the unit tests link it alone.
 */
#ifndef SIGNUP_VALIDATE_H
#define SIGNUP_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

/*
 * signup_validate - check the body of a user:signup message: userId
 * present (a non-empty string or an integer) and email a non-empty string.
 *
 * Returns 0 if `obj` passes. Returns -1 otherwise and writes into why
 * (whylen bytes, NUL-terminated; may be NULL) a reason that names the first
 * field that failed, e.g. "user:signup: email must be a non-empty string".
 */
int signup_validate(const json_t *obj, char *why, size_t whylen);

#endif /* SIGNUP_VALIDATE_H */
