#ifndef BATON_METRICS_H
#define BATON_METRICS_H

#include "protocol.h"

struct daemon;

/*
 * batond's metrics in the Prometheus text format: the services' counters and
 * processes by state, read when asked, and histograms of how long processes
 * took to be ready and to drain, counted from the lifecycle's events.
 */
struct metrics;

/* Subscribes metrics to d's events; NULL when out of memory. */
struct metrics *metrics_create(struct daemon *d);

/* Unsubscribes and frees m. */
void metrics_destroy(struct metrics *m);

/* Appends the metrics, one `metric line=...` record per line of that format (baton-protocol(7)). */
void metrics_render(struct metrics *m, struct protocol_buf *buf);

#endif
