/*
 * test_plugin_loader.c - wd_plugin_load / _handler / _init / _unload on the
 * fixture plugins (each drives one refusal of the loader), wd_routes_build
 * and wd_routes_find over a conf file, and the example plugins as built.
 * Criterion runs each test in its own process, so dlopen state never leaks
 * from one test to the next.
 */
#include <criterion/criterion.h>

#include <elf.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "host/plugin.h"
#include "host/routes.h"
#include "host/sdk_api.h"

static void clear_env(void)
{
	unsetenv("WARREN_AMQP_URL");
	unsetenv("WARREN_PLUGIN_DIR");
	unsetenv("WARREN_AMQP_PASSWORD");
}

TestSuite(plugin, .init = clear_env);
TestSuite(routes, .init = clear_env);
TestSuite(examples, .init = clear_env);

static char err[2048];

static struct wd_conf_plugin conf_for(const char *name, const char *path)
{
	static warren_param none[1];
	return (struct wd_conf_plugin){.name = (char *)name,
	                               .path = (char *)path,
	                               .params = none,
	                               .nparams = 0,
	                               .line = 1};
}

#define expect_has(hay, needle)                                                \
	cr_expect_not_null(strstr((hay), (needle)),                            \
	                   "\"%s\" does not contain \"%s\"", (hay), (needle))

/* ---- the loader -------------------------------------------------------- */

Test(plugin, good_plugin_loads)
{
	struct wd_conf_plugin c =
	    conf_for("good", WARREN_FIXTURE_DIR "/fx_good.so");
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(p.desc);
	cr_expect_not_null(p.dl);
	cr_expect_eq(p.conf, &c);
	cr_expect_str_eq(p.desc->name, "fx_good");
	cr_expect_eq(p.desc->abi_major, WARREN_ABI_MAJOR);
	cr_expect_not(p.inited);
	cr_expect_not_null(wd_plugin_handler(&p, "ok"));
	cr_expect_not_null(wd_plugin_handler(&p, "reject"));
	cr_expect_not_null(wd_plugin_handler(&p, "retry"));
	cr_expect_not_null(wd_plugin_handler(&p, "bogus"));
	cr_expect_null(wd_plugin_handler(&p, "nope"));
	cr_expect_null(wd_plugin_handler(&p, "Ok"));
	cr_expect_null(wd_plugin_handler(&p, ""));
	cr_expect_neq((void *)wd_plugin_handler(&p, "ok"),
	              (void *)wd_plugin_handler(&p, "reject"));

	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), 0, "%s", err);
	cr_expect(p.inited);
	wd_plugin_unload(&p);
	cr_expect_null(p.dl);
	cr_expect_null(p.desc);
	cr_expect_not(p.inited);
	/* A second unload is harmless. */
	wd_plugin_unload(&p);
}

Test(plugin, handler_runs)
{
	struct wd_conf_plugin c =
	    conf_for("good", WARREN_FIXTURE_DIR "/fx_good.so");
	struct wd_plugin p;
	warren_handler_fn ok, bogus;
	warren_message msg = {.size = sizeof(msg)};

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), 0, "%s", err);
	ok = wd_plugin_handler(&p, "ok");
	bogus = wd_plugin_handler(&p, "bogus");
	cr_assert_not_null(ok);
	cr_assert_not_null(bogus);
	cr_expect_eq(ok(p.state, &msg, NULL), WARREN_ACK);
	cr_expect_eq((int)bogus(p.state, &msg, NULL), 99);
	wd_plugin_unload(&p);
}

Test(plugin, handler_flags_since_abi_1_2)
{
	struct wd_conf_plugin c =
	    conf_for("flow", WARREN_FIXTURE_DIR "/fx_flow.so");
	struct wd_plugin p;
	warren_plugin older;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(wd_plugin_handler_flags(&p, "flow_nb"),
	             WARREN_HANDLER_NONBLOCKING);
	cr_expect_eq(wd_plugin_handler_flags(&p, "flow"), 0);
	cr_expect_eq(wd_plugin_handler_flags(&p, "nope"), 0);
	/* Built for 1.1, the field was reserved: not read, whatever is in
	 * it. */
	const warren_plugin *desc = p.desc;
	older = *desc;
	older.abi_minor = 1;
	p.desc = &older;
	cr_expect_eq(wd_plugin_handler_flags(&p, "flow_nb"), 0);
	p.desc = desc;
	wd_plugin_unload(&p);
}

