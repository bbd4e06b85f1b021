#include "config_print.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static void print_duration(FILE *out, const char *key, double secs)
{
	char buf[64];
	format_duration(secs, buf, sizeof(buf));
	fprintf(out, "%s = %s\n", key, buf);
}

static void print_ready(FILE *out, const struct ready_spec *r)
{
	char buf[64];
	switch (r->mode) {
	case READY_NONE:
		fprintf(out, "ready = none\n");
		break;
	case READY_NOTIFY:
		fprintf(out, "ready = notify\n");
		break;
	case READY_FD:
		fprintf(out, "ready = fd:%d\n", r->fd);
		break;
	case READY_DELAY:
		format_duration(r->delay, buf, sizeof(buf));
		fprintf(out, "ready = delay:%s\n", buf);
		break;
	case READY_EXEC:
		break;
	}
}

// "key = exec:WORDS", the words as the reader reads them back.
static void print_check(FILE *out, const char *key, const struct check_conf *c)
{
	char *words = c->argv ? config_words_text(c->argv, c->argc) : NULL;
	if (words)
		fprintf(out, "%s = exec:%s\n", key, words);
	free(words);
}

static void print_checks(FILE *out, const struct service_conf *c)
{
	print_check(out, "check", &c->check);
	print_duration(out, "check_interval", c->check_interval);
	print_duration(out, "check_timeout", c->check_timeout);
	fprintf(out, "check_failures = %u\n", c->check_failures);
	if (c->watchdog > 0)
		print_duration(out, "watchdog", c->watchdog);
}

// The gate when set, its timeout when not the default (0 is the default too).
static void print_gate(FILE *out, const struct service_conf *c)
{
	if (c->upgrade_gate.argv)
		config_write_words(out, "upgrade_gate", c->upgrade_gate.argv, c->upgrade_gate.argc);
	double t = c->upgrade_gate_timeout;
	if (t > 0 && t != CONFIG_UPGRADE_GATE_TIMEOUT)
		print_duration(out, "upgrade_gate_timeout", t);
}

// key = value, or key=value where the blanks would make the line too long.
static void print_value(FILE *out, const char *key, const char *value);

static void print_socket(FILE *out, const struct socket_conf *s)
{
	fprintf(out, "\n[socket:%s]\nlisten = %s\nbacklog = %u\n", s->name, s->listen, s->backlog);
	if (s->addr.family != ADDRESS_UNIX)
		return;
	fprintf(out, "mode = %04o\n", (unsigned)s->mode);
	if (s->owner)
		print_value(out, "owner", s->owner);
	if (s->group)
		print_value(out, "group", s->group);
}

// Lines config_print writes wrap past this, well under the reader's limit.
#define PRINT_LINE_MAX 160
// The reader's limit: inih's 200-byte line less \r, \n and \0.
#define INI_LINE_MAX 197

// inih trims these at a line's edges, and a ';' after one starts a comment.
static bool is_blank_char(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' || c == '\n';
}

/*
 * A word is printed as a run of segments, each in one of three forms, so
 * that parse_words reads it back unchanged:
 * - bare: a backslash before ' " and \, and before a ';' that starts the
 *   word, or a '#' that starts a line (comments to inih); no blank but \v \f
 *   \r inside the word, not before a ';';
 * - 'single quoted': anything but ';
 * - "double quoted": a backslash before " and before a \ that the reader
 *   would take for an escape (one before " \ $ ` or the closing quote).
 * A quoted blank may not be followed by a ';' in the same segment: inih
 * would take the rest of the line for a comment. A plan gives each character
 * its form, with SEG_NEW where a segment begins.
 */
enum segment { SEG_BARE, SEG_SINGLE, SEG_DOUBLE };
#define SEG_FORM 3
#define SEG_NEW 4

static const char *const seg_quote[] = {"", "'", "\""};

struct word {
	const char *w;
	unsigned char *plan; /* NULL: out of memory, blanks quoted one by one */
	bool line_start;     /* the word starts a line */
};

