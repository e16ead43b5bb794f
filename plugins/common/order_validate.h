/*
 * order_validate.h - the checks of an order message (order:created of the
 * real-time processor, order.created of the order application).
 *
 * A pure function, apart from the plugin, so the unit tests link it alone.
 */
#ifndef ORDER_VALIDATE_H
#define ORDER_VALIDATE_H

#include <jansson.h>
#include <stddef.h>

/*
 * order_validate - check the body of an order:created message, as the
 * tutorial's processor does: orderId and userId present (a non-empty string
 * or an integer), items a non-empty array, totalAmount a number (integer or
 * real) and not negative.
 *
 * Returns 0 if `obj` passes. Returns -1 otherwise and writes into why
 * (whylen bytes, NUL-terminated; may be NULL) a reason that names the first
 * field that failed, e.g. "order:created: items must be a non-empty array".
 */
int order_validate(const json_t *obj, char *why, size_t whylen);

/*
 * order_validate_as - the same checks, with `type` (e.g. "order.created")
 * as the reason's prefix instead of "order:created".
 */
int order_validate_as(const char *type, const json_t *obj, char *why,
                      size_t whylen);

/*
 * order_id_present - 1 if `v` is an id: an integer, or a string with
 * something in it; else 0.
 */
int order_id_present(const json_t *v);

#endif /* ORDER_VALIDATE_H */
