#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

/*
 * The first byte picks a parser (and, for parse_uint, a range); the rest of
 * the input is the value. Each fuzz_* function returns -1 when the parser
 * refused the value, 0 when it checked what the parser made of it.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char err[512];
static unsigned range_pick; /* for parse_uint: the first byte's high part */

static void require(bool ok, const char *what, const char *value)
{
	if (ok)
		return;
	fprintf(stderr, "fuzz_values: broken invariant: %s, value \"%s\"\n", what, value);
	abort();
}

static bool duration_ok(double secs)
{
	return secs >= 0 && secs <= PARSE_DURATION_MAX;
}

static int fuzz_duration(const char *s)
{
	double secs = -1, again = -1;
	char text[64];
	if (parse_duration(s, &secs, err, sizeof(err)) < 0)
		return -1;
	require(duration_ok(secs), "a duration is within 0 and PARSE_DURATION_MAX", s);
	format_duration(secs, text, sizeof(text));
	require(parse_duration(text, &again, err, sizeof(err)) == 0, "a formatted duration parses",
		text);
	require(fabs(again - secs) <= 0.001, "a formatted duration is within 1 ms", text);
	return 0;
}

static int fuzz_signal(const char *s)
{
	int signo = 0, again = 0;
	if (parse_signal(s, &signo, err, sizeof(err)) < 0)
		return -1;
	require(signo >= 1 && signo <= SIGRTMAX, "a signal is from 1 to SIGRTMAX", s);
	const char *name = signal_name(signo);
	require(!name || (parse_signal(name, &again, err, sizeof(err)) == 0 && again == signo),
		"a signal's name parses back to it", s);
	return 0;
}

// Every blank- or comma-separated word of s is a signal in set, and no other.
static bool set_matches(const char *s, uint64_t set)
{
	uint64_t seen = 0;
	size_t n;
	for (const char *p = s; *p; p += n) {
		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (n == 0)
			break;
		char *word = strndup(p, n);
		int signo = 0;
		require(word != NULL, "memory for a word", s);
		bool ok = parse_signal(word, &signo, err, sizeof(err)) == 0;
		free(word);
		if (!ok || signo >= 64 || !(set & (1ull << signo)))
			return false;
		seen |= 1ull << signo;
	}
	return seen == set;
}

static int fuzz_signal_set(const char *s)
{
	static const int forwardable[] = {SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};
	uint64_t set = 0, allowed = 0;
	if (parse_signal_set(s, &set, err, sizeof(err)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(forwardable) / sizeof(forwardable[0]); i++)
		allowed |= 1ull << forwardable[i];
	require(set != 0 && (set & ~allowed) == 0, "a signal set holds forwardable signals", s);
	require(set_matches(s, set), "a signal set is the signals named", s);
	return 0;
}

static void format_address(const struct address *a, char *out, size_t outlen)
{
	static const char *const families[] = {"tcp", "udp", "unix"};
	if (a->family == ADDRESS_UNIX)
		snprintf(out, outlen, "unix:%s", a->path);
	else if (a->ipv6)
		snprintf(out, outlen, "%s:[%s]:%u", families[a->family], a->host, a->port);
	else
		snprintf(out, outlen, "%s:%s:%u", families[a->family], a->host, a->port);
}

static int fuzz_address(const char *s)
{
	struct address addr, again;
	char text[256];
	if (parse_address(s, &addr, err, sizeof(err)) < 0)
		return -1;
	require(addr.family <= ADDRESS_UNIX, "an address has a family", s);
	if (addr.family == ADDRESS_UNIX) {
		require(addr.path[0] == '/' && strcmp(addr.path, s + 5) == 0,
			"a unix path is absolute and as written", s);
	} else {
		require(addr.host[0] && strlen(addr.host) < sizeof(addr.host), "a host is set", s);
		require(addr.port <= 65535, "a port is at most 65535", s);
	}
	format_address(&addr, text, sizeof(text));
	require(parse_address(text, &again, err, sizeof(err)) == 0 &&
			memcmp(&addr, &again, sizeof(addr)) == 0,
		"an address written out parses back the same", text);
	return 0;
}

// Writes words single-quoted, the way a shell would read them back.
static char *quote_words(char **words, size_t count)
{
	size_t len = 1;
	for (size_t i = 0; i < count; i++)
		len += 4 * strlen(words[i]) + 3;
	char *out = malloc(len), *p = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < count; i++) {
		*p++ = '\'';
		for (const char *w = words[i]; *w; w++) {
			if (*w == '\'') {
				memcpy(p, "'\\''", 4);
				p += 4;
			} else {
				*p++ = *w;
			}
		}
		*p++ = '\'';
		*p++ = ' ';
	}
	*p = '\0';
	return out;
}

