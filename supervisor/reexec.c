#include "reexec.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "config_print.h"
#include "config_read.h"
#include "control.h"
#include "daemon.h"
#include "listener.h"
#include "log.h"
#include "notify_socket.h"
#include "parse.h"
#include "protocol.h"
#include "version.h"

extern char **environ;

/*
 * The state is text: "baton-state 2", then two blobs of baton.conf syntax
 * (the running configuration, and the definition of every generation under a
 * name of its own), then one record line (baton-protocol(7) syntax) per
 * socket, service, generation and process, then "end". A word or a command
 * has no size limit: its record gives its length, and its bytes follow.
 */
#define STATE_ENV "BATON_STATE_FD"
// "EXE,STATE": the binary that wrote the state, and the state, for a new
// binary that cannot resume to hand the services back (hand_back).
#define FALLBACK_ENV "BATON_STATE_FALLBACK"
// Set for the binary the services were handed back to.
#define HANDED_BACK_ENV "BATON_STATE_HANDED_BACK"
#define STATE_MAGIC "baton-state 2"
#define LISTENERS_TEXT (CONFIG_SOCKETS_MAX * 12)

/* ---- writing ---- */

// The distinct definitions in use, each written as [service:cN].
struct conf_ids {
	const struct service_conf **confs;
	size_t n;
};

static size_t conf_id(struct conf_ids *ids, const struct service_conf *c)
{
	for (size_t i = 0; i < ids->n; i++) {
		if (ids->confs[i] == c)
			return i;
	}
	const struct service_conf **confs = realloc(ids->confs, (ids->n + 1) * sizeof(*confs));
	if (!confs)
		return 0;
	ids->confs = confs;
	confs[ids->n] = c;
	return ids->n++;
}

static size_t listener_id(struct daemon *d, const struct listener *l)
{
	size_t i = 1;
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		if (container_of(pos, struct listener, link) == l)
			return i;
		i++;
	}
	return 0;
}

static void put_time(struct protocol_buf *b, const char *key, double t)
{
	char v[64];
	snprintf(v, sizeof(v), "%.6f", t);
	protocol_record_str(b, key, v);
}

static void put_opt(struct protocol_buf *b, const char *key, const char *value)
{
	if (value)
		protocol_record_str(b, key, value);
}

static void write_blob(struct protocol_buf *b, const char *name, const char *text, size_t len)
{
	protocol_record_begin(b, "blob");
	protocol_record_str(b, "name", name);
	protocol_record_int(b, "length", (long long)len);
	protocol_record_end(b);
	protocol_buf_add(b, text, len);
	protocol_buf_add(b, "\n", 1);
}

static void write_daemon(struct protocol_buf *b, struct daemon *d, int reply_fd)
{
	protocol_record_begin(b, "daemon");
	put_opt(b, "config_path", d->config_path);
	put_opt(b, "control_path", d->control_path);
	protocol_record_int(b, "control_fd", control_fd(d->control));
	put_opt(b, "notify_path", d->notify_path);
	protocol_record_int(b, "notify_fd", notify_socket_fd(d->notify));
	put_time(b, "started", d->started);
	protocol_record_int(b, "wall_started", (long long)d->wall_started);
	protocol_record_int(b, "orphans", (long long)d->orphans);
	protocol_record_int(b, "single", d->single);
	protocol_record_int(b, "last_status", d->last_status);
	put_opt(b, "systemd_notify", d->systemd_notify);
	protocol_record_int(b, "reply_fd", reply_fd);
	protocol_record_end(b);
}

static void write_listeners(struct protocol_buf *b, struct daemon *d)
{
	struct list *pos;
	list_for_each(pos, &d->listeners) {
		struct listener *l = container_of(pos, struct listener, link);
		protocol_record_begin(b, "listener");
		protocol_record_int(b, "id", (long long)listener_id(d, l));
		protocol_record_str(b, "name", l->name);
		protocol_record_str(b, "listen", l->listen);
		protocol_record_int(b, "backlog", l->backlog);
		protocol_record_int(b, "mode", l->mode);
		protocol_record_int(b, "fd", l->fd);
		protocol_record_str(b, "bound", l->bound);
		protocol_record_int(b, "users", l->users);
		protocol_record_int(b, "retired", l->retired);
		protocol_record_int(b, "unlink", l->unlink_on_close);
		protocol_record_end(b);
	}
}

