#ifndef BATON_LIFECYCLE_H
#define BATON_LIFECYCLE_H

#include <ev.h>
#include <stdbool.h>
#include <sys/types.h>

#include "backoff.h"
#include "config.h"
#include "linebuf.h"
#include "list.h"
#include "pidmap.h"
#include "pin.h"
#include "spawn.h"

/*
 * The lifecycle: services, their generations and their processes, the state
 * machines of batond(8). Per process: waiting (for a restart) -> starting ->
 * ready -> stopping -> exited or killed. Per service: one current
 * generation, one being started by an upgrade, and any number draining.
 *
 * It runs on a libev loop and knows nothing of batond beyond it: what it
 * needs (a socket by name, a process's connections, the notify socket's
 * path, starting and signalling processes) it asks of a struct
 * lifecycle_host, and what happens it reports to the host's observer as
 * typed events. It formats nothing for the wire and logs nothing.
 *
 * Lifetime rules, for every call below: a call may free processes and
 * generations of the service it acts on (a process that is removed, a
 * generation whose last process is gone), never a service; only
 * service_destroy frees a service. The observer is called from inside these
 * calls: it may read any structure, and must not start, stop, upgrade or
 * destroy anything from there. A struct proc or struct generation pointer
 * held across a return to the loop is stale unless the holder was told,
 * by an event, that it still exists; hold a pid or a number instead.
 */

/* Connections are counted this long before a SIGKILL deadline, not at it. */
#define KILL_PROBE_LEAD 0.1

/* A process's last line is kept cut to this many bytes, for the views of a drain. */
#define PROC_LAST_LINE_MAX 200

/* The first line of a check's output is kept cut to this many bytes. */
#define CHECK_LINE_MAX 200

/*
 * What is known of a process's health: its checks (ready = exec:, check =
 * exec:), one run at a time, and its watchdog; allocated only for a service
 * that has one of them.
 */
struct proc_health {
	struct proc *p;
	pid_t pid;        /* the check running, or 0 */
	int errfd;        /* its exec error pipe, or -1 */
	ev_io out;        /* its output, stdout and stderr together */
	ev_timer timer;   /* the next run, or the running one's check_timeout */
	ev_timer watchdog; /* WATCHDOG=1 is due before it fires */
	struct list queue; /* in lifecycle.check_queue, waiting for a place */
	char line[CHECK_LINE_MAX + 1]; /* the running check's first line so far */
	char last[CHECK_LINE_MAX + 1]; /* what the last run said: its line or why it failed */
	bool got_line;    /* the first line has ended */
	bool timed_out;   /* the running check outlived check_timeout */
	bool checked;     /* a run has ended */
	bool ok;          /* ...and passed */
	unsigned failures; /* runs failed in a row */
	double since;     /* the first run, while the process is starting */
	double last_at;   /* when the last run ended */
};

