#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "display.h"
#include "output.h"
#include "parse.h"
#include "protocol.h"
#include "version.h"

#define REPLY_TIMEOUT_MS 30000

enum exit_code {
	EXIT_DONE = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
};

struct args {
	const char *control;
	bool json;
	bool have_verb;
	enum protocol_verb verb;
	unsigned flags;
	unsigned long values[VALUE_COUNT]; /* of the flags with a number */
	int argc;
	const char *argv[PROTOCOL_WORDS_MAX];
	char **gate; /* upgrade --gate COMMAND: its words */
	size_t ngate;
};

// The options that are flags of the request, written on it by their long name.
static const struct request_option {
	const char *short_name, *name;
	enum protocol_flag flag;
	int value; /* the enum protocol_value of its number, or -1 */
} request_options[] = {
	{NULL, "--wait", FLAG_WAIT, -1},
	{"-f", "--follow", FLAG_FOLLOW, -1},
	{NULL, "--reopen", FLAG_REOPEN, -1},
	{"-n", "--lines", FLAG_LINES, VALUE_LINES},
	{NULL, "--gen", FLAG_GEN, VALUE_GEN},
	{NULL, "--pid", FLAG_PID, VALUE_PID},
	{NULL, "--canary", FLAG_CANARY, VALUE_CANARY},
	{NULL, "--observe", FLAG_OBSERVE, VALUE_OBSERVE},
	{NULL, "--continue", FLAG_CONTINUE, -1},
	{NULL, "--abort", FLAG_ABORT, -1},
	{NULL, "--gate", FLAG_GATE, -1},
};

#define REQUEST_OPTIONS (sizeof(request_options) / sizeof(request_options[0]))

#define UPGRADE_USAGE "upgrade [--wait] [--canary N [--observe DURATION]] [--gate COMMAND] SERVICE"
#define UPGRADE_DECISION_USAGE "upgrade [--wait] --continue SERVICE | upgrade --abort SERVICE"

