/*
 * test_outbox.c - a handler's follow-ups (message/outbox.c): a publish is
 * deep-copied (the plugin may free or reuse its buffers at once), optional
 * properties are flagged only when given, persistent unless transient; each
 * malformed or over-the-limit publish is refused with its reason and leaves
 * the outbox as it was; clear frees everything (the ASan run checks that
 * no refusal or clear leaks).
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "message/outbox.h"

static const char *const SHORT_WHY =
    "publish: NULL or short warren_publish (set .size = "
    "sizeof(warren_publish))";
static const char *const BODY_WHY = "publish: body.ptr is NULL";
static const char *const NAME_WHY =
    "publish: exchange or routing key longer than 255 bytes";
static const char *const HEADERS_WHY =
    "publish: at most 64 headers, and headers must not be NULL when "
    "nheaders > 0";
static const char *const PROP_WHY =
    "publish: a property is longer than 255 bytes, or a header has no key "
    "or no value";
static const char *const LIMIT_WHY =
    "publish: over 256 messages or 64 MiB in one handler call";

static int bytes_eq(amqp_bytes_t b, const char *s)
{
	return b.len == strlen(s) && memcmp(b.bytes, s, b.len) == 0;
}

#define expect_bytes(b, s)                                                     \
	cr_expect(bytes_eq((b), (s)), "%s is \"%.*s\", expected \"%s\"", #b,   \
	          (int)(b).len, (const char *)(b).bytes, (s))

/* A string of n times 'a' (the caller frees it). */
static char *long_str(size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, 'a', n);
	s[n] = '\0';
	return s;
}

static warren_publish minimal(void)
{
	return (warren_publish){.size = sizeof(warren_publish)};
}

/* `p` must be refused with `why`, leaving `o` as it was. */
static void expect_refused(struct wd_outbox *o, const warren_publish *p,
                           const char *why)
{
	struct wd_outbox before = *o;
	char got[256] = "";

	cr_expect_eq(wd_outbox_add(o, p, got, sizeof(got)), -1,
	             "accepted, expected \"%s\"", why);
	cr_expect_str_eq(got, why);
	cr_expect_eq(o->n, before.n, "a refusal adds nothing");
	cr_expect_eq(o->bytes, before.bytes);
	cr_expect_eq(o->head, before.head);
	cr_expect_eq(o->tail, before.tail);
}

static void expect_added(struct wd_outbox *o, const warren_publish *p)
{
	char why[256] = "";

	cr_expect_eq(wd_outbox_add(o, p, why, sizeof(why)), 0, "refused: %s",
	             why);
}

Test(outbox, full_publish_is_deep_copied)
{
	char exchange[] = "orders", rk[] = "order.created",
	     body[] = "{\"a\":1}";
	char ct[] = "application/json", mid[] = "m-1", cid[] = "c-1";
	char type[] = "order:created";
	char k0[] = "x-tenant", v0[] = "acme", k1[] = "x-empty", v1[] = "";
	warren_header h[2] = {{k0, v0}, {k1, v1}};
	warren_publish p = {.size = sizeof(p),
	                    .exchange = exchange,
	                    .routing_key = rk,
	                    .body = {body, strlen(body)},
	                    .content_type = ct,
	                    .message_id = mid,
	                    .correlation_id = cid,
	                    .type = type,
	                    .headers = h,
	                    .nheaders = 2};
	struct wd_outbox o = {0};
	struct wd_followup *f;
	amqp_basic_properties_t *pr;

	expect_added(&o, &p);
	/* The plugin reuses everything at once. */
	char *bufs[] = {exchange, rk, body, ct, mid, cid, type, k0, v0, k1};
	for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
		memset(bufs[i], 'Z', strlen(bufs[i]));
	h[0].key = h[0].value = h[1].key = h[1].value = NULL;

	cr_assert_eq(o.n, 1);
	cr_expect_eq(o.bytes, strlen("{\"a\":1}"));
	f = o.head;
	cr_assert_not_null(f);
	cr_expect_eq(o.tail, f);
	cr_expect_null(f->next);
	expect_bytes(f->exchange, "orders");
	expect_bytes(f->routing_key, "order.created");
	expect_bytes(f->body, "{\"a\":1}");
	pr = &f->props;
	cr_expect_eq(
	    pr->_flags,
	    AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG |
	        AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
	        AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_HEADERS_FLAG);
	cr_expect_eq(pr->delivery_mode, 2, "persistent by default");
	expect_bytes(pr->content_type, "application/json");
	expect_bytes(pr->message_id, "m-1");
	expect_bytes(pr->correlation_id, "c-1");
	expect_bytes(pr->type, "order:created");
	cr_assert_eq(pr->headers.num_entries, 2);
	expect_bytes(pr->headers.entries[0].key, "x-tenant");
	cr_expect_eq(pr->headers.entries[0].value.kind, AMQP_FIELD_KIND_UTF8);
	expect_bytes(pr->headers.entries[0].value.value.bytes, "acme");
	expect_bytes(pr->headers.entries[1].key, "x-empty");
	expect_bytes(pr->headers.entries[1].value.value.bytes, "");
	wd_outbox_clear(&o);
}

