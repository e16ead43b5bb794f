/* conf_text.c - the file's text as libconfuse gets it.
 *
 * The text has its comments blanked out (newlines kept), after a check
 * that strings, comments and braces are closed. Two libconfuse 3.3 bugs
 * make this necessary: every `#` comment line advances its line counter by
 * three, so FILE:LINE would point past the error, and a file that ends
 * inside an open section parses as if it were complete.
 */
#include "conf/conf_parse.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/grow.h"

char *wd_conf_read_file(const char *path, size_t *len_out)
{
	/* O_NONBLOCK: a FIFO given as the config must not hang the start. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	char *text = NULL;
	size_t len = 0, n = 0, cap = 0;
	struct stat fst;

	if (!f) {
		wd_conf_set_err(path, 0, "cannot read: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (fstat(fd, &fst) == 0 && !S_ISREG(fst.st_mode)) {
		fclose(f);
		wd_conf_set_err(path, 0, "%s",
		                S_ISDIR(fst.st_mode)
		                    ? "is a directory, not a config file"
		                    : "is not a regular file");
		return NULL;
	}
	/* All of it, NUL bytes included: wd_conf_text_prepare says why. */
	for (;;) {
		if (WD_GROW(text, cap, n + 4096 + 1, 8192) < 0) {
			free(text);
			fclose(f);
			wd_conf_set_err(path, 0, "out of memory");
			return NULL;
		}
		len = fread(text + n, 1, cap - n - 1, f);
		n += len;
		if (len == 0)
			break;
	}
	if (ferror(f)) {
		free(text);
		fclose(f);
		wd_conf_set_err(path, 0, "cannot read: %s", strerror(errno));
		return NULL;
	}
	fclose(f);
	text[n] = '\0';
	*len_out = n;
	return text;
}

int wd_conf_text_prepare(const char *name, char *text, size_t n)
{
	enum { CODE, STR_DQ, STR_SQ, LINE_COMMENT, BLOCK_COMMENT } st = CODE;
	int open_lines[64], depth = 0, line = 1, start = 0;
	char *nul;

	/* A NUL would otherwise end the text there, and what follows would
	 * be ignored without a word. */
	if ((nul = memchr(text, '\0', n))) {
		int at = 1;
		for (const char *p = text; p < nul; p++)
			at += *p == '\n';
		wd_conf_set_err(name, at,
		                "a NUL byte: the file is not text (saved by a "
		                "binary tool?)");
		return -1;
	}
	for (char *p = text; *p; p++) {
		char ch = *p;
		switch (st) {
		case CODE:
			if (ch == '"' || ch == '\'') {
				st = ch == '"' ? STR_DQ : STR_SQ;
				start = line;
			} else if (ch == '#' || (ch == '/' && p[1] == '/')) {
				st = LINE_COMMENT;
				*p = ' ';
			} else if (ch == '/' && p[1] == '*') {
				st = BLOCK_COMMENT;
				start = line;
				p[0] = p[1] = ' ';
				p++;
			} else if (ch == '{') {
				if (depth < 64)
					open_lines[depth] = line;
				depth++;
			} else if (ch == '}' && depth > 0) {
				depth--;
			}
			break;
		case STR_DQ:
		case STR_SQ:
			if (ch == '\\' && p[1]) {
				p++;
				line += *p == '\n';
			} else if (ch == (st == STR_DQ ? '"' : '\'')) {
				st = CODE;
			}
			break;
		case LINE_COMMENT:
			if (ch == '\n')
				st = CODE;
			else
				*p = ' ';
			break;
		case BLOCK_COMMENT:
			if (ch == '*' && p[1] == '/') {
				p[0] = p[1] = ' ';
				p++;
				st = CODE;
			} else if (ch != '\n') {
				*p = ' ';
			}
			break;
		}
		line += ch == '\n';
	}
	if (st == STR_DQ || st == STR_SQ || st == BLOCK_COMMENT) {
		wd_conf_set_err(
		    name, start, "%s is not closed at the end of the file",
		    st == BLOCK_COMMENT ? "this comment" : "this string");
	} else if (depth > 0) {
		wd_conf_set_err(name, open_lines[depth > 64 ? 63 : depth - 1],
		                "this section is not closed ('}' missing) at "
		                "the end of the file");
	}
	return wd_conf_cur->failed ? -1 : 0;
}
