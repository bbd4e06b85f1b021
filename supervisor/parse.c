#include "parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <strings.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const struct {
	const char *name;
	double secs;
} units[] = {
	{"ms", 0.001}, {"s", 1}, {"sec", 1}, {"m", 60}, {"min", 60}, {"h", 3600}, {"d", 86400},
};

static int unit_lookup(const char *s, size_t n, double *secs)
{
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strlen(units[i].name) == n && strncmp(units[i].name, s, n) == 0) {
			*secs = units[i].secs;
			return 0;
		}
	}
	return -1;
}

// Reads one "NUMBER[UNIT]" part; a missing unit is allowed only alone.
static int duration_part(const char **pp, double *out, bool *had_unit)
{
	const char *p = *pp, *start = p;
	while (isdigit((unsigned char)*p))
		p++;
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p))
			p++;
	}
	if (p == start || (p == start + 1 && *start == '.'))
		return -1;
	double n = strtod(start, NULL);
	const char *u = p;
	while (isalpha((unsigned char)*p))
		p++;
	double scale = 1;
	*had_unit = p > u;
	if (*had_unit && unit_lookup(u, (size_t)(p - u), &scale) < 0)
		return -1;
	// Dividing by 1000 reads "9ms" as the same double as "0.009".
	*out = scale < 1 ? n / (1 / scale) : n * scale;
	*pp = p;
	return 0;
}

int parse_duration(const char *s, double *secs, char *err, size_t errlen)
{
	const char *p = s;
	double total = 0;
	int parts = 0;
	bool had_unit = true;
	while (*p) {
		double part;
		if (!had_unit || duration_part(&p, &part, &had_unit) < 0)
			goto error;
		total += part;
		parts++;
	}
	if (parts == 0 || (parts > 1 && !had_unit) || !(total <= PARSE_DURATION_MAX))
		goto error;
	// Millisecond precision: what format_duration writes reads back the same.
	*secs = round(total * 1000) / 1000;
	return 0;
error:
	return fail(err, errlen, "expected a duration like 250ms, 30s, 5m or 1h, got \"%s\"", s);
}

void format_duration(double secs, char *out, size_t outlen)
{
	long long ms = llround(secs * 1000);
	if (ms == 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	if (ms % 1000 != 0) {
		snprintf(out, outlen, "%lldms", ms);
		return;
	}
	long long s = ms / 1000;
	if (s % 3600 == 0)
		snprintf(out, outlen, "%lldh", s / 3600);
	else if (s % 60 == 0)
		snprintf(out, outlen, "%lldm", s / 60);
	else if (s > 60)
		snprintf(out, outlen, "%lldm%llds", s / 60, s % 60);
	else
		snprintf(out, outlen, "%llds", s);
}

// Each unit has its short and its long name; the largest that fits comes first.
static const struct {
	const char *name, *longname;
	unsigned shift;
} size_units[] = {
	{"T", "TiB", 40}, {"G", "GiB", 30}, {"M", "MiB", 20}, {"K", "KiB", 10}, {"B", "B", 0},
};

static int size_unit(const char *u, unsigned *shift)
{
	if (!*u) {
		*shift = 0;
		return 0;
	}
	for (size_t i = 0; i < sizeof(size_units) / sizeof(size_units[0]); i++) {
		if (strcmp(u, size_units[i].name) == 0 || strcmp(u, size_units[i].longname) == 0) {
			*shift = size_units[i].shift;
			return 0;
		}
	}
	return -1;
}

int parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen)
{
	uint64_t n = 0;
	const char *p = s;
	unsigned shift;
	if (!isdigit((unsigned char)*p))
		goto error;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');
		if (n > (UINT64_MAX - digit) / 10)
			goto error;
		n = n * 10 + digit;
	}
	if (size_unit(p, &shift) < 0 || n > UINT64_MAX >> shift)
		goto error;
	*bytes = n << shift;
	return 0;
error:
	return fail(err, errlen, "expected a size like 512, 64KiB, 10MiB or 1GiB, got \"%s\"", s);
}

void format_size(uint64_t bytes, char *out, size_t outlen)
{
	for (size_t i = 0; bytes && i < sizeof(size_units) / sizeof(size_units[0]) - 1; i++) {
		uint64_t unit = (uint64_t)1 << size_units[i].shift;
		if (bytes % unit == 0) {
			snprintf(out, outlen, "%" PRIu64 "%s", bytes / unit,
				size_units[i].longname);
			return;
		}
	}
	snprintf(out, outlen, "%" PRIu64, bytes);
}

