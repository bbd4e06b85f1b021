#ifndef BATON_LIFECYCLE_IMPL_H
#define BATON_LIFECYCLE_IMPL_H

#include <stdarg.h>

#include "lifecycle.h"

/*
 * Between the files of the lifecycle only: lifecycle.c (the context, the
 * clock, events), proc.c, generation.c, service.c and upgrade.c. A process
 * exit may end its generation, fail its service or roll back its upgrade,
 * and an upgrade starts and stops processes: the four sections call each
 * other through these, and nothing outside the lifecycle does.
 */

/* ---- lifecycle.c ---- */

/* Seconds on the monotonic clock (clock.h). */
double lifecycle_now(void);

/* Fills an event of kind about svc, happening now. */
struct lifecycle_event lifecycle_event(enum lifecycle_kind kind, struct service *svc);

/* Fills an event of kind about p (its service, generation number, instance, pid). */
struct lifecycle_event lifecycle_proc_event(enum lifecycle_kind kind, const struct proc *p);

/* Fills an event of kind about gen. */
struct lifecycle_event lifecycle_gen_event(enum lifecycle_kind kind, const struct generation *gen);

/*
 * Hashes gen's pinned program when the loop has nothing else to do, a piece
 * per turn: pin.hash is known some time after; a generation destroyed first
 * leaves the queue (generation_destroy).
 */
void lifecycle_hash_later(struct lifecycle *lc, struct generation *gen);

/*
 * gen's hash is known: it leaves the queue, and so does every generation in
 * it that runs the same bytes, with the same hash; LC_GEN_HASHED for each.
 */
void generation_hashed(struct lifecycle *lc, struct generation *gen);

/* Passes an event to the host's observer. */
void lifecycle_emit(struct lifecycle *lc, const struct lifecycle_event *e);

/* Sends an event that has only the fields of its subject. */
void lifecycle_emit_proc(enum lifecycle_kind kind, const struct proc *p);

/* Reports an error (reason formatted like printf) about svc, and p when not NULL. */
void lifecycle_error(struct service *svc, const struct proc *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Queues the report of a SIGKILL sent to p, told when the loop is idle. */
void lifecycle_report_kill(struct proc *p, const char *why);

/* Tells every queued SIGKILL now, so that it comes before what came of it. */
void lifecycle_flush_kills(struct lifecycle *lc);

/* Drops the SIGKILLs of svc not told yet: svc is being freed. */
void lifecycle_forget_kills(struct lifecycle *lc, const struct service *svc);

/* ---- proc.c ---- */

/* Creates a process of gen for instance and starts it. */
void proc_spawn_new(struct generation *gen, unsigned instance);

/* Begins the stop of a running process: stop_delay, stop signal, grace, SIGKILL. */
void proc_stop(struct proc *p);

/* Sends SIGKILL to the process's group now; why is NULL for its grace's end. */
void proc_kill_now(struct proc *p, const char *why);

/* Makes p stopping, so that the drain counts it. */
void proc_set_stopping(struct proc *p);

/* Frees a process that has no pid any more; the caller checks its generation. */
void proc_remove(struct proc *p);

/* Creates a process of gen for instance that starts after delay seconds, or NULL. */
struct proc *proc_spawn_later(struct generation *gen, unsigned instance, double delay);

/* ---- health.c ---- */

/* Gives a process that starts what its service's checks and watchdog need. */
void health_attach(struct proc *p);

/* Its exec succeeded: with ready = exec:, its readiness checks begin. */
void health_exec_done(struct proc *p);

/* It is ready: its liveness checks (check =) and its watchdog begin. */
void health_ready(struct proc *p);

/* Its checks and its watchdog end, a check running killed (it stops, or exited). */
void health_stop(struct proc *p);

/* Frees what health_attach gave it. */
void health_free(struct proc *p);

/* Handles the exit of a check's process; false when pid is none. */
bool health_reap(struct lifecycle *lc, pid_t pid, int status);

/* A ready process failed its checks or its watchdog: it is replaced. */
void proc_unhealthy(struct proc *p, const char *reason);

/* ---- generation.c ---- */

/*
 * Creates a generation of svc running conf, newest of the service's, what it
 * runs pinned. Returns NULL with the reason in err.
 */
struct generation *generation_create(struct service *svc, struct service_conf *conf,
	enum gen_role role, char *err, size_t errlen);

/* Frees a generation with no process left. */
void generation_destroy(struct generation *gen);

/* Stops every process of gen; the generation ends with its last process. */
void generation_drain(struct generation *gen);

/* Starts a process for every instance of gen that has none running. */
void generation_fill(struct generation *gen);

/*
 * Ends gen, and maybe its service's run, when its last process is gone and
 * its cgroup is empty; processes left in the cgroup are sent the stop signal
 * first, and killed when stop_grace has passed.
 */
void generation_check_empty(struct generation *gen);

/* (Re)starts gen's stray_timer to end after secs (at once when not positive). */
void generation_stray_timer(struct generation *gen, double secs);

/*
 * Keeps a copy of an exited process's output pipe, when gen has a cgroup and
 * another process may still write to the pipe: a descendant left in it must
 * not die of SIGPIPE in its grace. The copy is closed once nothing may write
 * to it (lifecycle_release_output), or when gen ends. fd stays the caller's.
 */
void generation_hold_output(struct generation *gen, int fd);

/* Closes the output pipes held by any generation that nothing may write to any more. */
void lifecycle_release_output(struct lifecycle *lc);

/* A process is added to gen: what is left in its cgroup is not killed under it. */
void generation_keep_strays(struct generation *gen);

/* Whether gen's cgroup counts an OOM kill not seen before (then seen). */
bool generation_saw_oom(struct generation *gen);

/* ---- service.c ---- */

/* Starts a new current generation of svc->conf. */
void service_start_generation(struct service *svc);

/* Called whenever a generation may have been the service's last. */
void service_check_idle(struct service *svc);

/* Fails the service: its processes stop, it is not restarted. */
void service_fail(struct service *svc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Tells the service's waiters on a stop that it has ended (ok) or why not. */
void service_stop_over(struct service *svc, bool ok, const char *reason);

/* ---- upgrade.c ---- */

/* Moves an upgrade on: the next batch, the old processes it replaces, the end. */
void upgrade_step(struct service *svc);

/* Ends an upgrade in failure: its generation drains, the old one serves. */
void upgrade_rollback(struct service *svc, const char *reason);

/* The gate has judged the batch just ready: the upgrade goes on, or rolls back (why). */
void upgrade_gate_done(struct service *svc, bool ok, const char *why);

/* ---- gate.c ---- */

/* Starts the upgrade's gate on the batch just ready; -1 with why not in err. */
int gate_start(struct service *svc, char *err, size_t errlen);

/* Ends the upgrade's running gate, if any, without a word: it is killed. */
void gate_cancel(struct service *svc);

/* Handles the exit of a gate's process; false when pid is none. */
bool gate_reap(struct lifecycle *lc, pid_t pid, int status);

/* Ends an upgrade that was interrupted (a stop, a failure) with why. */
void upgrade_abort(struct service *svc, const char *why);

/* Forgets the upgrade's own state; the generations are the caller's. */
void upgrade_clear(struct service *svc);

/* Ends the waits on an upgrade: ok, or why not. */
void upgrade_over(struct service *svc, bool ok, const char *reason);

#endif
