#include "control.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

#define ACCEPT_BATCH 32
#define ACCEPT_PAUSE 0.1
#define READ_CHUNK 4096
#define REPLIES_UNREAD_MAX (64u << 10) /* past this, a client's requests are not read */

struct control {
	struct daemon *d;
	struct control_handler handler;
	char *path;
	ev_io accept_io;
	ev_timer accept_pause; /* out of fds: accepting resumes after a pause */
	ev_idle reaper;        /* frees closed clients once the loop is back */
	ev_timer resumer;      /* reads the next requests of clients whose wait ended */
	struct list resuming;  /* struct client, by resume_link */
	struct list clients;
	struct list dead;
	unsigned nclients;
	unsigned nstreams;   /* clients receiving events */
	unsigned nfollowers; /* clients receiving output (client_follow_logs) */
	struct log_limit denied_limit, accept_limit, evict_limit;
};

static void client_cb(struct ev_loop *loop, ev_io *w, int revents);
static void client_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents);

unsigned control_clients(const struct control *c)
{
	return c->nclients;
}

int control_fd(const struct control *c)
{
	return c->accept_io.fd;
}

static void client_close(struct client *c)
{
	if (c->dead)
		return;
	struct control *ctl = c->control;
	struct ev_loop *loop = ctl->d->loop;
	c->dead = true;
	ev_io_stop(loop, &c->io);
	ev_timer_stop(loop, &c->timeout);
	close(c->io.fd);
	c->wait = 0;
	c->waiting_on = NULL;
	list_remove(&c->resume_link);
	list_remove(&c->link);
	list_append(&ctl->dead, &c->link);
	ctl->nclients--;
	ev_idle_start(loop, &ctl->reaper);
	if (ctl->handler.closed)
		ctl->handler.closed(ctl->handler.data, c);
	if (c->streaming) {
		c->streaming = false;
		if (c->follows_logs)
			ctl->nfollowers--;
		else
			ctl->nstreams--;
		ctl->handler.streams_changed(ctl->handler.data);
	}
}

static void reaper_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	(void)revents;
	struct control *ctl = container_of(w, struct control, reaper);
	while (!list_empty(&ctl->dead)) {
		struct client *c = container_of(ctl->dead.next, struct client, link);
		list_remove(&c->link);
		protocol_buf_finish(&c->out);
		free(c);
	}
	ev_idle_stop(loop, w);
}

// The bytes of output not sent yet.
static size_t pending(const struct client *c)
{
	return c->out.len - c->out_sent;
}

size_t client_pending(const struct client *c)
{
	return pending(c);
}

static void update_events(struct client *c)
{
	if (c->dead)
		return;
	int events = pending(c) > 0 ? EV_WRITE : 0;
	// Stop reading while output piles up: a client that does not read its
	// replies cannot make batond buffer without end, nor many such clients.
	size_t unread_max = c->streaming ? CONTROL_STREAM_OUTPUT_MAX : REPLIES_UNREAD_MAX;
	if (!c->closing && !c->read_eof && pending(c) < unread_max)
		events |= EV_READ;
	struct ev_loop *loop = c->control->d->loop;
	if (events == 0) {
		if (c->closing)
			client_close(c);
		else
			ev_io_stop(loop, &c->io);
		return;
	}
	if ((c->io.events & (EV_READ | EV_WRITE)) == events && ev_is_active(&c->io))
		return;
	ev_io_stop(loop, &c->io);
	ev_io_set(&c->io, c->io.fd, events);
	ev_io_start(loop, &c->io);
}

// A busy client whose reply is sent as it reads it (logs) must go on reading:
// one that has taken nothing of it for CONTROL_REQUEST_TIMEOUT is closed, as
// one that leaves its replies unread is. progress: some was just sent.
static void arm_unread(struct client *c, bool progress)
{
	struct ev_loop *loop = c->control->d->loop;
	if (!c->busy || c->streaming || c->dead)
		return;
	if (pending(c) == 0) {
		ev_timer_stop(loop, &c->timeout);
		return;
	}
	if (progress || !ev_is_active(&c->timeout)) {
		ev_timer_stop(loop, &c->timeout);
		ev_timer_set(&c->timeout, CONTROL_REQUEST_TIMEOUT, 0);
		ev_timer_start(loop, &c->timeout);
	}
}