static void check_same_words(char **a, size_t na, char **b, size_t nb, const char *s)
{
	require(na == nb, "quoted words split into as many", s);
	for (size_t i = 0; i < na; i++)
		require(strcmp(a[i], b[i]) == 0, "quoted words read back the same", s);
}

static int fuzz_words(const char *s)
{
	size_t count = 0, count_again = 0;
	char **words = parse_words(s, &count, err, sizeof(err));
	if (!words)
		return -1;
	require(count >= 1 && count <= strlen(s) / 2 + 1, "at least one word, at most len/2+1", s);
	for (size_t i = 0; i < count; i++)
		require(words[i] != NULL, "count words before the NULL", s);
	require(words[count] == NULL, "words are NULL-terminated", s);
	char *quoted = quote_words(words, count);
	require(quoted != NULL, "memory for the quoted words", s);
	char **again = parse_words(quoted, &count_again, err, sizeof(err));
	require(again != NULL, "quoted words parse", quoted);
	check_same_words(words, count, again, count_again, quoted);
	free(again);
	free(quoted);
	free(words);
	return 0;
}

static int fuzz_ready(const char *s)
{
	struct ready_spec r;
	if (parse_ready(s, &r, err, sizeof(err)) < 0)
		return -1;
	require(r.mode <= READY_EXEC, "a ready mode is known", s);
	require((r.mode == READY_EXEC) == (strncmp(s, "exec:", 5) == 0), "exec: is READY_EXEC", s);
	require(r.mode != READY_FD || (r.fd >= 3 && r.fd <= 1023), "a ready fd is from 3 to 1023",
		s);
	require(r.mode != READY_DELAY || duration_ok(r.delay), "a ready delay is a duration", s);
	require((r.mode == READY_NONE) == (strcmp(s, "none") == 0), "none is READY_NONE", s);
	return 0;
}

static int fuzz_restart(const char *s)
{
	enum restart_policy policy;
	if (parse_restart(s, &policy, err, sizeof(err)) < 0)
		return -1;
	require(policy <= RESTART_NEVER && strcmp(restart_name(policy), s) == 0,
		"a restart policy is named as written", s);
	return 0;
}

static int fuzz_upgrade(const char *s)
{
	unsigned batch = 12345678;
	if (parse_upgrade(s, &batch, err, sizeof(err)) < 0)
		return -1;
	require(batch <= 10000, "an upgrade batch is at most 10000", s);
	require((batch == 0) == (strcmp(s, "all") == 0), "all, and only all, is batch 0", s);
	return 0;
}

static int fuzz_start_limit(const char *s)
{
	unsigned burst = 12345678;
	double interval = -1;
	if (parse_start_limit(s, &burst, &interval, err, sizeof(err)) < 0)
		return -1;
	if (strcmp(s, "none") == 0) {
		require(burst == 0 && interval == 0, "none is no limit", s);
		return 0;
	}
	require(burst >= 1 && burst <= 100000, "a burst is from 1 to 100000", s);
	require(interval > 0 && duration_ok(interval), "an interval is a positive duration", s);
	return 0;
}

static int fuzz_bool(const char *s)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	bool value, expected = false;
	if (parse_bool(s, &value, err, sizeof(err)) < 0)
		return -1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		expected = expected || strcasecmp(s, yes[i]) == 0;
	require(value == expected, "a boolean is yes when written so", s);
	return 0;
}

// The digits of s without leading zeros.
static const char *significant(const char *s)
{
	while (s[0] == '0' && s[1] != '\0')
		s++;
	return s;
}

