#ifndef BATON_CLOCK_H
#define BATON_CLOCK_H

#include <time.h>

/*
 * Seconds on the monotonic clock. libev's ev_now() follows the wall clock,
 * which may jump; ages, deadlines and event times are measured on this one.
 * It is read through the vDSO: no system call.
 */
static inline double clock_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