// Writes what the socket takes; returns -1 when the client is gone. What is
// sent is dropped from the buffer only once it is as long as what is left: a
// reply of 25 MB goes out a socket buffer at a time, and moving the rest to
// the front after each would copy it a hundred times.
static int flush(struct client *c)
{
	bool sent = false;
	while (pending(c) > 0) {
		ssize_t n = send(c->io.fd, c->out.data + c->out_sent, pending(c),
			MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			client_close(c);
			return -1;
		}
		c->out_sent += (size_t)n;
		c->stream_start -= (size_t)n < c->stream_start ? (size_t)n : c->stream_start;
		sent = sent || n > 0;
	}
	if (pending(c) == 0) {
		c->out.len = c->out_sent = 0;
	} else if (c->out_sent >= pending(c)) {
		protocol_buf_consume(&c->out, c->out_sent);
		c->out_sent = 0;
	}
	arm_unread(c, sent);
	return 0;
}

void client_send(struct client *c, const char *data, size_t len)
{
	if (c->dead)
		return;
	size_t max = c->streaming ? CONTROL_STREAM_OUTPUT_MAX + c->stream_start : CONTROL_OUTPUT_MAX;
	if (pending(c) + len > max) {
		log_warn("control: dropped a client (pid %d) that does not read its %s",
			(int)c->pid, c->follows_logs ? "output" : c->streaming ? "events" : "replies");
		client_close(c);
		return;
	}
	protocol_buf_add(&c->out, data, len);
	if (c->out.failed) {
		log_error("control: out of memory for a client's output");
		client_close(c);
		return;
	}
	if (flush(c) == 0)
		update_events(c);
}

void client_send_buf(struct client *c, struct protocol_buf *buf)
{
	if (buf->failed) {
		struct protocol_buf err = {0};
		protocol_error(&err, PROTOCOL_E_INTERNAL, "out of memory");
		client_send(c, err.data, err.len);
		protocol_buf_finish(&err);
	} else if (buf->len > 0) {
		client_send(c, buf->data, buf->len);
	}
	protocol_buf_finish(buf);
}

void client_close_later(struct client *c)
{
	c->closing = true;
	if (pending(c) == 0)
		client_close(c);
	else
		update_events(c);
}

static void send_error(struct client *c, const char *code, const char *message)
{
	struct protocol_buf buf = {0};
	protocol_error(&buf, code, message);
	client_send_buf(c, &buf);
}

// A client has CONTROL_REQUEST_TIMEOUT to send a whole request line, counted
// from its first byte, or from connecting or its last reply when it is idle.
static void arm_timeout(struct client *c)
{
	struct ev_loop *loop = c->control->d->loop;
	if (c->busy || c->streaming || c->dead) {
		ev_timer_stop(loop, &c->timeout);
		arm_unread(c, false);
		return;
	}
	if (c->inlen > 0 && ev_is_active(&c->timeout))
		return;
	ev_timer_stop(loop, &c->timeout);
	ev_timer_set(&c->timeout, CONTROL_REQUEST_TIMEOUT, 0);
	ev_timer_start(loop, &c->timeout);
}

static void client_timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)revents;
	struct client *c = container_of(w, struct client, timeout);
	// Replies still unread after all this time will not be read: waiting to
	// write them would keep the client, and its buffer, for good.
	if (pending(c) > 0) {
		client_close(c);
		return;
	}
	if (c->inlen > 0)
		send_error(c, PROTOCOL_E_USAGE, "no complete request line within 10 seconds");
	client_close_later(c);
}

static void run_line(struct client *c, const char *line, size_t len)
{
	struct protocol_request req;
	const char *code;
	char err[256];
	if (protocol_parse_request(&req, line, len, &code, err, sizeof(err)) < 0) {
		send_error(c, code, err);
		return;
	}
	struct control_handler *h = &c->control->handler;
	h->request(h->data, c, &req);
}

