#ifndef BATON_BACKOFF_H
#define BATON_BACKOFF_H

#include <stdbool.h>

/*
 * When to restart a process that exited on its own: an exponential delay,
 * back to its start once a process has stayed up long enough, and a limit on
 * restarts within an interval past which the service is failed. Pure: time is
 * passed in, so tests run it on a fake clock.
 */

/* A process that ran this long is considered healthy: the delay starts over. */
#define BACKOFF_RESET_AFTER 10.0

struct backoff_policy {
	double initial;       /* first delay */
	double max;           /* the delay never grows beyond this */
	unsigned burst;       /* restarts allowed within interval; 0: unlimited */
	double interval;
};

struct backoff {
	double delay;        /* delay before the next restart; 0 before the first */
	double window_start; /* start of the current limit interval */
	unsigned count;      /* restarts within it */
};

/* Starts with no history. */
void backoff_init(struct backoff *b);

/*
 * Records that a process exited at now after running uptime seconds. Returns
 * false when a restart would exceed the policy's limit; otherwise true with
 * the delay to wait before restarting in *delay.
 */
bool backoff_next(struct backoff *b, const struct backoff_policy *p, double now, double uptime,
	double *delay);

#endif