Test(plugin, wrong_abi_refused)
{
	const char *path = WARREN_FIXTURE_DIR "/fx_wrong_abi.so";
	struct wd_conf_plugin c = conf_for("wrongabi", path);
	struct wd_plugin p;
	char theirs[32], ours[32];

	snprintf(theirs, sizeof(theirs), "ABI %d.%d", WARREN_ABI_MAJOR + 1,
	         WARREN_ABI_MINOR);
	snprintf(ours, sizeof(ours), "ABI %d.%d", WARREN_ABI_MAJOR,
	         WARREN_ABI_MINOR);
	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1);
	expect_has(err, "plugin \"wrongabi\"");
	expect_has(err, path);
	expect_has(err, theirs);
	expect_has(err, ours);
	expect_has(err, "rebuild");
	cr_expect_null(p.dl);
	cr_expect_null(p.desc);
	wd_plugin_unload(&p); /* safe on a refused plugin */
}

Test(plugin, no_entry_symbol_refused)
{
	const char *path = WARREN_FIXTURE_DIR "/fx_no_entry.so";
	struct wd_conf_plugin c = conf_for("noentry", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1);
	expect_has(err, "plugin \"noentry\"");
	expect_has(err, path);
	expect_has(err, "no warren_plugin_entry symbol");
	cr_expect_null(p.dl);
	cr_expect_null(p.desc);
	wd_plugin_unload(&p);
}

Test(plugin, null_entry_refused)
{
	const char *path = WARREN_FIXTURE_DIR "/fx_null_entry.so";
	struct wd_conf_plugin c = conf_for("nullentry", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1);
	expect_has(err, "plugin \"nullentry\"");
	expect_has(err, path);
	expect_has(err, "warren_plugin_entry() returned NULL");
	cr_expect_null(p.dl);
	cr_expect_null(p.desc);
}

Test(plugin, init_fails)
{
	const char *path = WARREN_FIXTURE_DIR "/fx_init_fails.so";
	struct wd_conf_plugin c = conf_for("initfails", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_not_null(wd_plugin_handler(&p, "ok"));
	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), -1);
	expect_has(err, "plugin \"initfails\"");
	expect_has(err, path);
	expect_has(err, "init failed: database unreachable");
	cr_expect_not(p.inited);
	wd_plugin_unload(&p);
	cr_expect_null(p.dl);
}

Test(plugin, missing_file)
{
	const char *path = WARREN_FIXTURE_DIR "/does_not_exist.so";
	struct wd_conf_plugin c = conf_for("ghost", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1);
	expect_has(err, "plugin \"ghost\"");
	expect_has(err, path);
	expect_has(err, "cannot load");
	cr_expect_null(p.dl);
	wd_plugin_unload(&p);
}

Test(plugin, not_a_shared_object)
{
	const char *path = WARREN_SOURCE_DIR "/conf/warren.conf";
	struct wd_conf_plugin c = conf_for("text", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1);
	expect_has(err, path);
	expect_has(err, "cannot load");
}

Test(plugin, error_is_cut_to_errlen)
{
	struct wd_conf_plugin c =
	    conf_for("wrongabi", WARREN_FIXTURE_DIR "/fx_wrong_abi.so");
	struct wd_plugin p;
	char small[24];

	memset(small, 'x', sizeof(small));
	cr_assert_eq(wd_plugin_load(&p, &c, small, sizeof(small)), -1);
	cr_expect_eq(small[sizeof(small) - 1], '\0');
	cr_expect_eq(strlen(small), sizeof(small) - 1);
	cr_expect_eq(strncmp(small, "plugin \"wrongabi\"", 17), 0, "%s", small);
}

Test(plugin, param_lookup_via_ctx)
{
	warren_param params[] = {{"from", "a@b.example"}, {"n", "3"}};
	struct wd_conf_plugin c =
	    conf_for("good", WARREN_FIXTURE_DIR "/fx_good.so");
	struct wd_plugin p;

	c.params = params;
	c.nparams = 2;
	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(wd_sdk_api.param(&p.ctx, "from"), "a@b.example");
	cr_expect_str_eq(wd_sdk_api.param(&p.ctx, "n"), "3");
	cr_expect_null(wd_sdk_api.param(&p.ctx, "missing"));
	cr_expect_null(wd_sdk_api.param(&p.ctx, NULL));
	cr_expect_null(wd_sdk_api.param(NULL, "from"));
	wd_plugin_unload(&p);
}