static void usage(FILE *out)
{
	fprintf(out, "usage: batonctl [-s PATH] [--json] VERB [ARGS]\n\nverbs:\n");
	for (int v = 0; v < VERB_COUNT; v++) {
		if (v == VERB_UPGRADE)
			fprintf(out, "  %s\n  %s\n", UPGRADE_USAGE, UPGRADE_DECISION_USAGE);
		else
			fprintf(out, "  %s\n", protocol_verb_info((enum protocol_verb)v)->usage);
	}
	fprintf(out,
		"\n"
		"  -s, --control PATH  batond's control socket (default: $BATON_CONTROL,\n"
		"                      /run/baton/control.sock as root, else\n"
		"                      $XDG_RUNTIME_DIR/baton/control.sock)\n"
		"  -j, --json          print JSON: one object, or one per line for watch,\n"
		"                      --wait and logs\n"
		"  --wait              stop, upgrade: show what happens until it is done\n"
		"  --canary N          upgrade: start N new processes beside the old ones, then\n"
		"                      pause until --continue or --abort\n"
		"  --observe DURATION  upgrade --canary: go on by itself when no canary failed\n"
		"                      for that long\n"
		"  --gate COMMAND      upgrade: run COMMAND on each batch once it is ready; it\n"
		"                      exits 0 to go on, else the upgrade rolls back\n"
		"  --continue          upgrade: go on past the canaries\n"
		"  --abort             upgrade: end it; the old processes are whole again\n"
		"  -f, --follow        logs: then show each new line as it comes\n"
		"  -n, --lines N       logs: only the last N lines kept\n"
		"  --gen N             logs: only the lines of generation N\n"
		"  --pid PID           logs: only the lines of process PID\n"
		"  --reopen            logs: make batond open its log files again\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"Exit status: 0 done, 1 the operation failed, 2 usage, 3 cannot reach batond.\n"
		"See batonctl(1).\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "batonctl: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\nTry 'batonctl --help'.\n");
	va_end(ap);
	return -1;
}

static int verb_lookup(const char *name)
{
	for (int v = 0; v < VERB_COUNT; v++) {
		if (strcmp(protocol_verb_info((enum protocol_verb)v)->name, name) == 0)
			return v;
	}
	return -1;
}

static int take_word(struct args *a, const char *word)
{
	if (!a->have_verb) {
		int v = verb_lookup(word);
		if (v < 0)
			return usage_error("unknown verb \"%s\"", word);
		a->verb = (enum protocol_verb)v;
		a->have_verb = true;
		return 0;
	}
	if (a->argc == PROTOCOL_WORDS_MAX - 2)
		return usage_error("too many arguments");
	for (const char *p = word; *p; p++) {
		if (*p <= ' ' || *p == 0x7f)
			return usage_error("argument \"%s\" has a blank or control character", word);
	}
	if (!*word)
		return usage_error("empty argument");
	a->argv[a->argc++] = word;
	return 0;
}

static const struct request_option *request_option(const char *opt, size_t len)
{
	for (size_t i = 0; i < REQUEST_OPTIONS; i++) {
		const struct request_option *o = &request_options[i];
		if ((strlen(o->name) == len && strncmp(o->name, opt, len) == 0) ||
			(o->short_name && strlen(o->short_name) == len &&
				strncmp(o->short_name, opt, len) == 0))
			return o;
	}
	return NULL;
}

// An option's number: decimal, from 1 to 2^31 - 1, as the protocol takes it.
static int take_number(struct args *a, const struct request_option *o, const char *opt,
	const char *value)
{
	unsigned long v = 0;
	const char *p = value;
	for (; p && *p >= '0' && *p <= '9' && v <= 0x7fffffff; p++)
		v = v * 10 + (unsigned long)(*p - '0');
	if (!value)
		return usage_error("%s needs a number", opt);
	// -n 0: the new lines only, as tail -f -n 0 prints them.
	unsigned long least = o->value == VALUE_LINES ? 0 : 1;
	if (p == value || *p || v < least || v > 0x7fffffff)
		return usage_error("%s takes a number from %lu to 2147483647, not \"%s\"", opt,
			least, value);
	a->values[o->value] = v;
	return 0;
}

// Returns 1 when the option was consumed with the next word, 0 alone, -1 on error.
static int take_request_option(struct args *a, const char *opt, const char *next)
{
	size_t len = strcspn(opt, "=");
	const struct request_option *o = request_option(opt, len);
	if (!o)
		return usage_error("unknown option %s", opt);
	a->flags |= o->flag;
	if (o->value < 0) {
		if (opt[len])
			return usage_error("%.*s takes no value", (int)len, opt);
		return 0;
	}
	// --lines=N, or -n N and --lines N: the number is the next word.
	if (opt[len] && opt[1] == '-')
		return take_number(a, o, o->name, opt + len + 1);
	if (opt[len])
		return usage_error("unknown option %s", opt);
	return take_number(a, o, opt, next) < 0 ? -1 : 1;
}

// --observe DURATION: milliseconds on the wire.
static int take_observe(struct args *a, const char *value)
{
	double secs;
	char err[256];
	if (!value)
		return usage_error("--observe needs a duration, such as 30s");
	if (parse_duration(value, &secs, err, sizeof(err)) < 0 || secs <= 0 || secs > 2147483)
		return usage_error("--observe takes a duration from 1ms to 24d, such as 30s, not "
				   "\"%s\"", value);
	a->flags |= FLAG_OBSERVE;
	a->values[VALUE_OBSERVE] = (unsigned long)(secs * 1000 + 0.5);
	return 0;
}

// --gate COMMAND: its words, as baton.conf(5) splits a command; each goes as one word.
static int take_gate(struct args *a, const char *value)
{
	char err[256];
	if (!value)
		return usage_error("--gate needs a command");
	if (a->gate)
		return usage_error("--gate is given twice");
	if (!(a->gate = parse_words(value, &a->ngate, err, sizeof(err))))
		return usage_error("--gate: %s", err);
	if (a->ngate > PROTOCOL_WORDS_MAX - 8)
		return usage_error("--gate: more than %d words", PROTOCOL_WORDS_MAX - 8);
	for (size_t i = 0; i < a->ngate; i++) {
		for (const char *p = a->gate[i]; *p; p++) {
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return usage_error("--gate: \"%s\" has a blank or control character; "
						   "a gate such as this belongs in upgrade_gate",
					a->gate[i]);
		}
	}
	a->flags |= FLAG_GATE;
	return 0;
}

// Returns 1 when the option was consumed with the next word, 0 alone, -1 on error.
static int take_option(struct args *a, const char *opt, const char *next)
{
	if (strcmp(opt, "--observe") == 0)
		return take_observe(a, next) < 0 ? -1 : 1;
	if (strncmp(opt, "--observe=", 10) == 0)
		return take_observe(a, opt + 10);
	if (strcmp(opt, "--gate") == 0)
		return take_gate(a, next) < 0 ? -1 : 1;
	if (strncmp(opt, "--gate=", 7) == 0)
		return take_gate(a, opt + 7);
	if (strcmp(opt, "-j") == 0 || strcmp(opt, "--json") == 0) {
		a->json = true;
	} else if (strcmp(opt, "-s") == 0 || strcmp(opt, "--control") == 0) {
		if (!next)
			return usage_error("%s needs a path", opt);
		a->control = next;
		return 1;
	} else if (strncmp(opt, "--control=", 10) == 0) {
		a->control = opt + 10;
	} else if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
		usage(stdout);
		exit(EXIT_DONE);
	} else if (strcmp(opt, "-V") == 0 || strcmp(opt, "--version") == 0) {
		printf("batonctl %s\n", BATON_VERSION);
		exit(EXIT_DONE);
	} else {
		return take_request_option(a, opt, next);
	}
	return 0;
}