// Whether a backslash in double quotes must be doubled before c, the next
// character of the segment ('\0' where the segment ends).
static bool dq_escapes(char c)
{
	return !c || strchr("\"\\$`", c);
}

// What character i of w costs in form f, not counting a backslash before it
// in double quotes (dq_escapes); SIZE_MAX where it cannot be.
static size_t seg_cost(const char *w, size_t i, int f, bool line_start)
{
	char c = w[i];
	if (f == SEG_SINGLE)
		return c == '\'' ? SIZE_MAX : 1;
	if (f == SEG_DOUBLE)
		return c == '"' ? 2 : 1;
	if (c == ' ' || c == '\t' || c == '\n')
		return SIZE_MAX;
	if (is_blank_char(c))
		return i > 0 && w[i + 1] && w[i + 1] != ';' ? 1 : SIZE_MAX;
	bool first = i == 0 && (c == ';' || (c == '#' && line_start));
	return strchr("'\"\\", c) || first ? 2 : 1;
}

static int plan_at(const struct word *wd, size_t i)
{
	if (wd->plan)
		return wd->plan[i];
	const char *w = wd->w;
	if (is_blank_char(w[i]))
		return SEG_DOUBLE | SEG_NEW;
	return i == 0 || is_blank_char(w[i - 1]) ? SEG_BARE | SEG_NEW : SEG_BARE;
}

// Whether character i is written after a backslash.
static bool escaped_at(const struct word *wd, size_t i)
{
	const char *w = wd->w;
	int f = plan_at(wd, i) & SEG_FORM;
	if (f == SEG_DOUBLE && w[i] == '\\')
		return dq_escapes(w[i + 1] && plan_at(wd, i + 1) == SEG_DOUBLE ? w[i + 1] : '\0');
	return f != SEG_SINGLE && seg_cost(w, i, f, wd->line_start) == 2;
}

/*
 * Plans the shortest form of wd->w (n characters), fewer segments on a tie.
 * Costs count the quotes, a segment's two when it opens, and a backslash
 * doubled in double quotes when the character after it is known.
 */
static void plan_word(struct word *wd, size_t n)
{
	const char *w = wd->w;
	struct cost {
		size_t len, segs;
	} prev[3], cur[3];
	wd->plan = calloc(4 * n + 1, 1);
	if (!wd->plan || n == 0)
		return;
	unsigned char *back = wd->plan + n;
	for (size_t i = 0; i < n; i++) {
		for (int f = 0; f < 3; f++) {
			cur[f] = (struct cost){SIZE_MAX, SIZE_MAX};
			size_t c = seg_cost(w, i, f, wd->line_start), open = f == SEG_BARE ? 0 : 2;
			if (c == SIZE_MAX)
				continue;
			if (i == 0) {
				cur[f] = (struct cost){c + open, 1};
				back[f] = SEG_NEW;
				continue;
			}
			for (int p = 0; p < 3; p++) {
				if (prev[p].len == SIZE_MAX)
					continue;
				bool comment = f != SEG_BARE && is_blank_char(w[i - 1]) && w[i] == ';';
				bool cont = p == f && !comment;
				if (!cont && f == SEG_BARE && p == SEG_BARE)
					continue;
				struct cost go = {prev[p].len + c + (cont ? 0 : open), prev[p].segs + !cont};
				if (p == SEG_DOUBLE && w[i - 1] == '\\')
					go.len += dq_escapes(cont ? w[i] : '\0');
				if (go.len < cur[f].len || (go.len == cur[f].len && go.segs < cur[f].segs)) {
					cur[f] = go;
					back[3 * i + (size_t)f] = (unsigned char)(p | (cont ? 0 : SEG_NEW));
				}
			}
		}
		memcpy(prev, cur, sizeof(prev));
	}
	if (w[n - 1] == '\\' && prev[SEG_DOUBLE].len != SIZE_MAX)
		prev[SEG_DOUBLE].len++;
	int f = 0;
	for (int g = 1; g < 3; g++) {
		if (prev[g].len < prev[f].len || (prev[g].len == prev[f].len && prev[g].segs < prev[f].segs))
			f = g;
	}
	for (size_t i = n; i-- > 0;) {
		unsigned char b = back[3 * i + (size_t)f];
		wd->plan[i] = (unsigned char)(f | (b & SEG_NEW));
		f = b & SEG_FORM;
	}
}

