/* SDK 1.4 against the real broker: a handler sees every AMQP property a
 * publisher set (and -1 / 0 / empty for the ones it did not), and iterates
 * over a headers table holding a field of every kind, nested tables and
 * arrays included; publishes_to outside init is refused; and a plugin built
 * for ABI 1.3 still loads and handles messages. The plugin is
 * tests/fixtures/fx_props.c (and its 1.3 build, fx_props_13.so). */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define WAIT_MS 20000

static const char *fixture(const char *name)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/tests/fixtures/%s.so", it_build_dir(),
	         name);
	return path;
}

static amqp_bytes_t bytes(const char *s)
{
	return amqp_cstring_bytes(s);
}

static amqp_table_entry_t entry(const char *key, uint8_t kind)
{
	amqp_table_entry_t e;

	memset(&e, 0, sizeof(e));
	e.key = bytes(key);
	e.value.kind = kind;
	return e;
}

/* The log line holding needle, or a failed test showing the log. */
static void expect_line(const struct it_daemon *d, const char *needle)
{
	if (it_log_wait(d, needle, 1, WAIT_MS) < 1) {
		char *log = it_log_read(d);
		cr_assert_fail("no \"%s\" in the log:\n%s", needle, log);
	}
}

static void expect_in_line(const char *log, const char *line_needle,
                           const char *want)
{
	char line[4096];

	cr_assert(it_log_line(log, line_needle, line, sizeof(line)),
	          "no line with \"%s\"", line_needle);
	cr_expect_not_null(strstr(line, want), "\"%s\" not in: %s", want, line);
}

