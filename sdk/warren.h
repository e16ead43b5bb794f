/*
 * warren.h - the plugin SDK of warren, the RabbitMQ consumer runtime.
 *
 * This is the only header a handler plugin includes. A plugin is a shared
 * object that exports one symbol, warren_plugin_entry(), returning a
 * descriptor: its name, version, init and fini, and a table of named
 * handlers. warrend routes each message type to one of those handlers.
 *
 *     cc -shared -fPIC $(pkg-config --cflags warren) my.c -o my.so
 *
 * Stability rules (SQLite / nginx style):
 *  - WARREN_ABI_MAJOR changes only when an existing struct layout or call
 *    changes meaning. A plugin built for another major is refused at load
 *    time with a message naming both versions.
 *  - WARREN_ABI_MINOR grows when something is appended: a field at the end of
 *    a struct, an entry at the end of warren_api. Every field and call below
 *    says the version that added it ("since 1.0"). A runtime never reads past
 *    what the plugin's minor declares, and a plugin can test
 *    api->abi_minor (or a struct's size field) before using a newer entry.
 *
 * Threading: handlers of one plugin may run concurrently on several runtime
 * threads, with the same plugin state. Guard shared mutable state in your
 * plugin state yourself. init and fini run on a single thread, never
 * concurrently with a handler of the same plugin instance.
 *
 * Ownership: everything the runtime passes in is borrowed for the length of
 * the call that received it. A plugin that keeps data past the call copies
 * it (or, for JSON, takes a reference with json_incref()).
 */
#ifndef WARREN_H
#define WARREN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WARREN_ABI_MAJOR 1
#define WARREN_ABI_MINOR 4

/* Name of the one symbol every plugin exports (see warren_plugin_entry). */
#define WARREN_PLUGIN_ENTRY_SYMBOL "warren_plugin_entry"

#if defined(__GNUC__)
#define WARREN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define WARREN_EXPORT       __attribute__((visibility("default")))
#else
#define WARREN_PRINTF(f, a)
#define WARREN_EXPORT
#endif

/* A borrowed run of bytes. Not NUL-terminated unless a field says so. */
typedef struct warren_bytes {
	const char *ptr;
	size_t len;
} warren_bytes;

/*
 * What a handler returns. Since 1.0.
 *  WARREN_ACK     the message is done: warrend acknowledges it.
 *                 Its follow-up publishes (warren_api.publish) are sent
 *                 first; it is acked only once the broker confirmed all.
 *  WARREN_RETRY   a transient failure: warrend redelivers the message after
 *                 the route's retry delay (never at once), until the route's
 *                 max_attempts; then it is dead-lettered ("max-attempts").
 *  WARREN_REJECT  a permanent failure: the message is dead-lettered (to the
 *                 queue's dead-letter exchange) with the reason set by
 *                 warren_api.reason() in its x-warren-reason-text header.
 * On RETRY and REJECT, the call's follow-up publishes are discarded.
 * Any other value is dead-lettered with reason "invalid-outcome".
 */
typedef enum warren_outcome {
	WARREN_ACK = 0,
	WARREN_RETRY = 1,
	WARREN_REJECT = 2,
} warren_outcome;

/* Log levels for warren_api.log(). Since 1.0. */
typedef enum warren_log_level {
	WARREN_LOG_ERROR = 0,
	WARREN_LOG_WARN = 1,
	WARREN_LOG_INFO = 2,
	WARREN_LOG_DEBUG = 3,
} warren_log_level;

/*
 * The runtime's side of one plugin instance (in init, fini) or of one
 * handler call (in a handler). Opaque; pass it back to warren_api calls.
 * Since 1.0.
 */
typedef struct warren_ctx warren_ctx;

/*
 * One message, as a handler sees it. Since 1.0.
 *
 * Borrowed: valid only until the handler returns. The runtime parsed the
 * body once; `json` is that parse (always a JSON object). String fields are
 * (ptr, len) and not NUL-terminated; an absent property has len == 0 (ptr is
 * then "", never NULL, so printing with "%.*s" is always safe).
 */