// Runs every complete request in the input, unless one is still waiting.
static void process_input(struct client *c)
{
	size_t start = 0;
	while (!c->dead && !c->busy && !c->closing && !c->streaming) {
		char *nl = memchr(c->in + start, '\n', c->inlen - start);
		if (!nl)
			break;
		size_t len = (size_t)(nl - (c->in + start));
		char line[PROTOCOL_REQUEST_MAX];
		memcpy(line, c->in + start, len);
		start += len + 1;
		run_line(c, line, len);
	}
	if (c->dead)
		return;
	memmove(c->in, c->in + start, c->inlen - start);
	c->inlen -= start;
	if (c->inlen == sizeof(c->in) && !c->busy) {
		send_error(c, PROTOCOL_E_TOO_LONG, "request line longer than 1023 bytes");
		c->inlen = 0;
		client_close_later(c);
		return;
	}
	arm_timeout(c);
}

void client_request_done(struct client *c)
{
	if (c->dead)
		return;
	c->busy = false;
	// Not from here: this runs inside the operation that ended the wait.
	if (list_empty(&c->resume_link))
		list_append(&c->control->resuming, &c->resume_link);
	// At once, in the loop's next turn: an idle callback could wait on a busy loop.
	ev_timer_start(c->control->d->loop, &c->control->resumer);
}

static void resumer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct control *ctl = container_of(w, struct control, resumer);
	while (!list_empty(&ctl->resuming)) {
		struct client *c = container_of(ctl->resuming.next, struct client, resume_link);
		list_remove(&c->resume_link);
		if (c->dead || c->busy)
			continue;
		process_input(c);
		if (!c->dead && c->read_eof && !c->busy && !c->streaming)
			client_close_later(c);
	}
	ev_timer_stop(loop, w);
}

static void client_read(struct client *c)
{
	if (c->inlen == sizeof(c->in)) {
		// Input while a request waits fills the buffer: nothing more is read.
		client_close_later(c);
		return;
	}
	ssize_t n = recv(c->io.fd, c->in + c->inlen, sizeof(c->in) - c->inlen, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		client_close(c);
		return;
	}
	if (n == 0) {
		// The peer has shut down its side: answer what it sent, then close.
		c->read_eof = true;
		process_input(c);
		if (!c->dead && !c->busy && !c->streaming)
			client_close_later(c);
		return;
	}
	// A watcher has no more requests to make: what it sends is dropped.
	if (!c->streaming)
		c->inlen += (size_t)n;
	process_input(c);
}

static void client_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	struct client *c = container_of(w, struct client, io);
	if ((revents & EV_WRITE) && flush(c) < 0)
		return;
	// A reply made as it is sent waits on this.
	if ((revents & EV_WRITE) && c->busy && pending(c) < CONTROL_DRAINED &&
		c->control->handler.drained)
		c->control->handler.drained(c->control->handler.data, c);
	if ((revents & EV_READ) && !c->dead)
		client_read(c);
	if (!c->dead && c->closing && pending(c) == 0) {
		client_close(c);
		return;
	}
	update_events(c);
}

/* ---- accepting ---- */

static bool peer_in_group(int fd, gid_t group, gid_t primary)
{
	if (primary == group)
		return true;
	gid_t groups[256];
	socklen_t len = sizeof(groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
		return false;
	for (size_t i = 0; i < len / sizeof(gid_t); i++) {
		if (groups[i] == group)
			return true;
	}
	return false;
}

static bool peer_allowed(struct control *ctl, int fd, const struct ucred *cred)
{
	if (cred->uid == 0 || cred->uid == geteuid())
		return true;
	struct config *conf = ctl->d->config;
	return conf && conf->has_control_group &&
		peer_in_group(fd, conf->control_gid, cred->gid);
}

static void refuse(struct control *ctl, int fd, const struct ucred *cred)
{
	unsigned dropped;
	if (log_limit_pass(&ctl->denied_limit, ev_now(ctl->d->loop), &dropped))
		log_warn("control: refused uid %u (pid %d): only root, uid %u%s may use batond%s",
			(unsigned)cred->uid, (int)cred->pid, (unsigned)geteuid(),
			ctl->d->config && ctl->d->config->has_control_group
				? " and members of control_group"
				: "",
			dropped ? " (more refused since)" : "");
	char line[256];
	snprintf(line, sizeof(line), "error %s uid %u may not use batond\n", PROTOCOL_E_DENIED,
		(unsigned)cred->uid);
	ssize_t rc = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)rc;
	close(fd);
}

