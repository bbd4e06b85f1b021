#ifndef BATON_PARSE_H
#define BATON_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

/*
 * Pure parsers for the values of baton.conf and of the command line: they
 * touch no file and no global state, so unit tests and fuzzers drive them.
 * Each returns 0 on success, or -1 and leaves a message saying what was
 * expected in err (errlen bytes).
 */

/* The longest duration accepted: one year. */
#define PARSE_DURATION_MAX (365.0 * 86400.0)

/*
 * Parses a duration such as 250ms, 30s, 5m, 1h, 1.5s or 1m30s into seconds.
 * A bare number is seconds.
 */
int parse_duration(const char *s, double *secs, char *err, size_t errlen);

/* Writes a duration the way parse_duration reads it ("1m30s", "250ms"). */
void format_duration(double secs, char *out, size_t outlen);

/*
 * Parses a byte count: digits, then nothing or B for bytes, K or KiB (1024),
 * M or MiB (1024^2), G or GiB (1024^3), T or TiB (1024^4), with no blank,
 * sign or fraction: 512, 4096B, 64KiB, 10M. KB, MB and GB are refused, as
 * they mean powers of 1000 to some and of 1024 to others. A count past
 * 2^64 - 1 bytes is refused.
 */
int parse_size(const char *s, uint64_t *bytes, char *err, size_t errlen);

/*
 * Writes a byte count the way parse_size reads it, in its shortest exact
 * form: 65536 as "64KiB", 1000 as "1000", 0 as "0".
 */
void format_size(uint64_t bytes, char *out, size_t outlen);

/* Parses a signal given as TERM, SIGTERM or 15. */
int parse_signal(const char *s, int *signo, char *err, size_t errlen);

/*
 * Parses a list of signals batond may pass on to services (HUP QUIT USR1
 * USR2 WINCH ALRM, blank- or comma-separated) into a set, bit n for signal n.
 */
int parse_signal_set(const char *s, uint64_t *set, char *err, size_t errlen);

/* Describes a wait status: "exited with status 1", "killed by signal 9 (KILL)". */
void describe_status(int status, char *out, size_t outlen);

/* Returns a signal's name without the SIG prefix ("TERM"), or NULL. */
const char *signal_name(int signo);

/* Parses a decimal integer in [min, max]. */
int parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out, char *err,
	size_t errlen);

/* Parses a decimal integer in [min, max], with a '-' for a negative one. */
int parse_int(const char *s, long min, long max, long *out, char *err, size_t errlen);

/*
 * Parses a resource limit written SOFT:HARD, or SOFT for both, each a whole
 * number, or with size a byte count as parse_size reads it (8MiB), or
 * infinity (RLIM_INFINITY). A soft limit above its hard limit is refused.
 */
int parse_limit(const char *s, bool size, rlim_t *soft, rlim_t *hard, char *err, size_t errlen);

/* Writes a limit the way parse_limit reads it: "1024", "8MiB:infinity". */
void format_limit(rlim_t soft, rlim_t hard, bool size, char *out, size_t outlen);

/* The longest value or text of a cgroup limit (parse_cgroup_limit), with its NUL. */
#define PARSE_CGROUP_VALUE_MAX 48
/* The least memory a cgroup limit may give: 4KiB. */
#define PARSE_CGROUP_MEMORY_MIN 4096
/* The period of cpu.max: 100ms, in microseconds. */
#define PARSE_CGROUP_CPU_PERIOD 100000
/* The most CPU time cpu.max may give: 1024 CPUs, in percent of one. */
#define PARSE_CGROUP_CPU_MAX 102400
/* The most tasks pids.max takes: the kernel's PID_MAX_LIMIT. */
#define PARSE_CGROUP_PIDS_MAX 4194304
/* The most a weight (cpu.weight, io.weight) may be; the least is 1. */
#define PARSE_CGROUP_WEIGHT_MAX 10000