Test(outbox, only_given_properties_are_flagged)
{
	warren_publish p = minimal();
	struct wd_outbox o = {0};
	struct wd_followup *f;

	expect_added(&o, &p);
	f = o.head;
	cr_assert_not_null(f);
	cr_expect_eq(f->props._flags, AMQP_BASIC_DELIVERY_MODE_FLAG,
	             "flags 0x%x", (unsigned)f->props._flags);
	cr_expect_eq(f->exchange.len, 0, "NULL is the default exchange");
	cr_expect_eq(f->routing_key.len, 0);
	cr_expect_eq(f->body.len, 0);
	cr_expect_eq(o.bytes, 0);

	/* One property alone sets its flag alone. */
	p.message_id = "only";
	expect_added(&o, &p);
	cr_assert_not_null(o.head->next);
	f = o.head->next;
	cr_expect_eq(o.tail, f, "appended in order");
	cr_expect_eq(f->props._flags, AMQP_BASIC_DELIVERY_MODE_FLAG |
	                                  AMQP_BASIC_MESSAGE_ID_FLAG);
	expect_bytes(f->props.message_id, "only");
	cr_expect_eq(o.n, 2);
	wd_outbox_clear(&o);
}

Test(outbox, persistent_or_transient)
{
	warren_publish p = minimal();
	struct wd_outbox o = {0};

	p.transient = 0;
	expect_added(&o, &p);
	p.transient = 1;
	expect_added(&o, &p);
	p.transient = 7; /* any non-zero */
	expect_added(&o, &p);
	cr_assert_eq(o.n, 3);
	cr_expect_eq(o.head->props.delivery_mode, 2);
	cr_expect_eq(o.head->next->props.delivery_mode, 1);
	cr_expect_eq(o.tail->props.delivery_mode, 1);
	wd_outbox_clear(&o);
}

Test(outbox, refuses_a_null_or_short_publish)
{
	warren_publish p = minimal();
	struct wd_outbox o = {0};

	expect_refused(&o, NULL, SHORT_WHY);
	p.size = 0;
	expect_refused(&o, &p, SHORT_WHY);
	/* A caller built before nheaders existed. */
	p.size = offsetof(warren_publish, nheaders);
	expect_refused(&o, &p, SHORT_WHY);
	p.size = offsetof(warren_publish, nheaders) + sizeof(p.nheaders);
	expect_added(&o, &p);
	wd_outbox_clear(&o);
}

Test(outbox, refuses_a_body_without_bytes)
{
	warren_publish p = minimal();
	struct wd_outbox o = {0};

	p.body = (warren_bytes){NULL, 3};
	expect_refused(&o, &p, BODY_WHY);
	p.body = (warren_bytes){NULL, 0}; /* empty is fine */
	expect_added(&o, &p);
	wd_outbox_clear(&o);
}

Test(outbox, refuses_names_over_255_bytes)
{
	warren_publish p = minimal();
	struct wd_outbox o = {0};
	char *s255 = long_str(255), *s256 = long_str(256);

	p.exchange = s256;
	expect_refused(&o, &p, NAME_WHY);
	p.exchange = NULL;
	p.routing_key = s256;
	expect_refused(&o, &p, NAME_WHY);
	p.exchange = p.routing_key = s255;
	expect_added(&o, &p);
	cr_expect_eq(o.head->exchange.len, 255);
	wd_outbox_clear(&o);
	free(s255);
	free(s256);
}

