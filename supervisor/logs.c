#include "logs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "log.h"
#include "logfile.h"
#include "logline.h"
#include "logring.h"

// batond's stderr may hold this much not yet written; past it, the output of
// services with log_overflow = block is not read until it is half written.
#define SINK_MAX (256u << 10)
// One write: whole lines, and on a pipe no more than a write that is atomic,
// so that batond's own log lines never land inside another line.
#define SINK_WRITE_MAX 4096
// batond's own lines are kept up to this much more, since it last caught up,
// whatever the services left: they are what an operator needs most.
#define OWN_MAX (64u << 10)
// A file's lines are gathered up to this much before they are written.
#define FILE_BATCH (64u << 10)
// At a re-exec or an exit, what the sinks hold is written within this time.
#define FLUSH_WAIT_MS 2000

// A service's output: its last lines and its counters.
struct svc_log {
	struct list link;
	struct service *svc;
	char name[PROTOCOL_NAME_MAX + 1]; /* the service's, said after it is gone */
	struct logring ring;
	struct logs_counters n;
	bool waiting;  /* its output is not read until stderr has caught up */
	bool dropping; /* its lines are dropped until stderr has caught up */
};

// A log file, shared by the services that name its path.
struct file_sink {
	struct list link;
	char *path;
	uint64_t max_size;
	unsigned keep;
	struct logfile *f; /* NULL when it could not be opened */
	struct protocol_buf pending;
	struct log_limit errors;
};

// batond's stderr, written without waiting.
struct stderr_sink {
	int fd;
	bool socket; /* written with send(MSG_DONTWAIT): its fd is batond's own */
	struct protocol_buf pending;
	ev_io io; /* while it takes no more */
	unsigned waiting;  /* services whose output waits on it */
	unsigned dropping; /* services whose lines it drops */
	size_t own;        /* bytes of batond's own lines since it last caught up */
	bool flushing;
};

struct logs {
	struct daemon *d;
	struct daemon_subscriber sub;
	struct list services; /* struct svc_log */
	struct list files;    /* struct file_sink */
	struct stderr_sink err;
	struct log_writer writer; /* batond's own lines, into err */
	ev_prepare flusher; /* writes what the sinks gathered, before the loop waits */
	bool unused_files; /* a generation went: close the files none writes to now */
	ev_idle reclaimer;  /* frees the oldest files rotations dropped, a step at a time */
	struct list replies; /* struct reply: logs replies under way */
	ev_timer replier;    /* takes each a step further, a turn of the loop at a time */
};

// What a step frees of a file a rotation dropped (logfile_reclaim): a few
// milliseconds of the filesystem's work at most, between two turns of the loop.
#define RECLAIM_STEP (4u << 20)

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- services ---- */

static void replies_forget(struct logs *l, const struct svc_log *s);
static void replies_join(struct logs *l, struct svc_log *s);

// A service's log, kept in its faces.logs from its first line to its removal.
static struct svc_log *find(struct logs *l, const struct service *svc)
{
	(void)l;
	return svc->faces.logs;
}

static struct svc_log *svc_log_of(struct logs *l, struct service *svc)
{
	struct svc_log *s = find(l, svc);
	if (s || !(s = calloc(1, sizeof(*s))))
		return s;
	s->svc = svc;
	snprintf(s->name, sizeof(s->name), "%s", svc->name);
	svc->faces.logs = s;
	logring_init(&s->ring, (size_t)svc->conf->log.buffer);
	list_append(&l->services, &s->link);
	replies_join(l, s);
	return s;
}

static void say_dropped(struct svc_log *s)
{
	unsigned long n = s->n.unsaid;
	s->n.unsaid = 0;
	if (n)
		log_warn("%s: %lu line%s dropped: batond's stderr took no more (log_overflow = drop)",
			s->name, n, n == 1 ? "" : "s");
}

// Frees a service's log, and touches nothing of the service: at shutdown the
// services are gone first (logs_destroy).
static void svc_log_release(struct logs *l, struct svc_log *s)
{
	say_dropped(s);
	replies_forget(l, s); /* a reply under way reads it no more */
	list_remove(&s->link);
	l->err.waiting -= s->waiting;
	l->err.dropping -= s->dropping;
	logring_finish(&s->ring);
	free(s);
}

// The log of a service removed, as it goes.
static void svc_log_free(struct logs *l, struct svc_log *s)
{
	s->svc->faces.logs = NULL;
	svc_log_release(l, s);
}

