#include "display.h"

#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "logrecord.h"

/*
 * The live view of upgrade --wait, stop --wait and watch on a terminal: one
 * line per generation, redrawn in place, with the countdown to SIGKILL kept
 * running between events, and under it the last line of its draining
 * processes that wrote one.
 */

#define MAX_PROCS 4096
#define MAX_GENS 8
// The last lines shown under a generation, of the processes that wrote last.
#define LINES_PER_GEN 4

struct view_proc {
	int pid;
	char service[PROTOCOL_NAME_MAX + 1];
	unsigned gen;
	char state[16];
	int conns;       /* -1: unknown */
	double kill_at;  /* local clock; 0: none */
	char *line;      /* the last line it wrote, escaped, or NULL */
	double line_at;  /* local clock: when that line came */
};

struct live_output {
	struct output base;
	char service[PROTOCOL_NAME_MAX + 1];
	char headline[256];
	struct view_proc procs[MAX_PROCS];
	size_t nprocs;
	unsigned killed;
	int killed_conns;
	int lines; /* drawn last time, to go back over */
	char last[PROTOCOL_RECORD_MAX]; /* the last record that is no event: the result */
};

static double local_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *get(const struct protocol_record *r, const char *key)
{
	const char *v = protocol_record_get(r, key);
	return v ? v : "";
}

static struct view_proc *find(struct live_output *l, int pid, bool create)
{
	for (size_t i = 0; i < l->nprocs; i++) {
		if (l->procs[i].pid == pid)
			return &l->procs[i];
	}
	if (!create || l->nprocs == MAX_PROCS || pid <= 0)
		return NULL;
	struct view_proc *p = &l->procs[l->nprocs++];
	memset(p, 0, sizeof(*p));
	p->pid = pid;
	p->conns = -1;
	return p;
}

static void forget(struct live_output *l, int pid)
{
	struct view_proc *p = find(l, pid, false);
	if (!p)
		return;
	free(p->line);
	*p = l->procs[--l->nprocs];
}

// Keeps the line of a record (progress, output) as the process's last line.
static void set_line(struct view_proc *p, const struct protocol_record *r)
{
	const char *line = protocol_record_get(r, "line");
	struct protocol_buf b = {0};
	if (!line)
		return;
	logrecord_escape(&b, line, strlen(line));
	if (!b.failed && (!p->line || strcmp(p->line, b.data) != 0)) {
		free(p->line);
		p->line = b.data;
		p->line_at = local_now();
		return;
	}
	protocol_buf_finish(&b);
}

static void set_from(struct view_proc *p, const struct protocol_record *r, const char *state)
{
	p->gen = (unsigned)atoi(get(r, "gen"));
	snprintf(p->service, sizeof(p->service), "%s", get(r, "service"));
	if (state)
		snprintf(p->state, sizeof(p->state), "%s", state);
	if (*get(r, "conns"))
		p->conns = atoi(get(r, "conns"));
	if (*get(r, "kill_in"))
		p->kill_at = local_now() + atof(get(r, "kill_in"));
}

static void apply_event(struct live_output *l, const struct protocol_record *r)
{
	const char *kind = get(r, "kind");
	int pid = atoi(get(r, "pid"));
	if (strcmp(kind, "upgrade") == 0) {
		const char *state = get(r, "state");
		if (strcmp(state, "rolled-back") == 0 || strcmp(state, "aborted") == 0)
			snprintf(l->headline, sizeof(l->headline), "upgrade to gen %s %s",
				get(r, "gen"), strcmp(state, "aborted") == 0 ? "aborted" : "rolled back");
		else
			snprintf(l->headline, sizeof(l->headline), "upgrading to gen %s: %s",
				get(r, "gen"), state);
	} else if (strcmp(kind, "killed") == 0) {
		l->killed++;
		if (*get(r, "conns"))
			l->killed_conns += atoi(get(r, "conns"));
		forget(l, pid);
	} else if (strcmp(kind, "exited") == 0 || strcmp(kind, "restarting") == 0) {
		forget(l, pid);
	} else if (strcmp(kind, "spawned") == 0) {
		struct view_proc *p = find(l, pid, true);
		if (p)
			set_from(p, r, "starting");
	} else if (pid > 0) {
		struct view_proc *p = find(l, pid, true);
		const char *state = strcmp(kind, "ready") == 0 ? "ready"
			: strcmp(kind, "stopping") == 0 || strcmp(kind, "signalled") == 0 ||
				strcmp(kind, "progress") == 0 || strcmp(kind, "sigkill") == 0 ||
				strcmp(kind, "output") == 0
			? "stopping"
			: NULL;
		if (p)
			set_from(p, r, state);
		if (p && (strcmp(kind, "progress") == 0 || strcmp(kind, "output") == 0))
			set_line(p, r);
	}
}

