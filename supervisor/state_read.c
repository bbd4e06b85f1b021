#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_record.h"
#include "config_read.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "logline.h"
#include "logs.h"
#include "protocol.h"
#include "reexec.h"

struct word_list {
	char **words;
	size_t n;
};

struct state {
	char *text;
	size_t len, pos;
	int version;
	struct protocol_record rec;
	struct service_conf **defs; /* the definitions, by id */
	size_t ndefs;
	struct config *confs;         /* version 2: the definitions as loaded from text */
	struct word_list *argv, *env; /* version 2: per definition, from the word records */
	bool words_applied;
	struct listener **listeners; /* by id - 1 */
	size_t nlisteners;
	struct linebuf pending[2]; /* the next process's unfinished lines: stdout, stderr */
	char **pin_env;            /* the next generation's pinned environment */
	size_t npin_env;
	int reply_fd;
	struct reexec_fds *fds;
	bool cgroup_created; /* the batond before made [baton] cgroup's directory */
	bool contained;      /* the cgroups are found again */
};

static void set_cloexec(int fd)
{
	int flags = fd >= 0 ? fcntl(fd, F_GETFD) : -1;
	if (flags >= 0)
		fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
}

static int read_all(int fd, struct state *st)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0 || !(st->text = malloc((size_t)sb.st_size + 1)))
		return -1;
	size_t off = 0;
	while (off < (size_t)sb.st_size) {
		ssize_t n = read(fd, st->text + off, (size_t)sb.st_size - off);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	st->text[off] = '\0';
	st->len = off;
	return 0;
}

// Parses the next line as a record; returns -1 at the end or on a bad line.
static int next_record(struct state *st)
{
	if (st->pos >= st->len)
		return -1;
	char *line = st->text + st->pos, *nl = memchr(line, '\n', st->len - st->pos);
	size_t n = nl ? (size_t)(nl - line) : st->len - st->pos;
	st->pos += n + 1;
	return protocol_parse_record(&st->rec, line, n);
}

// Reads a blob record and the text after it (copied, to free).
static char *next_blob(struct state *st, const char *name)
{
	const char *len, *blob;
	if (next_record(st) < 0 || strcmp(st->rec.type, "blob") != 0 ||
		!(blob = protocol_record_get(&st->rec, "name")) || strcmp(blob, name) != 0 ||
		!(len = protocol_record_get(&st->rec, "length")))
		return NULL;
	size_t n = strtoul(len, NULL, 10);
	if (n > st->len - st->pos)
		return NULL;
	char *text = strndup(st->text + st->pos, n);
	st->pos += n + 1;
	return text;
}

static const char *field(struct state *st, const char *key)
{
	const char *v = protocol_record_get(&st->rec, key);
	return v ? v : "";
}

static long num(struct state *st, const char *key)
{
	return strtol(field(st, key), NULL, 10);
}

static double when(struct state *st, const char *key)
{
	return strtod(field(st, key), NULL);
}

static char *opt(struct state *st, const char *key)
{
	const char *v = protocol_record_get(&st->rec, key);
	return v ? strdup(v) : NULL;
}

static int resume_daemon(struct daemon *d, struct state *st)
{
	if (next_record(st) < 0 || strcmp(st->rec.type, "daemon") != 0)
		return -1;
	d->config_path = opt(st, "config_path");
	d->control_path = opt(st, "control_path");
	d->started = when(st, "started");
	d->wall_started = (time_t)num(st, "wall_started");
	d->orphans = (unsigned long)num(st, "orphans");
	d->single = num(st, "single") != 0;
	d->last_status = (int)num(st, "last_status");
	d->systemd_notify = opt(st, "systemd_notify");
	st->reply_fd = (int)num(st, "reply_fd");
	st->cgroup_created = num(st, "cgroup_created") != 0;
	d->notify_path = opt(st, "notify_path");
	st->fds->control = (int)num(st, "control_fd");
	st->fds->notify = (int)num(st, "notify_fd");
	set_cloexec(st->fds->control);
	set_cloexec(st->fds->notify);
	// A state from before they were carried has none.
	log_set_dropped((unsigned long)num(st, "log_dropped"), (unsigned long)num(st, "log_unsaid"));
	return d->control_path && d->notify_path ? 0 : -1;
}

