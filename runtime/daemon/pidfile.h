/* pidfile.h - `warrend -p FILE`: the daemon's pid in a file, so that
 * `kill -HUP $(cat FILE)` reaches the right one of several daemons.
 *
 * The file is held with a write lock (fcntl) for the life of the process:
 * the lock, not the pid written in it, says whether a live warrend has it,
 * so a file left by a killed daemon is taken over and a pid reused by an
 * unrelated process is never mistaken for a running warrend. */
#ifndef WD_PIDFILE_H
#define WD_PIDFILE_H

#include <stddef.h>

/* Lock path and write this process's pid in it. -1 with err naming the
 * file and its holder (or the system error) if it cannot. */
int wd_pidfile_take(const char *path, char *err, size_t errlen);

/* Remove the taken file (if any) and release it: at every exit. */
void wd_pidfile_remove(void);

#endif
