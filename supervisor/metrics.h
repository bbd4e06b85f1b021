#ifndef BATON_METRICS_H
#define BATON_METRICS_H

#include "protocol.h"

struct daemon;

/* Cumulative buckets of a duration, as Prometheus histograms count them. */
#define HISTOGRAM_BOUNDS 14

struct histogram {
	unsigned long buckets[HISTOGRAM_BOUNDS + 1]; /* the last one is +Inf */
	double sum;
	unsigned long count;
};

/* Counts one observation of secs. */
void histogram_add(struct histogram *h, double secs);

/*
 * Appends batond's metrics in the Prometheus text format, one `metric
 * line=...` record per line of that format (baton-protocol(7)).
 */
void metrics_render(struct daemon *d, struct protocol_buf *buf);

#endif