static int check_args(const struct args *a)
{
	if (!a->have_verb)
		return usage_error("no verb given");
	const struct protocol_verb_info *info = protocol_verb_info(a->verb);
	for (size_t i = 0; i < REQUEST_OPTIONS; i++) {
		if (a->flags & request_options[i].flag & ~info->flags)
			return usage_error("%s does not apply to %s", request_options[i].name,
				info->name);
	}
	if ((a->flags & FLAG_REOPEN) && (a->flags != FLAG_REOPEN || a->argc > 0))
		return usage_error("logs --reopen takes no other option and no service");
	if (a->verb == VERB_UPGRADE) {
		unsigned decision = a->flags & (FLAG_CONTINUE | FLAG_ABORT);
		if (a->argc != 1 || (decision && (a->flags & (FLAG_CANARY | FLAG_OBSERVE | FLAG_GATE))) ||
			decision == (FLAG_CONTINUE | FLAG_ABORT) ||
			((a->flags & FLAG_OBSERVE) && !(a->flags & FLAG_CANARY)))
			return usage_error("usage: batonctl %s\n       batonctl %s", UPGRADE_USAGE,
				UPGRADE_DECISION_USAGE);
		return 0;
	}
	if (a->argc < info->min_args || a->argc > info->max_args)
		return usage_error("usage: batonctl %s", info->usage);
	return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
	bool options = true;
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (options && strcmp(w, "--") == 0) {
			options = false;
			continue;
		}
		int rc = (options && w[0] == '-' && w[1]) ? take_option(a, w, argv[i + 1])
							  : take_word(a, w);
		if (rc < 0)
			return -1;
		i += rc;
	}
	return check_args(a);
}

static char *default_control(void)
{
	const char *env = getenv("BATON_CONTROL");
	if (env && env[0])
		return strdup(env);
	return protocol_default_control(geteuid() == 0, getenv("XDG_RUNTIME_DIR"));
}