static const struct {
	const char *name;
	int signo;
} signals[] = {
	{"HUP", SIGHUP}, {"INT", SIGINT}, {"QUIT", SIGQUIT}, {"ILL", SIGILL}, {"TRAP", SIGTRAP},
	{"ABRT", SIGABRT}, {"BUS", SIGBUS}, {"FPE", SIGFPE}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
	{"SEGV", SIGSEGV}, {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM},
	{"TERM", SIGTERM}, {"CHLD", SIGCHLD}, {"CONT", SIGCONT}, {"STOP", SIGSTOP},
	{"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU}, {"URG", SIGURG},
	{"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
	{"WINCH", SIGWINCH}, {"IO", SIGIO}, {"PWR", SIGPWR}, {"SYS", SIGSYS},
};

const char *signal_name(int signo)
{
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		if (signals[i].signo == signo)
			return signals[i].name;
	}
	return NULL;
}

int parse_signal(const char *s, int *signo, char *err, size_t errlen)
{
	const char *name = s;
	if (strncasecmp(name, "SIG", 3) == 0)
		name += 3;
	for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++) {
		if (strcasecmp(signals[i].name, name) == 0) {
			*signo = signals[i].signo;
			return 0;
		}
	}
	unsigned long n;
	char tmp[1];
	if (parse_uint(s, 1, SIGRTMAX, &n, tmp, sizeof(tmp)) == 0) {
		*signo = (int)n;
		return 0;
	}
	return fail(err, errlen, "expected a signal name like TERM or a number, got \"%s\"", s);
}

// The signals batond itself needs (TERM, INT, CHLD...) cannot be passed on.
static const int forwardable[] = {SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};

int parse_signal_set(const char *s, uint64_t *set, char *err, size_t errlen)
{
	char *copy = strdup(s), *save = NULL;
	*set = 0;
	if (!copy)
		return fail(err, errlen, "out of memory");
	for (char *tok = strtok_r(copy, " \t,", &save); tok; tok = strtok_r(NULL, " \t,", &save)) {
		int sig;
		if (parse_signal(tok, &sig, err, errlen) < 0) {
			free(copy);
			return -1;
		}
		bool ok = false;
		for (size_t i = 0; i < sizeof(forwardable) / sizeof(forwardable[0]); i++)
			ok = ok || forwardable[i] == sig;
		if (!ok) {
			fail(err, errlen,
				"SIG%s cannot be passed on; expected some of HUP QUIT USR1 USR2 WINCH "
				"ALRM, or none",
				signal_name(sig) ? signal_name(sig) : tok);
			free(copy);
			return -1;
		}
		*set |= 1ull << sig;
	}
	free(copy);
	if (*set == 0)
		return fail(err, errlen, "expected signal names like HUP USR1, or none");
	return 0;
}

int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out, char *err,
	size_t errlen)
{
	if (!isdigit((unsigned char)*s))
		goto error;
	errno = 0;
	char *end;
	unsigned long n = strtoul(s, &end, 10);
	if (errno || *end || n < min || n > max)
		goto error;
	*out = n;
	return 0;
error:
	return fail(err, errlen, "expected a whole number from %lu to %lu, got \"%s\"", min, max, s);
}

int parse_mode(const char *s, mode_t *mode, char *err, size_t errlen)
{
	char *end;
	if (!*s || strspn(s, "01234567") != strlen(s))
		goto error;
	unsigned long n = strtoul(s, &end, 8);
	if (n > 07777)
		goto error;
	*mode = (mode_t)n;
	return 0;
error:
	return fail(err, errlen, "expected an octal file mode like 0660, got \"%s\"", s);
}

int parse_int(const char *s, long min, long max, long *out, char *err, size_t errlen)
{
	const char *digits = *s == '-' ? s + 1 : s;
	if (!isdigit((unsigned char)*digits))
		goto error;
	errno = 0;
	char *end;
	long n = strtol(s, &end, 10);
	if (errno || *end || n < min || n > max)
		goto error;
	*out = n;
	return 0;
error:
	return fail(err, errlen, "expected a whole number from %ld to %ld, got \"%s\"", min, max, s);
}