/* What a process writes on stdout or stderr, read from a pipe, line by line. */
struct proc_output {
	ev_io io; /* the pipe's read end, until its end; fd -1 without one */
	struct linebuf lines;
};

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
	bool exec_done;    /* exec succeeded */
	bool signalled;    /* the stop signal was sent */
	bool killed;       /* SIGKILL was sent at the deadline */
	bool killed_early; /* ... or before it, past max_draining */
	bool probed;       /* its connections were counted before the deadline */
	bool replace;      /* stopped because it failed: restart it when it exits */
	char *error;       /* why it failed to start, or NULL */
	char *status_text; /* its last STATUS= */
	char *fail_reason; /* why it is being replaced */
	int conns_at_kill; /* connections it held when SIGKILL was sent, or -1 */
	struct proc_output out, err; /* unless its service's log = inherit */
	char *last_line;   /* the last line it wrote, cut to PROC_LAST_LINE_MAX, or NULL */
	struct proc_health *health; /* with checks or a watchdog, else NULL */
	bool unhealthy;    /* its check or watchdog failed: it is being replaced */
	bool oom;          /* the kernel's OOM killer ended it */
	bool niced;        /* it started with start_nice: its priority comes back at readiness */
	struct proc *replaced_by; /* the process started to replace it, until ready */
	struct proc *replaces;    /* the unhealthy process it replaces, until ready */
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
	enum gen_role role;
	struct service_conf *conf;   /* a reference */
	struct list procs;
	unsigned strays;  /* processes left in its cgroup once its own are gone */
	struct listener **listeners; /* conf->sockets, as open when it started; a use of each */
	struct pin pin;              /* what it runs: program, directory, environment */
	struct list hash_link;       /* in lifecycle.hash_queue until its program is hashed */
	void *cgroup;     /* its cgroup, the host's (cgroup_open), or NULL: process groups only */
	int cgroup_dir;   /* the cgroup's directory, which its processes enter, or -1 */
	long long oom_kills; /* OOM kills in its cgroup seen so far */
	bool strays_signalled; /* ...were sent the stop signal: killed when stray_timer ends */
	bool strays_killed;    /* ...were killed: stray_timer looks again till the cgroup is empty */
	double strays_at;      /* when stray_timer ends (clock.h), while it runs */
	int *held;             /* output pipes of its exited processes that another process
				  may still write to (generation_hold_output) */
	size_t nheld;
	struct list hold_link; /* in lifecycle.holding while it holds any */
	ev_timer stray_timer;
	char *changes; /* what differs from the generation it follows, or NULL: "program,
			  arguments, directory, environment (NAME ...)" */
	double started_at, drain_at;
};

/* A gate's run: a command that judges each batch of an upgrade (gate.c). */
struct upgrade_gate {
	struct service *svc;
	pid_t pid;
	int errfd;                      /* its spawn error pipe, until it ends */
	ev_io out;                      /* its stdout and stderr */
	ev_timer timer;                 /* its timeout */
	char partial[CHECK_LINE_MAX + 1]; /* the line it is writing */
	char last[CHECK_LINE_MAX + 1];    /* its last complete line */
	bool timed_out;
};

/* How an upgrade goes, beyond the service's upgrade mode (upgrade --canary...). */
struct upgrade_options {
	unsigned canary;   /* processes to try first, beside all the old ones, then pause; or 0 */
	double observe;    /* with canary: go on by itself once paused this long, or 0 */
	char **gate;       /* a gate's words, or NULL for the service's upgrade_gate */
	size_t ngate;
};

struct upgrade {
	bool active;
	struct service_conf *from; /* the definition to return to on rollback */
	double started_at;
	unsigned spawned; /* new processes started so far */
	unsigned stopped; /* old processes stopped so far */
	unsigned canary;  /* the canaries, or 0 */
	bool paused;      /* the canaries are ready: continue or abort */
	bool continued;   /* the canary phase is over */
	double observe;   /* continue by itself after this long paused, or 0 */
	ev_timer observe_timer;
	char **gate;      /* the gate's words (owned), or NULL */
	double gate_timeout;
	struct upgrade_gate *gate_run; /* the gate running, or NULL */
	unsigned gated;   /* new processes the gate has passed */
	unsigned batch, batches; /* the batch started last, from 1, and how many there are */
};

struct service {
	struct list link; /* for its owner's list */
	struct lifecycle *lc;
	char *name;
	struct service_conf *conf; /* what the next generation will run; a reference */
	struct list gens;
	struct generation *current;
	struct generation *next;
	unsigned last_gen;
	bool wanted;           /* start was asked and no stop since */
	bool removed;          /* gone from the config: freed once stopped */
	bool failed;           /* a crash loop or a failed exit */
	bool start_when_empty; /* restart: start once the old processes are gone */
	bool output_paused;    /* its processes' output is not read (service_pause_output) */
	unsigned long restarts, upgrades, rollbacks, kills;
	unsigned long checks_ok, checks_failed, unhealthy;
	unsigned long oom_kills; /* processes the kernel's OOM killer ended */
	struct upgrade upgrade;
	// What the daemon's faces keep of the service, theirs alone (the lifecycle
	// only starts them NULL): found from it at once, as each of its lines is.
	struct {
		void *logs;    /* logs.c's */
		void *metrics; /* metrics.c's */
	} faces;
	struct {
		unsigned number; /* the generation the last upgrade replaced, or 0 */
		char *exe;       /* what it ran: its program, or NULL */
		char hash[17];   /* ...and its hash, "" when not known */
	} replaced;
	// Last, after what status reads of every service at once.
	char reason[1024];     /* why it failed, or why the last upgrade rolled back */
};