/* ---- routes over a conf file ------------------------------------------- */

static char conf_path[64];

static struct wd_conf *load_conf_text(const char *text)
{
	struct wd_conf *c;
	FILE *f;
	int fd;

	snprintf(conf_path, sizeof(conf_path),
	         "/tmp/warren-test-routes-XXXXXX");
	fd = mkstemp(conf_path);
	cr_assert_geq(fd, 0);
	f = fdopen(fd, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	c = wd_conf_load(conf_path, err, sizeof(err));
	unlink(conf_path);
	cr_assert_not_null(c, "conf refused: %s", err);
	return c;
}

/* Lines:   1 plugin_dir, 2-3 queue a, 4-5 queue b, 6-8 plugin g,
 * 9-13 route "t" on a (handler %s), 14-18 route "u" on b (handler ok). */
static struct wd_conf *fixture_conf(const char *handler)
{
	char text[2048];

	snprintf(text, sizeof(text),
	         "plugin_dir = \"%s\"\n"
	         "queue \"a\" { dead_letter_exchange = \"x\"\n"
	         "}\n"
	         "queue \"b\" { dead_letter_exchange = \"x\"\n"
	         "}\n"
	         "plugin \"g\" {\n"
	         "    path = \"fx_good.so\"\n"
	         "}\n"
	         "route \"t\" {\n"
	         "    queue = \"a\"\n"
	         "    plugin = \"g\"\n"
	         "    handler = \"%s\"\n"
	         "}\n"
	         "route \"u\" {\n"
	         "    queue = \"b\"\n"
	         "    plugin = \"g\"\n"
	         "    handler = \"reject\"\n"
	         "}\n",
	         WARREN_FIXTURE_DIR, handler);
	return load_conf_text(text);
}

static warren_bytes wb(const char *s)
{
	return (warren_bytes){s, strlen(s)};
}

/* publishes_to records what init names, each once, and only in init. */
Test(plugin, publishes_to_records_in_init_only)
{
	warren_param params[] = {{"publishes_to", "orders"}};
	struct wd_conf_plugin c =
	    conf_for("props", WARREN_FIXTURE_DIR "/fx_props.so");
	struct wd_plugin p;

	c.params = params;
	c.nparams = 1;
	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.desc->abi_minor, 4);
	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(p.targets.n, 1);
	cr_expect_str_eq(p.targets.names[0], "orders");
	cr_expect_null(p.ctx.targets, "the ctx records during init only");
	/* After init (the same ctx fini gets): refused, nothing recorded. */
	cr_expect_eq(wd_sdk_api.publishes_to(&p.ctx, "later"), -1);
	cr_expect_eq(wd_sdk_api.publishes_to(NULL, "x"), -1);
	cr_expect_eq(p.targets.n, 1);
	/* What init would see: repeats kept once, "" fine, bounds. */
	struct warren_ctx ctx = {.plugin = &c, .targets = &p.targets};
	char long_name[300];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	cr_expect_eq(wd_sdk_api.publishes_to(&ctx, "orders"), 0);
	cr_expect_eq(wd_sdk_api.publishes_to(&ctx, ""), 0);
	cr_expect_eq(wd_sdk_api.publishes_to(&ctx, NULL), -1);
	cr_expect_eq(wd_sdk_api.publishes_to(&ctx, long_name), -1);
	long_name[255] = '\0';
	cr_expect_eq(wd_sdk_api.publishes_to(&ctx, long_name), 0);
	cr_expect_eq(p.targets.n, 3);
	wd_plugin_unload(&p);
	cr_expect_eq(p.targets.n, 0);
}

/* A plugin built for 1.3 loads on this 1.4 runtime. */
Test(plugin, abi_1_3_plugin_loads)
{
	struct wd_conf_plugin c =
	    conf_for("props13", WARREN_FIXTURE_DIR "/fx_props_13.so");
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(p.desc->abi_minor, 3);
	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), 0, "%s", err);
	cr_expect_not_null(wd_plugin_handler(&p, "props"));
	cr_expect_eq(p.targets.n, 0);
	wd_plugin_unload(&p);
}

