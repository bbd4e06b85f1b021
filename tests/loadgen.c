/*
 * HTTP/1.1 load generator for the upgrade and rollback tests.
 *
 * Every request attempt ends in exactly one outcome counter, so a test can prove that no
 * connection was refused or reset and no request failed while the service behind a shared
 * listening socket was replaced.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define HEAD_MAX (16 * 1024)
#define LINE_MAX_LEN 128
#define RBUF_SIZE (64 * 1024)
#define ERRNO_SEEN_MAX 512
#define EVENTS_MAX 256
#define TICK_MS 10
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_SEC UINT64_C(1000000000)
#define SWEEP_NS (5 * NS_PER_MS)
#define GRACE_NS (2 * NS_PER_SEC)
#define RETRY_NS (10 * NS_PER_MS)
#define SIGFD_TAG UINT64_MAX
#define REQUEST_FMT "GET %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"

/* Log-spaced buckets from 10 us with ratio 1.05: 320 of them reach 60 s. */
#define HIST_MIN_NS 10000.0
#define HIST_RATIO 1.05
#define HIST_BUCKETS 321

enum outcome {
	OUT_OK,
	OUT_BAD_STATUS,
	OUT_REFUSED,
	OUT_RESET,
	OUT_EOF,
	OUT_TIMEOUT,
	OUT_OTHER,
	OUT_COUNT
};

static const char *const outcome_names[OUT_COUNT] = {
	"ok", "bad_status", "refused", "reset", "eof", "timeout", "other",
};

enum note {
	NOTE_STATUS_LINE,
	NOTE_HEADER,
	NOTE_HEAD_TOO_LARGE,
	NOTE_LENGTH,
	NOTE_CHUNK,
	NOTE_UPGRADE,
	NOTE_EXTRA_BYTES,
	NOTE_NO_EOF,
	NOTE_DRAIN_ERROR,
	NOTE_COUNT
};

static const char *const note_text[NOTE_COUNT] = {
	"other: malformed status line",
	"other: malformed header line",
	"other: response head larger than 16 KiB",
	"other: invalid or conflicting Content-Length",
	"other: malformed chunked body",
	"other: unexpected 101 Switching Protocols",
	"bytes after a complete response, connection closed (not counted)",
	"no EOF within the timeout after a final response, connection closed (not counted)",
	"error while waiting for EOF after a complete response (not counted)",
};

enum conn_state {
	ST_IDLE,
	ST_WAIT,
	ST_PACED, /* with -r: waiting for the time of its next request */
	ST_CONNECTING,
	ST_SENDING,
	ST_RECEIVING,
	ST_DRAINING,
};

enum phase {
	PH_HEAD,
	PH_BODY,
	PH_BODY_EOF,
	PH_CHUNK_SIZE,
	PH_CHUNK_DATA,
	PH_CHUNK_END,
	PH_TRAILER,
	PH_DONE,
};

enum feed_result { FEED_MORE, FEED_DONE, FEED_BAD };

struct response {
	enum phase phase;
	enum note err;
	int status;
	bool close;
	uint64_t remaining;
	size_t head_len;
	size_t line_len;
	size_t trailer_len;
	char line[LINE_MAX_LEN];
	char head[HEAD_MAX];
};

struct head_info {
	int minor;
	bool has_length;
	uint64_t length;
	bool has_te;
	bool chunked;
	bool conn_close;
	bool conn_keep;
};

struct conn {
	int fd;
	bool keepalive;
	enum conn_state state;
	uint32_t events;
	size_t sent;
	uint64_t start_ns;
	uint64_t deadline_ns;
	uint64_t next_ns; /* with -r: when its next request is due */
	struct response resp;
};

struct histogram {
	uint64_t buckets[HIST_BUCKETS];
	uint64_t count;
	uint64_t max_ns;
};

struct options {
	const char *target;
	struct sockaddr_in addr;
	long conns;
	long keepalive;
	double duration;
	const char *path;
	long timeout_ms;
	long interval_ms;
	double rate; /* requests per second over all connections, or 0: each sends on answer */
	bool quiet;
};

struct ctx {
	struct options opt;
	int epfd;
	int sigfd;
	struct conn *conns;
	char *req_keep;
	char *req_close;
	size_t req_keep_len;
	size_t req_close_len;
	uint64_t count[OUT_COUNT];
	uint64_t connects;
	uint64_t in_flight;
	struct histogram hist;
	struct histogram interval_hist; // the requests answered since the last interval line
	uint64_t interval_failed;
	uint64_t next_interval_ns;
	uint64_t timeout_ns;
	uint64_t start_ns;
	uint64_t end_ns;
	uint64_t stop_at_ns;
	uint64_t grace_end_ns;
	uint64_t next_sweep_ns;
	uint64_t next_progress_ns;
	uint64_t pace_ns; /* with -r: the time between two requests of a connection */
	bool stopping;
	bool failed;
	unsigned noted;
	bool seen_errno[ERRNO_SEEN_MAX];
	char rbuf[RBUF_SIZE];
};

