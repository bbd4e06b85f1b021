#ifndef BATON_METRICS_H
#define BATON_METRICS_H

#include "protocol.h"

struct daemon;

/*
 * Appends batond's metrics in the Prometheus text format, one `metric
 * line=...` record per line of that format (baton-protocol(7)).
 */
void metrics_render(struct daemon *d, struct protocol_buf *buf);

#endif