/* ---- batond's stderr ---- */

// A descriptor of batond's stderr that no write waits on: a pipe or a
// terminal opened again, so that its non-blocking mode is batond's alone; a
// socket written with MSG_DONTWAIT. A regular file never keeps a write
// waiting, and is written where batond's own log lines go, at its offset.
static void stderr_open(struct stderr_sink *e)
{
	struct stat st;
	if (fstat(2, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
		e->fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (e->fd >= 0)
			return;
	}
	e->fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
	e->socket = e->fd >= 0 && S_ISSOCK(st.st_mode);
}

// The bytes of the next write: whole lines, at most SINK_WRITE_MAX unless
// one line is longer.
static size_t chunk(const struct protocol_buf *b)
{
	if (b->len <= SINK_WRITE_MAX)
		return b->len;
	const char *end = memrchr(b->data, '\n', SINK_WRITE_MAX);
	if (end)
		return (size_t)(end - b->data) + 1;
	end = memchr(b->data, '\n', b->len);
	return end ? (size_t)(end - b->data) + 1 : b->len;
}

static ssize_t stderr_write(struct stderr_sink *e, const char *data, size_t n)
{
	if (e->socket)
		return send(e->fd, data, n, MSG_DONTWAIT | MSG_NOSIGNAL);
	return write(e->fd, data, n);
}

// stderr holds less than half of SINK_MAX again: the services it paused are
// read again, and what it dropped is said.
static void caught_up(struct logs *l)
{
	struct stderr_sink *e = &l->err;
	e->own = 0;
	struct list *pos;
	list_for_each(pos, &l->services) {
		struct svc_log *s = container_of(pos, struct svc_log, link);
		if (!e->waiting && !e->dropping)
			break;
		if (s->waiting) {
			s->waiting = false;
			e->waiting--;
			service_pause_output(s->svc, false);
		}
		if (s->dropping) {
			s->dropping = false;
			e->dropping--;
			say_dropped(s);
		}
	}
	log_say_dropped();
}

// Writes what stderr takes; returns -1 when it takes no more now.
static int stderr_write_pending(struct stderr_sink *e)
{
	while (e->pending.len > 0) {
		ssize_t n = stderr_write(e, e->pending.data, chunk(&e->pending));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return -1;
		// Gone (EPIPE...): what it held cannot be written anywhere.
		protocol_buf_consume(&e->pending, n < 0 ? e->pending.len : (size_t)n);
	}
	return 0;
}

// Writes what stderr takes, and what catching up has to say; returns -1
// when it takes no more now.
static int stderr_flush(struct logs *l)
{
	struct stderr_sink *e = &l->err;
	e->flushing = true;
	int rc = stderr_write_pending(e);
	if (e->pending.len < SINK_MAX / 2) {
		caught_up(l);
		if (rc == 0)
			rc = stderr_write_pending(e);
	}
	e->flushing = false;
	return rc;
}

static void stderr_writable_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)revents;
	struct logs *l = container_of(w, struct logs, err.io);
	if (stderr_flush(l) == 0)
		ev_io_stop(loop, w);
}

static void to_stderr(struct logs *l, struct svc_log *s, const struct logline *line, bool json)
{
	struct stderr_sink *e = &l->err;
	struct service *svc = s->svc;
	if (svc->conf->log.drop && (s->dropping || e->pending.len >= SINK_MAX)) {
		// Until stderr has caught up: not a line here and there as it takes some.
		if (!s->dropping) {
			s->dropping = true;
			e->dropping++;
		}
		s->n.dropped++;
		s->n.unsaid++;
		return;
	}
	if (json)
		logline_json(&e->pending, line);
	else
		logline_text(&e->pending, line, false);
	if (e->pending.len >= SINK_MAX && !svc->conf->log.drop && !s->waiting) {
		s->waiting = true;
		e->waiting++;
		service_pause_output(svc, true);
	}
}

// Takes a line of batond's own, after what the services wrote before it:
// beyond what they may fill, up to OWN_MAX more.
static bool own_line(struct log_writer *w, const char *line, size_t len)
{
	struct logs *l = container_of(w, struct logs, writer);
	struct stderr_sink *e = &l->err;
	if (e->pending.len + len > SINK_MAX && e->own + len > OWN_MAX)
		return false;
	protocol_buf_add(&e->pending, line, len);
	e->own += len;
	// Written now if stderr takes it, as a line logged before the loop is.
	if (!e->flushing && !ev_is_active(&e->io) && stderr_flush(l) < 0)
		ev_io_start(l->d->loop, &e->io);
	return true;
}