static void start_request(struct ctx *ctx, struct conn *c);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static bool is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static const char *errno_name(int err)
{
	const char *name = strerrorname_np(err);

	return name ? name : "unknown errno";
}

static void note(struct ctx *ctx, enum note n, int err)
{
	if (ctx->noted & (1u << n))
		return;
	ctx->noted |= 1u << n;
	if (err)
		fprintf(stderr, "loadgen: debug: %s: %s\n", note_text[n], errno_name(err));
	else
		fprintf(stderr, "loadgen: debug: %s\n", note_text[n]);
}

static void report_errno(struct ctx *ctx, int err, const char *op)
{
	size_t slot = err > 0 && err < ERRNO_SEEN_MAX ? (size_t)err : 0;

	if (ctx->seen_errno[slot])
		return;
	ctx->seen_errno[slot] = true;
	fprintf(stderr, "loadgen: debug: other: %s during %s (%s)\n", errno_name(err), op,
		strerror(err));
}

static enum outcome classify(struct ctx *ctx, int err, const char *op, bool connecting)
{
	if (err == ECONNREFUSED && connecting)
		return OUT_REFUSED;
	if (err == ECONNRESET || err == EPIPE)
		return OUT_RESET;
	report_errno(ctx, err, op);
	return OUT_OTHER;
}

static void hist_add(struct histogram *h, uint64_t ns)
{
	size_t i = 0;

	if ((double)ns > HIST_MIN_NS) {
		double pos = log((double)ns / HIST_MIN_NS) / log(HIST_RATIO);

		i = pos >= HIST_BUCKETS - 1 ? HIST_BUCKETS - 1 : (size_t)pos;
	}
	h->buckets[i]++;
	h->count++;
	if (ns > h->max_ns)
		h->max_ns = ns;
}

/* The geometric middle of a bucket is within 2.5% of anything in it. */
static double hist_quantile_ms(const struct histogram *h, double q)
{
	uint64_t rank, seen = 0;

	if (h->count == 0)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen < rank)
			continue;
		double ns = HIST_MIN_NS * pow(HIST_RATIO, (double)i + 0.5);

		return (ns > (double)h->max_ns ? (double)h->max_ns : ns) / 1e6;
	}
	return (double)h->max_ns / 1e6;
}

static bool parse_fail(struct response *r, enum note err)
{
	r->err = err;
	return false;
}

static void response_reset(struct response *r)
{
	r->phase = PH_HEAD;
	r->status = 0;
	r->close = false;
	r->remaining = 0;
	r->head_len = 0;
	r->line_len = 0;
	r->trailer_len = 0;
}

static size_t line_length(const char *p, const char *eol)
{
	size_t len = (size_t)(eol - p);

	return len > 0 && p[len - 1] == '\r' ? len - 1 : len;
}

