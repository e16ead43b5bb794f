/* trust.h - whether a file warrend runs (a plugin) could have been changed
 * by anyone but root or warrend's own user: the file and every directory
 * above it, as sshd's StrictModes checks a user's keys; and whether a
 * secret it reads (a password file, a TLS key) is open to others. */
#ifndef WD_TRUST_H
#define WD_TRUST_H

#include <stddef.h>

/*
 * 0 if the file open on `fd` (opened from `path`) and every directory
 * above it up to / are owned by root or this process's user and writable
 * by neither group nor others. A directory with the sticky bit (/tmp) may
 * be writable by others: nobody else can rename or remove what is ours in
 * it, and what is ours below it is checked in turn. Else -1 with `why`
 * naming the file or directory, its mode or owner, and the fix. The path
 * is resolved (symbolic links followed) and must still name the file
 * open on fd.
 */
int wd_trust_check(int fd, const char *path, char *why, size_t whylen);

/*
 * 0 if `path` is a regular file (links followed) that others (neither its
 * owner nor its group) can neither read nor write, as ssh requires of a
 * private key. Group access is allowed: the packaged layout is root:warren
 * 0640. Else -1 with `why` naming the file, its mode and the fix (never
 * its contents).
 */
int wd_secret_check(const char *path, char *why, size_t whylen);

#endif
