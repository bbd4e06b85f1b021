#include "spawn.h"

#include "cgroupfs.h"
#include "parse.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

struct child_error {
	int err;
	char what[256];
};

static bool name_is(const char *var, const char *name)
{
	size_t n = strlen(name);
	return strncmp(var, name, n) == 0 && var[n] == '=';
}

static bool is_reserved(const char *var)
{
	return env_name_reserved(var);
}

static bool is_overridden(const char *var, char *const *overrides)
{
	const char *eq = strchr(var, '=');
	size_t n = eq ? (size_t)(eq - var) : strlen(var);
	for (; overrides && *overrides; overrides++) {
		if (strncmp(*overrides, var, n) == 0 && (*overrides)[n] == '=')
			return true;
	}
	return false;
}

static void env_push(struct spawn_env *env, char *var)
{
	if (!var) {
		env->failed = true;
		return;
	}
	if (env->n + 2 > env->cap) {
		size_t cap = env->cap ? env->cap * 2 : 64;
		char **vars = realloc(env->vars, cap * sizeof(char *));
		if (!vars) {
			free(var);
			env->failed = true;
			return;
		}
		env->vars = vars;
		env->cap = cap;
	}
	env->vars[env->n++] = var;
	env->vars[env->n] = NULL;
}

void spawn_env_init(struct spawn_env *env, char **base, char *const *overrides)
{
	env->vars = NULL;
	env->n = env->cap = 0;
	env->failed = false;
	env_push(env, NULL);
	env->failed = false;
	for (; base && *base; base++) {
		if (!is_reserved(*base) && !is_overridden(*base, overrides))
			env_push(env, strdup(*base));
	}
	for (; overrides && *overrides; overrides++)
		env_push(env, strdup(*overrides));
}

void spawn_env_add(struct spawn_env *env, const char *fmt, ...)
{
	char *var;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&var, fmt, ap) < 0)
		var = NULL;
	va_end(ap);
	env_push(env, var);
}

int spawn_env_pid(struct spawn_env *env, const char *name)
{
	char *var = calloc(1, SPAWN_LISTEN_PID_SIZE);
	if (var)
		snprintf(var, SPAWN_LISTEN_PID_SIZE, "%s=", name);
	env_push(env, var);
	return env->failed ? -1 : (int)env->n - 1;
}

int spawn_env_listen_pid(struct spawn_env *env)
{
	return spawn_env_pid(env, "LISTEN_PID");
}

void spawn_env_finish(struct spawn_env *env)
{
	for (size_t i = 0; i < env->n; i++)
		free(env->vars[i]);
	free(env->vars);
	env->vars = NULL;
	env->n = env->cap = 0;
}

void spawn_write_error(int errfd, int err, const char *what)
{
	struct child_error ce = {.err = err};
	snprintf(ce.what, sizeof(ce.what), "%s", what);
	ssize_t rc = write(errfd, &ce, sizeof(ce));
	(void)rc;
}

static void child_fail(int errfd, int err, const char *what, const char *arg)
{
	char text[256];
	snprintf(text, sizeof(text), "%s%s%s", what, arg ? " " : "", arg ? arg : "");
	spawn_write_error(errfd, err, text);
	_exit(127);
}

static void reset_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	for (int sig = 1; sig < NSIG; sig++) {
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &sa, NULL);
	}
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

// Puts the output pipes at 1 and 2, first: the sockets' places may be theirs.
static void place_output(const struct spawn_request *req, int errfd)
{
	if (req->out_fd >= 0 && dup2(req->out_fd, 1) < 0)
		child_fail(errfd, errno, "dup2", "stdout");
	if (req->err_fd >= 0 && dup2(req->err_fd, 2) < 0)
		child_fail(errfd, errno, "dup2", "stderr");
}

