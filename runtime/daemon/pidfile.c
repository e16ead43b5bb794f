/* pidfile.c - the locked pid file. */
#include "daemon/pidfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int held = -1;
static char *held_path;

/* The pid written in a locked file, or 0 if it cannot be read. */
static long holder(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

/* Whether fd is still the file at path: a warrend that exits unlinks its
 * file while it holds the lock, so a lock won just then is on a file that
 * is gone. */
static bool still_there(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int wd_pidfile_take(const char *path, char *err, size_t errlen)
{
	struct flock lk = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	char pid[32];
	int fd, n;

	for (int tries = 1;; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			snprintf(err, errlen, "pid file %s: %s", path,
			         strerror(errno));
			return -1;
		}
		if (fcntl(fd, F_SETLK, &lk) < 0) {
			int e = errno;
			bool busy = e == EAGAIN || e == EACCES;
			/* The holder may not have written its pid yet. */
			long other = busy ? holder(fd) : 0;
			if (other > 0)
				snprintf(err, errlen,
				         "pid file %s is held by a running "
				         "warrend (pid %ld); give this one "
				         "another -p",
				         path, other);
			else
				snprintf(err, errlen,
				         "pid file %s: cannot lock: %s", path,
				         busy ? "held by another process"
				              : strerror(e));
			close(fd);
			return -1;
		}
		if (still_there(fd, path))
			break;
		close(fd);
		if (tries == 5) {
			snprintf(err, errlen,
			         "pid file %s: removed and made again by "
			         "others 5 times while taking it",
			         path);
			return -1;
		}
	}
	n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
		snprintf(err, errlen, "pid file %s: cannot write: %s", path,
		         strerror(errno));
		close(fd);
		return -1;
	}
	held_path = strdup(path);
	if (!held_path) {
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	held = fd;
	return 0;
}

void wd_pidfile_remove(void)
{
	if (held < 0)
		return;
	/* Unlinked while still locked: a warrend starting now either fails
	 * on our lock or creates a new file. */
	unlink(held_path);
	close(held);
	held = -1;
	free(held_path);
	held_path = NULL;
}
