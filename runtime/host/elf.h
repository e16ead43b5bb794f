/* elf.h - is this file a shared object this process can dlopen?
 *
 * glibc's dlopen maps a shared object's loadable segments as the program
 * headers describe them; a truncated file (an install by cp, a download
 * cut short) has segments that end past the end of the file, and touching
 * them kills the process with SIGBUS inside dlopen. So before dlopen, the
 * ELF header, the program headers, every PT_LOAD segment and the dynamic
 * section are checked against the file's real size, as are the class,
 * byte order and machine against this process's. */
#ifndef WD_ELF_H
#define WD_ELF_H

#include <stddef.h>

/* Check the file open on fd (read from offset 0 with pread). Returns 0, or
 * -1 with why set to what is wrong, e.g. "truncated: loadable segment 2
 * ends at byte 16384, the file has 4000 bytes". */
int wd_elf_check(int fd, char *why, size_t whylen);

#endif
