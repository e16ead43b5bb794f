/* amqp_fields.h - reading and building AMQP field tables: header lookup,
 * integer fields of any width, strings, and the tables warren sends (queue
 * arguments, login capabilities, republish headers). No I/O. */
#ifndef WD_AMQP_FIELDS_H
#define WD_AMQP_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/amqp_compat.h"

/* Look up `name` in an AMQP table, or NULL. */
const amqp_field_value_t *wd_table_get(const amqp_table_t *t, const char *name);

/* Look up header `name` in a delivery's headers table, or NULL. */
const amqp_field_value_t *wd_amqp_header(const amqp_envelope_t *amqp,
                                         const char *name);

/* An integer field of any width (signed or unsigned, 8 to 64 bits) into
 * *out: 0, or -1 if absent, not an integer or over INT64_MAX. */
int wd_field_int(const amqp_field_value_t *v, int64_t *out);

/* Whether v is present and a string (long string or byte array). */
bool wd_field_is_string(const amqp_field_value_t *v);

/* Whether b holds exactly the C string s. */
bool wd_bytes_eq(amqp_bytes_t b, const char *s);

/* Whether an exchange name is one every broker predeclares ("amq.*"). */
bool wd_amqp_predeclared(amqp_bytes_t exchange);

/* Append an entry to t, whose entries array the caller sized: key and
 * value are borrowed, not copied. */
void wd_table_add_str(amqp_table_t *t, const char *key, amqp_bytes_t v);
void wd_table_add_i64(amqp_table_t *t, const char *key, int64_t v);
void wd_table_add_bool(amqp_table_t *t, const char *key, bool v);
void wd_table_add_table(amqp_table_t *t, const char *key, amqp_table_t v);

#endif