/* ---- events ---- */

enum lifecycle_kind {
	LC_SPAWNED,      /* proc: a process started */
	LC_SPAWN_FAILED, /* proc: no process could start (reason); it retries in secs,
			    or, with secs < 0, its upgrade rolls back */
	LC_READY,        /* proc: it became ready, secs after it started */
	LC_STATUS,       /* proc: it sent a new STATUS= (proc->status_text) */
	LC_MAIN_PID,     /* proc: its main process is now proc->pid (MAINPID=); pid
			    is the one before */
	LC_UNREADY,      /* proc: not ready in time (reason): it is replaced */
	LC_STOPPING,     /* proc: asked to stop; secs of stop_delay first, or 0 */
	LC_SIGNALLED,    /* proc: sent signo at t; SIGKILL in secs unless it exits */
	LC_SIGKILL,      /* no proc: SIGKILL was sent at t to number/instance/pid,
			    holding conns (-1: unknown), for reason */
	LC_EXITED,       /* proc: it exited (reason); see stopped and failed */
	LC_KILLED,       /* proc: it ended after SIGKILL was sent (reason); one that
			    exited by itself meanwhile is LC_EXITED */
	LC_RESTARTING,   /* proc: it exited on its own (reason); restarts in secs */
	LC_FAILED,       /* svc: failed (svc->reason). With a proc, its exit is
			    told next by LC_EXITED */
	LC_GEN_STARTED,  /* gen: a generation started, not by an upgrade */
	LC_GEN_EMPTY,    /* gen: the current generation of a wanted service has no
			    process left */
	LC_DRAINED,      /* gen: a draining generation is gone, secs after its drain began */
	LC_MAX_DRAINING, /* gen: killed at once: more generations drain than max_draining */
	LC_UPGRADE,      /* svc: an upgrade moved to state (see the upgrade fields) */
	LC_UPGRADE_OVER, /* svc: an upgrade has ended: ok, or reason */
	LC_STOP,         /* svc: a stop began, count processes running */
	LC_STOPPED,      /* svc: stopped: no process left */
	LC_IDLE,         /* svc: no generation left, none to start */
	LC_STOP_OVER,    /* svc: any wait for a stop ends: ok once no process is
			    left, or not (reason) when a start or restart comes first */
	LC_ERROR,        /* svc, maybe proc: something failed for want of memory (reason) */
	LC_OUTPUT,       /* proc: it wrote a line (text, len) on stream, with LINEBUF_*
			    flags; an exit is told after its last line */
	LC_CHECK,        /* proc: a check ended: ok, else reason (its output or why);
			    count: the failures in a row it makes, or ends when ok;
			    stopped: a readiness check (ready = exec:) */
	LC_UNHEALTHY,    /* proc: its check or watchdog failed (reason): it is replaced
			    in secs, or, with secs < 0, it drains or its upgrade rolls back */
	LC_GEN_HASHED,   /* gen: the hash of its program is known (gen->pin.hash), or
			    will never be ("": unreadable, changed, or gen being destroyed) */
	LC_STRAYS,       /* gen: its processes are gone but count others are left in
			    its cgroup (text: "name[pid] ..."): sent the stop signal
			    (signo), killed in secs */
	LC_STRAYS_KILLED, /* gen: count processes left in its cgroup were killed (text) */
};

enum upgrade_state {
	UPGRADE_STARTED,
	UPGRADE_BATCH,
	UPGRADE_DONE,
	UPGRADE_ROLLED_BACK,
	UPGRADE_ABORTED,
	UPGRADE_PAUSED,    /* the canaries are ready: the upgrade waits */
	UPGRADE_CONTINUED, /* it goes on past its canaries (reason: who said so) */
	UPGRADE_GATING,    /* its gate runs on the batch just ready */
	UPGRADE_GATE_PASSED,
};

