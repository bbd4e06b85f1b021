#include "reexec.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "logs.h"
#include "notify_socket.h"
#include "state.h"
#include "version.h"

extern char **environ;

// The state (state.h) is in a memfd named by this variable.
#define STATE_ENV "BATON_STATE_FD"
// "EXE,STATE": the binary that wrote the state, and the state, for a new
// binary that cannot resume to hand the services back (hand_back).
#define FALLBACK_ENV "BATON_STATE_FALLBACK"
// Set for the binary the services were handed back to.
#define HANDED_BACK_ENV "BATON_STATE_HANDED_BACK"

/* ---- the exec ---- */

static void set_cloexec(int fd, bool on)
{
	if (fd < 0)
		return;
	int flags = fcntl(fd, F_GETFD);
	if (flags >= 0)
		fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

// Lets every fd of the state live through the exec, or takes that back.
static void keep_fds(struct daemon *d, int reply_fd, bool keep)
{
	set_cloexec(control_fd(d->control), !keep);
	set_cloexec(notify_socket_fd(d->notify), !keep);
	set_cloexec(reply_fd, !keep);
	struct list *pos, *g, *pp;
	list_for_each(pos, &d->listeners)
		set_cloexec(container_of(pos, struct listener, link)->fd, !keep);
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		list_for_each(g, &svc->gens) {
			struct generation *gen = container_of(g, struct generation, link);
			set_cloexec(gen->pin.exe_fd, !keep);
			for (size_t i = 0; i < gen->nheld && i < STATE_HELD_MAX; i++)
				set_cloexec(gen->held[i], !keep);
			list_for_each(pp, &gen->procs) {
				struct proc *p = container_of(pp, struct proc, link);
				set_cloexec(p->exec_io.fd, !keep);
				set_cloexec(p->ready_io.fd, !keep);
				set_cloexec(p->out.io.fd, !keep);
				set_cloexec(p->err.io.fd, !keep);
			}
		}
	}
}

static int refuse(char *err, size_t errlen, const char *why, const char *name)
{
	snprintf(err, errlen, "%s%s%s", why, name ? ": " : "", name ? name : "");
	log_error("re-exec refused: %s", err);
	return -1;
}

static bool replacing(const struct service *svc)
{
	struct list *g, *pos;
	list_for_each(g, &svc->gens) {
		struct generation *gen = container_of(g, struct generation, link);
		list_for_each(pos, &gen->procs) {
			if (container_of(pos, struct proc, link)->replaced_by)
				return true;
		}
	}
	return false;
}

static int check_reexec(struct daemon *d, char *err, size_t errlen)
{
	if (d->shutting_down)
		return refuse(err, errlen, "batond is shutting down", NULL);
	if (!d->exe)
		return refuse(err, errlen, "batond does not know its own binary", NULL);
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (svc->upgrade.active)
			return refuse(err, errlen, "an upgrade is in progress", svc->name);
		if (replacing(svc))
			return refuse(err, errlen, "an unhealthy process is being replaced", svc->name);
	}
	return 0;
}

int reexec_run(struct daemon *d, int reply_fd, char *err, size_t errlen)
{
	if (check_reexec(d, err, errlen) < 0)
		return -1;
	log_info("re-executing %s", d->exe);
	// What the services wrote, and batond's own lines, reach their sinks
	// before the state is written, which carries what stays.
	logs_flush(d->logs);
	int fd = memfd_create("baton-state", 0);
	if (fd < 0 || state_write(d, fd, reply_fd) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		snprintf(err, errlen, "cannot save the state: %s", strerror(errno));
		log_error("re-exec: %s", err);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char value[32];
	snprintf(value, sizeof(value), "%d", fd);
	setenv(STATE_ENV, value, 1);
	// The binary running now, open across the exec: the new one hands the
	// services back to it if it cannot resume them.
	int exe = open("/proc/self/exe", O_RDONLY);
	snprintf(value, sizeof(value), "%d,%d", exe, fd);
	if (exe >= 0 && setenv(FALLBACK_ENV, value, 1) < 0) {
		close(exe);
		exe = -1;
	}
	keep_fds(d, reply_fd, true);
	// Signals wait, blocked, until the new batond has its handlers: a SIGTERM
	// now must drain the services, not end batond with their supervision.
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	execv(d->exe, d->argv);
	sigprocmask(SIG_SETMASK, &old, NULL);
	snprintf(err, errlen, "exec %s: %s", d->exe, strerror(errno));
	log_error("re-exec failed, batond goes on as it was: %s", err);
	keep_fds(d, reply_fd, false);
	unsetenv(STATE_ENV);
	unsetenv(FALLBACK_ENV);
	if (exe >= 0)
		close(exe);
	close(fd);
	return -1;
}

bool reexec_resuming(void)
{
	return getenv(STATE_ENV) != NULL;
}

static void answer(int fd, bool ok, bool handed_back)
{
	if (fd < 0)
		return;
	char msg[192];
	const char *result = !ok ? "error failed the new batond could not resume"
		: handed_back	? "error failed the new batond could not resume: the one before "
				  "took the services back and goes on"
				: "ok";
	int n = snprintf(msg, sizeof(msg), "reexec pid=%d version=%s\n%s\n", (int)getpid(),
		BATON_VERSION, result);
	ssize_t rc = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)rc;
	close(fd);
}