Test(routes, unknown_handler)
{
	struct wd_conf *c = fixture_conf("x");
	struct wd_routes *r;
	char want[1024];

	r = wd_routes_build(c, err, sizeof(err)); /* takes c, even on error */
	cr_assert_null(r);
	snprintf(want, sizeof(want),
	         "%s:12: route \"t\": plugin \"g\" (%s/fx_good.so) has no "
	         "handler \"x\" (it has: ok, reject, retry, bogus)",
	         conf_path, WARREN_FIXTURE_DIR);
	cr_expect_str_eq(err, want);
}

Test(routes, good_conf_builds_and_finds)
{
	struct wd_conf *c = fixture_conf("ok");
	struct wd_routes *r;
	const struct wd_route *rt;
	long qa, qb;

	qa = wd_conf_queue_index(c, "a");
	qb = wd_conf_queue_index(c, "b");
	cr_assert_geq(qa, 0);
	cr_assert_geq(qb, 0);
	r = wd_routes_build(c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	cr_expect_eq(r->conf, c);
	cr_expect_eq(r->nplugins, 1);
	cr_expect_eq(r->nroutes, 2);
	cr_expect(r->plugins[0].inited, "init ran");

	rt = wd_routes_find(r, (size_t)qa, wb("t"));
	cr_assert_not_null(rt);
	cr_expect_eq(rt->type_len, 1);
	cr_expect_str_eq(rt->handler_name, "ok");
	cr_expect_eq(rt->queue, (size_t)qa);
	cr_expect_eq(rt->plugin, &r->plugins[0]);
	cr_expect_eq((void *)rt->handle,
	             (void *)wd_plugin_handler(&r->plugins[0], "ok"));

	rt = wd_routes_find(r, (size_t)qb, wb("u"));
	cr_assert_not_null(rt);
	cr_expect_str_eq(rt->handler_name, "reject");

	/* Another type, another queue, a prefix, a longer type: no route. */
	cr_expect_null(wd_routes_find(r, (size_t)qa, wb("other")));
	cr_expect_null(wd_routes_find(r, (size_t)qb, wb("t")));
	cr_expect_null(wd_routes_find(r, (size_t)qa, wb("u")));
	cr_expect_null(wd_routes_find(r, (size_t)qa, wb("tt")));
	cr_expect_null(wd_routes_find(r, (size_t)qa, wb("")));
	/* Matching is on the type's bytes: no NUL needed after them. */
	cr_expect_not_null(
	    wd_routes_find(r, (size_t)qa, (warren_bytes){"tXYZ", 1}));
	wd_routes_free(r);
}

Test(routes, init_failure_fails_the_build)
{
	char text[1024];
	struct wd_routes *r;

	snprintf(text, sizeof(text),
	         "plugin_dir = \"%s\"\n"
	         "queue \"a\" { dead_letter_exchange = \"x\" }\n"
	         "plugin \"f\" {\n    path = \"fx_init_fails.so\"\n}\n"
	         "route \"t\" {\n    queue = \"a\"\n    plugin = \"f\"\n"
	         "    handler = \"ok\"\n}\n",
	         WARREN_FIXTURE_DIR);
	r = wd_routes_build(load_conf_text(text), err, sizeof(err));
	cr_assert_null(r);
	expect_has(err, "plugin \"f\"");
	expect_has(err, WARREN_FIXTURE_DIR "/fx_init_fails.so");
	expect_has(err, "database unreachable");
}

Test(routes, bad_plugin_fails_the_build)
{
	char text[1024];
	struct wd_routes *r;

	snprintf(text, sizeof(text),
	         "plugin_dir = \"%s\"\n"
	         "queue \"a\" { dead_letter_exchange = \"x\" }\n"
	         "plugin \"g\" {\n    path = \"fx_good.so\"\n}\n"
	         "plugin \"w\" {\n    path = \"fx_wrong_abi.so\"\n}\n"
	         "route \"t\" {\n    queue = \"a\"\n    plugin = \"g\"\n"
	         "    handler = \"ok\"\n}\n",
	         WARREN_FIXTURE_DIR);
	r = wd_routes_build(load_conf_text(text), err, sizeof(err));
	cr_assert_null(r);
	expect_has(err, "plugin \"w\"");
	expect_has(err, WARREN_FIXTURE_DIR "/fx_wrong_abi.so");
	expect_has(err, "rebuild");
}

/* ---- the example plugins, as built ------------------------------------- */

static void load_example(const char *name, const char *handler,
                         warren_param *params, size_t nparams)
{
	char path[1024];
	struct wd_conf_plugin c;
	struct wd_plugin p;

	snprintf(path, sizeof(path), "%s/%s.so", WARREN_PLUGIN_BUILD_DIR, name);
	c = conf_for(name, path);
	if (params) {
		c.params = params;
		c.nparams = nparams;
	}
	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	cr_expect_str_eq(p.desc->name, name);
	cr_expect_eq(p.desc->abi_major, WARREN_ABI_MAJOR);
	cr_expect_leq(p.desc->abi_minor, WARREN_ABI_MINOR);
	cr_expect_not_null(p.desc->version);
	cr_expect_not_null(wd_plugin_handler(&p, handler), "%s has no %s", name,
	                   handler);
	cr_expect_null(wd_plugin_handler(&p, "nope"));
	cr_assert_eq(wd_plugin_init(&p, err, sizeof(err)), 0, "%s", err);
	cr_expect(p.inited);
	cr_expect_not_null(p.state, "%s stores its state", name);
	if (params)
		cr_expect_str_eq(wd_sdk_api.param(&p.ctx, params[0].key),
		                 params[0].value);
	wd_plugin_unload(&p);
	cr_expect_null(p.dl);
}

Test(examples, user_signup)
{
	load_example("user_signup", "signup", NULL, 0);
}

Test(examples, order_created)
{
	load_example("order_created", "created", NULL, 0);
}

Test(examples, email_send)
{
	warren_param params[] = {{"from", "noreply@example.com"}};

	load_example("email_send", "send", params, 1);
}

Test(examples, shipped_conf_builds)
{
	struct wd_conf *c;
	struct wd_routes *r;
	long q;

	setenv("WARREN_PLUGIN_DIR", WARREN_PLUGIN_BUILD_DIR, 1);
	c = wd_conf_load(WARREN_SOURCE_DIR "/conf/warren.conf", err,
	                 sizeof(err));
	cr_assert_not_null(c, "%s", err);
	q = wd_conf_queue_index(c, "events");
	cr_assert_geq(q, 0);
	r = wd_routes_build(c, err, sizeof(err));
	cr_assert_not_null(r, "%s", err);
	cr_expect_eq(r->nplugins, 3);
	cr_expect_eq(r->nroutes, 3);
	cr_expect_not_null(wd_routes_find(r, (size_t)q, wb("user:signup")));
	cr_expect_not_null(wd_routes_find(r, (size_t)q, wb("order:created")));
	cr_expect_not_null(wd_routes_find(r, (size_t)q, wb("email:send")));
	cr_expect_null(wd_routes_find(r, (size_t)q, wb("user:deleted")));
	cr_expect_null(wd_routes_find(r, (size_t)q + 1, wb("user:signup")));
	for (size_t i = 0; i < r->nplugins; i++)
		cr_expect(r->plugins[i].inited, "plugin %zu not inited", i);
	wd_routes_free(r);
}

/* ---- broken plugin files: refused before dlopen, never a crash --------- */

static char broken_dir[256];

static const char *broken_path(const char *name)
{
	static char path[512];

	if (!broken_dir[0]) {
		snprintf(broken_dir, sizeof(broken_dir), "%s/wd-broken-XXXXXX",
		         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
		cr_assert_not_null(mkdtemp(broken_dir));
	}
	snprintf(path, sizeof(path), "%s/%s", broken_dir, name);
	return path;
}

/* fx_good.so's bytes, malloc'd. */
static unsigned char *good_bytes(size_t *len)
{
	FILE *f = fopen(WARREN_FIXTURE_DIR "/fx_good.so", "rb");
	unsigned char *b;
	long n;

	cr_assert_not_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = malloc((size_t)n);
	cr_assert_not_null(b);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static const char *write_file(const char *name, const void *b, size_t len)
{
	const char *path = broken_path(name);
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(b, 1, len, f), len);
	fclose(f);
	return path;
}

static void expect_refused(const char *path, const char *why)
{
	struct wd_conf_plugin c = conf_for("broken", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1, "%s loaded",
	             path);
	expect_has(err, "plugin \"broken\"");
	expect_has(err, path);
	expect_has(err, "cannot load");
	expect_has(err, why);
	cr_expect_null(p.dl);
}

Test(plugin, truncated_files_are_refused, .timeout = 20)
{
	size_t len;
	unsigned char *b = good_bytes(&len);
	/* The end of the last loadable segment: one byte short of it is
	 * the last file that must be refused. (Past it lie the section
	 * headers, which dlopen does not need.) */
	const Elf64_Ehdr *h = (const Elf64_Ehdr *)b;
	size_t load_end = 0;
	for (int i = 0; i < h->e_phnum; i++) {
		const Elf64_Phdr *ph =
		    (const Elf64_Phdr *)(b + h->e_phoff + i * sizeof(*ph));
		if (ph->p_type == PT_LOAD &&
		    ph->p_offset + ph->p_filesz > load_end)
			load_end = ph->p_offset + ph->p_filesz;
	}
	cr_assert_gt(load_end, 4000);
	const size_t cuts[] = {10, 63, 64, 200, 4000, len / 2, load_end - 1};
	char name[64];

	expect_refused(write_file("empty.so", b, 0), "the file is empty");
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		snprintf(name, sizeof(name), "cut-%zu.so", cuts[i]);
		struct wd_conf_plugin c =
		    conf_for("broken", write_file(name, b, cuts[i]));
		struct wd_plugin p;
		cr_expect_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1,
		             "%zu of %zu bytes loaded", cuts[i], len);
		expect_has(err, "cannot load");
		cr_expect(strstr(err, "truncated") ||
		              strstr(err, "too short") ||
		              strstr(err, "no usable program headers") ||
		              strstr(err, "dlopen") || strstr(err, "ELF"),
		          "%zu bytes: %s", cuts[i], err);
	}
	free(b);
}

