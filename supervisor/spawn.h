#ifndef BATON_SPAWN_H
#define BATON_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/*
 * Starting one child with exactly what baton.conf(5) promises it: its
 * output where it is captured, its sockets at fds 3.., no other fd beyond 0-2, an empty signal mask, default
 * signal dispositions, its own session, the configured ids and directory.
 */

#define SPAWN_FDS_MAX 64

struct spawn_request {
	char *const *argv;
	char **envp;          /* NULL-terminated */
	int listen_pid_index; /* envp entry to fill with LISTEN_PID=<pid>, or -1 */
	int watchdog_pid_index; /* ...with WATCHDOG_PID=<pid>, or -1 */
	const int *fds;       /* placed at 3, 4, ... */
	size_t nfds;
	int ready_fd;     /* where the readiness pipe goes in the child, or -1 */
	int ready_source; /* the pipe's write end in batond */
	int out_fd;       /* placed at 1 (stdout), or -1 to keep batond's */
	int err_fd;       /* placed at 2 (stderr), or -1 to keep batond's */
	bool set_user;
	uid_t uid;
	bool set_group;
	gid_t gid;
	const gid_t *groups;
	int ngroups;
	const char *directory; /* or NULL */
	const struct service_conf *settings; /* limits, umask, nice, oom_score_adjust, or NULL */
	int cgroup_dir;        /* the cgroup it enters before anything else, or -1 */
	int start_nice;        /* added to its nice value until batond sets it back, or 0 */
	int exe_fd;            /* the program, opened, to execute rather than argv[0]'s path,
				  or -1 */
	const char *exe_path;  /* the program's resolved path, for errors and scripts, or NULL */
};

/* Room left in the envp entry named by listen_pid_index or watchdog_pid_index. */
#define SPAWN_LISTEN_PID_SIZE 32

/*
 * Forks and execs the child described by req. Returns its pid and, in
 * *errfd, the read end (non-blocking, close-on-exec) of a pipe on which the
 * child reports a failure before exec; the pipe reads end-of-file once exec
 * has succeeded. Returns -1 with errno set when fork fails.
 */
pid_t spawn_process(const struct spawn_request *req, int *errfd);

/*
 * Reads the child's report from errfd. Returns 1 with a message such as
 * "exec /usr/bin/app: No such file or directory" in msg, 0 when exec
 * succeeded (end of file), or -1 when nothing has arrived yet.
 */
int spawn_read_error(int errfd, char *msg, size_t msglen);

/*
 * Reports a failure before exec on errfd, as the child does: what failed
 * ("exec /usr/bin/app") and its errno. For a stand-in child in tests.
 */
void spawn_write_error(int errfd, int err, const char *what);

/* A child's environment under construction. */
struct spawn_env {
	char **vars;
	size_t n, cap;
	bool failed;
};

/*
 * Starts an environment from base (batond's own), leaving out every
 * variable that baton sets for its children and every name in overrides.
 */
void spawn_env_init(struct spawn_env *env, char **base, char *const *overrides);
/* Adds NAME=VALUE from a format. */
void spawn_env_add(struct spawn_env *env, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds a LISTEN_PID= entry with room for the pid and returns its index. */
int spawn_env_listen_pid(struct spawn_env *env);
/* Adds a NAME= entry with room for the child's pid and returns its index, or -1. */
int spawn_env_pid(struct spawn_env *env, const char *name);
/* Frees the environment. */
void spawn_env_finish(struct spawn_env *env);

#endif
