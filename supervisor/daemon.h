#ifndef BATON_DAEMON_H
#define BATON_DAEMON_H

#include <ev.h>
#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "conns.h"
#include "containment.h"
#include "lifecycle.h"
#include "list.h"

/*
 * The daemon: owns batond's configuration, sockets and services, implements
 * the lifecycle's host (lifecycle.h) and passes each lifecycle event to its
 * subscribers, reaps children, and ends batond when it is done. It knows
 * nothing of the faces above it (control socket, commands, watch stream,
 * log of events, signals, reload, re-exec): they hold on to it.
 *
 * Lifetime rules: a service is freed only by daemon_destroy_services (from
 * daemon_finish) and, once a reload removed it and its last process is gone,
 * by the collector, an idle callback that runs outside every other callback.
 * A subscriber may keep a struct service pointer until it is told LC_IDLE for
 * a removed service; service_destroy then still ends the waits on it
 * (LC_UPGRADE_OVER, LC_STOP_OVER), which must not bring anything back to life.
 * At exit the services are freed before the faces, which are told nothing:
 * a face's destroy must not touch the services it kept.
 * A listener is freed when it is retired and its last generation releases
 * it.
 */

struct control;
struct notify_socket;
struct watch;
struct command;
struct eventlog;
struct logs;
struct metrics;
struct signals;
struct status_cache;

/* Receives every lifecycle event (daemon_subscribe), in subscription order. */
struct daemon_subscriber {
	struct list link;
	void (*event)(struct daemon_subscriber *s, const struct lifecycle_event *e);
};

struct daemon {
	struct ev_loop *loop;
	char *config_path; /* NULL in single-command mode */
	struct config *config;
	char *control_path;
	char *notify_path;     /* children's NOTIFY_SOCKET */
	struct list listeners; /* struct listener */
	struct list services;  /* struct service, in config order */
	unsigned nservices;    /* ...how many */
	struct lifecycle lc;
	struct lifecycle_host host;
	struct containment *cg;  /* cgroups, or process groups only (daemon_init) */
	struct list subscribers; /* struct daemon_subscriber */
	ev_child child;
	ev_idle collector;        /* frees removed services, outside their own callbacks */
	struct conns conns;       /* the host's connections, read at most once... */
	unsigned conns_iteration; /* ...per loop iteration: this one */
	bool conns_loaded;
	bool shutting_down;
	bool single;          /* single-command mode: exit with the service */
	int last_status;      /* wait status of the last main process to end */
	int exit_status;      /* batond's own exit status */
	char *systemd_notify; /* batond's own NOTIFY_SOCKET, under systemd */
	char **argv;          /* how batond was started, for a re-exec */
	char *exe;            /* its binary's path, for a re-exec */
	double started;       /* clock_now() at start */
	time_t wall_started;
	unsigned long orphans;
	/* The faces, created and freed by faces.c; the daemon never calls them. */
	struct control *control;
	struct notify_socket *notify;
	struct watch *watch;
	struct command *command;
	struct eventlog *eventlog;
	struct logs *logs;
	struct metrics *metrics;
	struct signals *signals;
	struct status_cache *status_cache; /* made by status.c as needed */
};

/* Empties a daemon context. */
void daemon_init(struct daemon *d);

/*
 * Creates the event loop, the reaping of children (and of orphans, as PID 1
 * or a subreaper) and the lifecycle. Returns 0, or -1 after logging why.
 */
int daemon_prepare(struct daemon *d);

/*
 * Opens the sockets of d->config, taking those systemd passed to batond.
 * Returns 0, or -1 after logging why.
 */
int daemon_open_listeners(struct daemon *d);

/*
 * Sets up the cgroups of d->config's [baton] cgroup (created: by the batond
 * before a re-exec), or says at start why there are none, and checks that
 * the services' cgroup limits can be enforced. Returns 0, or -1 after
 * logging which cannot.
 */
int daemon_contain(struct daemon *d, bool created);

/* Creates and starts every service of d->config, then tells systemd. Returns 0 or -1. */
int daemon_start(struct daemon *d);

/* Runs until batond is done; returns its exit status. */
int daemon_run(struct daemon *d);

/* Frees every service at once (batond is exiting): waits on them end. */
void daemon_destroy_services(struct daemon *d);

/* Frees what is left, removing the sockets' files; the faces must be gone. */
void daemon_finish(struct daemon *d);

/* Adds s to the subscribers of lifecycle events, after those before it. */
void daemon_subscribe(struct daemon *d, struct daemon_subscriber *s);

/* Removes a subscriber. */
void daemon_unsubscribe(struct daemon *d, struct daemon_subscriber *s);

/* Creates a service for conf, last in d->services; returns it, or NULL. */
struct service *daemon_add_service(struct daemon *d, struct service_conf *conf);

/* Returns the service named name, or NULL (a removed one is not found). */
struct service *daemon_service(struct daemon *d, const char *name);

/* Returns the open (not retired) listener named name, or NULL. */
struct listener *daemon_listener(struct daemon *d, const char *name);

/* Drops a use of a listener; closes (and frees) a retired one no one uses. */
void daemon_listener_release(struct daemon *d, struct listener *l);

/* Counts the connections pid holds (conns.h), or returns -1 when that cannot be read. */
int daemon_count_conns(struct daemon *d, pid_t pid);

/* Starts a graceful shutdown: every service is stopped, then batond exits. */
void daemon_shutdown(struct daemon *d);

/*
 * Sends one message to batond's own systemd (sd_daemon.h), when it has one.
 * Returns 0, or -1 with errno set.
 */
int daemon_tell_systemd(struct daemon *d, const char *msg);

/*
 * Empties the signal mask: whoever started batond may have left signals
 * blocked, and a re-exec keeps them blocked until the state is resumed.
 */
void daemon_unblock_signals(void);

/* Returns the notify socket's path for a control socket's (to free), or NULL. */
char *daemon_notify_path(const char *control);

#endif
