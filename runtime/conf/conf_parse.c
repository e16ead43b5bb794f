/* conf_parse.c - the load in progress: its first error and the lines keys
 * were read on. */
#include "conf/conf_parse.h"

#include <stdarg.h>
#include <stdio.h>

#include "base/grow.h"

_Thread_local struct wd_conf_load_ctx *wd_conf_cur;

void wd_conf_set_err(const char *file, int line, const char *fmt, ...)
{
	struct wd_conf_load_ctx *cur = wd_conf_cur;
	va_list ap;
	int n;

	if (cur->failed)
		return; /* the first error is the one worth reading */
	cur->failed = true;
	n = snprintf(cur->err, cur->errlen, "%s:%d: ", file, line);
	if (n < 0 || (size_t)n >= cur->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(cur->err + n, cur->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

int wd_conf_remember_line(cfg_t *cfg, cfg_opt_t *opt)
{
	struct wd_conf_load_ctx *cur = wd_conf_cur;

	if (WD_GROW(cur->lines, cur->caplines, cur->nlines + 1, 32) < 0)
		return -1;
	cur->lines[cur->nlines].opt = opt;
	cur->lines[cur->nlines].line = cfg->line;
	cur->nlines++;
	return 0;
}

int wd_conf_line_of(cfg_t *sec, const char *name)
{
	struct wd_conf_load_ctx *cur = wd_conf_cur;
	cfg_opt_t *opt = cfg_getopt(sec, name);

	/* From the end: a key given twice counts where it was last read. */
	for (size_t i = cur->nlines; opt && i-- > 0;)
		if (cur->lines[i].opt == opt)
			return cur->lines[i].line;
	return sec->line;
}

int wd_conf_require(const char *file, cfg_t *sec, const char *what,
                    const char *key)
{
	if (cfg_size(sec, key) > 0)
		return 0;
	wd_conf_set_err(file, sec->line, "%s: \"%s\" is required", what, key);
	return -1;
}