static int resume_listener(struct daemon *d, struct state *st)
{
	char err[256];
	struct socket_conf conf = {.name = (char *)field(st, "name"),
		.listen = (char *)field(st, "listen"), .backlog = (unsigned)num(st, "backlog"),
		.mode = (mode_t)num(st, "mode")};
	if (parse_address(conf.listen, &conf.addr, err, sizeof(err)) < 0)
		return -1;
	struct listener *l = listener_resume(&conf, (int)num(st, "fd"), field(st, "bound"));
	size_t id = (size_t)num(st, "id");
	struct listener **all = realloc(st->listeners, (id > st->nlisteners ? id : st->nlisteners) *
			sizeof(*all));
	if (all)
		st->listeners = all;
	if (!l || !all || id == 0) {
		// The socket stays open for the batond the services go back to.
		if (l)
			l->fd = -1;
		listener_destroy(l, false);
		return -1;
	}
	for (size_t i = st->nlisteners; i < id; i++)
		all[i] = NULL;
	st->nlisteners = id > st->nlisteners ? id : st->nlisteners;
	all[id - 1] = l;
	l->users = (unsigned)num(st, "users");
	l->retired = num(st, "retired") != 0;
	l->unlink_on_close = num(st, "unlink") != 0;
	// Version 2 had no owner or group: batond's.
	l->uid = protocol_record_get(&st->rec, "uid") ? (uid_t)num(st, "uid") : (uid_t)-1;
	l->gid = protocol_record_get(&st->rec, "gid") ? (gid_t)num(st, "gid") : (gid_t)-1;
	list_append(&d->listeners, &l->link);
	return 0;
}

// The bytes that follow the record just read, where the state holds them.
static const char *raw_bytes(struct state *st, size_t *len)
{
	const char *length = protocol_record_get(&st->rec, "length");
	char *end;
	errno = 0;
	unsigned long long n = length ? strtoull(length, &end, 10) : 0;
	if (!length || *end || errno || n >= st->len - st->pos || st->text[st->pos + n] != '\n')
		return NULL;
	const char *bytes = st->text + st->pos;
	st->pos += n + 1;
	*len = n;
	return bytes;
}

// The bytes that follow the record just read, copied.
static char *take_raw(struct state *st, size_t *len)
{
	const char *raw = raw_bytes(st, len);
	char *bytes = raw ? malloc(*len + 1) : NULL;
	if (!bytes)
		return NULL;
	memcpy(bytes, raw, *len);
	bytes[*len] = '\0';
	return bytes;
}