typedef struct warren_message {
	/* sizeof(warren_message) as the runtime built it; fields past this
	 * size do not exist in that runtime. Since 1.0. */
	size_t size;
	/* The message type the route matched, e.g. "user:signup". Since 1.0. */
	warren_bytes type;
	/* The raw body, exactly as published. Since 1.0. */
	warren_bytes body;
	/* The parsed body (a JSON object), borrowed: json_incref() it to keep
	 * it past the call, never json_decref() it otherwise. Since 1.0. */
	const json_t *json;
	/* Routing key and exchange it was published with. Since 1.0. */
	warren_bytes routing_key;
	warren_bytes exchange;
	/* The name of the queue it was consumed from. Since 1.0. */
	warren_bytes queue;
	/* AMQP properties message_id and correlation_id. Since 1.0. */
	warren_bytes message_id;
	warren_bytes correlation_id;
	/* AMQP property timestamp (seconds since the epoch), 0 if absent.
	 * Since 1.0. */
	uint64_t timestamp;
	/* 1 if the broker delivered this message before (it was not acked
	 * then), else 0. Since 1.0. */
	int redelivered;
	/* How many times the broker delivered this message before this
	 * delivery, as far as it is known: the quorum queue header
	 * x-delivery-count, else 1 if redelivered, else 0. Since 1.0. */
	uint32_t delivery_count;
	/* Which attempt this is, from 1: earlier attempts that asked for a
	 * retry (warren's x-warren-attempts header, cross-checked with the
	 * broker's x-death) plus deliveries that never finished (quorum
	 * x-delivery-count), plus one. The route's max_attempts is the last.
	 * Since 1.1: check msg->size > offsetof(warren_message, attempt). */
	uint32_t attempt;

	/* The AMQP properties below came in 1.4, all together: check
	 * msg->size > offsetof(warren_message, delivery_mode) once before
	 * reading any of them (a runtime older than 1.4 does not have them;
	 * one that has one has all). They are views into the delivery's
	 * decoded properties, filled for every message at no extra copy;
	 * an absent string property has len == 0 and ptr "". A message
	 * warren retried keeps the properties its publisher set, but for
	 * expiration and user_id (see there). */
	/* content_type and content_encoding, e.g. "application/json" and
	 * "gzip": what the publisher said, never checked against the body
	 * (warren parses every body as JSON whatever they say). Since 1.4. */
	warren_bytes content_type;
	warren_bytes content_encoding;
	/* reply_to: where the publisher wants an answer (a queue name, for
	 * a follow-up with exchange "" and routing_key reply_to). Since 1.4.
	 */
	warren_bytes reply_to;
	/* expiration: the per-message TTL the publisher set, in ms as a
	 * decimal string (AMQP's shortstr), e.g. "60000". Absent on a retried
	 * delivery warren republished for a retry: the retry queue used the
	 * property for its delay, and the broker drops it when the delay
	 * expires. Since 1.4. */
	warren_bytes expiration;
	/* user_id: the publishing connection's user name, as RabbitMQ
	 * checks it when a publisher sets it (so it can be trusted then).
	 * Absent on a delivery warren republished for a retry: the broker would
	 * refuse warrend's copy carrying another user's name, so the copy has
	 * the header x-warren-original-user-id instead (not checked by anyone:
	 * anybody who may publish to the retry queue could forge it).
	 * app_id: the publishing application's name, as it says. Since 1.4.
	 */
	warren_bytes user_id;
	warren_bytes app_id;
	/* priority: 0 to 255 as published (a priority queue, x-max-priority,
	 * orders by it, capped at its maximum), or -1 if absent. Since 1.4.
	 */
	int priority;
	/* delivery_mode: 2 persistent, 1 transient, 0 if absent (the broker
	 * treats absent as transient). Since 1.4. */
	int delivery_mode;
} warren_message;