/* Returns the offset just past the blank line ending the head, or 0 if not there yet. */
static size_t find_head_end(const char *buf, size_t len, size_t from)
{
	for (size_t i = from; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static bool parse_status_line(struct response *r, const char *p, size_t len, int *minor)
{
	if (len < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) || p[8] != ' ')
		return false;
	if (!is_digit(p[9]) || !is_digit(p[10]) || !is_digit(p[11]))
		return false;
	if (len > 12 && p[12] != ' ')
		return false;
	*minor = p[7] - '0';
	r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	return true;
}

static void trim(const char **p, size_t *len)
{
	while (*len > 0 && (**p == ' ' || **p == '\t')) {
		(*p)++;
		(*len)--;
	}
	while (*len > 0 && ((*p)[*len - 1] == ' ' || (*p)[*len - 1] == '\t'))
		(*len)--;
}

static bool token_is(const char *p, size_t len, const char *token)
{
	trim(&p, &len);
	return len == strlen(token) && strncasecmp(p, token, len) == 0;
}

static bool has_token(const char *p, size_t len, const char *token)
{
	while (len > 0) {
		const char *comma = memchr(p, ',', len);
		size_t n = comma ? (size_t)(comma - p) : len;

		if (token_is(p, n, token))
			return true;
		if (!comma)
			break;
		p += n + 1;
		len -= n + 1;
	}
	return false;
}

static bool last_token_is(const char *p, size_t len, const char *token)
{
	size_t start = len;

	while (start > 0 && p[start - 1] != ',')
		start--;
	return token_is(p + start, len - start, token);
}

static bool parse_length(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (!is_digit(p[i]) || v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return true;
}

static bool name_is(const char *p, size_t len, const char *name)
{
	return len == strlen(name) && strncasecmp(p, name, len) == 0;
}

static bool parse_header(struct response *r, struct head_info *h, const char *p, size_t len)
{
	const char *colon = memchr(p, ':', len);
	uint64_t length;

	if (p[0] == ' ' || p[0] == '\t')
		return true;
	if (!colon || colon == p)
		return parse_fail(r, NOTE_HEADER);
	size_t name_len = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vlen = len - name_len - 1;

	trim(&v, &vlen);
	if (name_is(p, name_len, "content-length")) {
		if (!parse_length(v, vlen, &length) || (h->has_length && h->length != length))
			return parse_fail(r, NOTE_LENGTH);
		h->has_length = true;
		h->length = length;
	} else if (name_is(p, name_len, "transfer-encoding")) {
		h->has_te = true;
		h->chunked = last_token_is(v, vlen, "chunked");
	} else if (name_is(p, name_len, "connection")) {
		h->conn_close |= has_token(v, vlen, "close");
		h->conn_keep |= has_token(v, vlen, "keep-alive");
	}
	return true;
}

static bool set_framing(struct response *r, const struct head_info *h)
{
	if (r->status == 101)
		return parse_fail(r, NOTE_UPGRADE);
	if (r->status < 200) {
		/* An interim response: the final one follows on the same connection. */
		r->head_len = 0;
		r->phase = PH_HEAD;
		return true;
	}
	r->close = h->conn_close || (h->minor == 0 && !h->conn_keep);
	if (r->status == 204 || r->status == 304) {
		r->phase = PH_DONE;
	} else if (h->has_te) {
		r->phase = h->chunked ? PH_CHUNK_SIZE : PH_BODY_EOF;
	} else if (h->has_length) {
		r->remaining = h->length;
		r->phase = h->length ? PH_BODY : PH_DONE;
	} else {
		r->phase = PH_BODY_EOF;
	}
	if (r->phase == PH_BODY_EOF)
		r->close = true;
	return true;
}

static bool parse_head(struct response *r, size_t end)
{
	struct head_info h = { 0 };
	const char *p = r->head;
	const char *stop = r->head + end;
	const char *eol = memchr(p, '\n', end);

	if (!parse_status_line(r, p, line_length(p, eol), &h.minor))
		return parse_fail(r, NOTE_STATUS_LINE);
	for (p = eol + 1; p < stop; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(stop - p));
		size_t len = line_length(p, eol);

		if (len == 0)
			break;
		if (!parse_header(r, &h, p, len))
			return false;
	}
	return set_framing(r, &h);
}

static bool feed_head(struct response *r, const char *p, size_t n, size_t *used)
{
	size_t old = r->head_len;
	size_t take = n < HEAD_MAX - old ? n : HEAD_MAX - old;
	size_t end;

	memcpy(r->head + old, p, take);
	r->head_len += take;
	end = find_head_end(r->head, r->head_len, old >= 3 ? old - 3 : 0);
	if (end == 0) {
		*used = take;
		return r->head_len < HEAD_MAX || parse_fail(r, NOTE_HEAD_TOO_LARGE);
	}
	*used = end - old;
	return parse_head(r, end);
}

/* Collects one line into r->line; true once its newline has been seen. */
static bool take_line(struct response *r, const char *p, size_t n, size_t *used)
{
	const char *nl = memchr(p, '\n', n);
	size_t len = nl ? (size_t)(nl - p) : n;
	size_t stored = r->line_len < LINE_MAX_LEN ? r->line_len : LINE_MAX_LEN;
	size_t copy = len < LINE_MAX_LEN - stored ? len : LINE_MAX_LEN - stored;

	memcpy(r->line + stored, p, copy);
	r->line_len += len;
	*used = nl ? len + 1 : len;
	return nl != NULL;
}

static bool line_is_empty(const struct response *r)
{
	return r->line_len == 0 || (r->line_len == 1 && r->line[0] == '\r');
}

static int hex_value(char ch)
{
	if (is_digit(ch))
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static bool parse_chunk_size(const struct response *r, uint64_t *size)
{
	size_t len = r->line_len;
	size_t i = 0;
	uint64_t v = 0;

	if (len > LINE_MAX_LEN)
		return false;
	if (len > 0 && r->line[len - 1] == '\r')
		len--;
	for (; i < len && hex_value(r->line[i]) >= 0; i++) {
		if (v > UINT64_MAX >> 4)
			return false;
		v = (v << 4) | (uint64_t)hex_value(r->line[i]);
	}
	if (i == 0 || (i < len && r->line[i] != ';' && r->line[i] != ' ' && r->line[i] != '\t'))
		return false;
	*size = v;
	return true;
}

static bool feed_chunk_line(struct response *r, const char *p, size_t n, size_t *used)
{
	uint64_t size;

	if (!take_line(r, p, n, used))
		return r->phase != PH_CHUNK_SIZE || r->line_len <= LINE_MAX_LEN ||
			parse_fail(r, NOTE_CHUNK);
	if (r->phase == PH_CHUNK_END) {
		if (!line_is_empty(r))
			return parse_fail(r, NOTE_CHUNK);
		r->phase = PH_CHUNK_SIZE;
	} else {
		if (!parse_chunk_size(r, &size))
			return parse_fail(r, NOTE_CHUNK);
		r->remaining = size;
		r->phase = size ? PH_CHUNK_DATA : PH_TRAILER;
	}
	r->line_len = 0;
	return true;
}

static bool feed_trailer(struct response *r, const char *p, size_t n, size_t *used)
{
	bool done = take_line(r, p, n, used);

	r->trailer_len += *used;
	if (r->trailer_len > HEAD_MAX)
		return parse_fail(r, NOTE_HEAD_TOO_LARGE);
	if (!done)
		return true;
	if (line_is_empty(r))
		r->phase = PH_DONE;
	r->line_len = 0;
	return true;
}

static bool feed_data(struct response *r, size_t n, size_t *used, enum phase next)
{
	*used = n < r->remaining ? n : (size_t)r->remaining;
	r->remaining -= *used;
	if (r->remaining == 0)
		r->phase = next;
	return true;
}

static bool feed_step(struct response *r, const char *p, size_t n, size_t *used)
{
	switch (r->phase) {
	case PH_HEAD:
		return feed_head(r, p, n, used);
	case PH_BODY:
		return feed_data(r, n, used, PH_DONE);
	case PH_CHUNK_DATA:
		return feed_data(r, n, used, PH_CHUNK_END);
	case PH_CHUNK_SIZE:
	case PH_CHUNK_END:
		return feed_chunk_line(r, p, n, used);
	case PH_TRAILER:
		return feed_trailer(r, p, n, used);
	case PH_BODY_EOF:
	case PH_DONE:
		break;
	}
	*used = n;
	return true;
}

static enum feed_result feed(struct response *r, const char *p, size_t n, size_t *used)
{
	size_t off = 0;

	while (r->phase != PH_DONE && off < n) {
		size_t step;

		if (!feed_step(r, p + off, n - off, &step))
			return FEED_BAD;
		off += step;
	}
	*used = off;
	return r->phase == PH_DONE ? FEED_DONE : FEED_MORE;
}

static bool request_in_flight(const struct conn *c)
{
	return c->state == ST_CONNECTING || c->state == ST_SENDING || c->state == ST_RECEIVING;
}

static void close_conn(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->events = 0;
}

static int set_interest(struct ctx *ctx, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u64 = (uint64_t)(c - ctx->conns) };

	if (c->events == events)
		return 0;
	if (epoll_ctl(ctx->epfd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0)
		return -1;
	c->events = events;
	return 0;
}

static void go_idle(struct conn *c)
{
	close_conn(c);
	c->state = ST_IDLE;
}

static void record(struct ctx *ctx, struct conn *c, enum outcome o)
{
	ctx->count[o]++;
	ctx->in_flight--;
	if (o == OUT_OK) {
		uint64_t took = now_ns() - c->start_ns;

		hist_add(&ctx->hist, took);
		hist_add(&ctx->interval_hist, took);
	} else {
		ctx->interval_failed++;
	}
}

/*
 * With -r a connection's requests are due at fixed times; one that is late is sent at once,
 * and its latency counted from when it was due, so that a server that stalls is charged for
 * every request it delayed, not only the one it held.
 */
static void next_request(struct ctx *ctx, struct conn *c)
{
	if (ctx->stopping) {
		go_idle(c);
		return;
	}
	if (ctx->pace_ns) {
		c->next_ns += ctx->pace_ns;
		if (now_ns() < c->next_ns) {
			c->state = ST_PACED;
			return;
		}
	}
	start_request(ctx, c);
}

/* Ends a failed attempt; the pause before retrying keeps a dead target from spinning the loop. */
static void fail_request(struct ctx *ctx, struct conn *c, enum outcome o)
{
	record(ctx, c, o);
	close_conn(c);
	if (ctx->stopping) {
		c->state = ST_IDLE;
		return;
	}
	c->state = ST_WAIT;
	c->deadline_ns = now_ns() + RETRY_NS;
}

static void fail_errno(struct ctx *ctx, struct conn *c, int err, const char *op)
{
	fail_request(ctx, c, classify(ctx, err, op, c->state == ST_CONNECTING));
}

/*
 * Waiting for the server's EOF instead of closing first leaves TIME_WAIT on the server side,
 * so a long run of new connections does not run out of local ports.
 */
static void start_drain(struct ctx *ctx, struct conn *c)
{
	if (ctx->stopping) {
		go_idle(c);
		return;
	}
	c->state = ST_DRAINING;
	c->deadline_ns = now_ns() + ctx->timeout_ns;
}

static void response_done(struct ctx *ctx, struct conn *c, bool extra, bool at_eof)
{
	record(ctx, c, c->resp.status == 200 ? OUT_OK : OUT_BAD_STATUS);
	if (extra)
		note(ctx, NOTE_EXTRA_BYTES, 0);
	if (at_eof) {
		close_conn(c);
		next_request(ctx, c);
	} else if (c->resp.close || !c->keepalive) {
		start_drain(ctx, c);
	} else {
		if (extra)
			close_conn(c);
		next_request(ctx, c);
	}
}

static void do_send(struct ctx *ctx, struct conn *c)
{
	const char *req = c->keepalive ? ctx->req_keep : ctx->req_close;
	size_t len = c->keepalive ? ctx->req_keep_len : ctx->req_close_len;

	while (c->sent < len) {
		ssize_t n = send(c->fd, req + c->sent, len - c->sent, MSG_NOSIGNAL);

		if (n >= 0) {
			c->sent += (size_t)n;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (set_interest(ctx, c, EPOLLOUT) < 0)
				fail_errno(ctx, c, errno, "epoll_ctl");
			return;
		} else if (errno != EINTR) {
			fail_errno(ctx, c, errno, "send");
			return;
		}
	}
	c->state = ST_RECEIVING;
	if (set_interest(ctx, c, EPOLLIN) < 0)
		fail_errno(ctx, c, errno, "epoll_ctl");
}

static void on_connected(struct ctx *ctx, struct conn *c)
{
	ctx->connects++;
	c->state = ST_SENDING;
	do_send(ctx, c);
}

static void begin_connect(struct ctx *ctx, struct conn *c)
{
	int one = 1;

	c->state = ST_CONNECTING;
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		fail_errno(ctx, c, errno, "socket");
		return;
	}
	if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0) {
		fail_errno(ctx, c, errno, "setsockopt");
		return;
	}
	if (connect(c->fd, (const struct sockaddr *)&ctx->opt.addr, sizeof(ctx->opt.addr)) == 0) {
		on_connected(ctx, c);
		return;
	}
	if (errno != EINPROGRESS) {
		fail_errno(ctx, c, errno, "connect");
		return;
	}
	if (set_interest(ctx, c, EPOLLOUT) < 0)
		fail_errno(ctx, c, errno, "epoll_ctl");
}

