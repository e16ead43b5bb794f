/* process.c - /proc/self/stat, /proc/self/fd, /proc/stat's btime. */
#include "observe/process.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The boot time, seconds since the epoch (the start time in stat is in
 * clock ticks since boot). */
static long boot_time(void)
{
	char line[256];
	long bt = 0;
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %ld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

static long count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

int wd_process_read(struct wd_process *p)
{
	char buf[1024], *s;
	unsigned long utime, stime, vsize;
	unsigned long long start;
	long rss, tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	size_t n;
	FILE *f;

	memset(p, 0, sizeof(*p));
	p->open_fds = count_fds();
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		p->max_fds = (long)rl.rlim_cur;
	f = fopen("/proc/self/stat", "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name (field 2) may hold spaces and parentheses: the
	 * fields after it start past its last ')'. */
	s = strrchr(buf, ')');
	if (!s || tick <= 0 ||
	    sscanf(s + 2,
	           "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d "
	           "%*d %*d %*d %*d %*d %llu %lu %ld",
	           &utime, &stime, &start, &vsize, &rss) != 5)
		return -1;
	p->cpu_seconds = (double)(utime + stime) / (double)tick;
	p->vsize_bytes = vsize;
	p->rss_bytes = (uint64_t)rss * (uint64_t)page;
	p->start_time_s = (double)boot_time() + (double)start / (double)tick;
	return 0;
}
