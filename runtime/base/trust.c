/* trust.c - the owner and mode checks of a file and its directories
 * (trust.h). */
#include "base/trust.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* "uid 1000 (alice)", or "uid 1000" without a passwd entry. */
static void owner_name(uid_t uid, char *buf, size_t len)
{
	struct passwd pw, *found = NULL;
	char scratch[1024];

	if (getpwuid_r(uid, &pw, scratch, sizeof(scratch), &found) == 0 &&
	    found)
		snprintf(buf, len, "uid %u (%s)", (unsigned)uid, pw.pw_name);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
}

/* One file or directory's owner and mode; `what` is "" or "the
 * directory ". */
static int check_one(const struct stat *st, const char *name, const char *what,
                     char *why, size_t whylen)
{
	uid_t me = geteuid();
	mode_t w = st->st_mode & (S_IWGRP | S_IWOTH);
	char owner[128], self[128];

	if (st->st_uid != 0 && st->st_uid != me) {
		owner_name(st->st_uid, owner, sizeof(owner));
		owner_name(me, self, sizeof(self));
		snprintf(why, whylen,
		         "%s%s is owned by %s, neither root nor warrend's user "
		         "(%s), who could change it: chown root %s",
		         what, name, owner, self, name);
		return -1;
	}
	/* A sticky directory: others may add entries, not replace ours. */
	if (w && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX))
		return 0;
	if (w) {
		snprintf(why, whylen,
		         "%s%s is writable by %s (mode %04o): anyone %s could "
		         "change it: chmod go-w %s",
		         what, name,
		         w == (S_IWGRP | S_IWOTH) ? "group and others"
		         : w == S_IWGRP           ? "its group"
		                                  : "others",
		         (unsigned)(st->st_mode & 07777),
		         (w & S_IWOTH) ? "on this machine" : "in its group",
		         name);
		return -1;
	}
	return 0;
}

int wd_trust_check(int fd, const char *path, char *why, size_t whylen)
{
	char real[PATH_MAX];
	struct stat st, at;
	char *slash;

	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (check_one(&st, path, "", why, whylen) < 0)
		return -1;
	if (!realpath(path, real)) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	/* The path must still lead to what was opened: a rename in between
	 * would have the checks below look at another file's directories. */
	if (stat(real, &at) < 0 || at.st_dev != st.st_dev ||
	    at.st_ino != st.st_ino) {
		snprintf(why, whylen,
		         "it was replaced while being checked (install plugins "
		         "by rename, e.g. install -m 644 NEW.so PATH)");
		return -1;
	}
	/* Each directory up to /: real is absolute and has no "." or "..". */
	while ((slash = strrchr(real, '/')) != NULL) {
		if (slash == real)
			slash[1] = '\0'; /* "/x" -> "/" */
		else
			*slash = '\0';
		if (stat(real, &at) < 0) {
			snprintf(why, whylen, "%s: %s", real, strerror(errno));
			return -1;
		}
		if (check_one(&at, real, "the directory ", why, whylen) < 0)
			return -1;
		if (strcmp(real, "/") == 0)
			break;
	}
	return 0;
}

int wd_secret_check(const char *path, char *why, size_t whylen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "%s is not a regular file", path);
		return -1;
	}
	if (st.st_mode & (S_IROTH | S_IWOTH)) {
		snprintf(why, whylen,
		         "%s is open to others (mode %04o): anyone on this "
		         "machine could %s it: chmod o-rw %s",
		         path, (unsigned)(st.st_mode & 07777),
		         (st.st_mode & S_IROTH) ? "read" : "change", path);
		return -1;
	}
	return 0;
}