/* A plugin parameter from the config file: `params { key = "value" }`.
 * Both strings are NUL-terminated and borrowed for the length of init.
 * Since 1.0. */
typedef struct warren_param {
	const char *key;
	const char *value;
} warren_param;

/* A message header for warren_publish: both strings NUL-terminated; the
 * value is sent as an AMQP long string. Since 1.1. */
typedef struct warren_header {
	const char *key;
	const char *value;
} warren_header;

/*
 * A follow-up message for warren_api.publish(). Zero it, set `size` to
 * sizeof(warren_publish), then the fields you need. Since 1.1.
 */
typedef struct warren_publish {
	size_t size;                  /* sizeof(warren_publish) */
	const char *exchange;         /* NULL or "" = the default exchange */
	const char *routing_key;      /* NULL = "" */
	warren_bytes body;            /* copied; may be empty */
	const char *content_type;     /* NULL = unset */
	const char *message_id;       /* NULL = unset */
	const char *correlation_id;   /* NULL = unset */
	const char *type;             /* the AMQP type property, NULL = unset */
	int transient;                /* 0 = persistent (delivery mode 2) */
	const warren_header *headers; /* nheaders entries, may be NULL */
	size_t nheaders;
} warren_publish;

/*
 * The kinds of an AMQP field (a header, or an entry of a nested table or
 * array), for warren_api.header_at and field_at. The AMQP wire types map to
 * fewer kinds: every integer width is one kind. Since 1.4.
 */
typedef enum warren_field_kind {
	WARREN_FIELD_VOID = 0,      /* no value (AMQP 'V'), or a type unknown to
	                             * this runtime */
	WARREN_FIELD_STRING = 1,    /* a long string: value.bytes (not checked
	                             * to be UTF-8, not NUL-terminated) */
	WARREN_FIELD_BYTES = 2,     /* a byte array ('x'): value.bytes */
	WARREN_FIELD_INT = 3,       /* any integer, signed or unsigned, 8 to 64
	                             * bits, that fits: value.i */
	WARREN_FIELD_UINT = 4,      /* an unsigned 64-bit integer over
	                             * INT64_MAX: value.u */
	WARREN_FIELD_FLOAT = 5,     /* a float or a double: value.f */
	WARREN_FIELD_BOOL = 6,      /* value.b, 0 or 1 */
	WARREN_FIELD_TIMESTAMP = 7, /* seconds since the epoch: value.u */
	WARREN_FIELD_DECIMAL = 8,   /* value.decimal: value / 10^places */
	WARREN_FIELD_TABLE = 9,     /* a nested table (named fields): descend
	                             * with field_at; value.nested.count */
	WARREN_FIELD_ARRAY = 10,    /* an array (unnamed fields): descend with
	                             * field_at; value.nested.count */
} warren_field_kind;

/*
 * One AMQP field, filled by warren_api.header_at or field_at. Everything
 * in it is borrowed from the message, like the message itself: valid until
 * the handler returns. Since 1.4.
 */
typedef struct warren_header_field {
	/* The field's name (a header's or a nested table entry's key), not
	 * NUL-terminated; len 0 for an element of an array. */
	warren_bytes name;
	/* A warren_field_kind: it says which member of `value` is set. */
	int kind;
	union {
		warren_bytes bytes; /* STRING, BYTES */
		int64_t i;          /* INT */
		uint64_t u;         /* UINT, TIMESTAMP */
		double f;           /* FLOAT */
		int b;              /* BOOL */
		struct {
			uint8_t places;
			uint32_t value;
		} decimal; /* DECIMAL */
		struct {
			size_t count;     /* entries of the table or array */
			const void *impl; /* the runtime's: pass the field
			                   * to field_at, never read it */
		} nested;                 /* TABLE, ARRAY */
	} value;
} warren_header_field;