static void live_record(struct output *o, const struct protocol_record *rec, const char *line,
	size_t len)
{
	struct live_output *l = (struct live_output *)o;
	if (strcmp(rec->type, "service") == 0) {
		snprintf(l->service, sizeof(l->service), "%s", get(rec, "name"));
		snprintf(l->last, sizeof(l->last), "%.*s", (int)len, line);
	} else if (strcmp(rec->type, "proc") == 0 && atoi(get(rec, "pid")) > 0) {
		struct view_proc *p = find(l, atoi(get(rec, "pid")), true);
		if (p)
			set_from(p, rec, get(rec, "state"));
	} else if (strcmp(rec->type, "event") == 0) {
		apply_event(l, rec);
	} else {
		snprintf(l->last, sizeof(l->last), "%.*s", (int)len, line);
	}
	display_redraw(o);
}

struct gen_summary {
	const char *service;
	unsigned gen;
	unsigned ready, starting, stopping;
	int conns;
	bool conns_unknown;
	double first_kill;
};

static struct gen_summary *summary_for(struct gen_summary *g, size_t *n, const struct view_proc *p)
{
	for (size_t i = 0; i < *n; i++) {
		if (g[i].gen == p->gen && strcmp(g[i].service, p->service) == 0)
			return &g[i];
	}
	if (*n == MAX_GENS)
		return NULL;
	memset(&g[*n], 0, sizeof(g[*n]));
	g[*n].gen = p->gen;
	g[*n].service = p->service;
	return &g[(*n)++];
}

static size_t summarize(struct live_output *l, struct gen_summary *g)
{
	size_t n = 0;
	for (size_t i = 0; i < l->nprocs; i++) {
		struct view_proc *p = &l->procs[i];
		struct gen_summary *s = summary_for(g, &n, p);
		if (!s)
			continue;
		if (strcmp(p->state, "ready") == 0)
			s->ready++;
		else if (strcmp(p->state, "stopping") == 0)
			s->stopping++;
		else
			s->starting++;
		if (p->conns > 0)
			s->conns += p->conns;
		if (strcmp(p->state, "stopping") == 0 && p->conns < 0)
			s->conns_unknown = true;
		if (p->kill_at > 0 && (s->first_kill == 0 || p->kill_at < s->first_kill))
			s->first_kill = p->kill_at;
	}
	return n;
}