// One side of a limit: infinity, or a count (or a size) below RLIM_INFINITY.
static int parse_limit_value(const char *s, bool size, rlim_t *value)
{
	uint64_t n;
	char tmp[1], *end;
	if (strcmp(s, "infinity") == 0) {
		*value = RLIM_INFINITY;
		return 0;
	}
	if (size) {
		if (parse_size(s, &n, tmp, sizeof(tmp)) < 0)
			return -1;
	} else {
		if (!isdigit((unsigned char)*s))
			return -1;
		errno = 0;
		n = strtoull(s, &end, 10);
		if (errno || *end)
			return -1;
	}
	if (n >= (uint64_t)RLIM_INFINITY)
		return -1;
	*value = (rlim_t)n;
	return 0;
}

int parse_limit(const char *s, bool size, rlim_t *soft, rlim_t *hard, char *err, size_t errlen)
{
	char text[64], out_soft[32], out_hard[32];
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	rlim_t a, b;
	if (n >= sizeof(text))
		goto error;
	memcpy(text, s, n);
	text[n] = '\0';
	if (parse_limit_value(text, size, &a) < 0 ||
		parse_limit_value(colon ? colon + 1 : text, size, &b) < 0)
		goto error;
	if (a > b) {
		format_limit(a, a, size, out_soft, sizeof(out_soft));
		format_limit(b, b, size, out_hard, sizeof(out_hard));
		return fail(err, errlen, "the soft limit %s is above the hard limit %s", out_soft,
			out_hard);
	}
	*soft = a;
	*hard = b;
	return 0;
error:
	return fail(err, errlen, "expected SOFT[:HARD], each %s or infinity, got \"%s\"",
		size ? "a size like 8MiB" : "a whole number", s);
}

static void format_limit_value(rlim_t v, bool size, char *out, size_t outlen)
{
	if (v == RLIM_INFINITY)
		snprintf(out, outlen, "infinity");
	else if (size)
		format_size((uint64_t)v, out, outlen);
	else
		snprintf(out, outlen, "%" PRIu64, (uint64_t)v);
}

void format_limit(rlim_t soft, rlim_t hard, bool size, char *out, size_t outlen)
{
	char a[32], b[32];
	format_limit_value(soft, size, a, sizeof(a));
	if (soft == hard) {
		snprintf(out, outlen, "%s", a);
		return;
	}
	format_limit_value(hard, size, b, sizeof(b));
	snprintf(out, outlen, "%s:%s", a, b);
}

int parse_umask(const char *s, mode_t *mask, char *err, size_t errlen)
{
	mode_t m;
	char tmp[1];
	if (parse_mode(s, &m, tmp, sizeof(tmp)) < 0 || m > 0777)
		return fail(err, errlen, "expected an octal umask from 0000 to 0777 like 0027, got \"%s\"",
			s);
	*mask = m;
	return 0;
}

static void set_cgroup_value(char *value, char *text, const char *v, const char *t)
{
	snprintf(value, PARSE_CGROUP_VALUE_MAX, "%s", v);
	snprintf(text, PARSE_CGROUP_VALUE_MAX, "%s", t);
}

// memory.max and memory.high: less than a page or so would leave no room to run.
static int cgroup_bytes(const char *s, char *value, char *text, char *err, size_t errlen)
{
	uint64_t n;
	char v[32], t[32], tmp[1];
	if (parse_size(s, &n, tmp, sizeof(tmp)) < 0)
		return fail(err, errlen, "expected a size like 512MiB, or max, got \"%s\"", s);
	if (n < PARSE_CGROUP_MEMORY_MIN)
		return fail(err, errlen, "must be at least 4KiB, or max for no limit, got \"%s\"",
			s);
	snprintf(v, sizeof(v), "%" PRIu64, n);
	format_size(n, t, sizeof(t));
	set_cgroup_value(value, text, v, t);
	return 0;
}

