#include "backoff.h"

void backoff_init(struct backoff *b)
{
	b->delay = 0;
	b->window_start = 0;
	b->count = 0;
}

static double next_delay(const struct backoff *b, const struct backoff_policy *p, double uptime)
{
	if (b->delay == 0 || uptime >= BACKOFF_RESET_AFTER)
		return p->initial;
	double d = b->delay * 2;
	return d > p->max ? p->max : d;
}

bool backoff_next(struct backoff *b, const struct backoff_policy *p, double now, double uptime,
	double *delay)
{
	if (p->burst > 0) {
		if (b->count == 0 || now - b->window_start >= p->interval) {
			b->window_start = now;
			b->count = 0;
		}
		if (++b->count > p->burst)
			return false;
	}
	b->delay = next_delay(b, p, uptime);
	*delay = b->delay;
	return true;
}