/*
 * What happened, passed to the observer and valid only during that call.
 * Process events carry the process and, copied, its generation's number,
 * instance and pid; generation events the generation and its number.
 */
struct lifecycle_event {
	enum lifecycle_kind kind;
	double t; /* when it happened: clock_now() time */
	struct service *svc;
	const struct proc *proc;
	const struct generation *gen;
	unsigned number; /* the generation's */
	unsigned instance;
	pid_t pid;
	int signo;
	int conns;
	double secs;
	const char *reason;
	bool ok;
	bool stopped; /* LC_EXITED: it had been asked to stop */
	bool replaced; /* LC_EXITED: a process replacing it was on its way */
	bool failed;  /* LC_EXITED: it ended in failure (status, signal, exec error) */
	bool oom;     /* LC_EXITED, LC_RESTARTING: the kernel's OOM killer ended it */
	enum upgrade_state state;   /* LC_UPGRADE */
	unsigned from;              /* LC_UPGRADE: the current generation, or 0 */
	unsigned spawned, instances; /* LC_UPGRADE: of the new generation (0: none) */
	unsigned count;             /* LC_STOP */
	int stream;                 /* LC_OUTPUT: 1 stdout, 2 stderr */
	const char *text;           /* LC_OUTPUT: the line's bytes, without its '\n' */
	size_t len;
	unsigned flags;             /* LC_OUTPUT: LINEBUF_CUT, LINEBUF_PARTIAL */
};

/* ---- what the lifecycle asks of its host ---- */

struct listener;

/*
 * Implemented by batond's daemon, and by a fake in the unit tests. Every
 * function is required.
 */
struct lifecycle_host {
	/* Returns the open socket named name, taking a use of it, or NULL. */
	struct listener *(*listener)(struct lifecycle_host *h, const char *name);
	/* Drops a use taken by listener(). */
	void (*release)(struct lifecycle_host *h, struct listener *l);
	/* Counts the connections pid holds, or returns -1 when they cannot be read. */
	int (*count_conns)(struct lifecycle_host *h, pid_t pid);
	/* Returns NOTIFY_SOCKET for processes with ready = notify, or NULL for none. */
	const char *(*notify_path)(struct lifecycle_host *h);
	/* Starts a process, as spawn_process() does. */
	pid_t (*spawn)(struct lifecycle_host *h, const struct spawn_request *req, int *errfd);
	/* Sends signo to pid (a process group when negative), as kill(2). */
	int (*kill)(struct lifecycle_host *h, pid_t pid, int signo);
	/* Returns the session of pid, as getsid(2). */
	pid_t (*session_of)(struct lifecycle_host *h, pid_t pid);
	/* Observes every event, in the order they happen. */
	void (*event)(struct lifecycle_host *h, const struct lifecycle_event *e);
	/*
	 * Cgroups, when the host has them (else these are NULL). cgroup_open
	 * gives gen a cgroup of its own, with its definition's limits (gen->cgroup,
	 * gen->cgroup_dir), or leaves it without one; returns 0, or -1 with the
	 * reason in err. The host calls lifecycle_cgroup_empty() when a cgroup that
	 * held processes holds none.
	 */
	int (*cgroup_open)(struct lifecycle_host *h, struct generation *gen, char *err,
		size_t errlen);
	/* Whether a process is still in gen's cgroup. */
	bool (*cgroup_populated)(struct lifecycle_host *h, const struct generation *gen);
	/*
	 * Sends signo to every process in gen's cgroup (SIGKILL kills them all at
	 * once); writes "name[pid] ..." of those outside the process groups of
	 * gen's own processes into who, and returns how many they are.
	 */
	unsigned (*cgroup_signal)(struct lifecycle_host *h, const struct generation *gen, int signo,
		char *who, size_t wholen);
	/* The OOM kills in gen's cgroup so far, or -1 when not known. */
	long long (*cgroup_oom_kills)(struct lifecycle_host *h, const struct generation *gen);
	/* Lets go of gen's cgroup: the host removes it once it is empty. */
	void (*cgroup_close)(struct lifecycle_host *h, struct generation *gen);
	/*
	 * Sets the nice value of every thread of process group pgid, as
	 * setpriority(PRIO_PGRP); NULL when processes are not to start with
	 * start_nice (the host could not give their priority back).
	 */
	int (*set_priority)(struct lifecycle_host *h, pid_t pgid, int nice);
	int base_nice; /* the nice value of a process of a service without nice */
};