// The descriptors this process was given open across the exec, sorted.
struct fd_list {
	int *fds;
	size_t n;
};

static struct fd_list inherited_fds(void)
{
	struct fd_list l = {0};
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return l;
	struct dirent *e;
	while ((e = readdir(dir))) {
		int fd = atoi(e->d_name), flags;
		if (fd <= 2 || fd == dirfd(dir) || (flags = fcntl(fd, F_GETFD)) < 0 ||
			(flags & FD_CLOEXEC))
			continue;
		int *fds = realloc(l.fds, (l.n + 1) * sizeof(int));
		if (!fds)
			break;
		l.fds = fds;
		l.fds[l.n++] = fd;
	}
	closedir(dir);
	return l;
}

/*
 * A new batond that cannot resume hands the services back to the binary that
 * wrote the state, which reads it again and goes on as before: what this one
 * was given open is open again across the exec, and signals, still blocked
 * (daemon_unblock_signals comes after a resume), wait for it. Returns only if
 * that exec fails.
 */
static void hand_back(struct daemon *d, int exe, int state, const struct fd_list *kept)
{
	log_error("re-exec: cannot resume: handing the services back to the batond before");
	if (d->logs)
		logs_flush(d->logs);
	for (size_t i = 0; i < kept->n; i++)
		set_cloexec(kept->fds[i], false);
	// Executed from its descriptor, which need not stay open in it.
	set_cloexec(exe, true);
	char value[16];
	snprintf(value, sizeof(value), "%d", state);
	if (lseek(state, 0, SEEK_SET) == 0 && setenv(STATE_ENV, value, 1) == 0 &&
		setenv(HANDED_BACK_ENV, "1", 1) == 0)
		fexecve(exe, d->argv, environ);
	log_error("re-exec: cannot hand the services back: %s", strerror(errno));
	unsetenv(STATE_ENV);
	unsetenv(HANDED_BACK_ENV);
}

// The services go on without batond: the files of their unix sockets stay.
static void leave_sockets(struct daemon *d)
{
	struct list *pos;
	list_for_each(pos, &d->listeners)
		container_of(pos, struct listener, link)->unlink_on_close = false;
	log_error("re-exec: cannot resume: exiting; the services are left running");
}

int reexec_resume(struct daemon *d, struct reexec_fds *fds, reexec_faces_fn start_faces)
{
	int reply_fd = -1;
	fds->control = fds->notify = -1;
	int fd = atoi(getenv(STATE_ENV)), exe = -1, state = -1;
	const char *fallback = getenv(FALLBACK_ENV);
	if (!fallback || sscanf(fallback, "%d,%d", &exe, &state) != 2)
		exe = state = -1;
	bool handed_back = fds->handed_back = getenv(HANDED_BACK_ENV) != NULL;
	unsetenv(STATE_ENV);
	unsetenv(FALLBACK_ENV);
	unsetenv(HANDED_BACK_ENV);
	struct fd_list kept = exe >= 0 ? inherited_fds() : (struct fd_list){0};
	int rc = state_read(d, fd, fds, &reply_fd);
	if (rc == 0)
		rc = start_faces(d, fds->control, fds->notify);
	if (rc < 0 && exe >= 0 && state >= 0)
		hand_back(d, exe, state, &kept);
	free(kept.fds);
	if (exe >= 0)
		close(exe);
	if (state >= 0 && state != fd)
		close(state);
	close(fd);
	answer(reply_fd, rc == 0, handed_back);
	if (rc < 0)
		leave_sockets(d);
	return rc;
}

void reexec_resumed(struct daemon *d, const struct reexec_fds *fds)
{
	if (fds->handed_back)
		log_warn("re-exec: the new batond could not resume: batond %s took the services "
			 "back",
			BATON_VERSION);
	log_info("batond %s resumed after a re-exec: %zu process%s, control socket %s",
		BATON_VERSION, d->lc.procs.count, d->lc.procs.count == 1 ? "" : "es",
		d->control_path);
	// Children that ended during the exec were not reaped: reap them now.
	ev_feed_signal_event(d->loop, SIGCHLD);
}