Test(plugin, other_machine_random_bytes_dir_and_fifo_are_refused, .timeout = 20)
{
	size_t len;
	unsigned char *b = good_bytes(&len), noise[4096];
	unsigned x = 12345;

	/* e_machine (bytes 18-19, little-endian): AArch64. */
	b[18] = 183;
	b[19] = 0;
	expect_refused(write_file("aarch64.so", b, len), "built for AArch64");
	free(b);
	for (size_t i = 0; i < sizeof(noise); i++)
		noise[i] =
		    (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
	expect_refused(write_file("noise.so", noise, sizeof(noise)),
	               "not an ELF file");
	cr_assert_eq(mkdir(broken_path("dir.so"), 0700), 0);
	expect_refused(broken_path("dir.so"), "it is a directory");
	cr_assert_eq(mkfifo(broken_path("fifo.so"), 0600), 0);
	expect_refused(broken_path("fifo.so"), "not a regular file");
}

/* ---- who could have written it (base/trust.h) ------------------------ */

/* fx_good.so copied into a directory of its own (0700) as `name`, mode
 * `mode`; its path. */
static const char *trusted_copy(const char *name, mode_t mode)
{
	size_t len;
	unsigned char *b = good_bytes(&len);
	const char *path = write_file(name, b, len);

	free(b);
	cr_assert_eq(chmod(path, mode), 0);
	return path;
}

static void expect_untrusted(const char *path, const char *why)
{
	struct wd_conf_plugin c = conf_for("p", path);
	struct wd_plugin p;

	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), -1, "%s loaded",
	             path);
	expect_has(err, "plugin \"p\"");
	expect_has(err, "refused");
	expect_has(err, why);
	expect_has(err, "plugin_insecure = true");
	cr_expect_null(p.dl);
}