/*
 * The runtime's API table, handed to init. Keep the pointer: it stays valid
 * until after fini returns. Entries are only ever appended. Since 1.0.
 */
typedef struct warren_api {
	/* The ABI the runtime implements. Since 1.0. */
	uint32_t abi_major;
	uint32_t abi_minor;

	/*
	 * log - write one line to the daemon's log, prefixed with the
	 * plugin's name. Thread-safe. `ctx` is the ctx given to init, fini or
	 * the handler. The formatted text is cut at 4 KiB. Since 1.0.
	 */
	void (*log)(warren_ctx *ctx, warren_log_level level, const char *fmt,
	            ...) WARREN_PRINTF(3, 4);

	/*
	 * reason - attach a reason to the outcome of the current handler call
	 * (why it rejected or asked for a retry). Only valid with a handler's
	 * ctx; the text is copied (cut at 1 KiB), a later call replaces it.
	 * Since 1.0.
	 */
	void (*reason)(warren_ctx *ctx, const char *fmt, ...)
	    WARREN_PRINTF(2, 3);

	/*
	 * header_string - look up an AMQP header (a field of the message's
	 * `headers` table) holding a string (longstr). On success sets *out
	 * to the borrowed bytes and returns 0; returns -1 if the header is
	 * absent or not a string. Since 1.0.
	 */
	int (*header_string)(const warren_message *msg, const char *name,
	                     warren_bytes *out);

	/*
	 * header_int - look up an AMQP header holding an integer of any width
	 * (signed or unsigned, 8 to 64 bits). On success sets *out and returns
	 * 0; returns -1 if absent, not an integer, or an unsigned value over
	 * INT64_MAX. Since 1.0.
	 */
	int (*header_int)(const warren_message *msg, const char *name,
	                  int64_t *out);

	/*
	 * param - the value of the plugin's config parameter `key`
	 * (NUL-terminated, borrowed until fini returns), or NULL if the config
	 * does not set it. Thread-safe. Since 1.0.
	 */
	const char *(*param)(warren_ctx *ctx, const char *key);

	/*
	 * publish - queue a follow-up message, sent when the handler returns
	 * WARREN_ACK (discarded on RETRY or REJECT). Everything is copied, so
	 * `p` and what it points to may be freed at once. The input message
	 * is acked only after the broker confirmed every follow-up; if one is
	 * refused or unroutable (nothing bound to its routing key) or its
	 * exchange does not exist, the input is retried per the route's
	 * policy instead. Only valid with a handler's ctx. Returns 0 if
	 * queued; -1 (and a log line naming the plugin) if `ctx` is not a
	 * handler's, `p` is NULL or malformed, or the call has already queued
	 * 256 messages or 64 MiB. Thread-safe. Since 1.1: check
	 * api->abi_minor >= 1 before calling it.
	 */
	int (*publish)(warren_ctx *ctx, const warren_publish *p);

	/*
	 * counter_add - add n to one of the plugin's own counters, e.g.
	 * api->counter_add(ctx, "emails_sent", 1). It is served on /metrics
	 * as warren_plugin_events_total{plugin="<the plugin's name in the
	 * conf>",name="<name>"} and in /status. `name` is 1 to 64 characters
	 * of [a-zA-Z0-9_], not starting with a digit. A counter only grows,
	 * and lives as long as the daemon (a reload keeps counting in it).
	 * Any ctx (init, a handler, fini). Thread-safe and lock-free: cheap
	 * enough to call for every message. Returns 0, or -1 for a bad name,
	 * a NULL ctx, or once 1,024 distinct counters exist (the first such
	 * calls are logged, naming the plugin and the name). Since 1.3:
	 * check api->abi_minor >= 3 before calling it.
	 */
	int (*counter_add)(warren_ctx *ctx, const char *name, uint64_t n);

	/*
	 * header_count - how many headers the message has (the fields of its
	 * AMQP `headers` table, whatever their kinds, warren's own x-warren-*
	 * and the broker's x-death included), 0 if it has none. Any thread,
	 * during the handler call that received msg. Since 1.4: check
	 * api->abi_minor >= 4 before calling it (and header_at, field_at).
	 */
	size_t (*header_count)(const warren_message *msg);

	/*
	 * header_at - the message's header number i (0 <= i < header_count,
	 * in the order the publisher sent them) into *out: its name, kind
	 * and value (see warren_header_field). Returns 0, or -1 if msg or
	 * out is NULL or i is out of range (*out untouched). What *out
	 * points to is borrowed from msg: valid until the handler returns.
	 * A TABLE or ARRAY header is not flattened: descend with field_at.
	 * Since 1.4.
	 *
	 *     for (size_t i = 0; i < api->header_count(msg); i++) {
	 *             warren_header_field f;
	 *             if (api->header_at(msg, i, &f) == 0 &&
	 *                 f.kind == WARREN_FIELD_INT)
	 *                     ... f.name, f.value.i ...
	 *     }
	 */
	int (*header_at)(const warren_message *msg, size_t i,
	                 warren_header_field *out);

	/*
	 * field_at - entry i (0 <= i < container->value.nested.count) of a
	 * nested table or array, given the field that holds it (as header_at
	 * or field_at filled it), into *out, like header_at: an array's
	 * elements have an empty name. Descends any depth, one level per
	 * call. Returns 0, or -1 if container is not a TABLE or ARRAY, i is
	 * out of range, or a pointer is NULL. Borrowed like header_at's.
	 * Since 1.4.
	 */
	int (*field_at)(const warren_header_field *container, size_t i,
	                warren_header_field *out);

	/*
	 * publishes_to - say, in init, that this plugin instance may publish
	 * follow-ups (api->publish) to `exchange` (NUL-terminated, copied),
	 * typically the exchange a param names. Before any message runs,
	 * warrend checks every exchange so named: `warrend -t` against the
	 * conf (declared there, or one of the broker's standard amq.*
	 * exchanges; any other is named in a warning line: it is checked
	 * on the broker at start), and the start and every reload on the
	 * broker, after declaring the conf's topology: an exchange neither
	 * declared by the conf nor existing on the broker refuses the start
	 * (a reload fails and the running generation keeps serving), with
	 * a message naming the plugin and the exchange. So a typo in a
	 * param fails at once, not once per message after max_attempts.
	 * "" (the default exchange) always exists and is accepted. Calling
	 * it is optional: publish() to an exchange never named works as
	 * before. Only valid with init's ctx, on init's thread. Returns 0,
	 * or -1 (and a log line naming the plugin) outside init, for a NULL
	 * or over-255-byte name, or out of memory. Since 1.4: check
	 * api->abi_minor >= 4 before calling it.
	 */
	int (*publishes_to)(warren_ctx *ctx, const char *exchange);
} warren_api;