/* ---- files ---- */

static struct file_sink *file_of(struct logs *l, const struct log_conf *conf,
	const char *service)
{
	struct list *pos;
	list_for_each(pos, &l->files) {
		struct file_sink *f = container_of(pos, struct file_sink, link);
		if (strcmp(f->path, conf->path) == 0)
			return f;
	}
	struct file_sink *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(conf->path))) {
		free(f);
		return NULL;
	}
	f->max_size = conf->max_size;
	f->keep = conf->keep;
	char err[512];
	if (!(f->f = logfile_open(conf->path, conf->max_size, conf->keep, err, sizeof(err))))
		log_error("%s: %s: its lines are dropped until batonctl logs --reopen", service, err);
	list_append(&l->files, &f->link);
	return f;
}

// Writes what a file gathered; a failure is logged at most once a second.
static void file_flush(struct file_sink *f)
{
	if (f->pending.len == 0)
		return;
	int rc = f->f ? logfile_write(f->f, f->pending.data, f->pending.len) : 0;
	int rotate = f->f ? logfile_rotate_error(f->f) : 0;
	unsigned dropped;
	if ((rc < 0 || rotate) && log_limit_pass(&f->errors, wall_now(), &dropped))
		log_error("log file %s: %s%s%s", f->path, rc < 0 ? strerror(errno) : "",
			rc < 0 ? ": lines dropped" : "cannot rotate: ", rc < 0 ? "" : strerror(rotate));
	protocol_buf_consume(&f->pending, f->pending.len);
}

static void reclaimer_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	struct logs *l = container_of(w, struct logs, reclaimer);
	bool more = false;
	struct list *pos;
	list_for_each(pos, &l->files) {
		struct file_sink *f = container_of(pos, struct file_sink, link);
		more |= logfile_reclaim(f->f, RECLAIM_STEP) > 0;
	}
	if (!more)
		ev_idle_stop(loop, w);
}

static void to_file(struct logs *l, struct svc_log *s, const struct logline *line,
	const struct log_conf *conf)
{
	struct file_sink *f = file_of(l, conf, s->svc->name);
	if (!f || !f->f) {
		s->n.dropped++;
		return;
	}
	if (conf->json)
		logline_json(&f->pending, line);
	else
		logline_text(&f->pending, line, true);
	if (f->pending.len >= FILE_BATCH)
		file_flush(f);
}

static void file_free(struct file_sink *f)
{
	file_flush(f);
	logfile_close(f->f);
	protocol_buf_finish(&f->pending);
	list_remove(&f->link);
	free(f->path);
	free(f);
}

// Whether a generation of a service writes to the file at path.
static bool file_in_use(struct logs *l, const char *path)
{
	const struct list *pos, *g;
	list_for_each(pos, &l->d->services) {
		const struct service *svc = container_of(pos, const struct service, link);
		list_for_each(g, &svc->gens) {
			const struct log_conf *c =
				&container_of(g, const struct generation, link)->conf->log;
			if (c->sink == LOG_FILE && strcmp(c->path, path) == 0)
				return true;
		}
	}
	return false;
}

// A file is closed once no generation writes to it: after a reload gave its
// services another, their old generations gone, or removed them. It opens
// again, at the end, when a generation writes to it.
static void close_unused_files(struct logs *l)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &l->files) {
		struct file_sink *f = container_of(pos, struct file_sink, link);
		if (!file_in_use(l, f->path)) {
			log_info("log file %s closed: no service writes to it now", f->path);
			file_free(f);
		}
	}
}

/* ---- the flush ---- */

static void flush_files(struct logs *l)
{
	struct list *pos;
	list_for_each(pos, &l->files) {
		struct file_sink *f = container_of(pos, struct file_sink, link);
		file_flush(f);
		// A rotation in the write leaves a dropped file to free a step at a time.
		if (logfile_reclaiming(f->f))
			ev_idle_start(l->d->loop, &l->reclaimer);
	}
}

static void flusher_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	(void)revents;
	struct logs *l = container_of(w, struct logs, flusher);
	flush_files(l);
	if (l->unused_files) {
		l->unused_files = false;
		close_unused_files(l);
	}
	if (stderr_flush(l) < 0)
		ev_io_start(loop, &l->err.io);
	ev_prepare_stop(loop, w);
}