/* ---- the lifecycle's context ---- */

struct lifecycle {
	struct ev_loop *loop;
	struct lifecycle_host *host;
	struct pidmap procs; /* pid -> struct proc, every process with a pid */
	struct pidmap checks; /* pid -> struct proc_health, or &lifecycle.abandoned */
	struct pidmap gates;  /* pid -> struct upgrade_gate, or &lifecycle.abandoned */
	char abandoned;       /* the check of a process that is gone, until reaped */
	unsigned checks_running;
	struct list check_queue; /* struct proc_health waiting for a place */
	unsigned nstopping;  /* processes in the stopping state */
	struct list kill_reports;
	ev_idle kill_reporter; /* tells of SIGKILLs once the burst of deadlines is over */
	struct list hash_queue; /* struct generation whose program is not hashed yet */
	struct list holding;    /* struct generation holding output pipes */
	ev_idle hasher;         /* hashes them a piece at a time when nothing else waits */
};

/* Starts an empty lifecycle on loop, asking host for what it needs. */
void lifecycle_init(struct lifecycle *lc, struct ev_loop *loop, struct lifecycle_host *host);

/*
 * The host tells that gen's cgroup holds no process any more: a generation
 * whose own processes are gone ends then.
 */
void lifecycle_cgroup_empty(struct generation *gen);

/* Whether gen's program is still to be hashed (LC_GEN_HASHED tells when it is). */
bool generation_hashing(const struct generation *gen);

/* Frees what the context holds; its services must be destroyed first. */
void lifecycle_finish(struct lifecycle *lc);

/*
 * Handles the exit of pid with a wait status: the process exits, restarts,
 * fails its service or rolls back its upgrade. Returns false when pid is no
 * process of a service. May free the process and its generation.
 */
bool lifecycle_reap(struct lifecycle *lc, pid_t pid, int status);

/* Returns the process whose main process is pid, or NULL. */
struct proc *lifecycle_proc(const struct lifecycle *lc, pid_t pid);

/* ---- services ---- */

/* Creates a stopped service for conf (taking a reference), or NULL. */
struct service *service_create(struct lifecycle *lc, struct service_conf *conf);

/*
 * Frees a service at once, with its generations and processes, without
 * signalling any (batond is exiting, or its processes are gone); waits on it
 * end with LC_UPGRADE_OVER and LC_STOP_OVER. svc must not be used after.
 */
void service_destroy(struct service *svc);

/* Starts the service's processes; instances that ended for good start again. */
void service_start(struct service *svc);

/* Stops every process of the service: stop signal, grace, then SIGKILL. */
void service_stop(struct service *svc);

/* Stops every process, then starts a new generation once they are gone. */
void service_restart(struct service *svc);

/*
 * Starts an upgrade to conf (taking a reference). Returns 0; -1 with the
 * reason in err when none can start now (one is running, or the service is
 * not); -2 when the new generation cannot be made (its program or an
 * environment file), with the reason in err. An upgrade that fails at once
 * has rolled back before this returns: svc->upgrade.active is then false.
 */
int service_upgrade(struct service *svc, struct service_conf *conf,
	const struct upgrade_options *opts, char *err, size_t errlen);

/*
 * Goes on with an upgrade paused at its canaries (reason: who said so; its
 * gate first, if it has one). Returns 0, or -1 with why not in err.
 */
int service_upgrade_continue(struct service *svc, const char *reason, char *err, size_t errlen);

/*
 * Ends an upgrade by the operator's word: its new processes drain, the old
 * generation gets back any it had stopped. Returns 0, or -1 with why not.
 */