// Puts the sockets at 3.. and the readiness pipe at its place; everything else
// beyond 2 is closed at exec. Returns the error pipe's new fd.
static int place_fds(const struct spawn_request *req, int errfd, int *exe_fd)
{
	place_output(req, errfd);
	int top = 3 + (int)req->nfds;
	if (req->ready_fd >= top)
		top = req->ready_fd + 1;
	int tmp[SPAWN_FDS_MAX];
	// Copies above every target first, so no dup2 overwrites a source: the
	// error pipe and the program too.
	if ((errfd = fcntl(errfd, F_DUPFD_CLOEXEC, top)) < 0)
		_exit(127);
	if (*exe_fd >= 0 && (*exe_fd = fcntl(*exe_fd, F_DUPFD_CLOEXEC, top)) < 0)
		child_fail(errfd, errno, "dup", "program");
	for (size_t i = 0; i < req->nfds; i++) {
		if ((tmp[i] = fcntl(req->fds[i], F_DUPFD_CLOEXEC, top)) < 0)
			child_fail(errfd, errno, "dup", "socket");
	}
	int ready_tmp = -1;
	if (req->ready_fd >= 0 && (ready_tmp = fcntl(req->ready_source, F_DUPFD_CLOEXEC, top)) < 0)
		child_fail(errfd, errno, "dup", "readiness pipe");
	for (size_t i = 0; i < req->nfds; i++) {
		if (dup2(tmp[i], 3 + (int)i) < 0)
			child_fail(errfd, errno, "dup2", "socket");
	}
	unsigned first = 3 + (unsigned)req->nfds;
	if (req->ready_fd >= 0) {
		if (dup2(ready_tmp, req->ready_fd) < 0)
			child_fail(errfd, errno, "dup2", "readiness pipe");
		if ((unsigned)req->ready_fd > first)
			close_range(first, (unsigned)req->ready_fd - 1, CLOSE_RANGE_CLOEXEC);
		first = (unsigned)req->ready_fd + 1;
	}
	// Also catches fds batond itself inherited without close-on-exec.
	close_range(first, ~0U, CLOSE_RANGE_CLOEXEC);
	return errfd;
}

static void set_oom_score(int value, int errfd);

// What the service sets for its processes, while they still may raise a limit.
static void apply_settings(const struct service_conf *c, int errfd)
{
	for (int i = 0; c && i < LIMIT_COUNT; i++) {
		struct rlimit rl = {c->limits[i].soft, c->limits[i].hard};
		if (c->limits[i].set && setrlimit(config_limits[i].resource, &rl) < 0)
			child_fail(errfd, errno, "setrlimit", config_limits[i].key);
	}
	if (c && c->has_umask)
		umask(c->umask);
	errno = 0;
	if (c && c->has_nice && setpriority(PRIO_PROCESS, 0, c->nice) < 0)
		child_fail(errfd, errno, "setpriority", "nice");
	if (c && c->has_oom_score_adjust)
		set_oom_score(c->oom_score_adjust, errfd);
}

// Lower priority while it starts: what serves keeps the CPU (start_nice).
static void start_lower(int start_nice)
{
	if (start_nice <= 0)
		return;
	errno = 0;
	int nice = getpriority(PRIO_PROCESS, 0);
	if (errno == 0)
		setpriority(PRIO_PROCESS, 0, nice + start_nice < 19 ? nice + start_nice : 19);
}

static void set_oom_score(int value, int errfd)
{
	char text[16];
	int n = snprintf(text, sizeof(text), "%d", value);
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, text, (size_t)n) != n)
		child_fail(errfd, errno, "oom_score_adjust", NULL);
	close(fd);
}

static void set_ids(const struct spawn_request *req, int errfd)
{
	if (req->set_user || req->set_group) {
		int n = req->set_user ? req->ngroups : 0;
		if (setgroups((size_t)n, req->groups) < 0)
			child_fail(errfd, errno, "setgroups", NULL);
	}
	if (req->set_group && setgid(req->gid) < 0)
		child_fail(errfd, errno, "setgid", NULL);
	if (req->set_user && setuid(req->uid) < 0)
		child_fail(errfd, errno, "setuid", NULL);
}

static const char *env_value(char **envp, const char *name)
{
	for (; *envp; envp++) {
		if (name_is(*envp, name))
			return *envp + strlen(name) + 1;
	}
	return NULL;
}

