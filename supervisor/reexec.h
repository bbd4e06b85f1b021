#ifndef BATON_REEXEC_H
#define BATON_REEXEC_H

#include <stdbool.h>
#include <stddef.h>

struct daemon;

/*
 * batond replacing itself (batonctl reexec, SIGUSR2): the running batond
 * writes its whole state to a memfd and execs its binary with the same pid;
 * the sockets, the control and notify sockets and the pipes of starting
 * processes stay open across the exec, and every process stays its child.
 */

/*
 * Re-executes batond's binary with its whole state; the new batond answers
 * `ok` on reply_fd (a control client's socket, or -1). Returns only when that
 * cannot be done, -1 with the reason in err (also logged).
 */
int reexec_run(struct daemon *d, int reply_fd, char *err, size_t errlen);

/* What a resumed batond wraps again, and how it came to resume. */
struct reexec_fds {
	int control; /* the control socket */
	int notify;  /* the notify socket */
	bool handed_back; /* this binary took the services back from a newer one */
};

/* Tells whether this batond was started by a re-exec (BATON_STATE_FD is set). */
bool reexec_resuming(void);

/* Creates batond's faces around d, on the control and notify sockets' fds. */
typedef int (*reexec_faces_fn)(struct daemon *d, int control_fd, int notify_fd);

/*
 * Rebuilds d (daemon_prepare included) from the state the previous batond
 * left, creates its faces with start_faces on the control and notify
 * sockets' fds (also left in fds), then answers the client that asked for
 * the re-exec. When it cannot, hands the services back to the binary that
 * wrote the state, or returns -1 after logging why (the services are left
 * running, and their unix sockets' files stay). Signals stay blocked: the
 * caller unblocks them, then calls reexec_resumed.
 */
int reexec_resume(struct daemon *d, struct reexec_fds *fds, reexec_faces_fn start_faces);

/* Logs the resume and reaps the children that ended during it. */
void reexec_resumed(struct daemon *d, const struct reexec_fds *fds);

#endif