static void write_proc(struct protocol_buf *b, const struct proc *p)
{
	protocol_record_begin(b, "proc");
	protocol_record_str(b, "service", p->gen->svc->name);
	protocol_record_int(b, "gen", p->gen->number);
	protocol_record_int(b, "instance", p->instance);
	protocol_record_int(b, "pid", p->pid);
	protocol_record_int(b, "sid", p->sid);
	protocol_record_int(b, "state", p->state);
	put_time(b, "spawned_at", p->spawned_at);
	put_time(b, "ready_at", p->ready_at);
	put_time(b, "stop_at", p->stop_at);
	put_time(b, "signalled_at", p->signalled_at);
	put_time(b, "kill_at", p->kill_at);
	put_time(b, "timer_at", proc_timer_at(p));
	protocol_record_int(b, "flags", p->exec_done | p->signalled << 1 | p->killed << 2 |
			p->killed_early << 3 | p->replace << 4 | p->probed << 5);
	protocol_record_int(b, "restarts", p->restarts);
	put_time(b, "backoff_delay", p->backoff.delay);
	put_time(b, "backoff_window", p->backoff.window_start);
	protocol_record_int(b, "backoff_count", p->backoff.count);
	protocol_record_int(b, "conns_at_kill", p->conns_at_kill);
	protocol_record_int(b, "exec_fd", p->exec_io.fd);
	protocol_record_int(b, "ready_fd", p->ready_io.fd);
	put_opt(b, "status", p->status_text);
	put_opt(b, "error", p->error);
	put_opt(b, "fail_reason", p->fail_reason);
	protocol_record_end(b);
}

static void write_gen(struct protocol_buf *b, struct daemon *d, struct conf_ids *ids,
	const struct generation *gen)
{
	char listeners[LISTENERS_TEXT] = "";
	size_t n = 0;
	for (size_t i = 0; i < gen->conf->nsockets && n < sizeof(listeners); i++)
		n += (size_t)snprintf(listeners + n, sizeof(listeners) - n, "%s%zu", i ? "," : "",
			gen->listeners[i] ? listener_id(d, gen->listeners[i]) : 0);
	protocol_record_begin(b, "gen");
	protocol_record_str(b, "service", gen->svc->name);
	protocol_record_int(b, "number", gen->number);
	protocol_record_int(b, "role", gen->role);
	protocol_record_int(b, "conf", (long long)conf_id(ids, gen->conf));
	protocol_record_str(b, "listeners", n ? listeners : "-");
	put_time(b, "started_at", gen->started_at);
	put_time(b, "drain_at", gen->drain_at);
	protocol_record_end(b);
	struct list *pos;
	list_for_each(pos, &gen->procs)
		write_proc(b, container_of(pos, struct proc, link));
}

static void write_service(struct protocol_buf *b, struct daemon *d, struct conf_ids *ids,
	const struct service *svc)
{
	protocol_record_begin(b, "service");
	protocol_record_str(b, "name", svc->name);
	protocol_record_int(b, "conf", (long long)conf_id(ids, svc->conf));
	protocol_record_int(b, "flags", svc->wanted | svc->failed << 1 | svc->removed << 2 |
			svc->start_when_empty << 3);
	protocol_record_int(b, "last_gen", svc->last_gen);
	protocol_record_int(b, "restarts", (long long)svc->restarts);
	protocol_record_int(b, "upgrades", (long long)svc->upgrades);
	protocol_record_int(b, "rollbacks", (long long)svc->rollbacks);
	protocol_record_int(b, "kills", (long long)svc->kills);
	put_opt(b, "reason", svc->reason[0] ? svc->reason : NULL);
	protocol_record_end(b);
	// Oldest generation first, so that the new batond rebuilds the same order.
	for (struct list *g = svc->gens.prev; g != &svc->gens; g = g->prev)
		write_gen(b, d, ids, container_of(g, struct generation, link));
}

static bool named_before(const struct conf_ids *ids, size_t upto, size_t s_upto, const char *name)
{
	for (size_t i = 0; i <= upto && i < ids->n; i++) {
		size_t last = i == upto ? s_upto : ids->confs[i]->nsockets;
		for (size_t s = 0; s < last; s++) {
			if (strcmp(ids->confs[i]->sockets[s], name) == 0)
				return true;
		}
	}
	return false;
}