void logs_flush(struct logs *l)
{
	flush_files(l);
	for (int waited = 0; stderr_flush(l) < 0 && waited < FLUSH_WAIT_MS; waited += 50) {
		struct pollfd p = {l->err.fd, POLLOUT, 0};
		poll(&p, 1, 50);
	}
}

/* ---- followers ---- */

struct follow_line {
	const struct logline *line;
	struct protocol_buf record;
};

static bool passes(const struct logs_filter *f, const struct logline *line)
{
	return (!f->gen || f->gen == line->gen) && (!f->pid || f->pid == line->pid);
}

static void send_line(struct client *c, void *data)
{
	struct follow_line *fl = data;
	struct logs_filter f = {false, 0, c->follow_gen, c->follow_pid};
	if (!passes(&f, fl->line))
		return;
	if (fl->record.len == 0)
		logline_record(&fl->record, fl->line);
	client_send(c, fl->record.data, fl->record.len);
}

static void to_followers(struct logs *l, const struct logline *line)
{
	struct follow_line fl = {line, {0}};
	control_each_follower(l->d->control, line->service, send_line, &fl);
	protocol_buf_finish(&fl.record);
}

/* ---- a line ---- */

static void on_line(struct logs *l, const struct lifecycle_event *e)
{
	struct svc_log *s = svc_log_of(l, e->svc);
	const struct log_conf *conf = &e->gen->conf->log;
	struct logline line = {wall_now(), e->svc->name, e->pid, e->number,
		e->stream == 2 ? LOGLINE_ERR : LOGLINE_OUT, e->text, e->len,
		(e->flags & LINEBUF_CUT) != 0};
	if (!s)
		return;
	s->n.lines++;
	s->n.bytes += e->len;
	s->n.cut += line.cut;
	s->ring.max_bytes = (size_t)e->svc->conf->log.buffer;
	logring_add(&s->ring, &line);
	if (conf->sink == LOG_FILE)
		to_file(l, s, &line, conf);
	else if (conf->sink == LOG_STDERR)
		to_stderr(l, s, &line, conf->json);
	if (l->d->control && control_followed(l->d->control, e->svc->name))
		to_followers(l, &line);
	ev_prepare_start(l->d->loop, &l->flusher);
}

static void event_cb(struct daemon_subscriber *sub, const struct lifecycle_event *e)
{
	struct logs *l = container_of(sub, struct logs, sub);
	struct svc_log *s;
	if (e->kind == LC_OUTPUT) {
		on_line(l, e);
		return;
	}
	if (e->kind == LC_IDLE && e->svc->removed && (s = find(l, e->svc)))
		svc_log_free(l, s);
	// The generation is still there: the files are looked at once it is gone.
	if ((e->kind == LC_DRAINED || e->kind == LC_IDLE) && !list_empty(&l->files)) {
		l->unused_files = true;
		ev_prepare_start(l->d->loop, &l->flusher);
	}
}

/* ---- requests ---- */

// What a step of a reply reads of the services' lines (their records), or
// sends: a millisecond or two of the loop's time.
#define REPLY_STEP (256u << 10)

// A logs reply, built and sent a step at a time so that batond goes on with
// other work between: the kept lines read from each service's log as they
// were when the request came, sorted by time, cut to LOGS_REPLY_MAX; then,
// with follow, the lines that came since, and those to come.
struct reply {
	struct list link; /* in l->replies */
	struct client *c; /* NULL once it is closed: the reply is then freed */
	struct logs_filter f;
	bool follow;
	char *name; /* the service's, "" for all: followed after */
	struct source {
		struct svc_log *s; /* NULL once freed */
		struct logring_cursor cur;
		unsigned long long end; /* where its read ends: its next line at the request */
		size_t from, to;        /* its entries in v, in the order they came */
	} *sources;
	size_t nsources, at;     /* reading sources[at] */
	size_t sources_cap;
	unsigned long long lost; /* dropped from a service's log before they were read */
	struct entry {
		double time;
		size_t off, len;
	} *v;
	size_t n, cap;
	struct protocol_buf text; /* the entries' records */
	// Merging: the sources' entries in time order, into order.
	size_t *order;  /* v's indexes, merged; NULL for one source: v is in order */
	size_t merged;  /* in order so far */
	size_t *heap;   /* the sources with entries left, earliest next entry first */
	size_t nheap;
	bool merging;
	size_t next; /* sending: the entry to send next */
	bool sending;
	bool catching; /* with follow: the lines kept are sent, those since are read */
	bool held; /* its client has not read CONTROL_DRAINED yet: it waits for that */
};