static void on_connect_ready(struct ctx *ctx, struct conn *c)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err)
		fail_errno(ctx, c, err, "connect");
	else
		on_connected(ctx, c);
}

static void start_request(struct ctx *ctx, struct conn *c)
{
	if (ctx->stopping) {
		go_idle(c);
		return;
	}
	response_reset(&c->resp);
	c->sent = 0;
	uint64_t now = now_ns();
	c->start_ns = ctx->pace_ns && c->next_ns < now ? c->next_ns : now;
	c->deadline_ns = now + ctx->timeout_ns;
	ctx->in_flight++;
	if (c->fd < 0) {
		begin_connect(ctx, c);
		return;
	}
	c->state = ST_SENDING;
	do_send(ctx, c);
}

static void on_drain_input(struct ctx *ctx, struct conn *c, ssize_t n)
{
	if (n < 0)
		note(ctx, NOTE_DRAIN_ERROR, errno);
	else if (n > 0) {
		note(ctx, NOTE_EXTRA_BYTES, 0);
		return;
	}
	close_conn(c);
	next_request(ctx, c);
}

static void on_response_bytes(struct ctx *ctx, struct conn *c, size_t n)
{
	size_t used = 0;

	switch (feed(&c->resp, ctx->rbuf, n, &used)) {
	case FEED_MORE:
		break;
	case FEED_BAD:
		note(ctx, c->resp.err, 0);
		fail_request(ctx, c, OUT_OTHER);
		break;
	case FEED_DONE:
		response_done(ctx, c, used < n, false);
		break;
	}
}