static void word_init(struct word *wd, const char *w, bool line_start)
{
	wd->w = w;
	wd->line_start = line_start;
	plan_word(wd, strlen(w));
}

// What character i adds to the line, with the quotes that change there.
static size_t step_length(const struct word *wd, size_t i)
{
	int s = plan_at(wd, i);
	size_t n = 1 + escaped_at(wd, i);
	if (s & SEG_NEW) {
		n += strlen(seg_quote[s & SEG_FORM]);
		if (i > 0)
			n += strlen(seg_quote[plan_at(wd, i - 1) & SEG_FORM]);
	}
	return n;
}

// Whether the word may go on to the next line at its character i: a single
// space, between quotes, and no ';' or '#' to start that line.
static bool breaks_at(const struct word *wd, size_t i)
{
	const char *p = wd->w + i;
	return *p == ' ' && (plan_at(wd, i) & SEG_FORM) != SEG_BARE && p > wd->w &&
		!is_blank_char(p[-1]) && p[1] && !is_blank_char(p[1]) && p[1] != ';' && p[1] != '#';
}

// The length of the word from character i to where it may break next, or
// its end with the closing quote.
static size_t piece_length(const struct word *wd, size_t i)
{
	size_t n = 0;
	for (; wd->w[i]; i++) {
		if (breaks_at(wd, i))
			return n + step_length(wd, i) - 1;
		n += step_length(wd, i);
	}
	return n + (i > 0 ? strlen(seg_quote[plan_at(wd, i - 1) & SEG_FORM]) : 0);
}

// The length of the word written on one line.
static size_t word_length(const struct word *wd)
{
	if (!*wd->w)
		return 2;
	size_t n = 0, i = 0;
	for (; wd->w[i]; i++)
		n += step_length(wd, i);
	return n + strlen(seg_quote[plan_at(wd, i - 1) & SEG_FORM]);
}

/*
 * Writes the word as planned from column col, and returns the column it ends
 * at. With wrap, a word too long for the line goes on to indented lines at
 * single spaces between quotes: the reader joins lines with one space. (A
 * word had to have such spaces to be read at all.)
 */
static size_t write_word(FILE *out, const struct word *wd, size_t col, bool wrap)
{
	const char *w = wd->w;
	if (!*w) {
		fputs("''", out);
		return col + 2;
	}
	int f = SEG_BARE;
	for (size_t i = 0; w[i]; i++) {
		int s = plan_at(wd, i);
		if (s & SEG_NEW) {
			const char *close = i > 0 ? seg_quote[f] : "", *open = seg_quote[s & SEG_FORM];
			fprintf(out, "%s%s", close, open);
			col += strlen(close) + strlen(open);
		}
		f = s & SEG_FORM;
		if (wrap && breaks_at(wd, i) && col + 1 + piece_length(wd, i + 1) > INI_LINE_MAX) {
			fputs("\n ", out);
			col = 1;
			continue;
		}
		bool esc = escaped_at(wd, i);
		fprintf(out, esc ? "\\%c" : "%c", w[i]);
		col += 1 + esc;
	}
	fputs(seg_quote[f], out);
	return col + strlen(seg_quote[f]);
}

