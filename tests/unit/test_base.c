/*
 * test_base.c - runtime/base/: array growth, the AMQP table builders and
 * lookups, the predeclared-exchange check, the clocks.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/amqp_fields.h"
#include "base/clock.h"
#include "base/grow.h"

Test(grow, starts_at_first_and_doubles)
{
	int *a = NULL;
	size_t cap = 0;

	cr_assert_eq(WD_GROW(a, cap, 1, 16), 0);
	cr_assert_not_null(a);
	cr_expect_eq(cap, 16);
	a[15] = 7;
	cr_assert_eq(WD_GROW(a, cap, 16, 16), 0);
	cr_expect_eq(cap, 16, "room enough: unchanged");
	cr_assert_eq(WD_GROW(a, cap, 17, 16), 0);
	cr_expect_eq(cap, 32);
	cr_expect_eq(a[15], 7, "contents kept");
	cr_assert_eq(WD_GROW(a, cap, 100, 16), 0);
	cr_expect_eq(cap, 128, "doubled until it fits");
	a[99] = 1;
	free(a);
}

Test(grow, refuses_a_size_that_overflows)
{
	uint64_t *a = NULL;
	size_t cap = 0;

	cr_assert_eq(WD_GROW(a, cap, 4, 4), 0);
	cr_expect_eq(WD_GROW(a, cap, SIZE_MAX / 4, 4), -1);
	cr_expect_eq(cap, 4, "unchanged on failure");
	cr_expect_not_null(a);
	free(a);
}

Test(amqp_fields, table_builders_and_lookup)
{
	amqp_table_entry_t e[4], inner_e[1];
	amqp_table_t t = {.entries = e}, inner = {.entries = inner_e};
	const amqp_field_value_t *v;
	int64_t n;

	wd_table_add_bool(&inner, "connection.blocked", true);
	wd_table_add_str(&t, "s", amqp_cstring_bytes("value"));
	wd_table_add_i64(&t, "i", -5);
	wd_table_add_bool(&t, "b", true);
	wd_table_add_table(&t, "t", inner);
	cr_assert_eq(t.num_entries, 4);

	v = wd_table_get(&t, "s");
	cr_assert(wd_field_is_string(v));
	cr_expect(wd_bytes_eq(v->value.bytes, "value"));
	cr_expect_not(wd_bytes_eq(v->value.bytes, "valu"));
	cr_assert_eq(wd_field_int(wd_table_get(&t, "i"), &n), 0);
	cr_expect_eq(n, -5);
	v = wd_table_get(&t, "b");
	cr_assert_not_null(v);
	cr_expect_eq(v->kind, AMQP_FIELD_KIND_BOOLEAN);
	cr_expect(v->value.boolean);
	v = wd_table_get(&t, "t");
	cr_assert_not_null(v);
	cr_assert_eq(v->kind, AMQP_FIELD_KIND_TABLE);
	cr_expect_not_null(wd_table_get(&v->value.table, "connection.blocked"));
	cr_expect_null(wd_table_get(&t, "x"));
	cr_expect_eq(wd_field_int(wd_table_get(&t, "s"), &n), -1,
	             "a string is not an integer");
	cr_expect_not(wd_field_is_string(wd_table_get(&t, "i")));
	cr_expect_not(wd_field_is_string(NULL));
}

Test(amqp_fields, predeclared_exchanges)
{
	cr_expect(wd_amqp_predeclared(amqp_cstring_bytes("amq.direct")));
	cr_expect(wd_amqp_predeclared(amqp_cstring_bytes("amq.topic")));
	cr_expect_not(wd_amqp_predeclared(amqp_cstring_bytes("amq.")),
	              "no such exchange");
	cr_expect_not(wd_amqp_predeclared(amqp_cstring_bytes("amqx.direct")));
	cr_expect_not(wd_amqp_predeclared(amqp_cstring_bytes("orders")));
	cr_expect_not(wd_amqp_predeclared(amqp_empty_bytes));
}

Test(clock, monotonic_and_wall)
{
	int64_t a = wd_now_ms(), w = wd_wall_ms();
	struct timespec ts = wd_wall_deadline(1999);

	cr_expect_geq(wd_now_ms(), a);
	/* 2020-01-01 and 2100-01-01: a wall clock, not a monotonic one. */
	cr_expect(w > 1577836800000LL && w < 4102444800000LL, "wall %jd",
	          (intmax_t)w);
	cr_expect(ts.tv_nsec >= 0 && ts.tv_nsec < 1000000000L,
	          "normalised: %ld", ts.tv_nsec);
	cr_expect_geq((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
	              w + 1999);
}