int service_upgrade_abort(struct service *svc, const char *reason, char *err, size_t errlen);

/*
 * Where an upgrade is, for people: "canary", "paused", "gating", "batch 2 of
 * 4", "continuing"; "" when there is none.
 */
const char *upgrade_phase(const struct service *svc, char *buf, size_t len);

/* Sends signo to every running process of the service; returns how many. */
unsigned service_signal(struct service *svc, int signo);

/* Tells the service's state as status shows it: running, upgrading, failed... */
const char *service_state_name(const struct service *svc);

/* What a service's processes come to, counted in one walk of them. */
struct service_counts {
	unsigned live;      /* processes with a pid, strays included (service_live_procs) */
	unsigned ready;     /* processes of its current generation ready, */
	unsigned starting;  /* ...starting */
	unsigned waiting;   /* ...and waiting to restart */
	unsigned unsettled; /* processes not ready, or not of a current generation */
};

/* Counts the service's processes. */
void service_count(const struct service *svc, struct service_counts *c);

/* service_state_name, from the counts service_count made now. */
const char *service_state_of(const struct service *svc, const struct service_counts *c);

/* Counts the service's processes with a pid. */
unsigned service_live_procs(const struct service *svc);

/*
 * Stops reading the output of the service's processes, or starts again: a
 * process whose pipe is full then waits to write, as under a slow log.
 */
void service_pause_output(struct service *svc, bool paused);

/* Counts the processes of gen in state. */
unsigned generation_count(const struct generation *gen, enum proc_state state);

/* ---- processes ---- */

/* Tells a process state's name. */
const char *proc_state_name(enum proc_state state);

/* Tells a generation role's name: current, next or draining. */
const char *generation_role_name(enum gen_role role);

/* Tells an upgrade state's name, as baton-protocol(7) writes it. */
const char *upgrade_state_name(enum upgrade_state state);

/* Marks a starting process ready (READY=1, its readiness fd, its delay). */
void proc_set_ready(struct proc *p);

/*
 * Makes pid the process's main process (MAINPID=). Returns 0, or -1 with
 * errno EPERM when pid is no process of the session batond started it in
 * (or already another process's), ENOMEM when it cannot be recorded.
 */
int proc_set_main_pid(struct proc *p, pid_t pid);

/* A WATCHDOG=1 (or, with trigger, WATCHDOG=trigger) from the process. */
void proc_watchdog(struct proc *p, bool trigger);

/* Records a process's STATUS= text. */
void proc_set_status(struct proc *p, const char *text);

/* Moves a process's current deadline (EXTEND_TIMEOUT_USEC) to at least now+secs. */
void proc_extend_timeout(struct proc *p, double secs);

/* Tells when the process's timer is due (clock_now() time), or 0. */
double proc_timer_at(const struct proc *p);

/* Writes "web[4242] gen 3", or "web instance 0 gen 3" while it has no pid. */
const char *proc_label(const struct proc *p, char *buf, size_t len);

/* ---- a re-exec ---- */

/*
 * Recreates a generation of svc (call oldest first) from the fields of
 * saved, running conf (taking a reference), with its sockets (taking the
 * array and the uses it holds) and saved->pin (taken). Returns NULL when out
 * of memory.
 */
struct generation *generation_restore(struct service *svc, const struct generation *saved,
	struct service_conf *conf, struct listener **listeners);

/*
 * Holds again fd, an output pipe gen held before a re-exec (taken: closed
 * when gen holds it no longer). Returns 0, or -1 when out of memory.
 */
int generation_restore_held(struct generation *gen, int fd);

/* The pipes of a process across a re-exec: -1 for none. */
struct proc_fds {
	int exec, ready, out, err;
};

/*
 * Recreates a process of gen from the fields of saved, its timer due at
 * timer_at (clock_now() time, 0 for none), with the pipes it had (taken)
 * and the unfinished lines of its output (saved->out.lines and
 * saved->err.lines, copied). Returns NULL when out of memory.
 */
struct proc *proc_restore(struct generation *gen, const struct proc *saved, double timer_at,
	const struct proc_fds *fds);

#endif