// The definitions as baton.conf text, each as [service:cN]; a stand-in for
// every socket they name, since the sockets come from the listener records.
static char *confs_text(const struct conf_ids *ids, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);
	if (!f)
		return NULL;
	for (size_t i = 0; i < ids->n; i++) {
		for (size_t s = 0; s < ids->confs[i]->nsockets; s++) {
			const char *name = ids->confs[i]->sockets[s];
			if (!named_before(ids, i, s, name))
				fprintf(f, "[socket:%s]\nlisten = tcp:127.0.0.1:0\n", name);
		}
	}
	// Commands and environments go in records, byte for byte: any word that
	// loaded must come back, however it would print.
	char *placeholder[] = {"x", NULL};
	for (size_t i = 0; i < ids->n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "c%zu", i);
		struct service_conf copy = *ids->confs[i];
		copy.argv = placeholder;
		copy.argc = 1;
		copy.nenv = 0;
		config_print_service(&copy, name, f);
	}
	fclose(f);
	return text;
}

// Ends a record with length=N, then the N bytes of text and a newline: a
// record has a size limit, a word or a command none.
static void end_with_bytes(struct protocol_buf *b, const char *text)
{
	size_t len = strlen(text);
	protocol_record_int(b, "length", (long long)len);
	protocol_record_end(b);
	protocol_buf_add(b, text, len);
	protocol_buf_add(b, "\n", 1);
}

static void write_words(struct protocol_buf *b, size_t id, bool env, char *const *words, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		protocol_record_begin(b, "word");
		protocol_record_int(b, "conf", (long long)id);
		protocol_record_int(b, "env", env);
		end_with_bytes(b, words[i]);
	}
}

// The exact command and environment of every definition, then which
// definitions the running configuration has.
static void write_confs(struct protocol_buf *b, struct daemon *d, struct conf_ids *ids)
{
	struct protocol_buf names = {0};
	for (size_t i = 0; i < d->config->nservices; i++) {
		protocol_record_begin(&names, "config_service");
		protocol_record_int(&names, "conf", (long long)conf_id(ids, d->config->services[i]));
		protocol_record_str(&names, "name", d->config->services[i]->name);
		protocol_record_end(&names);
	}
	for (size_t i = 0; i < ids->n; i++) {
		const struct service_conf *c = ids->confs[i];
		protocol_record_begin(b, "conf");
		protocol_record_int(b, "id", (long long)i);
		end_with_bytes(b, c->command);
		write_words(b, i, false, c->argv, c->argc);
		write_words(b, i, true, c->env, c->nenv);
	}
	// After the words: a config_service record applies them.
	protocol_buf_add(b, names.data ? names.data : "", names.len);
	if (names.failed)
		b->failed = true;
	protocol_buf_finish(&names);
}

// The length of the daemon and listener records at the start of rest.
static size_t state_head_length(const struct protocol_buf *rest)
{
	size_t off = 0;
	while (off < rest->len) {
		const char *line = rest->data + off;
		if (strncmp(line, "daemon ", 7) != 0 && strncmp(line, "listener ", 9) != 0)
			break;
		const char *nl = memchr(line, '\n', rest->len - off);
		off = nl ? (size_t)(nl - rest->data) + 1 : rest->len;
	}
	return off;
}

static int write_state(struct daemon *d, int fd, int reply_fd)
{
	struct protocol_buf b = {0};
	struct conf_ids ids = {0};
	char *config = NULL;
	size_t config_len = 0;
	FILE *f = open_memstream(&config, &config_len);
	if (f) {
		config_print_sockets(d->config, f);
		fclose(f);
	}
	protocol_buf_printf(&b, "%s\n", STATE_MAGIC);
	write_blob(&b, "config", config ? config : "", config_len);
	struct protocol_buf rest = {0};
	write_daemon(&rest, d, reply_fd);
	write_listeners(&rest, d);
	struct list *pos;
	list_for_each(pos, &d->services)
		write_service(&rest, d, &ids, container_of(pos, struct service, link));
	protocol_buf_printf(&rest, "end\n");
	// Definitions before the services that use them: rest is appended after.
	struct protocol_buf confs_rec = {0};
	write_confs(&confs_rec, d, &ids);
	size_t confs_len = 0;
	char *confs = confs_text(&ids, &confs_len);
	write_blob(&b, "confs", confs ? confs : "", confs_len);
	// daemon and listener records lead rest; the definitions go right after them.
	size_t head = state_head_length(&rest);
	protocol_buf_add(&b, rest.data, head);
	protocol_buf_add(&b, confs_rec.data ? confs_rec.data : "", confs_rec.len);
	protocol_buf_add(&b, rest.data + head, rest.len - head);
	int rc = (b.failed || rest.failed || confs_rec.failed || !config || !confs) ? -1 : 0;
	for (size_t off = 0; rc == 0 && off < b.len;) {
		ssize_t n = write(fd, b.data + off, b.len - off);
		if (n <= 0)
			rc = -1;
		else
			off += (size_t)n;
	}
	free(config);
	free(confs);
	free(ids.confs);
	protocol_buf_finish(&b);
	protocol_buf_finish(&rest);
	protocol_buf_finish(&confs_rec);
	return rc;
}