/*
 * A handler. Called for each message routed to it; may be called
 * concurrently from several threads. Returns an outcome (see above).
 *  state  what init stored in *state (may be NULL)
 *  msg    the message, borrowed until the handler returns
 *  ctx    this call's ctx, for api->log and api->reason
 * A handler must not call exit(), longjmp out, or keep `msg` or `ctx`.
 * Since 1.0.
 */
typedef warren_outcome (*warren_handler_fn)(void *state,
                                            const warren_message *msg,
                                            warren_ctx *ctx);

/*
 * A batch handler, for routes with batch_size > 1: called with up to
 * batch_size messages of its route (fewer once batch_timeout_ms passed
 * since the first one arrived, or at shutdown). Sets outcomes[i] for each
 * msgs[i]; each message has its own ctx (ctxs[i]) for api->reason and
 * api->publish. outcomes[] starts as all WARREN_RETRY, so a message the
 * handler leaves alone is retried, never lost. Messages and ctxs are
 * borrowed until it returns. Since 1.1.
 */
typedef void (*warren_batch_fn)(void *state, size_t n,
                                const warren_message *const *msgs,
                                warren_ctx *const *ctxs,
                                warren_outcome *outcomes);

/*
 * warren_handler.flags (since 1.2):
 *
 * WARREN_HANDLER_NONBLOCKING  `handle` never waits -- no network or disk
 *   I/O, no sleep, no lock held for long -- and returns well within a
 *   millisecond. warrend then calls it on the thread of the connection the
 *   message came on, right after the parse, instead of handing the message
 *   to a worker thread and back: for such a handler that hand-off costs
 *   more than the call. A call that takes longer than 20 ms is logged as a
 *   warning and its route goes to the workers from then on (until the next
 *   reload): a wrong promise costs one stall of the connection, not a
 *   stalled connection. Ignored for batch routes.
 */