static int connect_control(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "batonctl: control socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "batonctl: cannot reach batond at %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int send_request(int fd, const struct args *a)
{
	char line[PROTOCOL_REQUEST_MAX];
	const struct protocol_verb_info *info = protocol_verb_info(a->verb);
	int n = snprintf(line, sizeof(line), "%s", info->name);
	for (size_t i = 0; i < REQUEST_OPTIONS && n > 0 && (size_t)n < sizeof(line); i++) {
		const struct request_option *o = &request_options[i];
		if (!(a->flags & o->flag))
			continue;
		if (o->value < 0)
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", o->name);
		else
			n += snprintf(line + n, sizeof(line) - (size_t)n, " %s=%lu", o->name,
				a->values[o->value]);
	}
	for (int i = 0; i < a->argc && n > 0 && (size_t)n < sizeof(line); i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", a->argv[i]);
	if (a->gate && n > 0 && (size_t)n < sizeof(line))
		n += snprintf(line + n, sizeof(line) - (size_t)n, " --");
	for (size_t i = 0; a->gate && i < a->ngate && n > 0 && (size_t)n < sizeof(line); i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", a->gate[i]);
	if (n < 0 || (size_t)n >= sizeof(line) - 1) {
		fprintf(stderr, "batonctl: request too long\n");
		return -1;
	}
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = send(fd, line + off, (size_t)(n - off), MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		// batond may have answered and closed already (a refusal): read that.
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return 0;
		if (w < 0) {
			fprintf(stderr, "batonctl: cannot send to batond: %s\n", strerror(errno));
			return -1;
		}
		off += (int)w;
	}
	return 0;
}

static int exit_for(const struct protocol_record *final)
{
	if (strcmp(final->type, "ok") == 0)
		return EXIT_DONE;
	const char *code = final->code ? final->code : "";
	if (strcmp(code, PROTOCOL_E_USAGE) == 0 || strcmp(code, PROTOCOL_E_UNKNOWN_VERB) == 0)
		return EXIT_USAGE;
	if (strcmp(code, PROTOCOL_E_DENIED) == 0)
		return EXIT_UNREACHABLE;
	return EXIT_FAILED;
}

struct reader {
	int fd;
	int timeout_ms;
	struct output *out; /* ticked while waiting, for a live view */
	bool skip_long;     /* lines too long for a record are skipped, not fatal */
	bool dropping;      /* ...and the start of one was dropped */
	char buf[PROTOCOL_RECORD_MAX * 4];
	size_t len, start;
};

// Returns the next line (without newline) and its length, or NULL with a
// message on stderr when the connection ends or times out first. With
// skip_long, a line too long for a record is returned with a length of
// PROTOCOL_RECORD_MAX, its content cut: the caller skips it.
static char *read_line(struct reader *r, size_t *len)
{
	for (;;) {
		char *nl = memchr(r->buf + r->start, '\n', r->len - r->start);
		if (nl) {
			char *line = r->buf + r->start;
			*len = (size_t)(nl - line);
			r->start += *len + 1;
			if (r->dropping)
				*len = PROTOCOL_RECORD_MAX;
			r->dropping = false;
			return line;
		}
		if (r->len - r->start >= PROTOCOL_RECORD_MAX && r->skip_long) {
			r->dropping = true;
			r->start = r->len;
		} else if (r->len - r->start >= PROTOCOL_RECORD_MAX) {
			fprintf(stderr, "batonctl: batond sent a line longer than %d bytes\n",
				PROTOCOL_RECORD_MAX);
			return NULL;
		}
		memmove(r->buf, r->buf + r->start, r->len - r->start);
		r->len -= r->start;
		r->start = 0;
		struct pollfd pfd = {.fd = r->fd, .events = POLLIN};
		int rc = poll(&pfd, 1, r->out && r->out->tick ? 100 : r->timeout_ms);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0 && r->out && r->out->tick) {
			r->out->tick(r->out);
			continue;
		}
		if (rc == 0) {
			fprintf(stderr, "batonctl: batond did not answer within %d s\n",
				r->timeout_ms / 1000);
			return NULL;
		}
		ssize_t n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "batonctl: batond closed the connection before answering%s%s\n",
				n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return NULL;
		}
		r->len += (size_t)n;
	}
}

// Tells whether standard output is gone (a pipe's reader exited): a stream then ends.
static bool output_gone(struct output *out)
{
	if (!ferror(out->out))
		return false;
	if (errno != EPIPE)
		fprintf(stderr, "batonctl: cannot write the output: %s\n", strerror(errno));
	return true;
}

static int read_reply(int fd, struct output *out, bool streaming, bool skip_long)
{
	static struct reader r;
	static struct protocol_record rec;
	unsigned long skipped = 0;
	r.fd = fd;
	r.timeout_ms = streaming ? -1 : REPLY_TIMEOUT_MS;
	r.out = out;
	r.skip_long = skip_long;
	for (;;) {
		size_t len;
		char *line = read_line(&r, &len);
		if (!line)
			return EXIT_UNREACHABLE;
		if (len >= PROTOCOL_RECORD_MAX && skip_long) {
			fprintf(stderr, "batonctl: skipped a record of batond longer than %d bytes\n",
				PROTOCOL_RECORD_MAX - 1);
			skipped++;
			continue;
		}
		if (out->line && out->line(out, line, len))
			continue;
		if (protocol_parse_record(&rec, line, len) < 0) {
			fprintf(stderr, "batonctl: malformed reply from batond: %.*s\n", (int)len, line);
			return EXIT_UNREACHABLE;
		}
		if (strcmp(rec.type, "ok") == 0 || strcmp(rec.type, "error") == 0) {
			out->finish(out, &rec);
			int status = exit_for(&rec);
			return status == EXIT_DONE && skipped ? EXIT_FAILED : status;
		}
		out->record(out, &rec, line, len);
		if (output_gone(out))
			return EXIT_FAILED;
	}
}

static int run(struct args *args)
{
	const struct args a = *args;
	char *path = a.control ? strdup(a.control) : default_control();
	if (!path) {
		fprintf(stderr, "batonctl: XDG_RUNTIME_DIR is not set to an absolute path: give "
				"the control socket with -s PATH or BATON_CONTROL\n");
		return EXIT_UNREACHABLE;
	}
	int fd = connect_control(path);
	free(path);
	if (fd < 0)
		return EXIT_UNREACHABLE;
	if (send_request(fd, &a) < 0) {
		close(fd);
		return EXIT_UNREACHABLE;
	}
	bool streaming = a.verb == VERB_WATCH || (a.flags & (FLAG_WAIT | FLAG_FOLLOW));
	struct output *out;
	if (a.json)
		out = output_json_create(a.verb, streaming, stdout);
	else if (streaming && a.verb != VERB_LOGS && isatty(STDOUT_FILENO))
		out = output_live_create(a.verb, stdout);
	else
		out = output_text_create(a.verb, streaming, stdout);
	if (!out) {
		fprintf(stderr, "batonctl: out of memory\n");
		close(fd);
		return EXIT_FAILED;
	}
	int status = read_reply(fd, out, streaming, a.verb == VERB_LOGS);
	out->destroy(out);
	close(fd);
	return status;
}

int main(int argc, char **argv)
{
	struct args a = {0};
	signal(SIGPIPE, SIG_IGN);
	int status = parse_args(argc, argv, &a) < 0 ? EXIT_USAGE : run(&a);
	free(a.gate);
	return status;
}
