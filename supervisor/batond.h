#ifndef BATON_BATOND_H
#define BATON_BATOND_H

#include <ev.h>
#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "conns.h"
#include "list.h"
#include "log.h"
#include "pidmap.h"
#include "protocol.h"

#define BATON_VERSION_STRING "0.1.0"

struct control;
struct notify;

#define DAEMON_SIGNALS 6

/* All of batond's state, reached from every watcher through its data. */
struct daemon {
	struct ev_loop *loop;
	char *config_path; /* NULL in single-command mode */
	struct config *config;
	char *control_path;
	struct list listeners; /* struct listener */
	struct list services;  /* struct service, in config order */
	struct pidmap procs;   /* pid -> struct proc */
	struct control *control;
	struct notify *notify;
	ev_signal sigterm, sigint;
	ev_signal signals[DAEMON_SIGNALS]; /* HUP QUIT USR1 USR2 WINCH ALRM */
	ev_child child;
	ev_timer progress; /* drain progress events, while someone watches a drain */
	ev_idle collector; /* frees removed services, outside their own callbacks */
	struct list kill_reports; /* SIGKILLs sent, to log and report when idle */
	ev_idle kill_reporter;
	struct conns conns;          /* the host's connections, read at most once... */
	unsigned conns_iteration;    /* ...per loop iteration: this one */
	bool conns_loaded;
	unsigned nstopping; /* processes in the stopping state */
	bool shutting_down;
	bool single;     /* single-command mode: exit with the service */
	int last_status; /* wait status of the last main process to end */
	int exit_status; /* batond's own exit status */
	char *systemd_notify; /* batond's own NOTIFY_SOCKET, under systemd */
	char **argv;          /* how batond was started, for a re-exec */
	char *exe;            /* its binary's path, for a re-exec */
	double started; /* clock_now() at start */
	time_t wall_started;
	unsigned long orphans;
	struct log_limit mainpid_limit; /* MAINPID= refused: a service may send many */
};

/* Returns the open (not retired) listener named name, or NULL. */
struct listener *daemon_listener(struct daemon *d, const char *name);

/* Drops a generation's use of a listener; closes a retired one no one uses. */
void daemon_listener_release(struct daemon *d, struct listener *l);

/* Frees services removed by a reload once their last process is gone. */
void daemon_collect_later(struct daemon *d);

/* Returns the service named name, or NULL. */
struct service *daemon_service(struct daemon *d, const char *name);

/*
 * Reloads the configuration file (reload_config) and logs the outcome. With a
 * report, the changes, or on failure an `error` line, are appended to it.
 */
int daemon_reload(struct daemon *d, struct protocol_buf *report);

/* Empties a daemon context. */
void daemon_init(struct daemon *d);

/*
 * Starts batond on d->config: the event loop, signals, the control, notify
 * and listening sockets (taken from systemd when it passed them), then every
 * service. Returns 0, or -1 after logging why.
 */
int daemon_start(struct daemon *d);

/*
 * Returns the host's connection sockets (conns.h), read from the kernel at
 * most once per loop iteration however many processes are asked about, or
 * NULL when they cannot be read.
 */
const struct conns *daemon_conns(struct daemon *d);

/* Counts the connections pid holds (conns.h), or returns -1 when that cannot be read. */
int daemon_count_conns(struct daemon *d, pid_t pid);

/* Sets up the event loop, signals and the reaping of orphans. */
int daemon_prepare(struct daemon *d);

/*
 * Empties the signal mask: whoever started batond may have left signals
 * blocked, and a re-exec keeps them blocked until the state is resumed.
 */
void daemon_unblock_signals(void);

/* Sends READY=1 to systemd, when batond runs under it. */
void daemon_tell_systemd(struct daemon *d);

/* Returns the notify socket's path for a control socket's (to free). */
char *daemon_notify_path(const char *control);

/* Runs until batond is done; returns its exit status. */
int daemon_run(struct daemon *d);

/* Frees everything, removing batond's socket files. */
void daemon_finish(struct daemon *d);

/*
 * Re-executes batond's binary with its whole state (reexec.c); the new batond
 * answers `ok` on reply_fd (a control client's socket, or -1). Returns only
 * when that cannot be done, -1 with the reason in err (also logged).
 */
int daemon_reexec(struct daemon *d, int reply_fd, char *err, size_t errlen);

/* Starts a graceful shutdown: every service is stopped, then batond exits. */
void daemon_shutdown(struct daemon *d);

/* Ends the loop once a shutdown has stopped every process. */
void daemon_check_done(struct daemon *d);

#endif