// Closes the client that has waited longest without a request in progress.
static bool evict_idle(struct control *ctl)
{
	struct list *pos;
	list_for_each(pos, &ctl->clients) {
		struct client *c = container_of(pos, struct client, link);
		if (c->busy || c->streaming)
			continue;
		unsigned dropped;
		if (log_limit_pass(&ctl->evict_limit, ev_now(ctl->d->loop), &dropped))
			log_warn("control: %u clients connected: closing the oldest idle one "
				 "(pid %d)",
				ctl->nclients, (int)c->pid);
		client_close(c);
		return true;
	}
	return false;
}

static void add_client(struct control *ctl, int fd, const struct ucred *cred)
{
	if (ctl->nclients >= CONTROL_CLIENTS_MAX && !evict_idle(ctl)) {
		static const char line[] = "error limit too many clients waiting on batond\n";
		ssize_t rc = send(fd, line, sizeof(line) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)rc;
		close(fd);
		return;
	}
	struct client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->control = ctl;
	c->uid = cred->uid;
	c->pid = cred->pid;
	list_init(&c->resume_link);
	ev_io_init(&c->io, client_cb, fd, EV_READ);
	ev_timer_init(&c->timeout, client_timeout_cb, CONTROL_REQUEST_TIMEOUT, 0);
	list_append(&ctl->clients, &c->link);
	ctl->nclients++;
	ev_io_start(ctl->d->loop, &c->io);
	arm_timeout(c);
	// A request already sent is read now: a client that asked for something
	// (a watch) is not idle, and must not be closed to make room.
	client_read(c);
	if (!c->dead)
		update_events(c);
}

static void pause_accepting(struct control *ctl, int err)
{
	unsigned dropped;
	if (log_limit_pass(&ctl->accept_limit, ev_now(ctl->d->loop), &dropped))
		log_warn("control: accept: %s: pausing for %.0f ms", strerror(err),
			ACCEPT_PAUSE * 1000);
	ev_io_stop(ctl->d->loop, &ctl->accept_io);
	ev_timer_set(&ctl->accept_pause, ACCEPT_PAUSE, 0);
	ev_timer_start(ctl->d->loop, &ctl->accept_pause);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)loop;
	(void)revents;
	struct control *ctl = container_of(w, struct control, accept_io);
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			// Out of fds: an idle client makes room, or accepting pauses.
			if (errno == EMFILE && evict_idle(ctl))
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
				errno == ENOMEM)
				pause_accepting(ctl, errno);
			return;
		}
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
			close(fd);
			continue;
		}
		if (!peer_allowed(ctl, fd, &cred))
			refuse(ctl, fd, &cred);
		else
			add_client(ctl, fd, &cred);
	}
}

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)revents;
	struct control *ctl = container_of(w, struct control, accept_pause);
	ev_io_start(loop, &ctl->accept_io);
}

/* ---- the socket ---- */

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

// Tells whether a batond answers at path; removes a stale socket file.
static int check_existing(const struct sockaddr_un *sa, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(sa->sun_path, &st) < 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "control socket %s: exists and is not a socket", sa->sun_path);
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen,
			"control socket %s: another batond is running there; stop it, or give this "
			"one another socket with -s",
			sa->sun_path);
		return -1;
	}
	if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
		snprintf(err, errlen, "control socket %s: cannot remove stale socket: %s",
			sa->sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int set_group_access(const char *path, const struct config *conf)
{
	if (!conf || !conf->has_control_group)
		return 0;
	if (chown(path, (uid_t)-1, conf->control_gid) < 0)
		return -1;
	return chmod(path, 0660);
}

static int bind_control(struct daemon *d, const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	if (fill_addr(&sa, path) < 0) {
		snprintf(err, errlen, "control socket %s: path too long", path);
		return -1;
	}
	if (check_existing(&sa, err, errlen) < 0)
		return -1;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto error;
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, 128) < 0 || set_group_access(path, d->config) < 0)
		goto error;
	return fd;