Test(outbox, refuses_properties_over_255_bytes)
{
	struct wd_outbox o = {0};
	char *s255 = long_str(255), *s256 = long_str(256);

	for (int which = 0; which < 4; which++) {
		warren_publish p = minimal();
		const char **field = which == 0   ? &p.content_type
		                     : which == 1 ? &p.message_id
		                     : which == 2 ? &p.correlation_id
		                                  : &p.type;
		*field = s256;
		expect_refused(&o, &p, PROP_WHY);
		*field = s255;
		expect_added(&o, &p);
	}
	cr_expect_eq(o.n, 4);
	wd_outbox_clear(&o);
	free(s255);
	free(s256);
}

Test(outbox, refuses_bad_headers)
{
	static warren_header many[65];
	warren_publish p = minimal();
	struct wd_outbox o = {0};
	char *s256 = long_str(256);

	for (size_t i = 0; i < 65; i++)
		many[i] = (warren_header){"k", "v"};
	p.headers = many;
	p.nheaders = 65;
	expect_refused(&o, &p, HEADERS_WHY);
	p.nheaders = 64;
	expect_added(&o, &p);
	cr_expect_eq(o.tail->props.headers.num_entries, 64);

	p.headers = NULL;
	p.nheaders = 1;
	expect_refused(&o, &p, HEADERS_WHY);

	/* The first header is copied before the second is found wrong:
	 * refused without a leak. */
	warren_header bad[][2] = {
	    {{"ok", "v"}, {NULL, "v"}},
	    {{"ok", "v"}, {"", "v"}},
	    {{"ok", "v"}, {"k", NULL}},
	    {{"ok", "v"}, {s256, "v"}},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.headers = bad[i];
		p.nheaders = 2;
		expect_refused(&o, &p, PROP_WHY);
	}
	cr_expect_eq(o.n, 1);
	wd_outbox_clear(&o);
	free(s256);
}

Test(outbox, at_most_256_messages)
{
	warren_publish p = minimal();
	struct wd_outbox o = {0};

	p.body = (warren_bytes){"x", 1};
	for (int i = 0; i < WD_OUTBOX_MAX_MESSAGES; i++)
		expect_added(&o, &p);
	cr_expect_eq(o.n, 256);
	cr_expect_eq(o.bytes, 256);
	expect_refused(&o, &p, LIMIT_WHY);
	p.body = (warren_bytes){NULL, 0}; /* even an empty one */
	expect_refused(&o, &p, LIMIT_WHY);
	wd_outbox_clear(&o);
}

Test(outbox, at_most_64_mib)
{
	size_t half = WD_OUTBOX_MAX_BYTES / 2;
	char *big = calloc(1, half);
	warren_publish p = minimal();
	struct wd_outbox o = {0};

	cr_assert_not_null(big);
	p.body = (warren_bytes){big, half};
	expect_added(&o, &p);
	expect_added(&o, &p); /* exactly 64 MiB */
	cr_expect_eq(o.bytes, (size_t)64 << 20);
	p.body = (warren_bytes){"x", 1};
	expect_refused(&o, &p, LIMIT_WHY);
	p.body = (warren_bytes){NULL, 0}; /* adds no bytes */
	expect_added(&o, &p);
	cr_expect_eq(o.n, 3);
	wd_outbox_clear(&o);
	free(big);
}

Test(outbox, clear_frees_and_empties)
{
	warren_header h[] = {{"a", "1"}, {"b", "2"}};
	warren_publish p = {.size = sizeof(p),
	                    .exchange = "x",
	                    .routing_key = "rk",
	                    .body = {"{}", 2},
	                    .content_type = "application/json",
	                    .message_id = "m",
	                    .correlation_id = "c",
	                    .type = "t",
	                    .headers = h,
	                    .nheaders = 2};
	struct wd_outbox o = {0};

	wd_outbox_clear(&o); /* an empty one */
	for (int i = 0; i < 3; i++)
		expect_added(&o, &p);
	wd_outbox_clear(&o);
	cr_expect_null(o.head);
	cr_expect_null(o.tail);
	cr_expect_eq(o.n, 0);
	cr_expect_eq(o.bytes, 0);
	/* Usable again, and clear is idempotent. */
	expect_added(&o, &p);
	cr_expect_eq(o.n, 1);
	wd_outbox_clear(&o);
	wd_outbox_clear(&o);
	cr_expect_null(o.head);
}
