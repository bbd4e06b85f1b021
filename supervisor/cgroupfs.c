#include "cgroupfs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

static const char *const controller_names[] = {"cpu", "memory", "pids", "io"};
#define NCONTROLLERS (sizeof(controller_names) / sizeof(controller_names[0]))

const char *cgroupfs_controller_name(unsigned bit)
{
	for (size_t i = 0; i < NCONTROLLERS; i++) {
		if (bit == 1u << i)
			return controller_names[i];
	}
	return NULL;
}

unsigned cgroupfs_controller_bit(const char *name)
{
	for (size_t i = 0; i < NCONTROLLERS; i++) {
		if (strcmp(name, controller_names[i]) == 0)
			return 1u << i;
	}
	return 0;
}

// Undoes mountinfo's octal escapes (\040 for a blank) in place.
static void unescape(char *s)
{
	char *out = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' &&
			s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

int cgroupfs_mount_point(char *out, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char line[4096];
	int rc = -1;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		char *sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		char *save = NULL, *field = strtok_r(line, " ", &save);
		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (!field)
			continue;
		unescape(field);
		if (strlen(field) < len) {
			snprintf(out, len, "%s", field);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

int cgroupfs_path_of(pid_t pid, char *out, size_t len)
{
	char path[64], line[4096];
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid > 0 ? (int)pid : (int)getpid());
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	int rc = -1;
	while (rc < 0 && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (line[3] == '/' && strlen(line + 3) < len) {
			snprintf(out, len, "%s", line + 3);
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

bool cgroupfs_is_cgroup2(int fd)
{
	struct statfs sf;
	return fstatfs(fd, &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

int cgroupfs_open(int parent, const char *name, bool create, bool *created)
{
	if (created)
		*created = false;
	if (create) {
		if (mkdirat(parent, name, 0755) == 0) {
			if (created)
				*created = true;
		} else if (errno != EEXIST) {
			return -1;
		}
	}
	return openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

int cgroupfs_remove(int parent, const char *name)
{
	return unlinkat(parent, name, AT_REMOVEDIR);
}

int cgroupfs_write(int dir, const char *file, const char *value)
{
	int fd = openat(dir, file, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = strlen(value);
	ssize_t w = write(fd, value, n);
	int saved = errno;
	close(fd);
	if (w == (ssize_t)n)
		return 0;
	errno = w < 0 ? saved : EIO;
	return -1;
}

ssize_t cgroupfs_read(int dir, const char *file, char *buf, size_t len)
{
	int fd = openat(dir, file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t got = 0;
	ssize_t n = 1;
	while (got + 1 < len && n > 0) {
		n = read(fd, buf + got, len - 1 - got);
		if (n > 0)
			got += (size_t)n;
		else if (n < 0 && errno == EINTR)
			n = 1;
	}
	close(fd);
	buf[got] = '\0';
	return n < 0 ? -1 : (ssize_t)got;
}

long long cgroupfs_key(int dir, const char *file, const char *key)
{
	char buf[4096];
	if (cgroupfs_read(dir, file, buf, sizeof(buf)) < 0)
		return -1;
	size_t k = strlen(key);
	for (char *line = buf; *line;) {
		char *end = strchrnul(line, '\n');
		if (strncmp(line, key, k) == 0 && line[k] == ' ')
			return strtoll(line + k + 1, NULL, 10);
		line = *end ? end + 1 : end;
	}
	return -1;
}

long long cgroupfs_number(int dir, const char *file)
{
	char buf[64], *end;
	if (cgroupfs_read(dir, file, buf, sizeof(buf)) <= 0)
		return -1;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	return errno || end == buf ? -1 : v;
}

unsigned cgroupfs_controllers(int dir, const char *file)
{
	char buf[1024];
	if (cgroupfs_read(dir, file, buf, sizeof(buf)) < 0)
		return 0;
	unsigned mask = 0;
	char *save = NULL;
	for (char *w = strtok_r(buf, " \n", &save); w; w = strtok_r(NULL, " \n", &save))
		mask |= cgroupfs_controller_bit(w);
	return mask;
}

unsigned cgroupfs_enable(int dir, unsigned mask)
{
	unsigned done = 0;
	for (size_t i = 0; i < NCONTROLLERS; i++) {
		char word[32];
		if (!(mask & (1u << i)))
			continue;
		snprintf(word, sizeof(word), "+%s", controller_names[i]);
		if (cgroupfs_write(dir, "cgroup.subtree_control", word) == 0)
			done |= 1u << i;
	}
	return done | (cgroupfs_controllers(dir, "cgroup.subtree_control") & mask);
}

bool cgroupfs_populated(int dir)
{
	return cgroupfs_key(dir, "cgroup.events", "populated") > 0;
}

int cgroupfs_move(int dir, pid_t pid)
{
	char text[32];
	snprintf(text, sizeof(text), "%d", (int)pid);
	return cgroupfs_write(dir, "cgroup.procs", text);
}

size_t cgroupfs_procs(int dir, pid_t *pids, size_t max)
{
	int fd = openat(dir, "cgroup.procs", O_RDONLY | O_CLOEXEC);
	FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (!f) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	size_t n = 0;
	long pid;
	while (fscanf(f, "%ld", &pid) == 1) {
		if (n < max)
			pids[n] = (pid_t)pid;
		n++;
	}
	fclose(f);
	return n;
}

unsigned cgroupfs_signal(int dir, int signo)
{
	pid_t pids[256];
	size_t n = cgroupfs_procs(dir, pids, 256);
	unsigned reached = 0;
	for (size_t i = 0; i < n && i < 256; i++) {
		if (kill(pids[i], signo) == 0)
			reached++;
	}
	return reached;
}

int cgroupfs_kill(int dir)
{
	if (cgroupfs_write(dir, "cgroup.kill", "1") == 0)
		return 0;
	// Before cgroup.kill (Linux 5.14): a process may fork while the others
	// die, so go round until none is left, a bounded number of times.
	for (int round = 0; round < 100; round++) {
		pid_t pids[256];
		size_t n = cgroupfs_procs(dir, pids, 256);
		if (n == 0)
			return 0;
		for (size_t i = 0; i < n && i < 256; i++)
			kill(pids[i], SIGKILL);
	}
	return -1;
}