static void on_readable(struct ctx *ctx, struct conn *c)
{
	ssize_t n = recv(c->fd, ctx->rbuf, sizeof(ctx->rbuf), 0);

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (c->state == ST_DRAINING)
		on_drain_input(ctx, c, n);
	else if (n < 0)
		fail_errno(ctx, c, errno, "recv");
	else if (n > 0)
		on_response_bytes(ctx, c, (size_t)n);
	else if (c->resp.phase == PH_BODY_EOF)
		response_done(ctx, c, false, true);
	else
		fail_request(ctx, c, OUT_EOF);
}

static void on_conn_event(struct ctx *ctx, struct conn *c)
{
	switch (c->state) {
	case ST_CONNECTING:
		on_connect_ready(ctx, c);
		break;
	case ST_SENDING:
		do_send(ctx, c);
		break;
	case ST_RECEIVING:
	case ST_DRAINING:
		on_readable(ctx, c);
		break;
	case ST_PACED:
		// The server closed an idle connection: the next request opens another.
		close_conn(c);
		break;
	case ST_IDLE:
	case ST_WAIT:
		break;
	}
}

static void begin_stop(struct ctx *ctx, uint64_t now)
{
	ctx->stopping = true;
	ctx->grace_end_ns = now + GRACE_NS;
	for (long i = 0; i < ctx->opt.conns; i++) {
		struct conn *c = &ctx->conns[i];

		if (request_in_flight(c)) {
			if (c->deadline_ns > ctx->grace_end_ns)
				c->deadline_ns = ctx->grace_end_ns;
		} else {
			go_idle(c);
		}
	}
}