// cpu.max: a quota of the period in microseconds, 1% being the kernel's least, 1ms.
static int cgroup_cpu(const char *s, char *value, char *text, char *err, size_t errlen)
{
	char digits[16], v[32], t[32], tmp[1];
	size_t n = strlen(s);
	unsigned long percent;
	if (n < 2 || n >= sizeof(digits) || s[n - 1] != '%')
		goto error;
	memcpy(digits, s, n - 1);
	digits[n - 1] = '\0';
	if (parse_uint(digits, 1, PARSE_CGROUP_CPU_MAX, &percent, tmp, sizeof(tmp)) < 0)
		goto error;
	snprintf(v, sizeof(v), "%lu %d", percent * (PARSE_CGROUP_CPU_PERIOD / 100),
		PARSE_CGROUP_CPU_PERIOD);
	snprintf(t, sizeof(t), "%lu%%", percent);
	set_cgroup_value(value, text, v, t);
	return 0;
error:
	return fail(err, errlen,
		"expected a whole percentage of one CPU from 1%% to %d%% like 150%%, or max, got "
		"\"%s\"",
		PARSE_CGROUP_CPU_MAX, s);
}

static int cgroup_number(const char *s, unsigned long max, char *value, char *text, char *err,
	size_t errlen)
{
	unsigned long n;
	char v[32];
	if (parse_uint(s, 1, max, &n, err, errlen) < 0)
		return -1;
	snprintf(v, sizeof(v), "%lu", n);
	set_cgroup_value(value, text, v, v);
	return 0;
}

int parse_cgroup_limit(const char *s, enum cgroup_form form, char *value, char *text, char *err,
	size_t errlen)
{
	if (strcmp(s, "max") == 0 && form != CGROUP_FORM_WEIGHT) {
		char v[32] = "max";
		if (form == CGROUP_FORM_CPU)
			snprintf(v, sizeof(v), "max %d", PARSE_CGROUP_CPU_PERIOD);
		set_cgroup_value(value, text, v, "max");
		return 0;
	}
	switch (form) {
	case CGROUP_FORM_BYTES:
		return cgroup_bytes(s, value, text, err, errlen);
	case CGROUP_FORM_CPU:
		return cgroup_cpu(s, value, text, err, errlen);
	case CGROUP_FORM_WEIGHT:
		return cgroup_number(s, PARSE_CGROUP_WEIGHT_MAX, value, text, err, errlen);
	case CGROUP_FORM_PIDS:
		if (cgroup_number(s, PARSE_CGROUP_PIDS_MAX, value, text, err, errlen) == 0)
			return 0;
		return fail(err, errlen, "expected a whole number from 1 to %d, or max, got \"%s\"",
			PARSE_CGROUP_PIDS_MAX, s);
	}
	return fail(err, errlen, "unknown form of cgroup limit");
}

int parse_cgroup(const char *s, bool *is_auto, char *err, size_t errlen)
{
	*is_auto = strcmp(s, "auto") == 0;
	if (*is_auto || strcmp(s, "none") == 0)
		return 0;
	if (s[0] != '/')
		goto error;
	size_t n;
	for (const char *p = s; *p == '/'; p += n) {
		p++;
		n = strcspn(p, "/");
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			goto error;
	}
	return 0;
error:
	return fail(err, errlen,
		"expected auto, none or an absolute path with no . or .. component, got \"%s\"", s);
}

static int parse_port(const char *s, unsigned *port)
{
	unsigned long n;
	char tmp[1];
	if (parse_uint(s, 0, 65535, &n, tmp, sizeof(tmp)) < 0)
		return -1;
	*port = (unsigned)n;
	return 0;
}

static int parse_inet(const char *s, struct address *addr)
{
	const char *colon;
	size_t hostlen;
	if (*s == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return -1;
		s++;
		hostlen = (size_t)(close - s);
		colon = close + 1;
		addr->ipv6 = true;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -1;
		hostlen = (size_t)(colon - s);
		addr->ipv6 = false;
	}
	if (hostlen == 0 || hostlen >= sizeof(addr->host))
		return -1;
	memcpy(addr->host, s, hostlen);
	addr->host[hostlen] = '\0';
	unsigned char buf[16];
	if (inet_pton(addr->ipv6 ? AF_INET6 : AF_INET, addr->host, buf) != 1)
		return -1;
	return parse_port(colon + 1, &addr->port);
}

