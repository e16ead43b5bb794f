/* sdk_fields.c - rabbitmq-c's field kinds mapped to the SDK's. */
#include "host/sdk_fields.h"

#include <stdint.h>

#include "base/amqp_fields.h"

static warren_bytes view(amqp_bytes_t b)
{
	/* Never a NULL pointer, as everywhere in the SDK. */
	return (warren_bytes){.ptr = b.len ? b.bytes : "", .len = b.len};
}

void wd_sdk_field(amqp_bytes_t name, const amqp_field_value_t *v,
                  warren_header_field *out)
{
	int64_t i;

	out->name = view(name);
	out->kind = WARREN_FIELD_VOID;
	out->value.u = 0;
	/* Every integer width is one kind, so a plugin does not care how
	 * the publisher's client library chose to encode 3: the existing
	 * header_int rule, reused. */
	if (wd_field_int(v, &i) == 0) {
		out->kind = WARREN_FIELD_INT;
		out->value.i = i;
		return;
	}
	switch (v->kind) {
	case AMQP_FIELD_KIND_U64: /* over INT64_MAX, or wd_field_int took it */
		out->kind = WARREN_FIELD_UINT;
		out->value.u = v->value.u64;
		break;
	case AMQP_FIELD_KIND_UTF8:
		out->kind = WARREN_FIELD_STRING;
		out->value.bytes = view(v->value.bytes);
		break;
	case AMQP_FIELD_KIND_BYTES:
		out->kind = WARREN_FIELD_BYTES;
		out->value.bytes = view(v->value.bytes);
		break;
	case AMQP_FIELD_KIND_F32:
		out->kind = WARREN_FIELD_FLOAT;
		out->value.f = v->value.f32;
		break;
	case AMQP_FIELD_KIND_F64:
		out->kind = WARREN_FIELD_FLOAT;
		out->value.f = v->value.f64;
		break;
	case AMQP_FIELD_KIND_BOOLEAN:
		out->kind = WARREN_FIELD_BOOL;
		out->value.b = v->value.boolean ? 1 : 0;
		break;
	case AMQP_FIELD_KIND_TIMESTAMP:
		out->kind = WARREN_FIELD_TIMESTAMP;
		out->value.u = v->value.u64;
		break;
	case AMQP_FIELD_KIND_DECIMAL:
		out->kind = WARREN_FIELD_DECIMAL;
		out->value.decimal.places = v->value.decimal.decimals;
		out->value.decimal.value = v->value.decimal.value;
		break;
	case AMQP_FIELD_KIND_TABLE:
		out->kind = WARREN_FIELD_TABLE;
		out->value.nested.count =
		    v->value.table.num_entries > 0
		        ? (size_t)v->value.table.num_entries
		        : 0;
		out->value.nested.impl = v;
		break;
	case AMQP_FIELD_KIND_ARRAY:
		out->kind = WARREN_FIELD_ARRAY;
		out->value.nested.count =
		    v->value.array.num_entries > 0
		        ? (size_t)v->value.array.num_entries
		        : 0;
		out->value.nested.impl = v;
		break;
	default: /* AMQP_FIELD_KIND_VOID, and any kind rabbitmq-c adds */
		break;
	}
}

int wd_sdk_field_at(const warren_header_field *container, size_t i,
                    warren_header_field *out)
{
	const amqp_field_value_t *v;

	if (!container || !out ||
	    (container->kind != WARREN_FIELD_TABLE &&
	     container->kind != WARREN_FIELD_ARRAY) ||
	    !container->value.nested.impl || i >= container->value.nested.count)
		return -1;
	/* impl is the field value wd_sdk_field saw: its own kind decides,
	 * not the copy's (a plugin may have changed that). */
	v = container->value.nested.impl;
	if (v->kind == AMQP_FIELD_KIND_TABLE &&
	    i < (size_t)v->value.table.num_entries) {
		const amqp_table_entry_t *e = &v->value.table.entries[i];
		wd_sdk_field(e->key, &e->value, out);
		return 0;
	}
	if (v->kind == AMQP_FIELD_KIND_ARRAY &&
	    i < (size_t)v->value.array.num_entries) {
		wd_sdk_field(amqp_empty_bytes, &v->value.array.entries[i], out);
		return 0;
	}
	return -1;
}
