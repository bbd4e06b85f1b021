#ifndef BATON_HISTOGRAM_H
#define BATON_HISTOGRAM_H

/*
 * Durations counted in cumulative buckets, as Prometheus histograms count
 * them. Pure: no clock, no output.
 */

#define HISTOGRAM_BOUNDS 14

struct histogram {
	unsigned long buckets[HISTOGRAM_BOUNDS + 1]; /* the last one is +Inf */
	double sum;
	unsigned long count;
};

/* The upper bounds of the buckets, in seconds, smallest first. */
extern const double histogram_bounds[HISTOGRAM_BOUNDS];

/* Counts one observation of secs. */
void histogram_add(struct histogram *h, double secs);

#endif
