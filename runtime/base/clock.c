/* clock.c - monotonic and wall-clock time. */
#include "base/clock.h"

/* `clock` in units of 1/per_second of a second. */
static int64_t read_clock(clockid_t clock, int64_t per_second)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t)ts.tv_sec * per_second +
	       ts.tv_nsec / (1000000000 / per_second);
}

int64_t wd_now_ms(void)
{
	return read_clock(CLOCK_MONOTONIC, 1000);
}

int64_t wd_wall_ms(void)
{
	return read_clock(CLOCK_REALTIME, 1000);
}

int64_t wd_now_us(void)
{
	return read_clock(CLOCK_MONOTONIC, 1000000);
}

int64_t wd_wall_us(void)
{
	return read_clock(CLOCK_REALTIME, 1000000);
}

struct timespec wd_wall_deadline(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

int64_t wd_thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}