static void sweep_conn(struct ctx *ctx, struct conn *c, uint64_t now)
{
	if (c->state == ST_IDLE || c->state == ST_PACED || now < c->deadline_ns)
		return;
	if (request_in_flight(c)) {
		fail_request(ctx, c, OUT_TIMEOUT);
	} else if (c->state == ST_DRAINING) {
		note(ctx, NOTE_NO_EOF, 0);
		close_conn(c);
		next_request(ctx, c);
	} else {
		start_request(ctx, c);
	}
}

static void on_signal(struct ctx *ctx)
{
	struct signalfd_siginfo si;

	while (read(ctx->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		;
	if (!ctx->stopping)
		begin_stop(ctx, now_ns());
}

static uint64_t total_requests(const struct ctx *ctx)
{
	uint64_t total = 0;

	for (int i = 0; i < OUT_COUNT; i++)
		total += ctx->count[i];
	return total;
}

static void print_progress(struct ctx *ctx, uint64_t now)
{
	fprintf(stderr, "t=%" PRIu64 "s ok=%" PRIu64 " errors=%" PRIu64 "\n",
		(ctx->next_progress_ns - ctx->start_ns) / NS_PER_SEC, ctx->count[OUT_OK],
		total_requests(ctx) - ctx->count[OUT_OK]);
	while (ctx->next_progress_ns <= now)
		ctx->next_progress_ns += NS_PER_SEC;
}

/* One line of the requests answered since the last: a time series of throughput and latency. */
static void print_interval(struct ctx *ctx, uint64_t now)
{
	struct histogram *h = &ctx->interval_hist;

	fprintf(stderr,
		"interval mono=%.3f ok=%" PRIu64 " failed=%" PRIu64
		" p50_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
		(double)now / 1e9, h->count, ctx->interval_failed, hist_quantile_ms(h, 0.50),
		hist_quantile_ms(h, 0.99), (double)h->max_ns / 1e6);
	memset(h, 0, sizeof(*h));
	ctx->interval_failed = 0;
	while (ctx->next_interval_ns <= now)
		ctx->next_interval_ns += (uint64_t)ctx->opt.interval_ms * NS_PER_MS;
}

static void on_tick(struct ctx *ctx, uint64_t now)
{
	if (!ctx->stopping && ctx->stop_at_ns && now >= ctx->stop_at_ns)
		begin_stop(ctx, now);
	if (now >= ctx->next_sweep_ns) {
		ctx->next_sweep_ns = now + SWEEP_NS;
		for (long i = 0; i < ctx->opt.conns; i++)
			sweep_conn(ctx, &ctx->conns[i], now);
	}
	if (!ctx->opt.quiet && now >= ctx->next_progress_ns)
		print_progress(ctx, now);
	if (ctx->opt.interval_ms && now >= ctx->next_interval_ns)
		print_interval(ctx, now);
}

/* The earliest time a paced connection's request is due, or UINT64_MAX. */
static uint64_t next_due(const struct ctx *ctx)
{
	uint64_t due = UINT64_MAX;

	for (long i = 0; ctx->pace_ns && i < ctx->opt.conns; i++) {
		if (ctx->conns[i].state == ST_PACED && ctx->conns[i].next_ns < due)
			due = ctx->conns[i].next_ns;
	}
	return due;
}

static void start_due(struct ctx *ctx, uint64_t now)
{
	for (long i = 0; ctx->pace_ns && i < ctx->opt.conns; i++) {
		struct conn *c = &ctx->conns[i];

		if (c->state == ST_PACED && c->next_ns <= now)
			start_request(ctx, c);
	}
}

static void run(struct ctx *ctx)
{
	struct epoll_event events[EVENTS_MAX];

	ctx->start_ns = now_ns();
	ctx->next_progress_ns = ctx->start_ns + NS_PER_SEC;
	ctx->next_interval_ns = ctx->start_ns + (uint64_t)ctx->opt.interval_ms * NS_PER_MS;
	if (ctx->opt.duration > 0)
		ctx->stop_at_ns = ctx->start_ns + (uint64_t)(ctx->opt.duration * 1e9);
	if (ctx->opt.rate > 0)
		ctx->pace_ns = (uint64_t)((double)ctx->opt.conns * 1e9 / ctx->opt.rate);
	for (long i = 0; i < ctx->opt.conns; i++) {
		struct conn *c = &ctx->conns[i];

		if (!ctx->pace_ns) {
			start_request(ctx, c);
			continue;
		}
		// Spread over the first period, not all at once.
		c->next_ns = ctx->start_ns + ctx->pace_ns * (uint64_t)i / (uint64_t)ctx->opt.conns;
		c->state = ST_PACED;
	}
	while (!ctx->stopping || ctx->in_flight > 0) {
		struct timespec wait = {0, (long)(TICK_MS * NS_PER_MS)};
		uint64_t due = next_due(ctx), now = now_ns();

		if (due != UINT64_MAX)
			wait.tv_nsec = due <= now ? 0 : (long)(due - now < TICK_MS * NS_PER_MS ?
				due - now : TICK_MS * NS_PER_MS);
		int n = epoll_pwait2(ctx->epfd, events, EVENTS_MAX, &wait, NULL);

		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "loadgen: epoll_wait: %s\n", strerror(errno));
			ctx->failed = true;
			break;
		}
		for (int i = 0; i < n; i++) {
			if (events[i].data.u64 == SIGFD_TAG)
				on_signal(ctx);
			else
				on_conn_event(ctx, &ctx->conns[events[i].data.u64]);
		}
		on_tick(ctx, now_ns());
		start_due(ctx, now_ns());
	}
	ctx->end_ns = now_ns();
}