// execvpe() searches batond's PATH; a service's own PATH is what it expects.
// A program pinned by its generation runs from its descriptor (or, a #!
// script, from its resolved path), whatever its path leads to now.
static void exec_search(const struct spawn_request *req, int exe_fd, int errfd)
{
	const char *file = req->argv[0];
	if (exe_fd >= 0) {
		syscall(SYS_execveat, exe_fd, "", req->argv, req->envp, AT_EMPTY_PATH);
		child_fail(errfd, errno, "exec", req->exe_path ? req->exe_path : file);
	}
	if (req->exe_path) {
		execve(req->exe_path, req->argv, req->envp);
		child_fail(errfd, errno, "exec", req->exe_path);
	}
	if (strchr(file, '/')) {
		execve(file, req->argv, req->envp);
		child_fail(errfd, errno, "exec", file);
	}
	const char *path = env_value(req->envp, "PATH");
	if (!path)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	int err = ENOENT;
	char full[PATH_MAX];
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int n = snprintf(full, sizeof(full), "%.*s%s%s", (int)(end - p), p,
			end == p ? "" : "/", file);
		if (n > 0 && (size_t)n < sizeof(full)) {
			execve(full, req->argv, req->envp);
			if (errno == EACCES)
				err = EACCES;
			else if (errno != ENOENT && errno != ENOTDIR)
				child_fail(errfd, errno, "exec", full);
		}
		if (!*end)
			break;
		p = end;
	}
	child_fail(errfd, err, "exec", file);
}

// Writes the child's pid after the '=' of an entry spawn_env_pid made.
static void fill_pid(char **envp, int index)
{
	if (index < 0)
		return;
	char *value = strchr(envp[index], '=') + 1;
	snprintf(value, SPAWN_LISTEN_PID_SIZE - (size_t)(value - envp[index]), "%d", (int)getpid());
}

static void child_main(const struct spawn_request *req, int errfd)
{
	reset_signals();
	// Into its generation's cgroup first: whatever it starts is contained.
	if (req->cgroup_dir >= 0 && cgroupfs_move(req->cgroup_dir, 0) < 0)
		child_fail(errfd, errno, "cgroup.procs", NULL);
	if (setsid() < 0)
		child_fail(errfd, errno, "setsid", NULL);
	int exe_fd = req->exe_fd;
	errfd = place_fds(req, errfd, &exe_fd);
	apply_settings(req->settings, errfd);
	start_lower(req->start_nice);
	set_ids(req, errfd);
	if (req->directory && chdir(req->directory) < 0)
		child_fail(errfd, errno, "chdir", req->directory);
	fill_pid(req->envp, req->listen_pid_index);
	fill_pid(req->envp, req->watchdog_pid_index);
	exec_search(req, exe_fd, errfd);
}

// vfork: batond waits the few microseconds until the child's exec, and
// copies no page table, which on some machines costs most of a start.
// Sanitizers keep shadow state that a shared address space would corrupt.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define spawn_fork fork
#else
#define spawn_fork vfork
#endif

pid_t spawn_process(const struct spawn_request *req, int *errfd)
{
	if (req->nfds > SPAWN_FDS_MAX) {
		errno = EMFILE;
		return -1;
	}
	int pipefd[2];
	if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0)
		return -1;
	// No handler of batond's may run in the child, which shares its memory
	// until exec: signals wait until the child has reset them.
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	pid_t pid = spawn_fork();
	int saved = errno;
	if (pid == 0)
		child_main(req, pipefd[1]);
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(pipefd[1]);
	if (pid < 0) {
		close(pipefd[0]);
		errno = saved;
		return -1;
	}
	*errfd = pipefd[0];
	return pid;
}

int spawn_read_error(int errfd, char *msg, size_t msglen)
{
	struct child_error ce;
	ssize_t n;
	do {
		n = read(errfd, &ce, sizeof(ce));
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN ? -1 : 0;
	if (n == 0)
		return 0;
	if ((size_t)n < sizeof(ce)) {
		snprintf(msg, msglen, "failed before exec");
		return 1;
	}
	ce.what[sizeof(ce.what) - 1] = '\0';
	snprintf(msg, msglen, "%s: %s", ce.what, strerror(ce.err));
	return 1;
}
