/* process.h - what the kernel says of this process, for the usual
 * process_* metrics: CPU time, memory, file descriptors, start time. */
#ifndef WD_PROCESS_H
#define WD_PROCESS_H

#include <stdint.h>

struct wd_process {
	double cpu_seconds;   /* user + system */
	uint64_t rss_bytes;   /* resident */
	uint64_t vsize_bytes; /* virtual */
	double start_time_s;  /* since the epoch */
	long open_fds, max_fds;
};

/* Read /proc/self. Returns 0, or -1 if /proc cannot be read (the fields
 * it could not read are 0). */
int wd_process_read(struct wd_process *p);

#endif