static void print_summary(const struct ctx *ctx)
{
	uint64_t total = total_requests(ctx);
	double seconds = (double)(ctx->end_ns - ctx->start_ns) / 1e9;
	const struct histogram *h = &ctx->hist;

	printf("requests=%" PRIu64, total);
	for (int i = 0; i < OUT_COUNT; i++)
		printf(" %s=%" PRIu64, outcome_names[i], ctx->count[i]);
	printf(" connects=%" PRIu64 " seconds=%.3f rps=%.1f", ctx->connects, seconds,
		seconds > 0 ? (double)total / seconds : 0.0);
	printf(" p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n", hist_quantile_ms(h, 0.50),
		hist_quantile_ms(h, 0.90), hist_quantile_ms(h, 0.99), (double)h->max_ns / 1e6);
	fflush(stdout);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: loadgen -t HOST:PORT [-c CONNS] [-k KEEPALIVE] [-d SECONDS] [-p PATH]\n"
		"               [-T TIMEOUT_MS] [-i MS] [-r RATE] [-q]\n"
		"  -t HOST:PORT    IPv4 target, e.g. 127.0.0.1:8080 (required)\n"
		"  -c CONNS        concurrent connections (default 8, max %d)\n"
		"  -k KEEPALIVE    how many connections use keep-alive (default: half)\n"
		"  -d SECONDS      run time, fractions allowed (default: until SIGTERM/SIGINT)\n"
		"  -p PATH         request path (default /)\n"
		"  -T TIMEOUT_MS   per-request timeout (default 5000)\n"
		"  -i MS           every MS ms, a line on stderr of that interval: its end on the\n"
		"                  monotonic clock, requests ok and failed, p50, p99 and max latency\n"
		"  -r RATE         RATE requests a second in all, each connection's at fixed\n"
		"                  times, latency counted from when a request was due (default:\n"
		"                  each connection sends its next request once answered)\n"
		"  -q              no progress line on stderr\n"
		"  -h              this help\n",
		MAX_CONNS);
}

static bool parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool parse_target(struct options *o, const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[INET_ADDRSTRLEN];
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	if (!parse_long(colon + 1, 1, 65535, &port))
		return false;
	if (inet_pton(AF_INET, host, &o->addr.sin_addr) != 1)
		return false;
	o->addr.sin_family = AF_INET;
	o->addr.sin_port = htons((uint16_t)port);
	o->target = s;
	return true;
}

static bool parse_duration(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v <= 0 || v > 1e7)
		return false;
	*out = v;
	return true;
}

