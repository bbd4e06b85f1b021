#ifndef BATON_REEXEC_H
#define BATON_REEXEC_H

#include <stdbool.h>

struct daemon;

/*
 * batond replacing itself (batonctl reexec, SIGUSR2): the running batond
 * writes its whole state to a memfd and execs its binary with the same pid;
 * the sockets, the control and notify sockets and the pipes of starting
 * processes stay open across the exec, and every process stays its child.
 * daemon_reexec() (batond.h) is the first half; these are the second.
 */

/* Tells whether this batond was started by a re-exec (BATON_STATE_FD is set). */
bool reexec_resuming(void);

/*
 * Rebuilds d from the state the previous batond left, then answers the client
 * that asked for the re-exec. Returns 0, or -1 after logging why.
 */
int reexec_resume(struct daemon *d);

#endif
