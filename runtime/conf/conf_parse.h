/* conf_parse.h - private to conf/: the one load in progress and the stages
 * wd_conf_load runs, shared by the conf_*.c files. Nothing outside conf/
 * includes it; the public API is conf.h and conf_diff.h.
 *
 * Errors are "FILE:LINE: what is wrong", and the first one is kept: a
 * later one is usually a consequence of it. libconfuse reports syntax
 * errors, unknown keys and bad values with the line being parsed; value
 * checks run as validate callbacks during the parse for the same reason.
 * Checks that span sections (a route's plugin, a binding's queue) run
 * after the parse, when libconfuse no longer knows the line of a key: they
 * use the one wd_conf_remember_line() noted while it was read. */
#ifndef WD_CONF_PARSE_H
#define WD_CONF_PARSE_H

#include <confuse.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/log.h"
#include "conf/conf.h"

struct wd_conf_load_ctx {
	const char *path;
	char *err;
	size_t errlen;
	bool failed;
	struct {
		const cfg_opt_t *opt;
		int line;
	} * lines;
	size_t nlines, caplines;
};

/* libconfuse's callbacks take no user pointer: they find the load here.
 * Per thread, so that loads on two threads cannot mix. Set by
 * wd_conf_load for the length of one load. */
extern _Thread_local struct wd_conf_load_ctx *wd_conf_cur;

/* Record "file:line: fmt..." unless an error is recorded already. */
void wd_conf_set_err(const char *file, int line, const char *fmt, ...)
    WD_PRINTF(3, 4);

/* A libconfuse validate callback: note the line `opt` is read on. */
int wd_conf_remember_line(cfg_t *cfg, cfg_opt_t *opt);

/* The line option `name` of `sec` was read on if it was remembered, else
 * the line of its section. */
int wd_conf_line_of(cfg_t *sec, const char *name);

/* For a CFGF_NODEFAULT key: 0 if `sec` has it, else -1 with
 * "what: "key" is required" at the section's line. */
int wd_conf_require(const char *file, cfg_t *sec, const char *what,
                    const char *key);

/* The stages, in the order wd_conf_load runs them. */

/* conf_text.c: the file's bytes, NUL-terminated (their count in *len),
 * or NULL (error set). */
char *wd_conf_read_file(const char *path, size_t *len);

/* conf_text.c: n bytes of text checked (no NUL byte; strings, comments
 * and sections closed) and its comments blanked in place; 0, or -1 with
 * the error set against `name`. text[n] must be a NUL. */
int wd_conf_text_prepare(const char *name, char *text, size_t n);

/* conf_schema.c: n bytes of text (text[n] a NUL; blanked in place)
 * parsed and its values checked, or NULL; errors name `name`. */
cfg_t *wd_conf_parse_text(const char *name, char *text, size_t n);

/* conf_routes.c: c->routes from the route sections, after the queues and
 * plugins they name are loaded. */
int wd_conf_load_routes(struct wd_conf *c, cfg_t *cfg);

/* conf_check.c: what only the whole model can tell; root_line is where
 * an error about the file as a whole is reported. */
int wd_conf_check(const struct wd_conf *c, int root_line);

#endif
