/* clock.h - the clocks warrend reads: monotonic milliseconds for every
 * timeout and deadline, wall-clock milliseconds for what is written into
 * messages (failure times), and an absolute CLOCK_REALTIME deadline for
 * pthread_cond_timedwait(). */
#ifndef WD_CLOCK_H
#define WD_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Monotonic clock in milliseconds. */
int64_t wd_now_ms(void);

/* Monotonic clock in microseconds (handler durations). */
int64_t wd_now_us(void);

/* Microseconds since the epoch (CLOCK_REALTIME): message publish times. */
int64_t wd_wall_us(void);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
int64_t wd_wall_ms(void);

/* The calling thread's CPU time in nanoseconds (a parse's budget: time
 * the thread was preempted does not count against it). */
int64_t wd_thread_cpu_ns(void);
/* CLOCK_REALTIME `ms` milliseconds from now, as pthread_cond_timedwait()
 * takes it (its condition variables use the default clock). */
struct timespec wd_wall_deadline(int64_t ms);

#endif
