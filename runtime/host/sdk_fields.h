/* sdk_fields.h - an AMQP field as the SDK shows it (warren_header_field):
 * the one mapping from rabbitmq-c's field kinds to warren's, behind
 * header_at and field_at. */
#ifndef WD_SDK_FIELDS_H
#define WD_SDK_FIELDS_H

#include <stddef.h>

#include "base/amqp_compat.h"
#include "warren.h"

/* Fill *out with the field `name` = *v. Borrows from both: *out points
 * into v (strings, a nested table or array) for as long as v lives. */
void wd_sdk_field(amqp_bytes_t name, const amqp_field_value_t *v,
                  warren_header_field *out);

/* Entry i of the table or array `container` holds (as wd_sdk_field filled
 * it) into *out: 0, or -1 if it holds none or i is out of range. */
int wd_sdk_field_at(const warren_header_field *container, size_t i,
                    warren_header_field *out);

#endif
