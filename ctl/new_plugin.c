/* new_plugin.c - `warrenctl new-plugin NAME [DIR]`: an out-of-tree plugin
 * to start from. The three files come from ctl/template/ (skeleton.c,
 * Makefile, skeleton.conf), embedded at build time (embed.cmake), with the
 * placeholder name "skeleton" replaced by NAME. The template is a real
 * plugin, built with the tree, so what this writes is code that compiles.
 *
 * Nothing is overwritten without --force, and nothing at all is written
 * when any of the three files exists: a half-replaced plugin (a new
 * Makefile next to the user's own NAME.c) is worse than an error. Each
 * file is written by rename, so none is ever half-written; a write that
 * fails part-way (a full disk) leaves the files written before it. */
#include "new_plugin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "new_plugin_templates.h" /* generated: wc_tmpl_* byte arrays */

#define PLACEHOLDER "skeleton"
/* The name becomes a file name, a log prefix ([plugin:NAME]) and part of
 * a message type: short, and safe in all three. */
#define NAME_MAX_LEN 64
#define STR_(x)      #x
#define STR(x)       STR_(x)

struct tmpl_file {
	const char *suffix; /* the file is NAME + suffix, or just `fixed` */
	const char *fixed;
	const unsigned char *text;
};

static const struct tmpl_file files[] = {
    {.suffix = ".c", .text = wc_tmpl_plugin_c},
    {.fixed = "Makefile", .text = wc_tmpl_makefile},
    {.suffix = ".conf", .text = wc_tmpl_conf},
};
#define NFILES (sizeof(files) / sizeof(files[0]))

void wc_new_plugin_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: warrenctl new-plugin [--force] NAME [DIR]\n"
	    "\n"
	    "  write a plugin to start from: DIR/NAME.c (one handler,\n"
	    "  init, fini), DIR/Makefile (pkg-config warren) and\n"
	    "  DIR/NAME.conf (its route, for warren.conf). DIR defaults to\n"
	    "  ./NAME; NAME is [a-z][a-z0-9_]*, at most %d characters;\n"
	    "  an existing file is left alone unless --force\n",
	    NAME_MAX_LEN);
}

/* NULL if `name` will do, else why not. */
static const char *name_problem(const char *name)
{
	size_t n = strlen(name);

	if (n == 0)
		return "it is empty";
	if (n > NAME_MAX_LEN)
		return "it is longer than " STR(NAME_MAX_LEN) " characters";
	if (name[0] < 'a' || name[0] > 'z')
		return "it must start with a lowercase letter (a-z)";
	for (size_t i = 1; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_'))
			return "it may only hold a-z, 0-9 and _";
	}
	return NULL;
}

/* mkdir -p: each missing component, made in turn. */
static int make_dirs(const char *dir)
{
	char *p = strdup(dir);
	int rc = 0;

	if (!p)
		return -1;
	for (char *s = p + 1; rc == 0; s++) {
		bool end = *s == '\0';
		if (*s != '/' && !end)
			continue;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST)
			rc = -1;
		if (end)
			break;
		*s = '/';
	}
	free(p);
	return rc;
}

/* The template with every PLACEHOLDER replaced by name (malloc'd). */
static char *substitute(const char *text, const char *name)
{
	size_t plen = strlen(PLACEHOLDER), nlen = strlen(name), len = 0;
	char *out = NULL;
	FILE *f = open_memstream(&out, &len);

	if (!f)
		return NULL;
	for (const char *p = text, *hit; *p; p = hit + plen) {
		hit = strstr(p, PLACEHOLDER);
		if (!hit) {
			fputs(p, f);
			break;
		}
		fwrite(p, 1, (size_t)(hit - p), f);
		fwrite(name, 1, nlen, f);
	}
	if (fclose(f) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* Write text to path through a temporary file renamed into place, so a
 * failed write leaves no half file behind (and --force no half
 * overwrite). */
static int write_file(const char *path, const char *text)
{
	char tmp[4200];
	size_t len = strlen(text);
	FILE *f;
	int ok;

	snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path, (long)getpid());
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	ok = fwrite(text, 1, len, f) == len;
	if (fclose(f) != 0 || !ok || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	return 0;
}

static void file_path(char *buf, size_t len, const char *dir,
                      const struct tmpl_file *t, const char *name)
{
	if (t->fixed)
		snprintf(buf, len, "%s/%s", dir, t->fixed);
	else
		snprintf(buf, len, "%s/%s%s", dir, name, t->suffix);
}

static int bad_usage(const char *what)
{
	fprintf(stderr, "warrenctl new-plugin: %s\n", what);
	wc_new_plugin_usage(stderr);
	return 2;
}

int wc_new_plugin(int argc, char **argv)
{
	const char *pos[2] = {NULL, NULL}, *name, *dir, *why;
	char path[NFILES][4096], msg[300], dirbuf[3001];
	size_t dirlen;
	bool force = false, exists = false;
	int npos = 0;
	struct stat st;

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--force") == 0 ||
		    strcmp(argv[i], "-f") == 0) {
			force = true;
		} else if (strcmp(argv[i], "-h") == 0 ||
		           strcmp(argv[i], "--help") == 0) {
			wc_new_plugin_usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			snprintf(msg, sizeof(msg), "unknown option %s",
			         argv[i]);
			return bad_usage(msg);
		} else if (npos == 2) {
			snprintf(msg, sizeof(msg), "one argument too many: %s",
			         argv[i]);
			return bad_usage(msg);
		} else {
			pos[npos++] = argv[i];
		}
	}
	if (npos == 0)
		return bad_usage("NAME is missing");
	name = pos[0];
	dir = pos[1] ? pos[1] : name;
	why = name_problem(name);
	if (why) {
		fprintf(
		    stderr,
		    "warrenctl new-plugin: \"%s\" cannot be a plugin name: "
		    "%s (a name is [a-z][a-z0-9_]*, e.g. \"invoice_sent\")\n",
		    name, why);
		return 2;
	}
	if (dir[0] == '\0')
		return bad_usage("DIR is empty");
	if (strlen(dir) > 3000)
		return bad_usage("DIR is too long");
	/* "demo/" names the files "demo/demo.c", not "demo//demo.c". */
	dirlen = strlen(dir);
	while (dirlen > 1 && dir[dirlen - 1] == '/')
		dirlen--;
	snprintf(dirbuf, sizeof(dirbuf), "%.*s", (int)dirlen, dir);
	dir = dirbuf;

	for (size_t i = 0; i < NFILES; i++) {
		file_path(path[i], sizeof(path[i]), dir, &files[i], name);
		if (lstat(path[i], &st) == 0 && !force) {
			fprintf(stderr, "warrenctl new-plugin: %s exists\n",
			        path[i]);
			exists = true;
		}
	}
	if (exists) {
		fprintf(stderr, "warrenctl new-plugin: nothing written "
		                "(--force overwrites)\n");
		return 1;
	}
	if (make_dirs(dir) != 0) {
		fprintf(stderr, "warrenctl new-plugin: cannot make %s: %s\n",
		        dir, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < NFILES; i++) {
		char *text = substitute((const char *)files[i].text, name);
		if (!text || write_file(path[i], text) != 0) {
			fprintf(stderr,
			        "warrenctl new-plugin: cannot write %s: %s\n",
			        path[i], text ? strerror(errno) : "no memory");
			free(text);
			return 1;
		}
		free(text);
		printf("wrote %s\n", path[i]);
	}
	printf("next: make -C %s && make -C %s install (pkg-config warren)\n"
	       "      add %s to warren.conf; warrend -t checks it\n",
	       dir, dir, path[2]);
	return 0;
}