static void add_entry(void *data, const struct logline *line)
{
	struct reply *r = data;
	if (!passes(&r->f, line))
		return;
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 256;
		struct entry *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			r->text.failed = true;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	size_t off = r->text.len;
	logline_record(&r->text, line);
	r->v[r->n++] = (struct entry){line->time, off, r->text.len - off};
}

static int by_time(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void reply_free(struct reply *r)
{
	list_remove(&r->link);
	free(r->order);
	free(r->heap);
	free(r->sources);
	free(r->name);
	free(r->v);
	protocol_buf_finish(&r->text);
	free(r);
}

// A service's first line while a reply that will follow it is under way:
// its lines are read with those that came since the request.
static void replies_join(struct logs *l, struct svc_log *s)
{
	struct list *pos;
	list_for_each(pos, &l->replies) {
		struct reply *r = container_of(pos, struct reply, link);
		if (!r->follow || (r->name[0] && strcmp(r->name, s->svc->name) != 0))
			continue;
		if (r->nsources == r->sources_cap) {
			size_t cap = 2 * r->sources_cap;
			struct source *more = realloc(r->sources, cap * sizeof(*more));
			if (!more) {
				r->text.failed = true;
				continue;
			}
			r->sources = more;
			r->sources_cap = cap;
		}
		struct source *src = &r->sources[r->nsources++];
		*src = (struct source){.s = s};
		logring_cursor_start(&s->ring, &src->cur); /* its end, 0: nothing before the request */
	}
}

static void replies_forget(struct logs *l, const struct svc_log *s)
{
	struct list *pos;
	list_for_each(pos, &l->replies) {
		struct reply *r = container_of(pos, struct reply, link);
		for (size_t i = 0; i < r->nsources; i++) {
			if (r->sources[i].s == s)
				r->sources[i].s = NULL;
		}
	}
}

// Reads about REPLY_STEP of the sources' lines (what they cost against
// their log_buffer, whether f passes them or not), each up to where it ended
// at the request, or, with catch_up, to its newest; returns true once every
// source is read.
static bool reply_read(struct reply *r, bool catch_up)
{
	size_t budget = REPLY_STEP;
	for (; r->at < r->nsources; r->at++) {
		struct source *src = &r->sources[r->at];
		if (!src->s)
			continue;
		if (src->from == src->to)
			src->from = src->to = r->n;
		unsigned long long skipped;
		size_t cost;
		bool done = logring_read(&src->s->ring, &src->cur, catch_up ? ULLONG_MAX : src->end,
			budget, src->s->svc->name, add_entry, r, &skipped, &cost);
		r->lost += skipped;
		src->to = r->n;
		if (!done)
			return false;
		if (cost >= budget) {
			r->at++;
			return r->at >= r->nsources;
		}
		budget -= cost;
	}
	return true;
}

// What a step of a merge puts in order: a millisecond or two.
#define MERGE_STEP 32768

static bool earlier(const struct reply *r, size_t a, size_t b)
{
	const struct entry *x = &r->v[r->sources[a].from], *y = &r->v[r->sources[b].from];
	return x->time < y->time || (x->time == y->time && x->off < y->off);
}

static void sift_down(struct reply *r, size_t i)
{
	for (;;) {
		size_t least = i, left = 2 * i + 1, right = left + 1;
		if (left < r->nheap && earlier(r, r->heap[left], r->heap[least]))
			least = left;
		if (right < r->nheap && earlier(r, r->heap[right], r->heap[least]))
			least = right;
		if (least == i)
			return;
		size_t t = r->heap[i];
		r->heap[i] = r->heap[least];
		r->heap[least] = t;
		i = least;
	}
}

// Starts merging the sources' entries, each source's in the order they came,
// across sources by time (then by the order they were read); false when there
// is no need: one source, or none. Out of memory, r->text.failed.
static bool merge_start(struct reply *r)
{
	size_t with = 0;
	for (size_t i = 0; i < r->nsources; i++)
		with += r->sources[i].from < r->sources[i].to;
	if (with < 2)
		return false;
	if (!(r->order = malloc(r->n * sizeof(*r->order))) ||
		!(r->heap = malloc(with * sizeof(*r->heap)))) {
		r->text.failed = true;
		return false;
	}
	for (size_t i = 0; i < r->nsources; i++) {
		if (r->sources[i].from < r->sources[i].to)
			r->heap[r->nheap++] = i;
	}
	for (size_t i = r->nheap / 2; i-- > 0;)
		sift_down(r, i);
	r->merging = true;
	return true;
}

// Puts up to MERGE_STEP more entries in order; returns true once all are.
static bool merge_step(struct reply *r)
{
	for (size_t n = 0; n < MERGE_STEP && r->nheap > 0; n++) {
		struct source *src = &r->sources[r->heap[0]];
		r->order[r->merged++] = src->from++;
		if (src->from == src->to)
			r->heap[0] = r->heap[--r->nheap];
		sift_down(r, 0);
	}
	return r->nheap == 0;
}

static const struct entry *entry_at(const struct reply *r, size_t i)
{
	return &r->v[r->order ? r->order[i] : i];
}

// The `cut` record of lines left out, of which dropped were dropped from a
// service's log before the reply read them; none when none.
static void put_cut(struct protocol_buf *buf, unsigned long long lines,
	unsigned long long dropped)
{
	if (lines == 0)
		return;
	protocol_record_begin(buf, "cut");
	protocol_record_int(buf, "lines", (long long)lines);
	protocol_record_int(buf, "max_bytes", LOGS_REPLY_MAX);
	if (dropped > 0)
		protocol_record_int(buf, "dropped", (long long)dropped);
	protocol_record_end(buf);
}

// Starts sending what was read, in order: a `cut` record when lines the
// request wanted are left out, the oldest past LOGS_REPLY_MAX, or lines
// dropped from a service's log before they were read.
static void reply_cut(struct reply *r, struct protocol_buf *buf)
{
	size_t first = r->f.some ? (r->f.lines < r->n ? r->n - r->f.lines : 0) : 0;
	// The newest lines that fit, and how many older ones were left out.
	size_t fit = r->n, bytes = 0;
	while (fit > first && bytes + entry_at(r, fit - 1)->len <= LOGS_REPLY_MAX)
		bytes += entry_at(r, --fit)->len;
	unsigned long long lost = r->lost;
	if (r->f.some)
		lost = r->n < r->f.lines ? (lost < r->f.lines - r->n ? lost : r->f.lines - r->n) : 0;
	put_cut(buf, fit - first + lost, lost);
	r->next = fit;
	r->sending = true;
}

// Appends about REPLY_STEP of the sorted records; returns true once all are.
static bool reply_fill(struct reply *r, struct protocol_buf *buf)
{
	size_t start = buf->len;
	while (r->next < r->n && buf->len - start < REPLY_STEP) {
		const struct entry *e = entry_at(r, r->next++);
		protocol_buf_add(buf, r->text.data + e->off, e->len);
	}
	return r->next >= r->n;
}

// With follow, after the lines kept: about REPLY_STEP of those that came
// since, from where each source's read ended, sorted by time; true once a
// step has read every source to its newest line, when following can begin
// in the same turn of the loop, so that no line comes between.
static bool catch_up_step(struct reply *r, struct protocol_buf *buf)
{
	r->n = r->at = 0;
	r->text.len = 0;
	for (size_t i = 0; i < r->nsources; i++)
		r->sources[i].from = r->sources[i].to = 0;
	unsigned long long lost = r->lost;
	bool caught_up = reply_read(r, true);
	qsort(r->v, r->n, sizeof(*r->v), by_time);
	put_cut(buf, r->lost - lost, r->lost - lost);
	for (size_t i = 0; i < r->n; i++)
		protocol_buf_add(buf, r->text.data + r->v[i].off, r->v[i].len);
	return caught_up;
}

// The reply's end: `ok`, or, with follow, the lines as they come. Its
// client takes requests again.
static void reply_end(struct reply *r, struct protocol_buf *buf)
{
	struct client *c = r->c;
	if (r->text.failed)
		buf->failed = true;
	bool follow = r->follow && !buf->failed;
	if (!follow && !buf->failed)
		protocol_buf_add(buf, "ok\n", 3);
	char *name = r->name;
	struct logs_filter f = r->f;
	r->name = NULL;
	reply_free(r);
	bool busy = c->busy;
	client_send_buf(c, buf);
	if (follow && !c->dead) {
		c->follow_gen = f.gen;
		c->follow_pid = f.pid;
		client_follow_logs(c, name);
	}
	free(name);
	if (busy)
		client_request_done(c);
}

// One step of a reply; returns true once it has ended (r is then freed).
static bool reply_step(struct reply *r)
{
	if (!r->c) {
		reply_free(r);
		return true;
	}
	struct protocol_buf buf = {0};
	if (!r->sending && !r->merging) {
		if (!reply_read(r, false) && !r->text.failed)
			return false;
		if (!r->text.failed && merge_start(r))
			return false;
	}
	if (r->merging && !r->text.failed) {
		if (!merge_step(r))
			return false;
		r->merging = false;
	}
	if (!r->sending && !r->text.failed)
		reply_cut(r, &buf);
	bool over = false;
	if (!r->catching && !r->text.failed && reply_fill(r, &buf)) {
		over = !r->follow;
		r->catching = r->follow;
	}
	if (r->catching && !r->text.failed)
		over = catch_up_step(r, &buf);
	if (buf.failed)
		r->text.failed = true; /* out of memory: the reply ends with an error */
	if (r->text.failed || over) {
		reply_end(r, &buf);
		return true;
	}
	client_send_buf(r->c, &buf);
	if (r->c && !r->c->dead) {
		// What the client has not read stays small: no copying of tens of
		// MB as it grows, or as what was sent is dropped from its front.
		r->held = client_pending(r->c) >= CONTROL_DRAINED;
		return false;
	}
	reply_free(r);
	return true;
}

static void replier_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct logs *l = container_of(w, struct logs, replier);
	struct list *pos, *tmp;
	bool more = false;
	list_for_each_safe(pos, tmp, &l->replies) {
		struct reply *r = container_of(pos, struct reply, link);
		if (!r->held && !reply_step(r))
			more = more || !r->held;
	}
	if (more)
		ev_timer_start(loop, w);
}

