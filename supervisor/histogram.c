#include "histogram.h"

#include <stddef.h>

const double histogram_bounds[HISTOGRAM_BOUNDS] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
};

void histogram_add(struct histogram *h, double secs)
{
	size_t i = 0;
	while (i < HISTOGRAM_BOUNDS && secs > histogram_bounds[i])
		i++;
	h->buckets[i]++;
	h->sum += secs;
	h->count++;
}