int parse_address(const char *s, struct address *addr, char *err, size_t errlen)
{
	memset(addr, 0, sizeof(*addr));
	if (strncmp(s, "unix:", 5) == 0) {
		const char *path = s + 5;
		addr->family = ADDRESS_UNIX;
		if (path[0] != '/')
			return fail(err, errlen, "expected an absolute path after unix:, got \"%s\"", s);
		if (strlen(path) >= sizeof(addr->path))
			return fail(err, errlen, "unix socket path longer than %zu bytes",
				sizeof(addr->path) - 1);
		for (const char *c = path; *c; c++) {
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				return fail(err, errlen, "a control character in the unix socket path");
		}
		strcpy(addr->path, path);
		return 0;
	}
	const char *rest;
	if (strncmp(s, "tcp:", 4) == 0) {
		addr->family = ADDRESS_TCP;
		rest = s + 4;
	} else if (strncmp(s, "udp:", 4) == 0) {
		addr->family = ADDRESS_UDP;
		rest = s + 4;
	} else {
		return fail(err, errlen,
			"expected tcp:HOST:PORT, tcp:[IPV6]:PORT, udp:HOST:PORT or unix:/PATH, "
			"got \"%s\"",
			s);
	}
	if (parse_inet(rest, addr) < 0)
		return fail(err, errlen,
			"expected a numeric address and a port from 0 to 65535 like "
			"%.3s:127.0.0.1:8080 or %.3s:[::1]:8080, got \"%s\"",
			s, s, s);
	return 0;
}

struct words {
	char *out;       /* where the next character goes */
	size_t count;    /* words finished */
	bool in_word;
};

static void word_putc(struct words *w, char c)
{
	*w->out++ = c;
	w->in_word = true;
}

static void word_end(struct words *w)
{
	if (!w->in_word)
		return;
	*w->out++ = '\0';
	w->count++;
	w->in_word = false;
}

// Copies the words of s into w->out separated by NULs; returns 0 or -1.
static int split(const char *s, struct words *w, char *err, size_t errlen)
{
	const char *p = s;
	while (*p) {
		char c = *p++;
		if (c == ' ' || c == '\t' || c == '\n') {
			word_end(w);
		} else if (c == '\'') {
			w->in_word = true;
			while (*p && *p != '\'')
				word_putc(w, *p++);
			if (!*p)
				return fail(err, errlen, "unterminated single quote");
			p++;
		} else if (c == '"') {
			w->in_word = true;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1] && strchr("\"\\$`", p[1]))
					p++;
				word_putc(w, *p++);
			}
			if (!*p)
				return fail(err, errlen, "unterminated double quote");
			p++;
		} else if (c == '\\') {
			if (!*p)
				return fail(err, errlen, "backslash at the end");
			word_putc(w, *p++);
		} else {
			word_putc(w, c);
		}
	}
	word_end(w);
	return 0;
}

char **parse_words(const char *s, size_t *count, char *err, size_t errlen)
{
	size_t len = strlen(s);
	// At most len/2+1 words; each needs a pointer and at most its length + 1.
	size_t maxwords = len / 2 + 2;
	size_t size = maxwords * sizeof(char *) + len + maxwords;
	char **argv = malloc(size);
	if (!argv) {
		fail(err, errlen, "out of memory");
		return NULL;
	}
	char *chars = (char *)(argv + maxwords);
	struct words w = {.out = chars};
	if (split(s, &w, err, errlen) < 0)
		goto error;
	if (w.count == 0) {
		fail(err, errlen, "expected at least one word");
		goto error;
	}
	char *p = chars;
	for (size_t i = 0; i < w.count; i++) {
		argv[i] = p;
		p += strlen(p) + 1;
	}
	argv[w.count] = NULL;
	*count = w.count;
	return argv;
error:
	free(argv);
	return NULL;
}

int parse_ready(const char *s, struct ready_spec *ready, char *err, size_t errlen)
{
	memset(ready, 0, sizeof(*ready));
	if (strcmp(s, "none") == 0) {
		ready->mode = READY_NONE;
		return 0;
	}
	if (strcmp(s, "notify") == 0) {
		ready->mode = READY_NOTIFY;
		return 0;
	}
	char tmp[128];
	if (strncmp(s, "fd:", 3) == 0) {
		unsigned long n;
		if (parse_uint(s + 3, 3, 1023, &n, tmp, sizeof(tmp)) < 0)
			return fail(err, errlen, "fd: %s", tmp);
		ready->mode = READY_FD;
		ready->fd = (int)n;
		return 0;
	}
	if (strncmp(s, "delay:", 6) == 0) {
		if (parse_duration(s + 6, &ready->delay, tmp, sizeof(tmp)) < 0)
			return fail(err, errlen, "delay: %s", tmp);
		ready->mode = READY_DELAY;
		return 0;
	}
	if (strncmp(s, "exec:", 5) == 0) {
		ready->mode = READY_EXEC;
		return 0;
	}
	return fail(err, errlen, "expected notify, fd:N, delay:DURATION, exec:COMMAND or none, got "
		"\"%s\"", s);
}