void logs_reply(struct logs *l, struct client *c, const struct service *svc,
	const struct logs_filter *f, bool follow)
{
	size_t n = svc ? 1 : list_length(&l->services);
	struct reply *r = calloc(1, sizeof(*r));
	if (!r || !(r->sources = calloc(n ? n : 1, sizeof(*r->sources))) ||
		!(r->name = strdup(svc ? svc->name : ""))) {
		if (r)
			free(r->sources);
		free(r);
		struct protocol_buf err = {0};
		protocol_error(&err, PROTOCOL_E_INTERNAL, "out of memory");
		client_send_buf(c, &err);
		return;
	}
	r->c = c;
	r->f = *f;
	r->follow = follow;
	r->sources_cap = n ? n : 1;
	struct list *pos;
	size_t lines = 0, bytes = 0;
	list_for_each(pos, &l->services) {
		struct svc_log *s = container_of(pos, struct svc_log, link);
		if ((!svc || s->svc == svc) && r->nsources < n) {
			struct source *src = &r->sources[r->nsources++];
			src->s = s;
			// Only a service's last lines can be among the last of all,
			// unless a filter passes some of them over.
			if (f->some && !f->gen && !f->pid)
				src->end = logring_cursor_last(&s->ring, &src->cur, f->lines);
			else
				src->end = logring_cursor_start(&s->ring, &src->cur);
			lines += logring_count(&s->ring);
			bytes += s->ring.used;
		}
	}
	// Room for what is held, in one allocation each, so that tens of MB are not
	// copied as they grow: each line's record is its text and a little more than
	// the header the ring counts it. Pages are not touched until written.
	if (lines > 256 && (r->v = malloc(lines * sizeof(*r->v))))
		r->cap = lines;
	if (lines > 256)
		protocol_buf_reserve(&r->text, bytes + lines * 32);
	r->text.failed = false; /* not reserved: grown as needed */
	list_append(&l->replies, &r->link);
	// Most replies are done in one step, at once.
	if (reply_step(r))
		return;
	c->busy = true;
	ev_timer_start(l->d->loop, &l->replier);
}