static int fuzz_uint(const char *s)
{
	static const unsigned long ranges[][2] = {
		{0, ULONG_MAX}, {1, 65535}, {0, 0x7fffffff}, {1, 10000}, {3, 1023}, {5, 5},
	};
	const unsigned long *range = ranges[range_pick % (sizeof(ranges) / sizeof(ranges[0]))];
	unsigned long n;
	char text[32];
	if (parse_uint(s, range[0], range[1], &n, err, sizeof(err)) < 0)
		return -1;
	require(n >= range[0] && n <= range[1], "a number is within its range", s);
	snprintf(text, sizeof(text), "%lu", n);
	require(strcmp(text, significant(s)) == 0, "a number is its digits", s);
	return 0;
}

static int fuzz_mode(const char *s)
{
	mode_t mode;
	char text[32];
	if (parse_mode(s, &mode, err, sizeof(err)) < 0)
		return -1;
	require(mode <= 07777, "a mode is at most 07777", s);
	snprintf(text, sizeof(text), "%o", (unsigned)mode);
	require(strcmp(text, significant(s)) == 0, "a mode is its octal digits", s);
	return 0;
}

// Only the name, before any '=', decides.
static int fuzz_env_name(const char *s)
{
	char name[64];
	size_t n = strcspn(s, "=");
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	memcpy(name, s, n);
	name[n] = '\0';
	if (n == strcspn(s, "="))
		require(env_name_reserved(s) == env_name_reserved(name), "only the name counts", s);
	require(!env_name_reserved(s) || n > 0, "an empty name is not reserved", s);
	return 0;
}

static void check_size_round_trip(uint64_t bytes, const char *from)
{
	char text[32];
	uint64_t again = 0;
	format_size(bytes, text, sizeof(text));
	require(parse_size(text, &again, err, sizeof(err)) == 0, "a formatted size parses", from);
	require(again == bytes, "a formatted size reads back the same", text);
	require(strlen(text) <= strlen(from) || strspn(from, "0123456789") != strlen(from),
		"a formatted size is no longer than its digits", from);
}

// The value's own bytes are a count to format too, whatever parse_size says.
static int fuzz_size(const char *s)
{
	uint64_t bytes = 0;
	char digits[32];
	size_t n = strlen(s) < sizeof(bytes) ? strlen(s) : sizeof(bytes);
	memcpy(&bytes, s, n);
	snprintf(digits, sizeof(digits), "%" PRIu64, bytes);
	check_size_round_trip(bytes, digits);
	if (parse_size(s, &bytes, err, sizeof(err)) < 0)
		return -1;
	require(strspn(s, "0123456789") > 0, "a size starts with a digit", s);
	check_size_round_trip(bytes, s);
	return 0;
}

static int fuzz_int(const char *s)
{
	static const long ranges[][2] = {{-20, 19}, {-1000, 1000}, {LONG_MIN, LONG_MAX}};
	const long *range = ranges[range_pick % (sizeof(ranges) / sizeof(ranges[0]))];
	long n, again;
	char text[32];
	if (parse_int(s, range[0], range[1], &n, err, sizeof(err)) < 0)
		return -1;
	require(n >= range[0] && n <= range[1], "a number is within its range", s);
	require(strspn(s, "-0123456789") == strlen(s), "a number is a sign and digits", s);
	snprintf(text, sizeof(text), "%ld", n);
	require(parse_int(text, range[0], range[1], &again, err, sizeof(err)) == 0 && again == n,
		"a number written out parses back the same", s);
	return 0;
}

// The second byte's parity says whether the limit is of a size.
static int fuzz_limit(const char *s)
{
	bool size = range_pick & 1;
	rlim_t soft, hard, soft2, hard2;
	char text[96];
	if (parse_limit(s, size, &soft, &hard, err, sizeof(err)) < 0)
		return -1;
	require(soft <= hard, "a soft limit is at most its hard limit", s);
	require(strchr(s, ':') || soft == hard, "one value is both limits", s);
	format_limit(soft, hard, size, text, sizeof(text));
	require(parse_limit(text, size, &soft2, &hard2, err, sizeof(err)) == 0,
		"a formatted limit parses", text);
	require(soft2 == soft && hard2 == hard, "a formatted limit reads back the same", text);
	return 0;
}