/* ---- the exec ---- */

static void set_cloexec(int fd, bool on)
{
	if (fd < 0)
		return;
	int flags = fcntl(fd, F_GETFD);
	if (flags >= 0)
		fcntl(fd, F_SETFD, on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC);
}

// Lets every fd of the state live through the exec, or takes that back.
static void keep_fds(struct daemon *d, int reply_fd, bool keep)
{
	set_cloexec(control_fd(d->control), !keep);
	set_cloexec(notify_socket_fd(d->notify), !keep);
	set_cloexec(reply_fd, !keep);
	struct list *pos, *g, *pp;
	list_for_each(pos, &d->listeners)
		set_cloexec(container_of(pos, struct listener, link)->fd, !keep);
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		list_for_each(g, &svc->gens) {
			struct generation *gen = container_of(g, struct generation, link);
			list_for_each(pp, &gen->procs) {
				struct proc *p = container_of(pp, struct proc, link);
				set_cloexec(p->exec_io.fd, !keep);
				set_cloexec(p->ready_io.fd, !keep);
			}
		}
	}
}

static int refuse(char *err, size_t errlen, const char *why, const char *name)
{
	snprintf(err, errlen, "%s%s%s", why, name ? ": " : "", name ? name : "");
	log_error("re-exec refused: %s", err);
	return -1;
}

static int check_reexec(struct daemon *d, char *err, size_t errlen)
{
	if (d->shutting_down)
		return refuse(err, errlen, "batond is shutting down", NULL);
	if (!d->exe)
		return refuse(err, errlen, "batond does not know its own binary", NULL);
	struct list *pos;
	list_for_each(pos, &d->services) {
		struct service *svc = container_of(pos, struct service, link);
		if (svc->upgrade.active)
			return refuse(err, errlen, "an upgrade is in progress", svc->name);
	}
	return 0;
}

int reexec_run(struct daemon *d, int reply_fd, char *err, size_t errlen)
{
	if (check_reexec(d, err, errlen) < 0)
		return -1;
	int fd = memfd_create("baton-state", 0);
	if (fd < 0 || write_state(d, fd, reply_fd) < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		snprintf(err, errlen, "cannot save the state: %s", strerror(errno));
		log_error("re-exec: %s", err);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	char value[32];
	snprintf(value, sizeof(value), "%d", fd);
	setenv(STATE_ENV, value, 1);
	// The binary running now, open across the exec: the new one hands the
	// services back to it if it cannot resume them.
	int exe = open("/proc/self/exe", O_RDONLY);
	snprintf(value, sizeof(value), "%d,%d", exe, fd);
	if (exe >= 0 && setenv(FALLBACK_ENV, value, 1) < 0) {
		close(exe);
		exe = -1;
	}
	keep_fds(d, reply_fd, true);
	log_info("re-executing %s", d->exe);
	// Signals wait, blocked, until the new batond has its handlers: a SIGTERM
	// now must drain the services, not end batond with their supervision.
	sigset_t all, old;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old);
	execv(d->exe, d->argv);
	sigprocmask(SIG_SETMASK, &old, NULL);
	snprintf(err, errlen, "exec %s: %s", d->exe, strerror(errno));
	log_error("re-exec failed, batond goes on as it was: %s", err);
	keep_fds(d, reply_fd, false);
	unsetenv(STATE_ENV);
	unsetenv(FALLBACK_ENV);
	if (exe >= 0)
		close(exe);
	close(fd);
	return -1;
}

/* ---- reading ---- */

bool reexec_resuming(void)
{
	return getenv(STATE_ENV) != NULL;
}