static void expect_loads(const char *path, bool insecure)
{
	struct wd_conf_plugin c = conf_for("p", path);
	struct wd_plugin p;

	c.insecure = insecure;
	cr_assert_eq(wd_plugin_load(&p, &c, err, sizeof(err)), 0, "%s", err);
	wd_plugin_unload(&p);
}

Test(plugin, a_file_others_could_write_is_refused)
{
	const char *path = trusted_copy("w.so", 0644);
	char want[600];

	expect_loads(path, false);
	cr_assert_eq(chmod(path, 0664), 0);
	snprintf(want, sizeof(want),
	         "%s is writable by its group (mode 0664): anyone in its group "
	         "could change it: chmod go-w %s",
	         path, path);
	expect_untrusted(path, want);
	cr_assert_eq(chmod(path, 0646), 0);
	expect_untrusted(path, "is writable by others (mode 0646): anyone on "
	                       "this machine");
	cr_assert_eq(chmod(path, 0666), 0);
	expect_untrusted(path, "writable by group and others (mode 0666)");
	/* The foot-gun, for development. */
	expect_loads(path, true);
}

Test(plugin, a_directory_others_could_write_is_refused_unless_sticky)
{
	const char *path = trusted_copy("d.so", 0755);
	char want[600];

	cr_assert_eq(chmod(broken_dir, 0777), 0);
	snprintf(want, sizeof(want),
	         "the directory %s is writable by group and others (mode "
	         "0777)",
	         broken_dir);
	expect_untrusted(path, want);
	/* Sticky, as /tmp: others cannot rename or remove what is ours. */
	cr_assert_eq(chmod(broken_dir, 01777), 0);
	expect_loads(path, false);
	cr_assert_eq(chmod(broken_dir, 0700), 0);
	expect_loads(path, false);
}

