#ifndef BATON_CONTAINMENT_H
#define BATON_CONTAINMENT_H

#include <ev.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "lifecycle.h"
#include "list.h"

/*
 * What holds a generation's processes together: a cgroup v2 of its own
 * (BASE/SERVICE/gen-N) when batond may write a cgroup v2 hierarchy, else
 * their process groups, as before cgroups.
 *
 * BASE is the [baton] cgroup directory, or, with cgroup = auto, the cgroup
 * batond runs in when it is the only process there (a systemd unit with
 * Delegate=yes, a container's init): batond then moves itself into the leaf
 * BASE/batond:self, as cgroup v2 wants processes only in leaves. Every
 * process a generation starts enters the generation's cgroup before it runs
 * anything; the host watches each cgroup.events and tells the lifecycle when
 * a cgroup is empty (lifecycle_cgroup_empty); an empty cgroup is removed,
 * then its service's once that is empty too.
 */

#define CONTAINMENT_LEAF "batond:self"

struct containment {
	struct ev_loop *loop;
	int root;              /* BASE, or -1: process groups only */
	char path[PATH_MAX];   /* BASE's path, or "" */
	char why[2 * PATH_MAX + 512]; /* without cgroups: why, as batond says it at start */
	bool created;          /* batond made BASE: it removes it as it exits */
	bool moved;            /* batond moved itself into BASE/CONTAINMENT_LEAF */
	bool check_parent;     /* a check of a BASE to make looked at its parent */
	unsigned available;    /* the controllers BASE has (cgroup.controllers) */
	unsigned enabled;      /* ...and those enabled for its children */
	int inotify;
	ev_io io;
	struct list groups; /* struct cgroup_entry: every cgroup batond made, until removed */
};

/* What a generation's cgroup counts; -1 where the hierarchy does not say. */
struct cgroup_usage {
	double cpu;            /* seconds (cpu.stat usage_usec) */
	long long memory;      /* bytes (memory.current) */
	long long memory_peak; /* bytes (memory.peak) */
	long long tasks;       /* pids.current */
	long long oom_kills;   /* memory.events oom_kill */
};

/*
 * Decides where batond's cgroups go from setting (config->cgroup: NULL for
 * auto, "none", or a path) and sets them up. Without a cgroup v2 hierarchy
 * batond may write, c->root is -1 and c->why says why. created comes from a
 * batond before a re-exec (else false). With check (batond -n), nothing is
 * made or moved: only what would be is found (then containment_check).
 * Returns 0.
 */
int containment_setup(struct containment *c, struct ev_loop *loop, const char *setting,
	bool created, bool check);

/*
 * Checks that config's cgroup limits can be enforced: batond has cgroups,
 * and each limit's controller is available. Returns 0, or -1 with one
 * "FILE:LINE: KEY: message" line per limit that cannot be, in err.
 */
int containment_check(const struct containment *c, const struct config *config, char *err,
	size_t errlen);

/* What batond's containment is, for people: "cgroup PATH" or "process group". */
const char *containment_name(const struct containment *c, char *buf, size_t len);

/* The host's cgroup calls (lifecycle.h). */
int containment_open(struct containment *c, struct generation *gen, char *err, size_t errlen);
bool containment_populated(struct containment *c, const struct generation *gen);
unsigned containment_signal(struct containment *c, const struct generation *gen, int signo,
	char *who, size_t wholen);
void containment_close(struct containment *c, struct generation *gen);

/* What gen's cgroup counts (all -1 without one). */
void containment_usage(const struct containment *c, const struct generation *gen,
	struct cgroup_usage *u);

/*
 * Writes "name[pid] ..." of the processes in gen's cgroup that are outside
 * the process groups of its own processes into who; returns how many.
 */
unsigned containment_strays(const struct containment *c, const struct generation *gen, char *who,
	size_t wholen);

/*
 * Removes every cgroup batond made that is empty, and, when batond made or
 * moved into BASE, puts batond back and removes what it made: batond is
 * exiting, every service stopped.
 */
void containment_finish(struct containment *c);

#endif