// The replies to c go on, the next turn of the loop: c has read most of
// what it was sent, or, closed, they are freed.
static void replies_wake(struct logs *l, struct client *c, bool closed)
{
	struct list *pos;
	list_for_each(pos, &l->replies) {
		struct reply *r = container_of(pos, struct reply, link);
		if (r->c == c && (r->held || closed)) {
			r->held = false;
			r->c = closed ? NULL : c;
			ev_timer_start(l->d->loop, &l->replier);
		}
	}
}

void logs_reply_drained(struct logs *l, struct client *c)
{
	replies_wake(l, c, false);
}

void logs_reply_cancel(struct logs *l, struct client *c)
{
	replies_wake(l, c, true);
}

int logs_reopen(struct logs *l, char *err, size_t errlen)
{
	int rc = 0;
	struct list *pos;
	list_for_each(pos, &l->files) {
		struct file_sink *f = container_of(pos, struct file_sink, link);
		file_flush(f);
		if ((f->f ? logfile_reopen(f->f) : -1) == 0)
			continue;
		int saved = errno;
		char why[512];
		if (!f->f && (f->f = logfile_open(f->path, f->max_size, f->keep, why, sizeof(why))))
			continue;
		if (rc == 0)
			snprintf(err, errlen, "log file %s: %s", f->path, f->f ? strerror(saved) : why);
		rc = -1;
	}
	return rc;
}