static bool valid_path(const char *p)
{
	if (*p == '\0')
		return false;
	for (; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return false;
	}
	return true;
}

static bool parse_option(struct options *o, int opt, const char *arg)
{
	switch (opt) {
	case 't':
		return parse_target(o, arg);
	case 'c':
		return parse_long(arg, 1, MAX_CONNS, &o->conns);
	case 'k':
		return parse_long(arg, 0, MAX_CONNS, &o->keepalive);
	case 'd':
		return parse_duration(arg, &o->duration);
	case 'p':
		o->path = arg;
		return valid_path(arg);
	case 'T':
		return parse_long(arg, 1, 3600000, &o->timeout_ms);
	case 'i':
		return parse_long(arg, 1, 3600000, &o->interval_ms);
	case 'r':
		return parse_duration(arg, &o->rate);
	case 'q':
		o->quiet = true;
		return true;
	}
	return false;
}

/* Returns -1 to go on, or the exit status. */
static int parse_options(struct options *o, int argc, char **argv)
{
	int opt;

	*o = (struct options){ .conns = 8, .keepalive = -1, .path = "/", .timeout_ms = 5000 };
	while ((opt = getopt(argc, argv, "t:c:k:d:p:T:i:r:qh")) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 0;
		}
		if (opt == '?' || !parse_option(o, opt, optarg)) {
			if (opt != '?')
				fprintf(stderr, "loadgen: bad value for -%c: %s\n", opt, optarg);
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc || !o->target) {
		fprintf(stderr, "loadgen: %s\n",
			optind < argc ? "unexpected argument" : "-t is required");
		usage(stderr);
		return 2;
	}
	if (o->keepalive < 0)
		o->keepalive = o->conns / 2;
	if (o->keepalive > o->conns) {
		fprintf(stderr, "loadgen: -k %ld is more than -c %ld\n", o->keepalive, o->conns);
		return 2;
	}
	return -1;
}

static bool build_requests(struct ctx *ctx)
{
	int a = asprintf(&ctx->req_keep, REQUEST_FMT, ctx->opt.path, ctx->opt.target, "");
	int b = asprintf(&ctx->req_close, REQUEST_FMT, ctx->opt.path, ctx->opt.target,
		"Connection: close\r\n");

	if (a < 0 || b < 0) {
		if (a < 0)
			ctx->req_keep = NULL;
		if (b < 0)
			ctx->req_close = NULL;
		return false;
	}
	ctx->req_keep_len = (size_t)a;
	ctx->req_close_len = (size_t)b;
	return true;
}

static bool setup_signals(struct ctx *ctx)
{
	sigset_t set;
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = SIGFD_TAG };

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return false;
	ctx->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return ctx->sigfd >= 0 && epoll_ctl(ctx->epfd, EPOLL_CTL_ADD, ctx->sigfd, &ev) == 0;
}

static bool setup(struct ctx *ctx)
{
	ctx->timeout_ns = (uint64_t)ctx->opt.timeout_ms * NS_PER_MS;
	ctx->sigfd = -1;
	ctx->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ctx->epfd < 0 || !setup_signals(ctx) || !build_requests(ctx))
		return false;
	ctx->conns = calloc((size_t)ctx->opt.conns, sizeof(*ctx->conns));
	if (!ctx->conns)
		return false;
	for (long i = 0; i < ctx->opt.conns; i++) {
		ctx->conns[i].fd = -1;
		ctx->conns[i].keepalive = i < ctx->opt.keepalive;
	}
	return true;
}

static void teardown(struct ctx *ctx)
{
	if (ctx->conns) {
		for (long i = 0; i < ctx->opt.conns; i++)
			close_conn(&ctx->conns[i]);
	}
	if (ctx->sigfd >= 0)
		close(ctx->sigfd);
	if (ctx->epfd >= 0)
		close(ctx->epfd);
	free(ctx->conns);
	free(ctx->req_keep);
	free(ctx->req_close);
	free(ctx);
}

int main(int argc, char **argv)
{
	struct ctx *ctx = calloc(1, sizeof(*ctx));
	uint64_t total = 0;
	int status;

	if (!ctx) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	ctx->epfd = -1;
	ctx->sigfd = -1;
	status = parse_options(&ctx->opt, argc, argv);
	if (status >= 0) {
		teardown(ctx);
		return status;
	}
	if (!setup(ctx)) {
		fprintf(stderr, "loadgen: setup failed: %s\n", strerror(errno));
		teardown(ctx);
		return 1;
	}
	run(ctx);
	print_summary(ctx);
	total = total_requests(ctx);
	status = !ctx->failed && total > 0 && ctx->count[OUT_OK] == total ? 0 : 1;
	teardown(ctx);
	return status;
}