error:
	snprintf(err, errlen, "control socket %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

struct control *control_adopt(struct daemon *d, const char *path, int fd,
	const struct control_handler *handler)
{
	struct control *ctl = calloc(1, sizeof(*ctl));
	if (!ctl || !(ctl->path = strdup(path))) {
		free(ctl);
		return NULL;
	}
	// Accepting in batches must never wait, whoever made the socket.
	int flags = fcntl(fd, F_GETFL);
	if (flags >= 0)
		fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	ctl->d = d;
	ctl->handler = *handler;
	list_init(&ctl->clients);
	list_init(&ctl->dead);
	list_init(&ctl->resuming);
	ev_io_init(&ctl->accept_io, accept_cb, fd, EV_READ);
	ev_timer_init(&ctl->accept_pause, accept_pause_cb, ACCEPT_PAUSE, 0);
	ev_idle_init(&ctl->reaper, reaper_cb);
	ev_timer_init(&ctl->resumer, resumer_cb, 0, 0);
	ev_io_start(d->loop, &ctl->accept_io);
	return ctl;
}

struct control *control_create(struct daemon *d, const char *path,
	const struct control_handler *handler, char *err, size_t errlen)
{
	int fd = bind_control(d, path, err, errlen);
	if (fd < 0)
		return NULL;
	struct control *ctl = control_adopt(d, path, fd, handler);
	if (!ctl) {
		snprintf(err, errlen, "control socket: out of memory");
		close(fd);
		unlink(path);
	}
	return ctl;
}

void control_destroy(struct control *ctl, bool remove_file)
{
	if (!ctl)
		return;
	struct ev_loop *loop = ctl->d->loop;
	while (!list_empty(&ctl->clients)) {
		struct client *c = container_of(ctl->clients.next, struct client, link);
		// A watch ends with batond: tell the watcher it ended normally.
		if (c->streaming && !c->busy) {
			client_send(c, "ok\n", 3);
			if (!c->dead)
				flush(c);
		}
		if (!c->dead)
			client_close(c);
	}
	ev_timer_stop(loop, &ctl->resumer);
	reaper_cb(loop, &ctl->reaper, 0);
	ev_io_stop(loop, &ctl->accept_io);
	ev_timer_stop(loop, &ctl->accept_pause);
	close(ctl->accept_io.fd);
	if (remove_file)
		unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

void client_set_streaming(struct client *c, const char *svc)
{
	bool on = svc != NULL;
	if (c->dead || on == c->streaming)
		return;
	c->streaming = on;
	c->control->nstreams += on ? 1 : -1;
	snprintf(c->watch, sizeof(c->watch), "%s", on ? svc : "");
	arm_timeout(c);
	c->control->handler.streams_changed(c->control->handler.data);
}

void client_follow_logs(struct client *c, const char *svc)
{
	if (c->dead || c->streaming)
		return;
	c->streaming = c->follows_logs = true;
	// The lines kept, sent first, do not count against what a stream may owe.
	c->stream_start = pending(c);
	c->control->nfollowers++;
	snprintf(c->watch, sizeof(c->watch), "%s", svc);
	arm_timeout(c);
}

// Whether c streams what follows and svc is among what it streams.
static bool streams(const struct client *c, bool logs, const char *svc)
{
	return c->streaming && !c->dead && c->follows_logs == logs &&
		(!c->watch[0] || !svc || strcmp(c->watch, svc) == 0);
}

static bool any_stream(const struct control *ctl, bool logs, const char *svc)
{
	if ((logs ? ctl->nfollowers : ctl->nstreams) == 0)
		return false;
	struct list *pos;
	list_for_each(pos, &ctl->clients) {
		if (streams(container_of(pos, struct client, link), logs, svc))
			return true;
	}
	return false;
}

bool control_watched(const struct control *ctl, const char *svc)
{
	return any_stream(ctl, false, svc);
}

bool control_followed(const struct control *ctl, const char *svc)
{
	return any_stream(ctl, true, svc);
}

static void each_stream(struct control *ctl, bool logs, const char *svc,
	void (*fn)(struct client *client, void *data), void *data)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ctl->clients) {
		struct client *c = container_of(pos, struct client, link);
		if (streams(c, logs, svc))
			fn(c, data);
	}
}

void control_each_stream(struct control *ctl, const char *svc,
	void (*fn)(struct client *client, void *data), void *data)
{
	each_stream(ctl, false, svc, fn, data);
}

void control_each_follower(struct control *ctl, const char *svc,
	void (*fn)(struct client *client, void *data), void *data)
{
	each_stream(ctl, true, svc, fn, data);
}

void control_each_client(struct control *ctl, void (*fn)(struct client *client, void *data),
	void *data)
{
	struct list *pos, *tmp;
	list_for_each_safe(pos, tmp, &ctl->clients) {
		struct client *c = container_of(pos, struct client, link);
		if (!c->dead)
			fn(c, data);
	}
}