struct word_list {
	char **words;
	size_t n;
};

struct state {
	char *text;
	size_t len, pos;
	struct protocol_record rec;
	struct config *confs;
	struct word_list *argv, *env; /* per definition, from the word records */
	bool words_applied;
	struct listener **listeners; /* by id - 1 */
	size_t nlisteners;
	int reply_fd;
	struct reexec_fds *fds;
};

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
	const char *len;
	if (next_record(st) < 0 || strcmp(st->rec.type, "blob") != 0 ||
		strcmp(protocol_record_get(&st->rec, "name"), name) != 0 ||
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
	d->notify_path = opt(st, "notify_path");
	st->fds->control = (int)num(st, "control_fd");
	st->fds->notify = (int)num(st, "notify_fd");
	set_cloexec(st->fds->control, true);
	set_cloexec(st->fds->notify, true);
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
	list_append(&d->listeners, &l->link);
	return 0;
}

// The bytes that follow the record just read (end_with_bytes), copied.
static char *take_bytes(struct state *st)
{
	const char *len = protocol_record_get(&st->rec, "length");
	char *end;
	errno = 0;
	unsigned long long n = len ? strtoull(len, &end, 10) : 0;
	if (!len || *end || errno || n >= st->len - st->pos || st->text[st->pos + n] != '\n' ||
		memchr(st->text + st->pos, '\0', n))
		return NULL;
	char *text = strndup(st->text + st->pos, n);
	st->pos += n + 1;
	return text;
}

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

static struct service_conf *conf_of(struct state *st, const char *name)
{
	size_t id = (size_t)num(st, "conf");
	if (id >= st->confs->nservices)
		return NULL;
	struct service_conf *conf = st->confs->services[id];
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

static struct generation *resume_gen(struct service *svc, struct state *st)
{
	struct service_conf *conf = conf_of(st, svc->name);
	if (!conf)
		return NULL;
	struct generation saved = {.number = (unsigned)num(st, "number"),
		.role = (enum gen_role)num(st, "role"), .started_at = when(st, "started_at"),
		.drain_at = when(st, "drain_at")};
	struct listener **ls = gen_listeners(st, conf->nsockets);
	struct generation *gen = ls ? generation_restore(svc, &saved, conf, ls) : NULL;
	if (!gen)
		free(ls);
	return gen;
}

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
	int exec_fd = (int)num(st, "exec_fd"), ready_fd = (int)num(st, "ready_fd");
	set_cloexec(exec_fd, true);
	set_cloexec(ready_fd, true);
	return proc_restore(gen, &saved, when(st, "timer_at"), exec_fd, ready_fd) ? 0
											    : -1;
}

// Reads the records after the daemon's, up to "end".
static int resume_records(struct daemon *d, struct state *st)
{
	struct service *svc = NULL;
	struct generation *gen = NULL;
	while (next_record(st) == 0) {
		const char *type = st->rec.type;
		int rc = 0;
		if (strcmp(type, "end") == 0)
			return 0;
		if (strcmp(type, "listener") == 0)
			rc = resume_listener(d, st);
		else if (strcmp(type, "conf") == 0)
			rc = set_command(st);
		else if (strcmp(type, "word") == 0)
			rc = add_word(st);
		else if (strcmp(type, "config_service") == 0)
			rc = add_config_service(d, st);
		else if (strcmp(type, "service") == 0)
			rc = apply_words(st) == 0 && (svc = resume_service(d, st)) ? 0 : -1;
		else if (strcmp(type, "gen") == 0)
			rc = svc && (gen = resume_gen(svc, st)) ? 0 : -1;
		else if (strcmp(type, "proc") == 0)
			rc = gen ? resume_proc(gen, st) : -1;
		if (rc < 0) {
			log_error("re-exec: cannot restore the %s record", type);
			return -1;
		}
	}
	return -1;
}

static void answer(int fd, bool ok, bool handed_back)
{
	if (fd < 0)
		return;
	char msg[192];
	const char *result = !ok ? "error failed the new batond could not resume"
		: handed_back	? "error failed the new batond could not resume: the one before "
				  "took the services back and goes on"
				: "ok";
	int n = snprintf(msg, sizeof(msg), "reexec pid=%d version=%s\n%s\n", (int)getpid(),
		BATON_VERSION, result);
	ssize_t rc = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)rc;
	close(fd);
}

