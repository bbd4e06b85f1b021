#include "containment.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "cgroupfs.h"
#include "log.h"
#include "protocol.h"

// A cgroup batond made for a generation: BASE/SERVICE/gen-N.
struct cgroup_entry {
	struct list link;
	struct containment *c;
	struct generation *gen; /* NULL once let go: removed when empty */
	char service[PROTOCOL_NAME_MAX + 1];
	char name[24];
	int dir;
	int wd; /* its cgroup.events under inotify, or -1 */
};

#define USED_CONTROLLERS (CGROUP_CPU | CGROUP_MEMORY | CGROUP_PIDS | CGROUP_IO)

static void inotify_cb(struct ev_loop *loop, ev_io *w, int revents);

// Whether batond may make cgroups in dir and move processes into them.
static int writable(int dir, const char *path, char *why, size_t whylen)
{
	if (!cgroupfs_is_cgroup2(dir)) {
		snprintf(why, whylen, "%s is not in a cgroup v2 hierarchy", path);
		return -1;
	}
	if (faccessat(dir, ".", W_OK, AT_EACCESS) < 0 ||
		faccessat(dir, "cgroup.procs", W_OK, AT_EACCESS) < 0) {
		snprintf(why, whylen, "batond may not write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

// [baton] cgroup = PATH: made when missing (its parent must be there); a
// check only looks at the parent of one that is missing.
static int setup_path(struct containment *c, const char *mount, const char *path, bool check)
{
	size_t n = strlen(mount);
	if (strncmp(path, mount, n) != 0 || (path[n] != '/' && path[n] != '\0')) {
		snprintf(c->why, sizeof(c->why), "%s is not under the cgroup v2 hierarchy at %s", path,
			mount);
		return -1;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	if (check && access(path, F_OK) < 0 && errno == ENOENT) {
		*strrchr(c->path, '/') = '\0';
		c->check_parent = true;
		return 0;
	}
	if (check || mkdir(path, 0755) == 0)
		c->created = !check;
	else if (errno != EEXIST) {
		snprintf(c->why, sizeof(c->why), "cannot make %s: %s", path, strerror(errno));
		c->path[0] = '\0';
		return -1;
	}
	return 0;
}

// cgroup = auto: batond's own cgroup, when it is the only process in it.
static int setup_own(struct containment *c, const char *mount)
{
	char own[PATH_MAX];
	if (cgroupfs_path_of(0, own, sizeof(own)) < 0) {
		snprintf(c->why, sizeof(c->why), "batond's cgroup v2 cgroup is not known");
		return -1;
	}
	char *last = strrchr(own, '/');
	if (strcmp(last + 1, CONTAINMENT_LEAF) == 0) {
		// A re-exec: batond moved itself into the leaf before.
		*last = '\0';
		c->moved = true;
	} else if (strcmp(own, "/") == 0 && getpid() != 1) {
		snprintf(c->why, sizeof(c->why),
			"batond runs in the root cgroup of %s; [baton] cgroup = PATH gives it one",
			mount);
		return -1;
	}
	int n = snprintf(c->path, sizeof(c->path), "%s%s", mount, strcmp(own, "/") == 0 ? "" : own);
	if (n < 0 || (size_t)n >= sizeof(c->path))
		return -1;
	if (c->moved)
		return 0;
	int dir = open(c->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pid_t pids[2];
	size_t count = dir >= 0 ? cgroupfs_procs(dir, pids, 2) : 0;
	if (dir >= 0)
		close(dir);
	if (count != 1 || pids[0] != getpid()) {
		snprintf(c->why, sizeof(c->why),
			"batond is not the only process in its cgroup %s; run it with Delegate=yes, "
			"or give it [baton] cgroup = PATH", c->path);
		c->path[0] = '\0';
		return -1;
	}
	return 0;
}

// Moves batond into its leaf, so that BASE's children may have controllers.
static int move_self(struct containment *c)
{
	bool made;
	int leaf = cgroupfs_open(c->root, CONTAINMENT_LEAF, true, &made);
	if (leaf < 0 || cgroupfs_move(leaf, 0) < 0) {
		snprintf(c->why, sizeof(c->why), "cannot move batond into %s/%s: %s", c->path,
			CONTAINMENT_LEAF, strerror(errno));
		if (leaf >= 0)
			close(leaf);
		if (made)
			cgroupfs_remove(c->root, CONTAINMENT_LEAF);
		return -1;
	}
	close(leaf);
	c->moved = true;
	return 0;
}

static void give_up(struct containment *c)
{
	if (c->root >= 0)
		close(c->root);
	if (c->created)
		rmdir(c->path);
	c->root = -1;
	c->path[0] = '\0';
	c->created = c->moved = false;
}

int containment_setup(struct containment *c, struct ev_loop *loop, const char *setting,
	bool created, bool check)
{
	// Field by field: path and why are long, and written only as far as needed.
	c->loop = loop;
	c->root = c->inotify = -1;
	c->path[0] = c->why[0] = '\0';
	c->created = created;
	c->moved = c->check_parent = false;
	c->available = c->enabled = 0;
	list_init(&c->groups);
	char mount[PATH_MAX];
	if (setting && strcmp(setting, "none") == 0) {
		snprintf(c->why, sizeof(c->why), "[baton] cgroup = none");
		return 0;
	}
	if (cgroupfs_mount_point(mount, sizeof(mount)) < 0) {
		snprintf(c->why, sizeof(c->why), "no cgroup v2 hierarchy is mounted");
		return 0;
	}
	if ((setting ? setup_path(c, mount, setting, check) : setup_own(c, mount)) < 0) {
		c->created = false;
		return 0;
	}
	c->root = open(c->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->root < 0) {
		snprintf(c->why, sizeof(c->why), "cannot open %s: %s", c->path, strerror(errno));
		give_up(c);
		return 0;
	}
	if (writable(c->root, c->path, c->why, sizeof(c->why)) < 0 ||
		(!check && !setting && !c->moved && move_self(c) < 0)) {
		give_up(c);
		return 0;
	}
	if (check) {
		// What the children of BASE would get: for a BASE to make, its parent's.
		c->available = cgroupfs_controllers(c->root, c->check_parent ?
			"cgroup.subtree_control" : "cgroup.controllers");
		c->enabled = c->available & USED_CONTROLLERS;
		if (c->check_parent)
			snprintf(c->path, sizeof(c->path), "%s", setting);
		return 0;
	}
	c->inotify = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->inotify < 0) {
		snprintf(c->why, sizeof(c->why), "inotify: %s", strerror(errno));
		give_up(c);
		return 0;
	}
	ev_io_init(&c->io, inotify_cb, c->inotify, EV_READ);
	ev_io_start(loop, &c->io);
	c->available = cgroupfs_controllers(c->root, "cgroup.controllers");
	c->enabled = cgroupfs_enable(c->root, c->available & USED_CONTROLLERS);
	return 0;
}

const char *containment_name(const struct containment *c, char *buf, size_t len)
{
	if (c->root < 0)
		snprintf(buf, len, "process group");
	else
		snprintf(buf, len, "cgroup %s", c->path);
	return buf;
}

static void list_controllers(unsigned mask, char *out, size_t len)
{
	out[0] = '\0';
	for (unsigned bit = 1; bit <= CGROUP_IO; bit <<= 1) {
		size_t n = strlen(out);
		if (mask & bit)
			snprintf(out + n, len - n, "%s%s", n ? " " : "", cgroupfs_controller_name(bit));
	}
}

int containment_check(const struct containment *c, const struct config *config, char *err,
	size_t errlen)
{
	size_t n = 0;
	err[0] = '\0';
	char have[64];
	list_controllers(c->enabled, have, sizeof(have));
	for (size_t i = 0; i < config->nservices; i++) {
		const struct service_conf *s = config->services[i];
		for (int k = 0; k < CGROUP_LIMIT_COUNT; k++) {
			const struct cgroup_limit_conf *l = &s->cgroup_limits[k];
			const struct cgroup_limit_kind *kind = &config_cgroup_limits[k];
			if (!l->set || n >= errlen)
				continue;
			const char *file = config->path ? config->path : "(command line)";
			if (c->root < 0)
				n += (size_t)snprintf(err + n, errlen - n,
					"%s:%u: %s: needs a cgroup, and batond has none: %s\n", file,
					l->line, kind->key, c->why);
			else if (!(c->enabled & cgroupfs_controller_bit(kind->controller)))
				n += (size_t)snprintf(err + n, errlen - n,
					"%s:%u: %s: the %s controller is not available in %s "
					"(it has: %s)\n", file, l->line, kind->key, kind->controller,
					c->path, have[0] ? have : "none of cpu, memory, pids, io");
		}
	}
	if (n > 0 && err[n < errlen ? n - 1 : errlen - 2] == '\n')
		err[n < errlen ? n - 1 : errlen - 2] = '\0';
	return n > 0 ? -1 : 0;
}

static struct cgroup_entry *entry_of(const struct generation *gen)
{
	return gen->cgroup;
}

// Writes the limits of gen's definition into its cgroup.
static int write_limits(int dir, const struct generation *gen, const char *path, char *err,
	size_t errlen)
{
	for (int k = 0; k < CGROUP_LIMIT_COUNT; k++) {
		const struct cgroup_limit_conf *l = &gen->conf->cgroup_limits[k];
		const struct cgroup_limit_kind *kind = &config_cgroup_limits[k];
		if (l->set && cgroupfs_write(dir, kind->file, l->value) < 0) {
			snprintf(err, errlen, "cgroup %s: %s %s (%s): %s", path, kind->file, l->value,
				kind->key, strerror(errno));
			return -1;
		}
	}
	return 0;
}

int containment_open(struct containment *c, struct generation *gen, char *err, size_t errlen)
{
	if (c->root < 0)
		return 0;
	struct cgroup_entry *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	e->c = c;
	e->gen = gen;
	e->wd = -1;
	snprintf(e->service, sizeof(e->service), "%s", gen->svc->name);
	snprintf(e->name, sizeof(e->name), "gen-%u", gen->number);
	char path[PATH_MAX + 160];
	snprintf(path, sizeof(path), "%s/%s/%s", c->path, e->service, e->name);
	bool made = false;
	int sdir = cgroupfs_open(c->root, e->service, true, NULL);
	if (sdir >= 0) {
		cgroupfs_enable(sdir, c->enabled);
		e->dir = cgroupfs_open(sdir, e->name, true, &made);
		close(sdir);
	}
	if (sdir < 0 || e->dir < 0) {
		snprintf(err, errlen, "cgroup %s: %s", path, strerror(errno));
		free(e);
		return -1;
	}
	if (write_limits(e->dir, gen, path, err, errlen) < 0) {
		close(e->dir);
		if (made)
			cgroupfs_remove(c->root, path + strlen(c->path) + 1);
		free(e);
		return -1;
	}
	snprintf(path + strlen(path), sizeof(path) - strlen(path), "/cgroup.events");
	e->wd = inotify_add_watch(c->inotify, path, IN_MODIFY);
	if (e->wd < 0)
		log_warn("%s: inotify: %s; what is left of the generation is looked at when its "
			 "grace ends", path, strerror(errno));
	// A cgroup found again (a re-exec) has seen its OOM kills already.
	long long oom = made ? 0 : cgroupfs_key(e->dir, "memory.events", "oom_kill");
	gen->oom_kills = oom > 0 ? oom : 0;
	gen->cgroup = e;
	gen->cgroup_dir = e->dir;
	list_append(&c->groups, &e->link);
	return 0;
}

bool containment_populated(struct containment *c, const struct generation *gen)
{
	(void)c;
	const struct cgroup_entry *e = entry_of(gen);
	return e && cgroupfs_populated(e->dir);
}

// Writes "name[pid]" of pid, with its process group into *pgrp: 0, or -1 when it is gone.
static int describe_pid(pid_t pid, char *out, size_t len, pid_t *pgrp)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	// PID (COMM) STATE PPID PGRP ...: COMM may hold blanks and parentheses.
	char *open_paren = strchr(buf, '('), *close_paren = strrchr(buf, ')');
	if (!open_paren || !close_paren || close_paren < open_paren)
		return -1;
	int ppid, group;
	char state;
	if (sscanf(close_paren + 1, " %c %d %d", &state, &ppid, &group) != 3)
		return -1;
	*pgrp = (pid_t)group;
	snprintf(out, len, "%.*s[%d]", (int)(close_paren - open_paren - 1), open_paren + 1,
		(int)pid);
	return 0;
}

// Whether pgrp is the process group of one of gen's processes.
static bool own_group(const struct generation *gen, pid_t pgrp)
{
	const struct list *pos;
	list_for_each(pos, &gen->procs) {
		const struct proc *p = container_of(pos, const struct proc, link);
		if (p->pid > 0 && (p->pid == pgrp || p->sid == pgrp))
			return true;
	}
	return false;
}

// "name[pid] ..." of the processes in dir, those outside gen's groups only when strays.
static unsigned describe(int dir, const struct generation *gen, bool strays, char *who,
	size_t wholen)
{
	pid_t pids[64];
	size_t n = cgroupfs_procs(dir, pids, 64), len = 0;
	unsigned count = 0;
	who[0] = '\0';
	for (size_t i = 0; i < n && i < 64; i++) {
		char one[64];
		pid_t pgrp = 0;
		if (describe_pid(pids[i], one, sizeof(one), &pgrp) < 0)
			continue;
		if (strays && own_group(gen, pgrp))
			continue;
		count++;
		if (len + strlen(one) + 2 < wholen)
			len += (size_t)snprintf(who + len, wholen - len, "%s%s", len ? " " : "", one);
	}
	if (n > 64 && len + 8 < wholen)
		snprintf(who + len, wholen - len, " ...");
	return count;
}

unsigned containment_signal(struct containment *c, const struct generation *gen, int signo,
	char *who, size_t wholen)
{
	(void)c;
	const struct cgroup_entry *e = entry_of(gen);
	who[0] = '\0';
	if (!e)
		return 0;
	unsigned n = describe(e->dir, gen, true, who, wholen);
	if (signo == SIGKILL)
		cgroupfs_kill(e->dir);
	else
		cgroupfs_signal(e->dir, signo);
	return n;
}

unsigned containment_strays(const struct containment *c, const struct generation *gen, char *who,
	size_t wholen)
{
	(void)c;
	const struct cgroup_entry *e = entry_of(gen);
	who[0] = '\0';
	return e ? describe(e->dir, gen, true, who, wholen) : 0;
}

void containment_usage(const struct containment *c, const struct generation *gen,
	struct cgroup_usage *u)
{
	(void)c;
	const struct cgroup_entry *e = entry_of(gen);
	*u = (struct cgroup_usage){-1, -1, -1, -1, -1};
	if (!e)
		return;
	long long usec = cgroupfs_key(e->dir, "cpu.stat", "usage_usec");
	u->cpu = usec >= 0 ? (double)usec / 1e6 : -1;
	u->memory = cgroupfs_number(e->dir, "memory.current");
	u->memory_peak = cgroupfs_number(e->dir, "memory.peak");
	u->tasks = cgroupfs_number(e->dir, "pids.current");
	u->oom_kills = cgroupfs_key(e->dir, "memory.events", "oom_kill");
}

// Removes an entry's cgroup, and its service's when that is empty too.
static void remove_entry(struct cgroup_entry *e)
{
	struct containment *c = e->c;
	if (e->wd >= 0)
		inotify_rm_watch(c->inotify, e->wd);
	close(e->dir);
	int sdir = cgroupfs_open(c->root, e->service, false, NULL);
	if (sdir >= 0) {
		if (cgroupfs_remove(sdir, e->name) < 0 && errno != ENOENT)
			log_warn("cannot remove cgroup %s/%s/%s: %s", c->path, e->service, e->name,
				strerror(errno));
		close(sdir);
	}
	// Fails while another generation of the service has one: that is fine.
	cgroupfs_remove(c->root, e->service);
	list_remove(&e->link);
	free(e);
}

void containment_close(struct containment *c, struct generation *gen)
{
	(void)c;
	struct cgroup_entry *e = entry_of(gen);
	gen->cgroup = NULL;
	gen->cgroup_dir = -1;
	if (!e)
		return;
	e->gen = NULL;
	// What is left goes with its generation; the cgroup goes once empty.
	if (cgroupfs_populated(e->dir))
		cgroupfs_kill(e->dir);
	else
		remove_entry(e);
}

static struct cgroup_entry *find_wd(struct containment *c, int wd)
{
	struct list *pos;
	list_for_each(pos, &c->groups) {
		struct cgroup_entry *e = container_of(pos, struct cgroup_entry, link);
		if (e->wd == wd)
			return e;
	}
	return NULL;
}

static void inotify_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct containment *c = container_of(w, struct containment, io);
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n = read(c->inotify, buf, sizeof(buf));
	for (char *p = buf; n > 0 && p < buf + n;) {
		const struct inotify_event *ev = (const struct inotify_event *)p;
		p += sizeof(*ev) + ev->len;
		struct cgroup_entry *e = find_wd(c, ev->wd);
		if (!e || cgroupfs_populated(e->dir))
			continue;
		// The lifecycle may end the generation, which lets go of the entry.
		if (e->gen)
			lifecycle_cgroup_empty(e->gen);
		else
			remove_entry(e);
	}
}

// Waits, a little, for the processes just killed in dir to be gone.
static void wait_empty(int dir)
{
	for (int i = 0; i < 200 && cgroupfs_populated(dir); i++)
		nanosleep(&(struct timespec){0, 5000000}, NULL);
}

void containment_finish(struct containment *c)
{
	if (c->root < 0)
		return;
	while (!list_empty(&c->groups)) {
		struct cgroup_entry *e = container_of(c->groups.next, struct cgroup_entry, link);
		if (e->gen) {
			e->gen->cgroup = NULL;
			e->gen->cgroup_dir = -1;
		}
		if (cgroupfs_populated(e->dir)) {
			cgroupfs_kill(e->dir);
			wait_empty(e->dir);
		}
		remove_entry(e);
	}
	if (c->moved) {
		// Back where it was, once BASE's children may have no controllers.
		char word[32];
		for (unsigned bit = 1; bit <= CGROUP_IO; bit <<= 1) {
			snprintf(word, sizeof(word), "-%s", cgroupfs_controller_name(bit));
			if (c->enabled & bit)
				cgroupfs_write(c->root, "cgroup.subtree_control", word);
		}
		if (cgroupfs_move(c->root, 0) == 0)
			cgroupfs_remove(c->root, CONTAINMENT_LEAF);
	}
	if (c->inotify >= 0) {
		ev_io_stop(c->loop, &c->io);
		close(c->inotify);
	}
	close(c->root);
	c->root = -1;
	if (c->created && rmdir(c->path) < 0)
		log_warn("cannot remove cgroup %s: %s", c->path, strerror(errno));
}
