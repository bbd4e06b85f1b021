#ifndef BATON_CGROUPFS_H
#define BATON_CGROUPFS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/*
 * The files of a cgroup v2 hierarchy, reached through directory
 * descriptors: finding the hierarchy and batond's own cgroup, making and
 * removing cgroups, moving, signalling and killing their processes, and
 * reading what they account. Pure: no event loop; each call is a few small
 * reads or writes of kernel files, which never block on a disk.
 */

/* The controllers batond uses, as bits. */
enum cgroup_controller {
	CGROUP_CPU = 1 << 0,
	CGROUP_MEMORY = 1 << 1,
	CGROUP_PIDS = 1 << 2,
	CGROUP_IO = 1 << 3,
};

/* The name of one controller bit ("memory"), or NULL. */
const char *cgroupfs_controller_name(unsigned bit);

/* The bit of a controller's name, or 0 for one batond does not use. */
unsigned cgroupfs_controller_bit(const char *name);

/*
 * Finds where the cgroup v2 hierarchy is mounted, in /proc/self/mountinfo:
 * writes its path into out and returns 0, or returns -1 when there is none.
 */
int cgroupfs_mount_point(char *out, size_t len);

/*
 * Writes the cgroup v2 path of process pid (0: batond) into out, relative to
 * the hierarchy's root and starting with '/', from /proc/PID/cgroup's "0::"
 * line. Returns 0, or -1.
 */
int cgroupfs_path_of(pid_t pid, char *out, size_t len);

/* Whether fd is a directory of a cgroup v2 hierarchy. */
bool cgroupfs_is_cgroup2(int fd);

/*
 * Opens the cgroup name under the directory parent, making it when create
 * is set (*created then says whether it was made now). Returns a directory
 * descriptor (close-on-exec), or -1 with errno set.
 */
int cgroupfs_open(int parent, const char *name, bool create, bool *created);

/* Removes the empty cgroup name under parent: 0, or -1 with errno set. */
int cgroupfs_remove(int parent, const char *name);

/* Writes value to file of the cgroup dir in one write: 0, or -1 with errno set. */
int cgroupfs_write(int dir, const char *file, const char *value);

/* Reads file of the cgroup dir into buf (NUL-terminated): its length, or -1. */
ssize_t cgroupfs_read(int dir, const char *file, char *buf, size_t len);

/* The number on the line "KEY N" of a flat keyed file (cpu.stat), or -1. */
long long cgroupfs_key(int dir, const char *file, const char *key);

/* The number a single-value file holds (memory.current), or -1 ("max" too). */
long long cgroupfs_number(int dir, const char *file);

/* The controllers listed in file (cgroup.controllers, cgroup.subtree_control). */
unsigned cgroupfs_controllers(int dir, const char *file);

/*
 * Enables the controllers of mask for the children of dir, one at a time;
 * returns those enabled (some may have been already).
 */
unsigned cgroupfs_enable(int dir, unsigned mask);

/* Whether a process is still in the cgroup or below it (cgroup.events). */
bool cgroupfs_populated(int dir);

/* Moves process pid (0: the caller) into the cgroup: 0, or -1 with errno set. */
int cgroupfs_move(int dir, pid_t pid);

/*
 * Writes at most max pids of the processes in the cgroup itself (not those
 * below it) into pids; returns how many there are (may exceed max).
 */
size_t cgroupfs_procs(int dir, pid_t *pids, size_t max);

/* Sends signo to each process in the cgroup; returns how many it reached. */
unsigned cgroupfs_signal(int dir, int signo);

/*
 * Kills every process in the cgroup and below it at once: cgroup.kill, or,
 * on a kernel without it, SIGKILL to each process until none is left (a
 * bounded number of rounds, against one that forks as it dies). Returns 0,
 * or -1 when processes may be left.
 */
int cgroupfs_kill(int dir);

#endif