static int term_width(FILE *out)
{
	struct winsize ws;
	if (ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

// The bytes of s, valid UTF-8, that fit in cols columns: a character of
// three or four bytes is taken as two columns, as East Asian ones are, a
// tab as eight.
static size_t fit(const char *s, size_t cols)
{
	size_t used = 0, i = 0;
	while (s[i]) {
		unsigned char c = (unsigned char)s[i];
		size_t n = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
		size_t w = c == '\t' ? 8 : n >= 3 ? 2 : 1;
		if (used + w > cols || strnlen(s + i, n) < n)
			break;
		used += w;
		i += n;
	}
	return i;
}

// Draws a line of the view within the terminal's width: one that wrapped
// would throw off the count of lines to go back over.
static int draw(FILE *out, int width, const char *text)
{
	fprintf(out, "\033[2K%.*s\n", (int)fit(text, width > 1 ? (size_t)width - 1 : 0), text);
	return 1;
}

static int gen_line(FILE *out, int width, const struct gen_summary *s, double now)
{
	char line[256];
	int n = snprintf(line, sizeof(line), "  %s gen %u:", s->service, s->gen);
	if (s->ready)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %u ready", s->ready);
	if (s->starting)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %u starting", s->starting);
	if (s->stopping && s->conns_unknown)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %u draining", s->stopping);
	else if (s->stopping)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %u draining, %d connection%s",
			s->stopping, s->conns, s->conns == 1 ? "" : "s");
	if (s->first_kill > 0) {
		double left = s->first_kill - now;
		snprintf(line + n, sizeof(line) - (size_t)n, ", SIGKILL in %.1fs", left > 0 ? left : 0);
	}
	return draw(out, width, line);
}

// The last lines of the draining processes of a generation, latest first.
static int proc_lines(struct live_output *l, int width, const struct gen_summary *s)
{
	struct view_proc *shown[LINES_PER_GEN];
	int n = 0;
	for (size_t i = 0; i < l->nprocs; i++) {
		struct view_proc *p = &l->procs[i];
		if (!p->line || p->gen != s->gen || strcmp(p->service, s->service) != 0 ||
			strcmp(p->state, "stopping") != 0)
			continue;
		int at = n < LINES_PER_GEN ? n++ : LINES_PER_GEN;
		while (at > 0 && shown[at - 1]->line_at < p->line_at) {
			if (at < LINES_PER_GEN)
				shown[at] = shown[at - 1];
			at--;
		}
		if (at < LINES_PER_GEN)
			shown[at] = p;
	}
	for (int i = 0; i < n; i++) {
		char line[1024];
		snprintf(line, sizeof(line), "    %s[%d]: %s", shown[i]->service, shown[i]->pid,
			shown[i]->line);
		draw(l->base.out, width, line);
	}
	return n;
}

void display_redraw(struct output *o)
{
	struct live_output *l = (struct live_output *)o;
	struct gen_summary g[MAX_GENS];
	size_t n = summarize(l, g);
	double now = local_now();
	int width = term_width(o->out);
	char line[512];
	if (l->lines > 0)
		fprintf(o->out, "\033[%dF", l->lines);
	const char *doing = o->verb == VERB_STOP ? "stopping"
		: o->verb == VERB_UPGRADE	 ? "upgrading"
						 : "watching";
	snprintf(line, sizeof(line), "%s: %s", l->service[0] ? l->service : "batond",
		l->headline[0] ? l->headline : doing);
	int lines = draw(o->out, width, line);
	// Newest generation first.
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			int order = strcmp(g[j].service, g[i].service);
			if (order < 0 || (order == 0 && g[j].gen > g[i].gen)) {
				struct gen_summary t = g[i];
				g[i] = g[j];
				g[j] = t;
			}
		}
		lines += gen_line(o->out, width, &g[i], now);
		lines += proc_lines(l, width, &g[i]);
	}
	if (l->killed) {
		snprintf(line, sizeof(line),
			"  killed: %u, holding %d connections: their cleanup did not run", l->killed,
			l->killed_conns);
		lines += draw(o->out, width, line);
	}
	fprintf(o->out, "\033[J");
	l->lines = lines;
	fflush(o->out);
}

static void live_finish(struct output *o, const struct protocol_record *final)
{
	struct live_output *l = (struct live_output *)o;
	static struct protocol_record rec;
	display_redraw(o);
	if (strcmp(final->type, "ok") == 0 && l->last[0] && o->verb != VERB_WATCH &&
		protocol_parse_record(&rec, l->last, strlen(l->last)) == 0)
		output_print_line(o->out, &rec);
	else if (strcmp(final->type, "ok") != 0)
		fprintf(stderr, "batonctl: %s\n", final->message ? final->message : "error");
	fflush(o->out);
}

static void live_destroy(struct output *o)
{
	struct live_output *l = (struct live_output *)o;
	for (size_t i = 0; i < l->nprocs; i++)
		free(l->procs[i].line);
	free(l);
}

struct output *output_live_create(enum protocol_verb verb, FILE *out)
{
	struct live_output *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->base = (struct output){live_record, live_finish, live_destroy, verb, true, out,
		display_redraw, NULL};
	return &l->base;
}
