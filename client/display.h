#ifndef BATONCTL_DISPLAY_H
#define BATONCTL_DISPLAY_H

#include "output.h"

/*
 * Creates the live terminal view of a streaming reply: one line per
 * generation (ready, starting, draining with connections, time to SIGKILL),
 * redrawn in place as events arrive and on every tick.
 */
struct output *output_live_create(enum protocol_verb verb, FILE *out);

/* Redraws the view; batonctl calls it between events to move the countdowns. */
void display_redraw(struct output *o);

#endif
