#ifndef BATON_BATOND_H
#define BATON_BATOND_H

#include <ev.h>
#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "list.h"
#include "pidmap.h"
#include "protocol.h"

#define BATON_VERSION_STRING "0.1.0"

struct control;
struct notify;

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
	ev_signal sigterm, sigint, sighup, sigusr1, sigusr2;
	ev_child child;
	ev_timer progress; /* drain progress events, while someone watches a drain */
	ev_idle collector; /* frees removed services, outside their own callbacks */
	unsigned nstopping; /* processes in the stopping state */
	bool shutting_down;
	bool single;     /* single-command mode: exit with the service */
	int exit_status; /* batond's own exit status */
	double started; /* clock_now() at start */
	time_t wall_started;
	unsigned long orphans;
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

/* Starts a graceful shutdown: every service is stopped, then batond exits. */
void daemon_shutdown(struct daemon *d);

/* Ends the loop once a shutdown has stopped every process. */
void daemon_check_done(struct daemon *d);

#endif