static const char *const restart_names[] = {
	[RESTART_ALWAYS] = "always",
	[RESTART_ON_FAILURE] = "on-failure",
	[RESTART_NEVER] = "never",
};

int parse_restart(const char *s, enum restart_policy *policy, char *err, size_t errlen)
{
	for (size_t i = 0; i < sizeof(restart_names) / sizeof(restart_names[0]); i++) {
		if (strcmp(restart_names[i], s) == 0) {
			*policy = (enum restart_policy)i;
			return 0;
		}
	}
	return fail(err, errlen, "expected always, on-failure or never, got \"%s\"", s);
}

const char *restart_name(enum restart_policy policy)
{
	return restart_names[policy];
}

int parse_upgrade(const char *s, unsigned *batch, char *err, size_t errlen)
{
	if (strcmp(s, "all") == 0) {
		*batch = 0;
		return 0;
	}
	if (strcmp(s, "rolling") == 0) {
		*batch = 1;
		return 0;
	}
	unsigned long n;
	char tmp[1];
	if (strncmp(s, "rolling:", 8) == 0 && parse_uint(s + 8, 1, 10000, &n, tmp, sizeof(tmp)) == 0) {
		*batch = (unsigned)n;
		return 0;
	}
	return fail(err, errlen, "expected all or rolling:N with N from 1 to 10000, got \"%s\"", s);
}

int parse_start_limit(const char *s, unsigned *burst, double *interval, char *err, size_t errlen)
{
	if (strcmp(s, "none") == 0) {
		*burst = 0;
		*interval = 0;
		return 0;
	}
	const char *slash = strchr(s, '/');
	char num[16], tmp[1];
	unsigned long n;
	if (!slash || (size_t)(slash - s) >= sizeof(num))
		goto error;
	memcpy(num, s, (size_t)(slash - s));
	num[slash - s] = '\0';
	if (parse_uint(num, 1, 100000, &n, tmp, sizeof(tmp)) < 0)
		goto error;
	if (parse_duration(slash + 1, interval, tmp, sizeof(tmp)) < 0 || *interval <= 0)
		goto error;
	*burst = (unsigned)n;
	return 0;
error:
	return fail(err, errlen, "expected RESTARTS/INTERVAL like 5/60s, or none, got \"%s\"", s);
}

int parse_bool(const char *s, bool *out, char *err, size_t errlen)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return fail(err, errlen, "expected yes or no, got \"%s\"", s);
}

static const char *const reserved_names[] = {
	"LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET", "SERVER_STARTER_PORT",
	"SERVER_STARTER_GENERATION", "EINHORN_FD_COUNT", "BATON_SERVICE", "BATON_GENERATION",
	"BATON_INSTANCE", "BATON_PID", "WATCHDOG_USEC", "WATCHDOG_PID",
};

bool env_name_valid(const char *s, size_t n)
{
	if (n == 0 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '_'))
			return false;
	}
	return true;
}

bool env_name_reserved(const char *var)
{
	size_t n = strcspn(var, "=");
	for (size_t i = 0; i < sizeof(reserved_names) / sizeof(reserved_names[0]); i++) {
		if (strlen(reserved_names[i]) == n && strncmp(var, reserved_names[i], n) == 0)
			return true;
	}
	return strncmp(var, "EINHORN_FD_", 11) == 0;
}

void describe_status(int status, char *out, size_t outlen)
{
	if (WIFEXITED(status)) {
		snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
		return;
	}
	if (WIFSIGNALED(status)) {
		int sig = WTERMSIG(status);
		const char *name = signal_name(sig);
		snprintf(out, outlen, "killed by signal %d (%s)%s", sig, name ? name : "?",
			WCOREDUMP(status) ? ", core dumped" : "");
		return;
	}
	snprintf(out, outlen, "ended with wait status 0x%x", (unsigned)status);
}
