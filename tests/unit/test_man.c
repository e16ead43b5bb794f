/*
 * test_man.c - the man pages (doc/, built by CMake with scdoc): each lints
 * clean with `mandoc -Tlint -Wwarning`; warren.conf(5) holds exactly what
 * doc/conf_ref_to_scd.awk makes of this tree's README.md (so the page and
 * the README's configuration reference cannot drift: a README edited after
 * the build, or a page assembled from anything else, fails here); and the
 * keys that reference documents are the keys the parser's schema has, both
 * ways, with the same defaults where the reference gives one literally.
 *
 * Built without scdoc (no WARREN_MAN_DIR), every test is skipped saying so.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/conf_parse.h"

#ifdef WARREN_MAN_DIR
#define SKIP_WITHOUT_PAGES() (void)0
#else
#define WARREN_MAN_DIR ""
#define SKIP_WITHOUT_PAGES()                                                   \
	cr_skip_test("scdoc was not found when the build was configured: "     \
	             "the man pages are not built (apt-get install scdoc)")
#endif

TestSuite(man);

/* Run `cmd` through the shell; its stdout and stderr into a malloc'd
 * string (*out), its exit status returned (-1 if it did not exit). */
static int run(const char *cmd, char **out)
{
	char full[4096];
	size_t len = 0, cap = 4096;
	char *buf = malloc(cap);
	FILE *p;
	int st;

	cr_assert_not_null(buf);
	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	p = popen(full, "r");
	cr_assert_not_null(p, "popen(%s): %s", cmd, strerror(errno));
	for (;;) {
		size_t n;

		if (cap - len < 1024) {
			cap *= 2;
			buf = realloc(buf, cap);
			cr_assert_not_null(buf);
		}
		n = fread(buf + len, 1, cap - len - 1, p);
		if (n == 0)
			break;
		len += n;
	}
	buf[len] = '\0';
	st = pclose(p);
	*out = buf;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s: %s", path, strerror(errno));
	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	cr_assert_geq(n, 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* mandoc -Tlint -Wwarning: silent and 0 for a page without a warning or
 * an error; it names the line of each otherwise. */
static void lint(const char *page)
{
	char cmd[1024], *out;
	int rc;

	SKIP_WITHOUT_PAGES();
	snprintf(cmd, sizeof(cmd), "mandoc -Tlint -Wwarning '%s/%s'",
	         WARREN_MAN_DIR, page);
	rc = run(cmd, &out);
	cr_expect_eq(rc, 0, "%s: mandoc -Tlint exit %d:\n%s", page, rc, out);
	cr_expect_str_empty(out, "%s: mandoc -Tlint says:\n%s", page, out);
	free(out);
}

Test(man, warrend_8_lints_clean)
{
	lint("warrend.8");
}
Test(man, warren_conf_5_lints_clean)
{
	lint("warren.conf.5");
}
Test(man, warrenctl_1_lints_clean)
{
	lint("warrenctl.1");
}
Test(man, warren_load_1_lints_clean)
{
	lint("warren-load.1");
}
Test(man, warren_plugin_3_lints_clean)
{
	lint("warren-plugin.3");
}

Test(man, warren_conf_5_is_the_readme_reference)
{
	char cmd[1024], *fresh, *page;
	int rc;

	SKIP_WITHOUT_PAGES();
	snprintf(cmd, sizeof(cmd),
	         "awk -f '%s/doc/conf_ref_to_scd.awk' '%s/README.md'",
	         WARREN_SOURCE_DIR, WARREN_SOURCE_DIR);
	rc = run(cmd, &fresh);
	cr_assert_eq(rc, 0, "conf_ref_to_scd.awk failed: %s", fresh);
	/* Not empty by accident: the reference's first and last tables. */
	cr_assert(strstr(fresh, "*log\\_level* (default: *\"info\"*)"),
	          "%.300s", fresh);
	cr_assert(strstr(fresh, "*batch\\_timeout\\_ms* (default: *100*)"));
	/* The scdoc source the page was built from (build_page.cmake). */
	page = read_file(WARREN_MAN_DIR "/warren.conf.5.scd");
	cr_expect(strstr(page, fresh),
	          "build/doc/warren.conf.5 is not built from this README's "
	          "\"Configuration reference\" (edited since the build? "
	          "rebuild)");
	free(page);
	/* And the built page says it: a key of each kind of section. */
	page = read_file(WARREN_MAN_DIR "/warren.conf.5");
	cr_expect(
	    strstr(page, "\\fBshutdown_timeout\\fR (default: \\fB30\\fR)"),
	    "warren.conf.5 lacks the shutdown_timeout entry");
	cr_expect(strstr(page, ".SS route \"NAME\" { }"),
	          "warren.conf.5 lacks the route subsection");
	free(page);
	free(fresh);
}

/* The schema's keys ("key", "section", "section|key") and their options. */
static char schema_list[200][64];
static const cfg_opt_t *schema_opt[200];
static size_t nschema;

static void walk(const cfg_opt_t *opts, const char *prefix)
{
	for (const cfg_opt_t *o = opts; o->name; o++) {
		cr_assert_lt(nschema, 200);
		snprintf(schema_list[nschema], sizeof(schema_list[0]), "%s%s%s",
		         prefix, *prefix ? "|" : "", o->name);
		schema_opt[nschema++] = o;
		if (o->type == CFGT_SEC && !*prefix)
			walk(o->subopts, o->name);
	}
}

/* The schema, as the parser builds it: an empty text parsed by
 * wd_conf_parse_text(), its option tree walked. */
static cfg_t *load_schema(void)
{
	char text[] = "", err[512] = "";
	struct wd_conf_load_ctx ctx = {
	    .path = "empty", .err = err, .errlen = sizeof(err)};
	cfg_t *cfg;

	wd_conf_cur = &ctx;
	cfg = wd_conf_parse_text("empty", text, 0);
	wd_conf_cur = NULL;
	cr_assert_not_null(cfg, "an empty conf does not parse: %s", err);
	nschema = 0;
	walk(cfg->opts, "");
	return cfg;
}

/* The documented keys and defaults (doc/conf_ref_keys.awk). */
static size_t documented(char names[][64], char defs[][128], size_t cap)
{
	char cmd[1024], *out, *line, *save = NULL;
	size_t n = 0;
	int rc;

	snprintf(cmd, sizeof(cmd),
	         "awk -f '%s/doc/conf_ref_keys.awk' '%s/README.md'",
	         WARREN_SOURCE_DIR, WARREN_SOURCE_DIR);
	rc = run(cmd, &out);
	cr_assert_eq(rc, 0, "conf_ref_keys.awk failed: %s", out);
	for (line = strtok_r(out, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t');

		cr_assert_lt(n, cap);
		if (tab)
			*tab++ = '\0';
		snprintf(names[n], 64, "%s", line);
		snprintf(defs[n], 128, "%s", tab ? tab : "");
		n++;
	}
	free(out);
	return n;
}

static long find(char list[][64], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0)
			return (long)i;
	return -1;
}

Test(man, every_schema_key_is_documented_and_no_other)
{
	static char names[200][64], defs[200][128];
	cfg_t *cfg = load_schema();
	size_t n = documented(names, defs, 200);

	cr_assert_gt(nschema, 60, "the schema walk found %zu keys", nschema);
	for (size_t i = 0; i < nschema; i++)
		cr_expect_geq(find(names, n, schema_list[i]), 0,
		              "conf key \"%s\" (runtime/conf/conf_schema.c) is "
		              "not in README.md's Configuration reference",
		              schema_list[i]);
	for (size_t i = 0; i < n; i++)
		cr_expect_geq(find(schema_list, nschema, names[i]), 0,
		              "README.md's Configuration reference documents "
		              "\"%s\", which runtime/conf/conf_schema.c does "
		              "not have",
		              names[i]);
	cfg_free(cfg);
}

Test(man, documented_defaults_are_the_schemas)
{
	static char names[200][64], defs[200][128];
	cfg_t *cfg = load_schema();
	size_t n = documented(names, defs, 200), compared = 0;

	for (size_t i = 0; i < n; i++) {
		long k = find(schema_list, nschema, names[i]);
		const cfg_opt_t *o;
		char want[160];

		if (k < 0 || !defs[i][0])
			continue;
		o = schema_opt[k];
		if (o->flags & (CFGF_LIST | CFGF_NODEFAULT))
			continue; /* url, arguments: lists; overrides */
		switch (o->type) {
		case CFGT_INT:
			/* prefetch: an int in the schema, "auto" as -1. */
			if (o->def.number == WD_PREFETCH_AUTO &&
			    strstr(names[i], "prefetch"))
				snprintf(want, sizeof(want), "\"auto\"");
			else
				snprintf(want, sizeof(want), "%ld",
				         o->def.number);
			break;
		case CFGT_FLOAT:
			snprintf(want, sizeof(want), "%.1f", o->def.fpnumber);
			if (strcmp(want, defs[i]) != 0)
				snprintf(want, sizeof(want), "%g",
				         o->def.fpnumber);
			break;
		case CFGT_BOOL:
			snprintf(want, sizeof(want), "%s",
			         o->def.boolean ? "true" : "false");
			break;
		case CFGT_STR:
			snprintf(want, sizeof(want), "\"%s\"",
			         o->def.string ? o->def.string : "");
			break;
		default:
			continue;
		}
		cr_expect_str_eq(defs[i], want,
		                 "README.md documents %s's default as %s, the "
		                 "schema has %s",
		                 names[i], defs[i], want);
		compared++;
	}
	cr_expect_gt(compared, 30, "only %zu defaults compared", compared);
	cfg_free(cfg);
}

/* The page's EXAMPLE is a configuration warrend -t accepts. */
Test(man, warren_conf_5_example_passes_warrend_t)
{
	char path[] = "/tmp/warren-test-man-ex-XXXXXX", cmd[2048], *out;
	int fd, rc;

	SKIP_WITHOUT_PAGES();
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
	/* The first literal block after "# EXAMPLE". */
	snprintf(cmd, sizeof(cmd),
	         "awk '/^# EXAMPLE/ { e = 1 } e && /^```$/ { if (++n == 2) "
	         "exit; next } e && n == 1' '%s/warren.conf.5.in.scd' > '%s'",
	         WARREN_MAN_DIR, path);
	rc = run(cmd, &out);
	cr_assert_eq(rc, 0, "%s", out);
	free(out);
	/* Its password_file (/etc/warren/amqp.pass) is not on this machine:
	 * the environment's password stands in, and it is not read. */
	snprintf(
	    cmd, sizeof(cmd),
	    "WARREN_AMQP_PASSWORD=x WARREN_PLUGIN_DIR='%s' '%s' -t -c '%s'",
	    WARREN_PLUGIN_BUILD_DIR, WARREN_WARREND, path);
	rc = run(cmd, &out);
	unlink(path);
	cr_expect_eq(rc, 0, "warrend -t on warren.conf(5)'s EXAMPLE: %s", out);
	cr_expect(strstr(out, "1 plugin(s), 1 route(s), 2 queue(s)"), "%s",
	          out);
	free(out);
}