void config_write_words(FILE *out, const char *key, char *const *words, size_t count)
{
	size_t col = (size_t)fprintf(out, "%s", key);
	if (count == 0)
		fputs(" =", out);
	for (size_t i = 0; i < count; i++) {
		struct word wd;
		word_init(&wd, words[i], false);
		size_t len = word_length(&wd);
		if (i == 0) {
			// key=word where the blanks would not leave it room.
			bool tight = col + 3 + len > INI_LINE_MAX;
			fputs(tight ? "=" : " = ", out);
			col += tight ? 1 : 3;
		} else if (col + 1 + len > PRINT_LINE_MAX) {
			// Indented by three, or by one where three would not leave it room.
			bool tight = 3 + len > INI_LINE_MAX;
			fputs(tight ? "\n " : "\n   ", out);
			col = tight ? 1 : 3;
			free(wd.plan);
			word_init(&wd, words[i], true);
			len = word_length(&wd);
		} else {
			fputc(' ', out);
			col++;
		}
		col = write_word(out, &wd, col, col + len > INI_LINE_MAX);
		free(wd.plan);
	}
	fputc('\n', out);
}

char *config_words_text(char *const *words, size_t count)
{
	char *text = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&text, &len);
	if (!out)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		const char *w = words[i];
		if (i > 0)
			fputc(' ', out);
		// A line cannot hold a line break: only then is the word written
		// the way a shell would take it back, which the reader does not
		// read. Other control characters are read back as they are.
		bool control = false;
		for (const char *p = w; *p; p++)
			control |= *p == '\n';
		if (!control) {
			struct word wd;
			word_init(&wd, w, false);
			write_word(out, &wd, 0, false);
			free(wd.plan);
			continue;
		}
		// Shown the way a shell would take it back: $'...'.
		fputs("$'", out);
		for (const char *p = w; *p; p++) {
			unsigned char c = (unsigned char)*p;
			const char *esc = c == '\n' ? "\\n" : c == '\t' ? "\\t" : c == '\r' ? "\\r"
				: c == '\\' ? "\\\\" : c == '\'' ? "\\'" : NULL;
			if (esc)
				fputs(esc, out);
			else if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\x%02x", c);
			else
				fputc(c, out);
		}
		fputc('\'', out);
	}
	if (fclose(out) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void print_names(FILE *out, const char *key, char **names, size_t n)
{
	if (n > 0)
		config_write_words(out, key, names, n);
}

static void print_value(FILE *out, const char *key, const char *value)
{
	bool tight = strlen(key) + strlen(value) + 3 > PRINT_LINE_MAX;
	fprintf(out, tight ? "%s=%s\n" : "%s = %s\n", key, value);
}

static void print_size(FILE *out, const char *key, uint64_t bytes)
{
	char buf[32];
	format_size(bytes, buf, sizeof(buf));
	fprintf(out, "%s = %s\n", key, buf);
}

// The environment files as the key has them: PATH, or -PATH for an optional one.
static void print_env_files(FILE *out, const struct service_conf *c)
{
	if (c->nenv_files == 0)
		return;
	char **words = calloc(c->nenv_files, sizeof(char *));
	size_t n = 0;
	for (; words && n < c->nenv_files; n++) {
		const struct env_file_conf *f = &c->env_files[n];
		if (asprintf(&words[n], "%s%s", f->optional ? "-" : "", f->path) < 0)
			break;
	}
	if (words && n == c->nenv_files)
		config_write_words(out, "environment_file", words, n);
	config_free_names(words, n);
}

// What the processes get besides their command and environment, where set.
static void print_process(FILE *out, const struct service_conf *c)
{
	char buf[64];
	if (c->has_umask)
		fprintf(out, "umask = %04o\n", (unsigned)c->umask);
	if (c->has_nice)
		fprintf(out, "nice = %d\n", c->nice);
	if (c->start_nice)
		fprintf(out, "start_nice = %u\n", c->start_nice);
	if (c->has_oom_score_adjust)
		fprintf(out, "oom_score_adjust = %d\n", c->oom_score_adjust);
	for (int i = 0; i < LIMIT_COUNT; i++) {
		const struct limit_conf *l = &c->limits[i];
		if (!l->set)
			continue;
		format_limit(l->soft, l->hard, config_limits[i].size, buf, sizeof(buf));
		fprintf(out, "%s = %s\n", config_limits[i].key, buf);
	}
}

// The limits of each generation's cgroup, where set.
static void print_cgroup_limits(FILE *out, const struct service_conf *c)
{
	for (int i = 0; i < CGROUP_LIMIT_COUNT; i++) {
		const struct cgroup_limit_conf *l = &c->cgroup_limits[i];
		if (l->set)
			fprintf(out, "%s = %s\n", config_cgroup_limits[i].key, l->text);
	}
}

static void print_log(FILE *out, const struct log_conf *l)
{
	if (l->sink == LOG_FILE) {
		char value[8 + 4096];
		snprintf(value, sizeof(value), "file:%s", l->path);
		print_value(out, "log", value);
	} else {
		fprintf(out, "log = %s\n", l->sink == LOG_INHERIT ? "inherit" : "stderr");
	}
	fprintf(out, "log_format = %s\n", l->json ? "json" : "text");
	print_size(out, "log_max_size", l->max_size);
	fprintf(out, "log_keep = %u\n", l->keep);
	print_size(out, "log_buffer", l->buffer);
	fprintf(out, "log_overflow = %s\n", l->drop ? "drop" : "block");
}

void config_print_service(const struct service_conf *c, const char *name, FILE *out)
{
	fprintf(out, "\n[service:%s]\n", name ? name : c->name);
	config_write_words(out, "command", c->argv, c->argc);
	print_names(out, "sockets", c->sockets, c->nsockets);
	fprintf(out, "instances = %u\n", c->instances);
	print_ready(out, &c->ready);
	if (c->ready.mode == READY_EXEC)
		print_check(out, "ready", &c->ready_check);
	print_duration(out, "ready_timeout", c->ready_timeout);
	print_checks(out, c);
	if (signal_name(c->stop_signal))
		fprintf(out, "stop_signal = %s\n", signal_name(c->stop_signal));
	else
		fprintf(out, "stop_signal = %d\n", c->stop_signal);
	print_duration(out, "stop_grace", c->stop_grace);
	print_duration(out, "stop_delay", c->stop_delay);
	fprintf(out, "restart = %s\n", restart_name(c->restart));
	print_duration(out, "restart_delay", c->restart_delay);
	print_duration(out, "restart_delay_max", c->restart_delay_max);
	if (c->start_limit_burst) {
		char buf[64];
		format_duration(c->start_limit_interval, buf, sizeof(buf));
		fprintf(out, "start_limit = %u/%s\n", c->start_limit_burst, buf);
	} else {
		fprintf(out, "start_limit = none\n");
	}
	if (c->upgrade_batch)
		fprintf(out, "upgrade = rolling:%u\n", c->upgrade_batch);
	else
		fprintf(out, "upgrade = all\n");
	print_gate(out, c);
	fprintf(out, "max_draining = %u\n", c->max_draining);
	if (c->user)
		print_value(out, "user", c->user);
	if (c->group)
		print_value(out, "group", c->group);
	if (c->directory)
		print_value(out, "directory", c->directory);
	print_process(out, c);
	print_cgroup_limits(out, c);
	if (c->nenv)
		config_write_words(out, "environment", c->env, c->nenv);
	print_env_files(out, c);
	if (c->forward_signals) {
		fprintf(out, "forward_signals =");
		for (int sig = 1; sig < 64; sig++) {
			if (c->forward_signals & (1ull << sig))
				fprintf(out, " %s", signal_name(sig));
		}
		fprintf(out, "\n");
	}
	print_log(out, &c->log);
}

void config_print_sockets(const struct config *config, FILE *out)
{
	fprintf(out, "[baton]\n");
	if (config->control)
		fprintf(out, "control = %s\n", config->control);
	if (config->control_group)
		fprintf(out, "control_group = %s\n", config->control_group);
	if (config->cgroup)
		print_value(out, "cgroup", config->cgroup);
	for (size_t i = 0; i < config->nsockets; i++)
		print_socket(out, config->sockets[i]);
}

void config_print(const struct config *config, FILE *out)
{
	config_print_sockets(config, out);
	for (size_t i = 0; i < config->nservices; i++)
		config_print_service(config->services[i], NULL, out);
}