static char *take_bytes(struct state *st)
{
	size_t n;
	char *text = take_raw(st, &n);
	if (text && memchr(text, '\0', n)) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- version 3: definitions field by field ---- */

static int add_conf(struct state *st)
{
	size_t id = (size_t)num(st, "id");
	char *command = take_bytes(st);
	struct service_conf *c = conf_record_read_service(&st->rec, command);
	struct service_conf **defs = realloc(st->defs, (st->ndefs + 1) * sizeof(*defs));
	if (!c || !defs || id != st->ndefs) {
		service_conf_unref(c);
		if (defs)
			st->defs = defs;
		return -1;
	}
	st->defs = defs;
	defs[st->ndefs++] = c;
	return 0;
}

static int add_conf_word(struct state *st)
{
	size_t id = (size_t)num(st, "conf");
	const char *list = protocol_record_get(&st->rec, "list");
	char *word = take_bytes(st);
	if (id >= st->ndefs || !list || !word) {
		free(word);
		return -1;
	}
	return conf_record_add_word(st->defs[id], list, word);
}

static int read_config(struct daemon *d, struct state *st)
{
	if (d->config)
		return -1;
	d->config = conf_record_read_config(&st->rec);
	return d->config ? 0 : -1;
}

static int add_socket_conf(struct daemon *d, struct state *st)
{
	return d->config ? conf_record_add_socket(d->config, &st->rec) : -1;
}

static int add_service_conf(struct daemon *d, struct state *st)
{
	size_t id = (size_t)num(st, "conf");
	if (!d->config || id >= st->ndefs)
		return -1;
	return config_add_service(d->config, st->defs[id]);
}

/* ---- version 2: definitions as baton.conf text, patched ---- */

// The definitions were written [service:c0], [service:c1]... in this order.
static int add_word(struct state *st)
{
	size_t id = (size_t)num(st, "conf");
	if (id >= st->confs->nservices)
		return -1;
	if (!st->argv) {
		st->argv = calloc(st->confs->nservices, sizeof(*st->argv));
		st->env = calloc(st->confs->nservices, sizeof(*st->env));
		if (!st->argv || !st->env)
			return -1;
	}
	struct word_list *l = num(st, "env") ? &st->env[id] : &st->argv[id];
	char **words = realloc(l->words, (l->n + 1) * sizeof(char *));
	if (!words)
		return -1;
	l->words = words;
	if (!(words[l->n] = take_bytes(st)))
		return -1;
	l->n++;
	return 0;
}

static int set_command(struct state *st)
{
	size_t id = (size_t)num(st, "id");
	if (id >= st->confs->nservices)
		return -1;
	struct service_conf *c = st->confs->services[id];
	char *command = take_bytes(st);
	if (!command)
		return -1;
	free(c->command);
	c->command = command;
	return 0;
}

// Gives every definition the words the records carried, once they are all read.
static int apply_words(struct state *st)
{
	if (st->words_applied)
		return 0;
	st->words_applied = true;
	for (size_t i = 0; st->argv && i < st->confs->nservices; i++) {
		if (st->argv[i].n && config_set_words(st->confs->services[i], false, st->argv[i].words,
					     st->argv[i].n) < 0)
			return -1;
		if (config_set_words(st->confs->services[i], true, st->env[i].words, st->env[i].n) < 0)
			return -1;
	}
	return 0;
}

static void free_words(struct state *st)
{
	for (size_t i = 0; st->argv && i < st->confs->nservices; i++) {
		for (size_t j = 0; j < st->argv[i].n; j++)
			free(st->argv[i].words[j]);
		for (size_t j = 0; j < st->env[i].n; j++)
			free(st->env[i].words[j]);
		free(st->argv[i].words);
		free(st->env[i].words);
	}
	free(st->argv);
	free(st->env);
}

static int add_config_service(struct daemon *d, struct state *st)
{
	size_t id = (size_t)num(st, "conf");
	if (apply_words(st) < 0 || id >= st->confs->nservices)
		return -1;
	struct service_conf *conf = st->confs->services[id];
	char *name = strdup(field(st, "name"));
	if (!name)
		return -1;
	free(conf->name);
	conf->name = name;
	return config_add_service(d->config, conf);
}

// The definitions as text, and the running configuration's sockets.
static int load_blobs(struct daemon *d, struct state *st)
{
	char *errors = NULL;
	char *config = next_blob(st, "config"), *confs = next_blob(st, "confs");
	if (config)
		d->config = config_load_text("state", config, &errors);
	free(errors);
	errors = NULL;
	if (confs)
		st->confs = config_load_text("state", confs, &errors);
	if (errors)
		log_error("re-exec: %s", errors);
	free(errors);
	free(config);
	free(confs);
	if (!d->config || !st->confs)
		return -1;
	st->defs = calloc(st->confs->nservices + 1, sizeof(*st->defs));
	for (size_t i = 0; st->defs && i < st->confs->nservices; i++)
		st->defs[i] = service_conf_ref(st->confs->services[i]);
	st->ndefs = st->defs ? st->confs->nservices : 0;
	return st->defs ? 0 : -1;
}

/* ---- services, generations, processes ---- */

// The definition of a service's record; version 2 named them c0, c1...
static struct service_conf *conf_of(struct state *st, const char *name)
{
	size_t id = (size_t)num(st, "conf");
	if (id >= st->ndefs)
		return NULL;
	struct service_conf *conf = st->defs[id];
	if (st->version == 3)
		return strcmp(conf->name, name) == 0 ? conf : NULL;
	char *copy = strdup(name);
	if (!copy)
		return NULL;
	free(conf->name);
	conf->name = copy;
	return conf;
}

static struct service *resume_service(struct daemon *d, struct state *st)
{
	const char *name = field(st, "name");
	struct service_conf *conf = conf_of(st, name);
	struct service *svc = conf ? daemon_add_service(d, conf) : NULL;
	if (!svc)
		return NULL;
	long flags = num(st, "flags");
	svc->wanted = flags & 1;
	svc->failed = flags & 2;
	svc->removed = flags & 4;
	svc->start_when_empty = flags & 8;
	svc->last_gen = (unsigned)num(st, "last_gen");
	svc->restarts = (unsigned long)num(st, "restarts");
	svc->upgrades = (unsigned long)num(st, "upgrades");
	svc->rollbacks = (unsigned long)num(st, "rollbacks");
	svc->kills = (unsigned long)num(st, "kills");
	svc->checks_ok = (unsigned long)num(st, "checks_ok");
	svc->checks_failed = (unsigned long)num(st, "checks_failed");
	svc->unhealthy = (unsigned long)num(st, "unhealthy");
	svc->oom_kills = (unsigned long)num(st, "oom_kills");
	snprintf(svc->reason, sizeof(svc->reason), "%s", field(st, "reason"));
	return svc;
}

static struct listener **gen_listeners(struct state *st, size_t n)
{
	struct listener **ls = calloc(n ? n : 1, sizeof(*ls));
	char *copy = strdup(field(st, "listeners")), *save = NULL;
	if (!ls || !copy) {
		free(ls);
		free(copy);
		return NULL;
	}
	char *tok = strtok_r(copy, ",", &save);
	for (size_t i = 0; i < n && tok; i++, tok = strtok_r(NULL, ",", &save)) {
		size_t id = strtoul(tok, NULL, 10);
		ls[i] = id > 0 && id <= st->nlisteners ? st->listeners[id - 1] : NULL;
	}
	free(copy);
	return ls;
}

static int add_pin_env(struct state *st)
{
	char *entry = take_bytes(st);
	char **env = entry ? realloc(st->pin_env, (st->npin_env + 2) * sizeof(char *)) : NULL;
	if (!env) {
		free(entry);
		return -1;
	}
	env[st->npin_env++] = entry;
	env[st->npin_env] = NULL;
	st->pin_env = env;
	return 0;
}

// The pin the generation had; a state from before pins pins what is there now.
static int read_pin(struct state *st, struct pin *pin, const struct service_conf *conf)
{
	char err[512];
	if (!protocol_record_get(&st->rec, "pin"))
		return pin_resolve(pin, conf, err, sizeof(err));
	pin_init(pin);
	unsigned long long dev, ino;
	long long sec, size;
	long nsec;
	if (sscanf(field(st, "identity"), "%llu:%llu:%lld.%ld:%lld", &dev, &ino, &sec, &nsec,
		    &size) != 5)
		return -1;
	pin->dev = (dev_t)dev;
	pin->ino = (ino_t)ino;
	pin->mtime = (struct timespec){(time_t)sec, nsec};
	pin->size = (off_t)size;
	pin->exe_fd = (int)num(st, "exe_fd");
	set_cloexec(pin->exe_fd);
	pin->script = num(st, "script") != 0;
	snprintf(pin->hash, sizeof(pin->hash), "%s", field(st, "hash"));
	pin->exe_path = opt(st, "exe_path");
	pin->directory = opt(st, "pin_dir");
	pin->env = st->pin_env ? st->pin_env : calloc(1, sizeof(char *));
	pin->nenv = st->npin_env;
	st->pin_env = NULL;
	st->npin_env = 0;
	return pin->env ? 0 : -1;
}

// The pipes the generation held for its descendants ("fd,fd..."), to hold again.
static void read_held(struct state *st, struct generation *gen)
{
	char *copy = strdup(field(st, "held")), *save = NULL;
	for (char *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok;
		tok = strtok_r(NULL, ",", &save)) {
		int fd = (int)strtol(tok, NULL, 10);
		if (fd <= 2)
			continue;
		set_cloexec(fd);
		if (!gen || generation_restore_held(gen, fd) < 0)
			close(fd);
	}
	free(copy);
}

static struct generation *resume_gen(struct service *svc, struct state *st)
{
	struct service_conf *conf = conf_of(st, svc->name);
	if (!conf)
		return NULL;
	long strays = num(st, "strays_flags");
	struct generation saved = {.number = (unsigned)num(st, "number"),
		.role = (enum gen_role)num(st, "role"), .started_at = when(st, "started_at"),
		.drain_at = when(st, "drain_at"), .strays = (unsigned)num(st, "strays"),
		.strays_signalled = strays & 1, .strays_killed = strays & 2,
		.strays_at = when(st, "strays_at")};
	if (read_pin(st, &saved.pin, conf) < 0) {
		pin_release(&saved.pin);
		return NULL;
	}
	struct listener **ls = gen_listeners(st, conf->nsockets);
	struct generation *gen = ls ? generation_restore(svc, &saved, conf, ls) : NULL;
	if (!gen) {
		free(ls);
		pin_release(&saved.pin);
	}
	read_held(st, gen);
	return gen;
}

static int fd_or_none(struct state *st, const char *key);

static int resume_proc(struct generation *gen, struct state *st)
{
	long flags = num(st, "flags");
	struct proc saved = {.instance = (unsigned)num(st, "instance"), .pid = (pid_t)num(st, "pid"),
		.sid = (pid_t)num(st, "sid"), .state = (enum proc_state)num(st, "state"),
		.spawned_at = when(st, "spawned_at"), .ready_at = when(st, "ready_at"),
		.stop_at = when(st, "stop_at"), .signalled_at = when(st, "signalled_at"),
		.kill_at = when(st, "kill_at"), .exec_done = flags & 1, .signalled = flags & 2,
		.killed = flags & 4, .killed_early = flags & 8, .replace = flags & 16,
		.probed = flags & 32,
		.restarts = (unsigned)num(st, "restarts"),
		.conns_at_kill = (int)num(st, "conns_at_kill")};
	saved.backoff.delay = when(st, "backoff_delay");
	saved.backoff.window_start = when(st, "backoff_window");
	saved.backoff.count = (unsigned)num(st, "backoff_count");
	saved.status_text = (char *)protocol_record_get(&st->rec, "status");
	saved.error = (char *)protocol_record_get(&st->rec, "error");
	saved.fail_reason = (char *)protocol_record_get(&st->rec, "fail_reason");
	struct proc_fds fds = {(int)num(st, "exec_fd"), (int)num(st, "ready_fd"),
		fd_or_none(st, "out_fd"), fd_or_none(st, "err_fd")};
	set_cloexec(fds.exec);
	set_cloexec(fds.ready);
	set_cloexec(fds.out);
	set_cloexec(fds.err);
	saved.out.lines = st->pending[0];
	saved.err.lines = st->pending[1];
	struct proc *p = proc_restore(gen, &saved, when(st, "timer_at"), &fds);
	linebuf_finish(&st->pending[0]);
	linebuf_finish(&st->pending[1]);
	return p ? 0 : -1;
}

static int read_log_counters(struct daemon *d, struct service *svc, struct state *st)
{
	struct logs_counters n = {
		.lines = strtoul(field(st, "lines"), NULL, 10),
		.bytes = strtoul(field(st, "bytes"), NULL, 10),
		.dropped = strtoul(field(st, "dropped"), NULL, 10),
		.cut = strtoul(field(st, "cut"), NULL, 10),
		.unsaid = strtoul(field(st, "unsaid"), NULL, 10),
	};
	return logs_restore_counters(d->logs, svc, &n);
}

static int read_log_line(struct daemon *d, struct service *svc, struct state *st)
{
	struct logline line = {
		.time = when(st, "time"),
		.service = svc->name,
		.pid = (pid_t)num(st, "pid"),
		.gen = (unsigned)num(st, "gen"),
		.stream = num(st, "stream") == LOGLINE_ERR ? LOGLINE_ERR : LOGLINE_OUT,
		.cut = num(st, "cut") != 0,
	};
	line.text = raw_bytes(st, &line.len);
	return line.text ? logs_restore_line(d->logs, svc, &line) : -1;
}

// A field that is a descriptor, -1 when absent (version 2 had no output pipes).
static int fd_or_none(struct state *st, const char *key)
{
	return protocol_record_get(&st->rec, key) ? (int)num(st, key) : -1;
}

// The unfinished line of a stream of the next process record.
static int read_pending(struct state *st)
{
	const char *stream = field(st, "stream");
	struct linebuf *lb = &st->pending[strcmp(stream, "err") == 0];
	bool dropping = num(st, "dropping") != 0;
	size_t len;
	char *bytes = take_raw(st, &len);
	int rc = bytes ? linebuf_restore(lb, bytes, len, dropping) : -1;
	free(bytes);
	return rc;
}

// Reads a record of the definitions or the configuration.
static int resume_conf_record(struct daemon *d, struct state *st, const char *type)
{
	bool v3 = st->version == 3;
	if (strcmp(type, "conf") == 0)
		return v3 ? add_conf(st) : set_command(st);
	if (strcmp(type, "word") == 0)
		return v3 ? add_conf_word(st) : add_word(st);
	if (strcmp(type, "config_service") == 0)
		return v3 ? add_service_conf(d, st) : add_config_service(d, st);
	if (v3 && strcmp(type, "config") == 0)
		return read_config(d, st);
	if (v3 && strcmp(type, "socket_conf") == 0)
		return add_socket_conf(d, st);
	return -1;
}

// Reads the records after the daemon's, up to "end".
// The cgroups, found again once the configuration is known, before any
// generation looks for its own.
static void contain(struct daemon *d, struct state *st)
{
	if (st->contained || !d->config)
		return;
	st->contained = true;
	containment_setup(d->cg, d->loop, d->config->cgroup, st->cgroup_created, false);
}

static int resume_records(struct daemon *d, struct state *st)
{
	struct service *svc = NULL;
	struct generation *gen = NULL;
	while (next_record(st) == 0) {
		const char *type = st->rec.type;
		int rc;
		if (strcmp(type, "service") == 0 || strcmp(type, "end") == 0)
			contain(d, st);
		if (strcmp(type, "end") == 0)
			return d->config ? 0 : -1;
		if (strcmp(type, "listener") == 0)
			rc = resume_listener(d, st);
		else if (strcmp(type, "service") == 0)
			rc = d->config && apply_words(st) == 0 && (svc = resume_service(d, st)) ? 0 : -1;
		else if (strcmp(type, "gen") == 0)
			rc = svc && (gen = resume_gen(svc, st)) ? 0 : -1;
		else if (strcmp(type, "proc") == 0)
			rc = gen ? resume_proc(gen, st) : -1;
		else if (strcmp(type, "pending") == 0)
			rc = read_pending(st);
		else if (strcmp(type, "pin_env") == 0)
			rc = add_pin_env(st);
		else if (strcmp(type, "log_counters") == 0)
			rc = svc ? read_log_counters(d, svc, st) : -1;
		else if (strcmp(type, "log_line") == 0)
			rc = svc ? read_log_line(d, svc, st) : -1;
		else
			rc = resume_conf_record(d, st, type);
		if (rc < 0) {
			log_error("re-exec: cannot restore the %s record", type);
			return -1;
		}
	}
	return -1;
}

static int read_version(struct state *st)
{
	const char *magic = "baton-state ";
	size_t n = strlen(magic);
	char *nl = memchr(st->text, '\n', st->len);
	if (!nl || strncmp(st->text, magic, n) != 0)
		return -1;
	st->version = atoi(st->text + n);
	st->pos = (size_t)(nl - st->text) + 1;
	return st->version == 2 || st->version == STATE_VERSION ? 0 : -1;
}

static void free_state(struct state *st)
{
	for (size_t i = 0; i < st->npin_env; i++)
		free(st->pin_env[i]);
	free(st->pin_env);
	linebuf_finish(&st->pending[0]);
	linebuf_finish(&st->pending[1]);
	if (st->confs)
		free_words(st);
	for (size_t i = 0; i < st->ndefs; i++)
		service_conf_unref(st->defs[i]);
	free(st->defs);
	config_destroy(st->confs);
	free(st->listeners);
	free(st->text);
}

int state_read(struct daemon *d, int fd, struct reexec_fds *fds, int *reply_fd)
{
	struct state st = {.reply_fd = -1, .fds = fds};
	int rc = read_all(fd, &st);
	if (rc == 0 && (rc = read_version(&st)) < 0)
		log_error("re-exec: the state is not of a version this batond reads");
	if (rc == 0 && st.version == 2)
		rc = load_blobs(d, &st);
	if (rc == 0 && (daemon_prepare(d) < 0 || resume_daemon(d, &st) < 0))
		rc = -1;
	// The services' output, kept and counted, is read into logs as they are.
	if (rc == 0 && !d->logs && !(d->logs = logs_create(d)))
		rc = -1;
	if (rc == 0)
		rc = resume_records(d, &st);
	*reply_fd = st.reply_fd;
	free_state(&st);
	return rc;
}