#define WARREN_HANDLER_NONBLOCKING ((uintptr_t)1)

/* One entry of a plugin's handler table. The table ends with an entry whose
 * name is NULL. Set `handle` (one message per call), or `handle_batch`
 * (since 1.1), or both: a route with batch_size > 1 needs handle_batch, a
 * route without it needs handle. Since 1.0. */
typedef struct warren_handler {
	const char *name;
	warren_handler_fn handle;
	warren_batch_fn handle_batch; /* since 1.1; was reserved (zero) */
	uintptr_t flags; /* WARREN_HANDLER_*; since 1.2, was reserved (zero) */
	/* Reserved for later ABI minors; leave zero. */
	void *reserved[1];
} warren_handler;

/*
 * init - set up one plugin instance. Called once, before any handler, with
 * the runtime API (keep it), a ctx for api->log / api->param, and the
 * plugin's params from the config. Store the plugin's state in *state.
 * Return 0 on success; on failure write a short reason into err (errlen
 * bytes, NUL-terminated) and return -1: the daemon then refuses to start
 * (or keeps the old plugins on reload). May be NULL. Since 1.0.
 */
typedef int (*warren_init_fn)(const warren_api *api, warren_ctx *ctx,
                              const warren_param *params, size_t nparams,
                              void **state, char *err, size_t errlen);

/*
 * fini - release what init made. Called once, after the last handler call
 * of this instance has returned. May be NULL. Since 1.0.
 */
typedef void (*warren_fini_fn)(void *state, warren_ctx *ctx);

/*
 * The plugin descriptor returned by warren_plugin_entry(). Start it with
 * WARREN_PLUGIN_ABI so the runtime can check the ABI first. Since 1.0.
 */
typedef struct warren_plugin {
	uint32_t abi_major;  /* WARREN_ABI_MAJOR the plugin was built with */
	uint32_t abi_minor;  /* WARREN_ABI_MINOR the plugin was built with */
	const char *name;    /* short name, used in logs */
	const char *version; /* the plugin's own version string */
	warren_init_fn init; /* may be NULL */
	warren_fini_fn fini; /* may be NULL */
	const warren_handler *handlers; /* ends with a { NULL } entry */
	void *reserved[4]; /* reserved for later ABI minors; leave zero */
} warren_plugin;

/* Put first in a warren_plugin initializer. */
#define WARREN_PLUGIN_ABI                                                      \
	.abi_major = WARREN_ABI_MAJOR, .abi_minor = WARREN_ABI_MINOR

/*
 * The entry symbol every plugin defines:
 *
 *     WARREN_EXPORT const warren_plugin *warren_plugin_entry(void)
 *     {
 *             static const warren_plugin p = { WARREN_PLUGIN_ABI, ... };
 *             return &p;
 *     }
 *
 * It must return a pointer to a descriptor that lives as long as the
 * plugin is loaded, and must have no side effects. Since 1.0.
 */
typedef const warren_plugin *(*warren_plugin_entry_fn)(void);
WARREN_EXPORT const warren_plugin *warren_plugin_entry(void);

#ifdef __cplusplus
}
#endif

#endif /* WARREN_H */
