#include "pin.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envfile.h"
#include "parse.h"

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

void pin_init(struct pin *pin)
{
	memset(pin, 0, sizeof(*pin));
	pin->exe_fd = -1;
}

// The PATH its processes search: their own environment's, batond's, or the default.
static const char *search_path(char *const *env, size_t nenv)
{
	for (size_t i = nenv; i-- > 0;) {
		if (strncmp(env[i], "PATH=", 5) == 0)
			return env[i] + 5;
	}
	const char *path = getenv("PATH");
	return path ? path : DEFAULT_PATH;
}

// The real path of file, found as the child's exec would find it, or NULL.
static char *find(const char *file, const char *dir, char *const *env, size_t nenv)
{
	char full[PATH_MAX];
	if (strchr(file, '/')) {
		bool relative = file[0] != '/' && dir;
		snprintf(full, sizeof(full), "%s%s%s", relative ? dir : "", relative ? "/" : "", file);
		return access(full, X_OK) == 0 ? realpath(full, NULL) : NULL;
	}
	for (const char *p = search_path(env, nenv);; p++) {
		const char *end = strchrnul(p, ':');
		int n = snprintf(full, sizeof(full), "%.*s/%s", (int)(end - p), p, file);
		if (n > 0 && (size_t)n < sizeof(full) && access(full, X_OK) == 0)
			return realpath(full, NULL);
		if (!*end)
			return NULL;
		p = end;
	}
}

static bool is_script(int fd)
{
	char magic[2];
	return pread(fd, magic, 2, 0) == 2 && magic[0] == '#' && magic[1] == '!';
}

