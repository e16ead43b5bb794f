/* install.c - see install.h. */
#include "base/install.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *wd_install_path(const char *rel, const char *configured, char *buf,
                            size_t len)
{
	char exe[PATH_MAX], joined[PATH_MAX * 2], *slash, *real;
	ssize_t n;

	if (!rel || !*rel)
		return configured;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return configured;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return configured;
	*slash = '\0';
	snprintf(joined, sizeof(joined), "%s/%s", exe, rel);
	real = realpath(joined, NULL);
	if (!real)
		return configured; /* not there: not a moved install */
	if (strlen(real) >= len) {
		free(real);
		return configured;
	}
	memcpy(buf, real, strlen(real) + 1);
	free(real);
	return buf;
}