struct logs_counters logs_counters_of(struct logs *l, const struct service *svc)
{
	struct svc_log *s = find(l, svc);
	return s ? s->n : (struct logs_counters){0};
}

size_t logs_kept_bytes(struct logs *l, const struct service *svc)
{
	struct svc_log *s = find(l, svc);
	return s ? s->ring.used : 0;
}

void logs_each_kept(struct logs *l, const struct service *svc, size_t max_bytes,
	void (*fn)(void *data, const struct logline *line), void *data)
{
	struct svc_log *s = find(l, svc);
	if (s)
		logring_each_last(&s->ring, s->svc->name, max_bytes, fn, data);
}

int logs_restore_counters(struct logs *l, struct service *svc, const struct logs_counters *n)
{
	struct svc_log *s = svc_log_of(l, svc);
	if (!s)
		return -1;
	s->n = *n;
	// Said at the first flush, which finds stderr caught up.
	if (n->unsaid && !s->dropping) {
		s->dropping = true;
		l->err.dropping++;
	}
	return 0;
}

int logs_restore_line(struct logs *l, struct service *svc, const struct logline *line)
{
	struct svc_log *s = svc_log_of(l, svc);
	return s ? logring_add(&s->ring, line) : -1;
}

struct logs *logs_create(struct daemon *d)
{
	struct logs *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->d = d;
	l->sub.event = event_cb;
	list_init(&l->services);
	list_init(&l->files);
	stderr_open(&l->err);
	ev_io_init(&l->err.io, stderr_writable_cb, l->err.fd, EV_WRITE);
	ev_prepare_init(&l->flusher, flusher_cb);
	ev_idle_init(&l->reclaimer, reclaimer_cb);
	list_init(&l->replies);
	ev_timer_init(&l->replier, replier_cb, 0, 0);
	daemon_subscribe(d, &l->sub);
	// What batond logs goes after the lines before it, and never waits.
	l->writer.write = own_line;
	log_set_writer(&l->writer);
	return l;
}

void logs_destroy(struct logs *l)
{
	if (!l)
		return;
	// The services are gone (daemon_destroy_services comes first): the flush
	// that stderr catching up ends must not un-pause their output.
	struct list *pos;
	list_for_each(pos, &l->services) {
		struct svc_log *s = container_of(pos, struct svc_log, link);
		s->svc = NULL;
		s->waiting = false;
	}
	l->err.waiting = 0;
	logs_flush(l);
	log_set_writer(NULL);
	ev_io_stop(l->d->loop, &l->err.io);
	ev_prepare_stop(l->d->loop, &l->flusher);
	ev_idle_stop(l->d->loop, &l->reclaimer);
	ev_timer_stop(l->d->loop, &l->replier);
	while (!list_empty(&l->replies))
		reply_free(container_of(l->replies.next, struct reply, link));
	daemon_unsubscribe(l->d, &l->sub);
	while (!list_empty(&l->services))
		svc_log_release(l, container_of(l->services.next, struct svc_log, link));
	while (!list_empty(&l->files))
		file_free(container_of(l->files.next, struct file_sink, link));
	protocol_buf_finish(&l->err.pending);
	if (l->err.fd >= 0)
		close(l->err.fd);
	free(l);
}
