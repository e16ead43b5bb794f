/* amqp_fields.c - AMQP field table helpers. */
#include "base/amqp_fields.h"

#include <string.h>

const amqp_field_value_t *wd_table_get(const amqp_table_t *t, const char *name)
{
	size_t len = strlen(name);

	for (int i = 0; i < t->num_entries; i++) {
		const amqp_table_entry_t *e = &t->entries[i];
		if (e->key.len == len && memcmp(e->key.bytes, name, len) == 0)
			return &e->value;
	}
	return NULL;
}

const amqp_field_value_t *wd_amqp_header(const amqp_envelope_t *amqp,
                                         const char *name)
{
	const amqp_basic_properties_t *p = &amqp->message.properties;

	if (!(p->_flags & AMQP_BASIC_HEADERS_FLAG))
		return NULL;
	return wd_table_get(&p->headers, name);
}

int wd_field_int(const amqp_field_value_t *v, int64_t *out)
{
	if (!v)
		return -1;
	switch (v->kind) {
	case AMQP_FIELD_KIND_I8:
		*out = v->value.i8;
		return 0;
	case AMQP_FIELD_KIND_U8:
		*out = v->value.u8;
		return 0;
	case AMQP_FIELD_KIND_I16:
		*out = v->value.i16;
		return 0;
	case AMQP_FIELD_KIND_U16:
		*out = v->value.u16;
		return 0;
	case AMQP_FIELD_KIND_I32:
		*out = v->value.i32;
		return 0;
	case AMQP_FIELD_KIND_U32:
		*out = v->value.u32;
		return 0;
	case AMQP_FIELD_KIND_I64:
		*out = v->value.i64;
		return 0;
	case AMQP_FIELD_KIND_U64:
		if (v->value.u64 > INT64_MAX)
			return -1;
		*out = (int64_t)v->value.u64;
		return 0;
	default:
		return -1;
	}
}

bool wd_field_is_string(const amqp_field_value_t *v)
{
	return v && (v->kind == AMQP_FIELD_KIND_UTF8 ||
	             v->kind == AMQP_FIELD_KIND_BYTES);
}

bool wd_bytes_eq(amqp_bytes_t b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

bool wd_amqp_predeclared(amqp_bytes_t x)
{
	return x.len > 4 && memcmp(x.bytes, "amq.", 4) == 0;
}

static amqp_field_value_t *add(amqp_table_t *t, const char *key)
{
	amqp_table_entry_t *e = &t->entries[t->num_entries++];

	e->key = amqp_cstring_bytes(key);
	return &e->value;
}

void wd_table_add_str(amqp_table_t *t, const char *key, amqp_bytes_t v)
{
	amqp_field_value_t *f = add(t, key);

	f->kind = AMQP_FIELD_KIND_UTF8;
	f->value.bytes = v;
}

void wd_table_add_i64(amqp_table_t *t, const char *key, int64_t v)
{
	amqp_field_value_t *f = add(t, key);

	f->kind = AMQP_FIELD_KIND_I64;
	f->value.i64 = v;
}

void wd_table_add_bool(amqp_table_t *t, const char *key, bool v)
{
	amqp_field_value_t *f = add(t, key);

	f->kind = AMQP_FIELD_KIND_BOOLEAN;
	f->value.boolean = v;
}

void wd_table_add_table(amqp_table_t *t, const char *key, amqp_table_t v)
{
	amqp_field_value_t *f = add(t, key);

	f->kind = AMQP_FIELD_KIND_TABLE;
	f->value.table = v;
}