Test(props, every_property_and_header_kind)
{
	struct it_names n;
	struct it_daemon d;
	amqp_table_entry_t inner[1], tbl[2], top[19];
	amqp_field_value_t nested_arr[1], arr[3];
	amqp_basic_properties_t p;
	char *conf, *log;
	size_t k = 0;

	it_names_init(&n, "props");
	conf = it_conf(n.x, n.q, fixture("fx_props"), "t=props", NULL, NULL,
	               NULL, NULL);
	it_daemon_start(&d, conf, true);

	/* The nested parts: {a: 1, inner: {b: "c"}} and [1, "two", [false]]. */
	inner[0] = entry("b", AMQP_FIELD_KIND_UTF8);
	inner[0].value.value.bytes = bytes("c");
	tbl[0] = entry("a", AMQP_FIELD_KIND_I32);
	tbl[0].value.value.i32 = 1;
	tbl[1] = entry("inner", AMQP_FIELD_KIND_TABLE);
	tbl[1].value.value.table = (amqp_table_t){1, inner};
	nested_arr[0].kind = AMQP_FIELD_KIND_BOOLEAN;
	nested_arr[0].value.boolean = 0;
	arr[0].kind = AMQP_FIELD_KIND_I32;
	arr[0].value.i32 = 1;
	arr[1].kind = AMQP_FIELD_KIND_UTF8;
	arr[1].value.bytes = bytes("two");
	arr[2].kind = AMQP_FIELD_KIND_ARRAY;
	arr[2].value.array = (amqp_array_t){1, nested_arr};

	top[k] = entry("s", AMQP_FIELD_KIND_UTF8);
	top[k++].value.value.bytes = bytes("hi");
	top[k] = entry("x", AMQP_FIELD_KIND_BYTES);
	top[k++].value.value.bytes = (amqp_bytes_t){2, "\x01\xfe"};
	top[k] = entry("i8", AMQP_FIELD_KIND_I8);
	top[k++].value.value.i8 = -5;
	top[k] = entry("u8", AMQP_FIELD_KIND_U8);
	top[k++].value.value.u8 = 200;
	top[k] = entry("i16", AMQP_FIELD_KIND_I16);
	top[k++].value.value.i16 = -300;
	top[k] = entry("u16", AMQP_FIELD_KIND_U16);
	top[k++].value.value.u16 = 60000;
	top[k] = entry("i32", AMQP_FIELD_KIND_I32);
	top[k++].value.value.i32 = -70000;
	top[k] = entry("u32", AMQP_FIELD_KIND_U32);
	top[k++].value.value.u32 = 4000000000u;
	top[k] = entry("i64", AMQP_FIELD_KIND_I64);
	top[k++].value.value.i64 = INT64_C(-9000000000);
	top[k] = entry("f32", AMQP_FIELD_KIND_F32);
	top[k++].value.value.f32 = 1.5f;
	top[k] = entry("f64", AMQP_FIELD_KIND_F64);
	top[k++].value.value.f64 = 2.25;
	top[k] = entry("t", AMQP_FIELD_KIND_BOOLEAN);
	top[k++].value.value.boolean = 1;
	top[k] = entry("ts", AMQP_FIELD_KIND_TIMESTAMP);
	top[k++].value.value.u64 = 1700000000;
	top[k] = entry("dec", AMQP_FIELD_KIND_DECIMAL);
	top[k].value.value.decimal.decimals = 2;
	top[k++].value.value.decimal.value = 12345;
	top[k++] = entry("v", AMQP_FIELD_KIND_VOID);
	top[k] = entry("tbl", AMQP_FIELD_KIND_TABLE);
	top[k++].value.value.table = (amqp_table_t){2, tbl};
	top[k] = entry("arr", AMQP_FIELD_KIND_ARRAY);
	top[k++].value.value.array = (amqp_array_t){3, arr};

	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG |
	           AMQP_BASIC_CONTENT_ENCODING_FLAG | AMQP_BASIC_HEADERS_FLAG |
	           AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG |
	           AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
	           AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_USER_ID_FLAG |
	           AMQP_BASIC_APP_ID_FLAG;
	p.content_type = bytes("application/json");
	p.content_encoding = bytes("identity");
	p.headers = (amqp_table_t){(int)k, top};
	p.delivery_mode = 2;
	p.priority = 7;
	p.reply_to = bytes("replies");
	p.expiration = bytes("600000");
	p.message_id = bytes("m-all");
	/* RabbitMQ refuses a user_id other than the connection's user. */
	p.user_id = bytes("guest");
	p.app_id = bytes("it-app");

	amqp_connection_state_t c = it_connect();
	it_publish_props(c, n.x, "rk", "{\"type\":\"t\"}", &p);
	/* And one with no property at all. */
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
	p.message_id = bytes("m-none");
	it_publish_props(c, n.x, "rk", "{\"type\":\"t\"}", &p);
	it_close(c);

	expect_line(&d, "props id=m-none ");
	expect_line(&d, "late publishes_to=");
	log = it_stop_and_log(&d);
	expect_in_line(log, "props id=m-all ",
	               "props id=m-all ct=application/json ce=identity "
	               "reply_to=replies exp=600000 user=guest app=it-app "
	               "prio=7 mode=2");
	expect_in_line(log, "props id=m-none ",
	               "props id=m-none ct= ce= reply_to= exp= user= app= "
	               "prio=-1 mode=0");
	/* The headers, in the order sent, each with its kind. */
	expect_in_line(
	    log, "headers n=17 ",
	    "headers n=17 s:string=hi x:bytes=01fe i8:int=-5 u8:int=200 "
	    "i16:int=-300 u16:int=60000 i32:int=-70000 u32:int=4000000000 "
	    "i64:int=-9000000000 f32:float=1.5 f64:float=2.25 t:bool=1 "
	    "ts:timestamp=1700000000 dec:decimal=12345e-2 v:void "
	    "tbl:table{a:int=1,inner:table{b:string=c}} "
	    "arr:array[int=1,string=two,array[bool=0]]");
	cr_expect_eq(it_count(log, "BOUNDS-NOT-CHECKED"), 0, "%s", log);
	cr_expect(strstr(log, "headers n=0"), "%s", log);
	/* publishes_to in a handler: refused, with a line saying so. */
	cr_expect_eq(it_count(log, "late publishes_to=-1"), 2, "%s", log);
	cr_expect_geq(it_count(log, "publishes_to() outside init is refused"),
	              1, "%s", log);
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	free(log);
	free(conf);
	it_names_delete(&n);
}

/* An unsigned 64-bit header over INT64_MAX: RabbitMQ 3.10 has no such
 * field type ('L' is rabbitmq-c's), so it cannot arrive through the
 * broker; the unit tests (test_envelope) cover WARREN_FIELD_UINT. */

Test(props, plugin_built_for_abi_1_3_still_works)
{
	struct it_names n;
	struct it_daemon d;
	amqp_basic_properties_t p;
	char *conf, *log;

	it_names_init(&n, "props13");
	conf = it_conf(n.x, n.q, fixture("fx_props_13"), "t=props", NULL, NULL,
	               NULL, NULL);
	it_daemon_start(&d, conf, true);
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_PRIORITY_FLAG;
	p.message_id = bytes("m-13");
	p.priority = 3;
	amqp_connection_state_t c = it_connect();
	it_publish_props(c, n.x, "rk", "{\"type\":\"t\"}", &p);
	it_close(c);
	expect_line(&d, "v13 handled id=m-13 attempt=1");
	log = it_stop_and_log(&d);
	cr_expect(strstr(log, "loaded \"p\" (fx_props 1)"), "%s", log);
	cr_expect_eq(it_queue_ready(n.q), 0);
	cr_expect_eq(it_queue_ready(n.dlq), 0);
	free(log);
	free(conf);
	it_names_delete(&n);
}