static int resume(struct daemon *d, struct state *st)
{
	char *errors = NULL;
	size_t magic = strlen(STATE_MAGIC);
	if (st->len <= magic || memcmp(st->text, STATE_MAGIC "\n", magic + 1) != 0) {
		log_error("re-exec: the state is not of a version this batond reads");
		return -1;
	}
	st->pos = magic + 1;
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
	if (!d->config || !st->confs || daemon_prepare(d) < 0 || resume_daemon(d, st) < 0)
		return -1;
	return resume_records(d, st);
}

// The descriptors this process was given open across the exec, sorted.
struct fd_list {
	int *fds;
	size_t n;
};

static struct fd_list inherited_fds(void)
{
	struct fd_list l = {0};
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return l;
	struct dirent *e;
	while ((e = readdir(dir))) {
		int fd = atoi(e->d_name), flags;
		if (fd <= 2 || fd == dirfd(dir) || (flags = fcntl(fd, F_GETFD)) < 0 ||
			(flags & FD_CLOEXEC))
			continue;
		int *fds = realloc(l.fds, (l.n + 1) * sizeof(int));
		if (!fds)
			break;
		l.fds = fds;
		l.fds[l.n++] = fd;
	}
	closedir(dir);
	return l;
}

/*
 * A new batond that cannot resume hands the services back to the binary that
 * wrote the state, which reads it again and goes on as before: what this one
 * was given open is open again across the exec, and signals, still blocked
 * (daemon_unblock_signals comes after a resume), wait for it. Returns only if
 * that exec fails.
 */
static void hand_back(struct daemon *d, int exe, int state, const struct fd_list *kept)
{
	log_error("re-exec: cannot resume: handing the services back to the batond before");
	for (size_t i = 0; i < kept->n; i++)
		set_cloexec(kept->fds[i], false);
	// Executed from its descriptor, which need not stay open in it.
	set_cloexec(exe, true);
	char value[16];
	snprintf(value, sizeof(value), "%d", state);
	if (lseek(state, 0, SEEK_SET) == 0 && setenv(STATE_ENV, value, 1) == 0 &&
		setenv(HANDED_BACK_ENV, "1", 1) == 0)
		fexecve(exe, d->argv, environ);
	log_error("re-exec: cannot hand the services back: %s", strerror(errno));
	unsetenv(STATE_ENV);
	unsetenv(HANDED_BACK_ENV);
}

int reexec_resume(struct daemon *d, struct reexec_fds *fds)
{
	struct state st = {.reply_fd = -1, .fds = fds};
	fds->control = fds->notify = -1;
	int fd = atoi(getenv(STATE_ENV)), exe = -1, state = -1;
	const char *fallback = getenv(FALLBACK_ENV);
	if (!fallback || sscanf(fallback, "%d,%d", &exe, &state) != 2)
		exe = state = -1;
	bool handed_back = fds->handed_back = getenv(HANDED_BACK_ENV) != NULL;
	unsetenv(STATE_ENV);
	unsetenv(FALLBACK_ENV);
	unsetenv(HANDED_BACK_ENV);
	struct fd_list kept = exe >= 0 ? inherited_fds() : (struct fd_list){0};
	int rc = read_all(fd, &st) == 0 ? resume(d, &st) : -1;
	if (rc < 0 && exe >= 0 && state >= 0)
		hand_back(d, exe, state, &kept);
	free(kept.fds);
	if (exe >= 0)
		close(exe);
	if (state >= 0 && state != fd)
		close(state);
	close(fd);
	answer(st.reply_fd, rc == 0, handed_back);
	if (st.confs)
		free_words(&st);
	config_destroy(st.confs);
	free(st.listeners);
	free(st.text);
	if (rc < 0) {
		log_error("re-exec: cannot resume: exiting; the services are left running");
		return -1;
	}
	return 0;
}

void reexec_resumed(struct daemon *d, const struct reexec_fds *fds)
{
	if (fds->handed_back)
		log_warn("re-exec: the new batond could not resume: batond %s took the services "
			 "back",
			BATON_VERSION);
	log_info("batond %s resumed after a re-exec: %zu process%s, control socket %s",
		BATON_VERSION, d->lc.procs.count, d->lc.procs.count == 1 ? "" : "es",
		d->control_path);
	// Children that ended during the exec were not reaped: reap them now.
	ev_feed_signal_event(d->loop, SIGCHLD);
}