/* How the value of a cgroup limit is written (parse_cgroup_limit). */
enum cgroup_form {
	CGROUP_FORM_BYTES,  /* memory.max, memory.high: a size of at least 4KiB, or max */
	CGROUP_FORM_CPU,    /* cpu.max: a whole percentage of one CPU, 1% and up, or max */
	CGROUP_FORM_WEIGHT, /* cpu.weight, io.weight: 1 to 10000 */
	CGROUP_FORM_PIDS,   /* pids.max: 1 to 4194304, or max */
};

/*
 * Parses the value of a cgroup limit of the given form into what is written
 * to its file (value) and its normal form, which parses back to the same
 * (text), each of PARSE_CGROUP_VALUE_MAX bytes: 512MiB as "536870912" and
 * "512MiB"; 150% (one and a half CPUs) as "150000 100000", a quota and its
 * period in microseconds, and "150%"; max as "max", or "max 100000" for
 * cpu.max. Neither is touched on failure.
 */
int parse_cgroup_limit(const char *s, enum cgroup_form form, char *value, char *text, char *err,
	size_t errlen);

/*
 * Parses where batond's cgroups are ([baton] cgroup): auto, none, or an
 * absolute path with no . or .. component. *is_auto tells auto.
 */
int parse_cgroup(const char *s, bool *is_auto, char *err, size_t errlen);

/* Parses a file mode in octal (0600). */
int parse_mode(const char *s, mode_t *mode, char *err, size_t errlen);

/* Parses a file mode creation mask in octal, 0000 to 0777 (0027). */
int parse_umask(const char *s, mode_t *mask, char *err, size_t errlen);

enum address_family {
	ADDRESS_TCP,
	ADDRESS_UDP,
	ADDRESS_UNIX,
};

struct address {
	enum address_family family;
	bool ipv6;
	char host[64];    /* numeric address, without brackets */
	unsigned port;    /* 0 asks the kernel for a free port */
	char path[108];   /* for unix: */
};

/* Parses tcp:HOST:PORT, tcp:[V6]:PORT, udp:HOST:PORT or unix:/PATH. */
int parse_address(const char *s, struct address *addr, char *err, size_t errlen);

/*
 * Splits s into words the way a POSIX shell would without expanding
 * anything: blanks separate words, '...' is literal, "..." honours \" \\ \$
 * \` and a backslash quotes the next character. Returns a NULL-terminated
 * array allocated as one block (free it with free), with the count in
 * *count. An empty word list is an error.
 */
char **parse_words(const char *s, size_t *count, char *err, size_t errlen);

enum ready_mode {
	READY_NONE,
	READY_NOTIFY,
	READY_FD,
	READY_DELAY,
	READY_EXEC, /* a check: the words after "exec:" are the caller's to read */
};

struct ready_spec {
	enum ready_mode mode;
	int fd;       /* READY_FD */
	double delay; /* READY_DELAY */
};

/* Parses notify, fd:N, delay:DURATION, exec:COMMAND or none. */
int parse_ready(const char *s, struct ready_spec *ready, char *err, size_t errlen);

enum restart_policy {
	RESTART_ALWAYS,
	RESTART_ON_FAILURE,
	RESTART_NEVER,
};

/* Parses always, on-failure or never. */
int parse_restart(const char *s, enum restart_policy *policy, char *err, size_t errlen);

/* Returns the name of a restart policy. */
const char *restart_name(enum restart_policy policy);

/* Parses all or rolling:N into a batch size; 0 means all at once. */
int parse_upgrade(const char *s, unsigned *batch, char *err, size_t errlen);

/* Parses a start limit written BURST/INTERVAL (5/60s), or none (burst 0). */
int parse_start_limit(const char *s, unsigned *burst, double *interval, char *err, size_t errlen);

/*
 * Tells whether the n bytes at s are a variable name: letters, digits and _,
 * not starting with a digit.
 */
bool env_name_valid(const char *s, size_t n);

/*
 * Tells whether the variable NAME=... is one that batond sets for every
 * process (LISTEN_FDS, BATON_SERVICE, EINHORN_FD_0, ...).
 */
bool env_name_reserved(const char *var);

/* Parses yes/no, true/false, on/off, 1/0. */
int parse_bool(const char *s, bool *out, char *err, size_t errlen);

#endif