// Opens the program found, and notes its identity.
static void pin_program(struct pin *pin, const struct service_conf *c)
{
	if (!c->argv || !(pin->exe_path = find(c->argv[0], pin->directory, pin->env, pin->nenv)))
		return;
	int fd = open(pin->exe_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fd = open(pin->exe_path, O_PATH | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	pin->dev = st.st_dev;
	pin->ino = st.st_ino;
	pin->mtime = st.st_mtim;
	pin->ctime = st.st_ctim;
	pin->size = st.st_size;
	pin->script = is_script(fd);
	pin->exe_fd = fd;
}

// Sets the variable of entry (NAME=VALUE, taken), replacing one of its name.
static int set_var(struct pin *pin, char *entry)
{
	size_t k = strcspn(entry, "=");
	for (size_t i = 0; i < pin->nenv; i++) {
		if (strncmp(pin->env[i], entry, k) == 0 && pin->env[i][k] == '=') {
			free(pin->env[i]);
			pin->env[i] = entry;
			return 0;
		}
	}
	char **env = realloc(pin->env, (pin->nenv + 2) * sizeof(char *));
	if (!env) {
		free(entry);
		return -1;
	}
	env[pin->nenv++] = entry;
	env[pin->nenv] = NULL;
	pin->env = env;
	return 0;
}

// The environment files' variables, each replacing one of the same name.
static int read_env_files(struct pin *pin, const struct service_conf *c, char *err,
	size_t errlen)
{
	for (size_t i = 0; i < c->nenv_files; i++) {
		struct envfile f = {0};
		if (envfile_read(c->env_files[i].path, &f, err, errlen) < 0) {
			if (errno == ENOENT && c->env_files[i].optional)
				continue;
			return -1;
		}
		int rc = 0;
		for (size_t j = 0; j < f.n && rc == 0; j++) {
			// What batond sets for each process is not a file's to change.
			if (env_name_reserved(f.env[j]))
				continue;
			char *entry = strdup(f.env[j]);
			rc = entry ? set_var(pin, entry) : -1;
		}
		envfile_finish(&f);
		if (rc < 0) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

static int copy_env(struct pin *pin, char *const *env, size_t n)
{
	pin->env = calloc(n + 1, sizeof(char *));
	if (!pin->env)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!(pin->env[i] = strdup(env[i])))
			return -1;
		pin->nenv++;
	}
	return 0;
}

int pin_resolve(struct pin *pin, const struct service_conf *conf, char *err, size_t errlen)
{
	pin_init(pin);
	if (copy_env(pin, conf->env, conf->nenv) < 0) {
		snprintf(err, errlen, "out of memory");
		pin_release(pin);
		return -1;
	}
	if (read_env_files(pin, conf, err, errlen) < 0) {
		pin_release(pin);
		return -1;
	}
	if (conf->directory)
		pin->directory = realpath(conf->directory, NULL);
	pin_program(pin, conf);
	return 0;
}

bool pin_hash_step(struct pin *pin, size_t max)
{
	if (pin->hash[0] || pin->exe_fd < 0)
		return true;
	if (!pin->hashing) {
		if (!(pin->hashing = malloc(sizeof(*pin->hashing))))
			return true;
		sha256_init(pin->hashing);
		pin->hashed = 0;
	}
	// Small: a process's stack stays as small as batond's other work keeps it.
	char buf[8192];
	ssize_t n = 1;
	for (size_t done = 0; done < max && n > 0; done += (size_t)n) {
		n = pread(pin->exe_fd, buf, sizeof(buf), pin->hashed);
		if (n < 0 && errno == EINTR)
			n = 1;
		else if (n > 0) {
			sha256_update(pin->hashing, buf, (size_t)n);
			pin->hashed += n;
		}
	}
	if (n > 0)
		return false;
	// The bytes read are those pinned only if the file has not changed since.
	struct stat st;
	if (n == 0 && pin->hashed == pin->size && fstat(pin->exe_fd, &st) == 0 &&
		st.st_size == pin->size && st.st_mtim.tv_sec == pin->mtime.tv_sec &&
		st.st_mtim.tv_nsec == pin->mtime.tv_nsec) {
		uint8_t digest[SHA256_DIGEST_SIZE];
		sha256_final(pin->hashing, digest);
		sha256_hex(digest, sizeof(pin->hash) - 1, pin->hash);
	}
	free(pin->hashing);
	pin->hashing = NULL;
	return true;
}

bool pin_changed(const struct pin *pin, char *why, size_t whylen)
{
	struct stat st;
	if (pin->exe_fd < 0 || !pin->exe_path)
		return false;
	if (pin->script) {
		// Run from its path: that path must still name the file pinned.
		if (stat(pin->exe_path, &st) < 0) {
			snprintf(why, whylen, "%s: %s", pin->exe_path, strerror(errno));
			return true;
		}
		if (st.st_dev != pin->dev || st.st_ino != pin->ino) {
			snprintf(why, whylen, "%s was replaced by another file", pin->exe_path);
			return true;
		}
	} else if (fstat(pin->exe_fd, &st) < 0) {
		return false;
	}
	if (st.st_size != pin->size || st.st_mtim.tv_sec != pin->mtime.tv_sec ||
		st.st_mtim.tv_nsec != pin->mtime.tv_nsec) {
		snprintf(why, whylen, "%s was changed in place", pin->exe_path);
		return true;
	}
	return false;
}

int pin_copy(struct pin *dst, const struct pin *src)
{
	pin_init(dst);
	*dst = *src;
	dst->hashing = NULL;
	dst->exe_fd = -1;
	dst->exe_path = dst->directory = NULL;
	dst->env = NULL;
	dst->nenv = 0;
	if ((src->exe_fd >= 0 && (dst->exe_fd = fcntl(src->exe_fd, F_DUPFD_CLOEXEC, 3)) < 0) ||
		(src->exe_path && !(dst->exe_path = strdup(src->exe_path))) ||
		(src->directory && !(dst->directory = strdup(src->directory))) ||
		copy_env(dst, src->env, src->nenv) < 0) {
		pin_release(dst);
		return -1;
	}
	return 0;
}

void pin_release(struct pin *pin)
{
	if (pin->exe_fd >= 0)
		close(pin->exe_fd);
	free(pin->exe_path);
	free(pin->directory);
	for (size_t i = 0; pin->env && i < pin->nenv; i++)
		free(pin->env[i]);
	free(pin->env);
	free(pin->hashing);
	pin_init(pin);
}

// The value of the variable the entry names in env, or NULL.
static const char *value_of(char *const *env, size_t n, const char *entry)
{
	size_t k = strcspn(entry, "=");
	for (size_t i = n; i-- > 0;) {
		if (strncmp(env[i], entry, k) == 0 && env[i][k] == '=')
			return env[i] + k + 1;
	}
	return NULL;
}

static void add_name(char *out, size_t outlen, const char *entry)
{
	size_t len = strlen(out), k = strcspn(entry, "=");
	char name[256];
	snprintf(name, sizeof(name), "%.*s", (int)k, entry);
	// Once each, and not past the end.
	for (const char *p = out; (p = strstr(p, name)); p += k) {
		if ((p == out || p[-1] == ' ') && (p[k] == ' ' || p[k] == '\0'))
			return;
	}
	snprintf(out + len, outlen - len, "%s%s", len ? " " : "", name);
}

void pin_env_changes(const struct pin *a, const struct pin *b, char *out, size_t outlen)
{
	out[0] = '\0';
	for (size_t i = 0; i < a->nenv; i++) {
		const char *v = value_of(b->env, b->nenv, a->env[i]);
		const char *mine = value_of(a->env, a->nenv, a->env[i]);
		if (!v || strcmp(v, mine) != 0)
			add_name(out, outlen, a->env[i]);
	}
	for (size_t i = 0; i < b->nenv; i++) {
		if (!value_of(a->env, a->nenv, b->env[i]))
			add_name(out, outlen, b->env[i]);
	}
}
