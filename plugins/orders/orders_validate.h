/*
 * orders_validate.h - the checks of the order application's follow-up
 * messages (the order itself: common/order_validate.h).
 *
 * Pure functions, apart from the plugin, so the unit tests link them
 * alone. Each returns 0 if `obj` passes, else -1 with a reason in why
 * (whylen bytes, NUL-terminated; may be NULL) that starts with the
 * message type and names the first field that failed.
 */
#ifndef ORDERS_VALIDATE_H
#define ORDERS_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

/* payment.process: {orderId, userId, amount (a number >= 0)}. */
int payment_validate(const json_t *obj, char *why, size_t whylen);

/* inventory.reserve: {orderId, items (a non-empty array)}. */
int reserve_validate(const json_t *obj, char *why, size_t whylen);

/* notification.send: {orderId, userId, event (a non-empty string)}. */
int order_notice_validate(const json_t *obj, char *why, size_t whylen);

#endif /* ORDERS_VALIDATE_H */
