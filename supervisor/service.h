#ifndef BATON_SERVICE_H
#define BATON_SERVICE_H

#include <ev.h>
#include <stdbool.h>
#include <sys/types.h>

#include "backoff.h"
#include "batond.h"
#include "config.h"
#include "list.h"
#include "metrics.h"

/*
 * Services, their generations and their processes: the state machines of
 * batond(8). Per process: waiting (for a restart) -> starting -> ready ->
 * stopping -> exited or killed. Per service: one current generation, one
 * being started by an upgrade, and any number still draining.
 */

/* Connections are counted this long before a SIGKILL deadline, not at it. */
#define KILL_PROBE_LEAD 0.1

enum proc_state {
	PROC_WAITING,
	PROC_STARTING,
	PROC_READY,
	PROC_STOPPING,
	PROC_EXITED,
	PROC_KILLED,
};

struct proc {
	struct list link; /* in generation.procs */
	struct generation *gen;
	unsigned instance;
	pid_t pid; /* the main process; 0 while waiting */
	pid_t sid; /* the session batond started it in: the first pid */
	enum proc_state state;
	ev_timer timer; /* restart delay, ready deadline, stop delay or kill deadline */
	ev_io exec_io;  /* the spawn error pipe, until exec succeeded or failed */
	ev_io ready_io; /* the fd:N readiness pipe, until ready */
	double spawned_at, ready_at, stop_at, signalled_at, kill_at; /* clock_now() */
	bool exec_done;   /* exec succeeded */
	bool signalled;   /* the stop signal was sent */
	bool killed;      /* SIGKILL was sent at the deadline */
	bool killed_early; /* ... or before it, past max_draining */
	bool probed;      /* its connections were counted before the deadline */
	bool replace;     /* stopped because it failed: restart it when it exits */
	char *error;      /* why it failed to start, or NULL */
	char *status_text; /* its last STATUS= */
	char *fail_reason; /* why it is being replaced */
	int conns_at_kill; /* connections it held when SIGKILL was sent, or -1 */
	struct backoff backoff;
	unsigned restarts;
	int wait_status; /* as waitpid reported the last exit */
};

enum gen_role {
	GEN_CURRENT,
	GEN_NEXT,
	GEN_DRAINING,
};

struct generation {
	struct list link; /* in service.gens, newest first */
	struct service *svc;
	unsigned number;
	struct service_conf *conf;
	struct listener **listeners; /* conf->sockets, as open when it started */
	struct list procs;
	enum gen_role role;
	double started_at, drain_at;
};

/* Someone waiting for an operation on a service to end (upgrade --wait). */
struct service_waiter {
	struct list link;
	void (*done)(struct service_waiter *w, bool ok, const char *message);
};

struct upgrade {
	bool active;
	struct service_conf *from; /* the definition to return to on rollback */
	double started_at;
	unsigned spawned; /* new processes started so far */
	unsigned stopped; /* old processes stopped so far */
};

struct service {
	struct list link; /* in daemon.services */
	struct daemon *d;
	char *name;
	struct service_conf *conf; /* what the next generation will run */
	struct list gens;
	struct generation *current;
	struct generation *next;
	unsigned last_gen;
	bool wanted;           /* start was asked and no stop since */
	bool removed;          /* gone from the config: freed once stopped */
	bool failed;           /* a crash loop or a failed exit */
	bool start_when_empty; /* restart: start once the old processes are gone */
	char reason[1024];     /* why it failed, or why the last upgrade rolled back */
	struct upgrade upgrade;
	struct list upgrade_waiters;
	struct list stop_waiters;
	unsigned long restarts, upgrades, rollbacks, kills;
	struct histogram ready_latency; /* from start to ready */
	struct histogram drain_time;    /* from the stop to the exit */
};

/* Creates a stopped service for conf, which it references. */
struct service *service_create(struct daemon *d, struct service_conf *conf);

/* Frees a service; its processes must be gone. */
void service_destroy(struct service *svc);

/* Starts the service's processes; does nothing when it already runs. */
void service_start(struct service *svc);

/* Stops every process of the service: stop signal, grace, then SIGKILL. */
void service_stop(struct service *svc);

/* Stops every process, then starts a new generation once they are gone. */
void service_restart(struct service *svc);

/*
 * Starts an upgrade to conf (which the service references from then on).
 * Returns 0, or -1 with the reason in err when none can start now.
 */
int service_upgrade(struct service *svc, struct service_conf *conf, char *err, size_t errlen);

/* Sends signo to every running process of the service; returns how many. */
unsigned service_signal(struct service *svc, int signo);

/* Tells the service's state as status shows it. */
const char *service_state_name(const struct service *svc);

/* Counts the service's processes with a pid. */
unsigned service_live_procs(const struct service *svc);

/* Tells a process state's name. */
const char *proc_state_name(enum proc_state state);

/* Handles the exit of pid; returns false when pid is no process of a service. */
bool service_reap(struct daemon *d, pid_t pid, int status);

/* Marks the process ready (sd_notify READY=1). */
void proc_set_ready(struct proc *p);

/*
 * Makes pid the process's main process (sd_notify MAINPID=), if it belongs
 * to the session batond started; otherwise logs and ignores it.
 */
void proc_set_main_pid(struct proc *p, pid_t pid);

/* Records a process's STATUS= text. */
void proc_set_status(struct proc *p, const char *text);

/* Moves a process's current deadline (EXTEND_TIMEOUT_USEC) to at least now+secs. */
void proc_extend_timeout(struct proc *p, double secs);

/*
 * For a re-exec: recreates a generation of svc (oldest first) from the
 * fields of saved, running conf, with its sockets (taking the array).
 */
struct generation *service_restore_gen(struct service *svc, const struct generation *saved,
	struct service_conf *conf, struct listener **listeners);

/*
 * For a re-exec: recreates a process of gen from the fields of saved, its
 * timer due at timer_at (clock_now() time, 0 for none), and the pipes it had
 * (-1 for none).
 */
struct proc *service_restore_proc(struct generation *gen, const struct proc *saved,
	double timer_at, int exec_fd, int ready_fd);

/* Tells when the process's timer is due (clock_now() time), or 0. */
double proc_timer_at(const struct proc *p);

/* Describes a wait status: "exited with status 1", "killed by signal 9 (KILL)". */
void describe_status(int status, char *out, size_t outlen);

#endif