// What a cgroup limit's file is given, for its form.
static bool cgroup_value_ok(enum cgroup_form form, const char *value)
{
	unsigned long long n = strtoull(value, NULL, 10);
	bool digits = value[0] >= '1' && value[0] <= '9' &&
		strspn(value, "0123456789") == strlen(value);
	switch (form) {
	case CGROUP_FORM_BYTES:
		return strcmp(value, "max") == 0 || (digits && n >= PARSE_CGROUP_MEMORY_MIN);
	case CGROUP_FORM_CPU:
		if (strcmp(value, "max 100000") == 0)
			return true;
		return strspn(value, "0123456789") == strlen(value) - 7 &&
			strcmp(value + strlen(value) - 7, " 100000") == 0 && n >= 1000 &&
			n <= 1000ull * PARSE_CGROUP_CPU_MAX && n % 1000 == 0;
	case CGROUP_FORM_WEIGHT:
		return digits && n <= PARSE_CGROUP_WEIGHT_MAX;
	case CGROUP_FORM_PIDS:
		return strcmp(value, "max") == 0 || (digits && n <= PARSE_CGROUP_PIDS_MAX);
	}
	return false;
}

// The second byte's remainder by 4 is the form.
static int fuzz_cgroup_limit(const char *s)
{
	enum cgroup_form form = (enum cgroup_form)(range_pick % 4);
	char value[PARSE_CGROUP_VALUE_MAX], text[PARSE_CGROUP_VALUE_MAX];
	char value2[PARSE_CGROUP_VALUE_MAX], text2[PARSE_CGROUP_VALUE_MAX];
	if (parse_cgroup_limit(s, form, value, text, err, sizeof(err)) < 0)
		return -1;
	require(cgroup_value_ok(form, value), "a cgroup limit's value is what its file takes", s);
	require((strcmp(text, "max") == 0) == (strcmp(s, "max") == 0), "only max is max", s);
	require(parse_cgroup_limit(text, form, value2, text2, err, sizeof(err)) == 0,
		"a cgroup limit's text parses", text);
	require(strcmp(value, value2) == 0 && strcmp(text, text2) == 0,
		"a cgroup limit's text reads back the same", text);
	return 0;
}

static int fuzz_cgroup(const char *s)
{
	bool is_auto = false;
	if (parse_cgroup(s, &is_auto, err, sizeof(err)) < 0)
		return -1;
	require(is_auto == (strcmp(s, "auto") == 0), "auto, and only auto, is auto", s);
	if (is_auto || strcmp(s, "none") == 0)
		return 0;
	size_t n = strlen(s);
	require(s[0] == '/', "a cgroup's path is absolute", s);
	require(!strstr(s, "/./") && !strstr(s, "/../"), "a cgroup's path has no . or ..", s);
	bool dot = n >= 2 && strcmp(s + n - 2, "/.") == 0;
	bool dots = n >= 3 && strcmp(s + n - 3, "/..") == 0;
	require(!dot && !dots, "a cgroup's path does not end in . or ..", s);
	return 0;
}

static int (*const parsers[])(const char *s) = {
	fuzz_duration,
	fuzz_signal,
	fuzz_signal_set,
	fuzz_address,
	fuzz_words,
	fuzz_ready,
	fuzz_restart,
	fuzz_upgrade,
	fuzz_start_limit,
	fuzz_bool,
	fuzz_uint,
	fuzz_mode,
	fuzz_env_name,
	fuzz_size,
	fuzz_int,
	fuzz_limit,
	fuzz_cgroup_limit,
	fuzz_cgroup,
};

#define NPARSERS (sizeof(parsers) / sizeof(parsers[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	char *value = malloc(size);
	if (!value)
		return 0;
	memcpy(value, data + 1, size - 1);
	value[size - 1] = '\0';
	memset(err, 'x', sizeof(err));
	range_pick = data[0] / NPARSERS;
	if (parsers[data[0] % NPARSERS](value) < 0)
		require(memchr(err, '\0', sizeof(err)) && err[0], "a failure has a message", value);
	free(value);
	return 0;
}