Test(plugin, a_file_or_directory_of_another_user_is_refused)
{
	const char *path = trusted_copy("o.so", 0644);

	if (geteuid() != 0)
		cr_skip_test("needs root to give a file away (chown)");
	cr_assert_eq(chown(path, 65534, 65534), 0);
	expect_untrusted(path, "is owned by uid 65534");
	expect_has(err, "neither root nor warrend's user (uid 0");
	expect_has(err, "chown root");
	cr_assert_eq(chown(path, 0, 0), 0);
	expect_loads(path, false);
	cr_assert_eq(chown(broken_dir, 65534, 65534), 0);
	expect_untrusted(path, "the directory");
	expect_has(err, "is owned by uid 65534");
	cr_assert_eq(chown(broken_dir, 0, 0), 0);
}

/* A symbolic link is followed: the directories checked are the target's,
 * and a link in a directory others could write is refused too. */
Test(plugin, a_link_is_checked_where_it_leads)
{
	const char *path = trusted_copy("t.so", 0644);
	char link[600], target[512];

	snprintf(target, sizeof(target), "%s", path);
	snprintf(link, sizeof(link), "%s/link.so", broken_dir);
	cr_assert_eq(symlink(target, link), 0);
	expect_loads(link, false);
	cr_assert_eq(chmod(target, 0666), 0);
	expect_untrusted(link, "writable by group and others");
}

/* A file written while it is copied (a build or cp in place) is refused:
 * half of one file and half of another is neither. A writer appends to it
 * without pause; within 10 s of loads at least one sees it change. */
static atomic_int writing = 1;
static atomic_long appended;
static void *append_forever(void *arg)
{
	FILE *f = fopen(arg, "ab");

	while (f && atomic_load(&writing)) {
		fputc(0, f);
		fflush(f);
		atomic_fetch_add(&appended, 1);
	}
	if (f)
		fclose(f);
	return NULL;
}

Test(plugin, a_file_changing_while_copied_is_refused, .timeout = 30)
{
	const char *path = trusted_copy("c.so", 0644);
	static char p2[512];
	char last[2048] = "";
	pthread_t t;
	int seen = 0;
	time_t end;

	snprintf(p2, sizeof(p2), "%s", path);
	cr_assert_eq(pthread_create(&t, NULL, append_forever, p2), 0);
	while (atomic_load(&appended) == 0)
		usleep(1000); /* the writer is at it (bounded by .timeout) */
	for (end = time(NULL) + 10; !seen && time(NULL) < end;) {
		struct wd_conf_plugin c = conf_for("p", p2);
		struct wd_plugin p;
		if (wd_plugin_load(&p, &c, err, sizeof(err)) == 0)
			wd_plugin_unload(&p);
		else if (strstr(err, "changed while being copied"))
			seen = 1;
		else
			snprintf(last, sizeof(last), "%s", err);
	}
	atomic_store(&writing, 0);
	pthread_join(t, NULL);
	cr_assert(seen, "never refused as changing; last error: %s", last);
	expect_has(err, "install plugins by rename");
}
