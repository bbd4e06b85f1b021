#ifndef BATON_RELOAD_H
#define BATON_RELOAD_H

#include <stddef.h>

#include "protocol.h"

struct daemon;

/*
 * Reloads the configuration file (reload_config) and logs the outcome, telling
 * batond's own systemd. With a report, the changes, or on failure an `error`
 * line, are appended to it. Returns 0 or -1.
 */
int reload_run(struct daemon *d, struct protocol_buf *report);

/*
 * Reads the configuration file again and applies it: new sockets are
 * opened, sockets whose address changed are opened anew, unchanged ones stay
 * as they are; new services start, removed ones stop (with their grace) and
 * are forgotten, changed definitions are kept for the next upgrade or
 * restart. One `reload` record per change goes into report. When the file is
 * invalid, or a new socket cannot be opened, nothing changes: returns -1 with
 * the reason in err.
 */
int reload_config(struct daemon *d, struct protocol_buf *report, char *err, size_t errlen);

#endif
