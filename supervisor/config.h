#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "parse.h"

/*
 * A configuration of baton.conf(5) as objects: config_read makes one from a
 * file, through the key table and setters of config_keys, and config_print
 * writes one in normal form.
 */

struct socket_conf {
	char *name;
	char *listen; /* as written */
	struct address addr;
	unsigned backlog;
	mode_t mode;  /* unix sockets */
	char *owner;  /* unix sockets: the user as written, or NULL for batond's */
	uid_t uid;    /* owner's, resolved when the file was read */
	char *group;  /* unix sockets: the group as written, or NULL for batond's */
	gid_t gid;    /* group's, resolved when the file was read */
	unsigned line;
};

/* Where a service's processes' output goes (log =). */
enum log_sink {
	LOG_STDERR,  /* batond's stderr, a line each, attributed */
	LOG_FILE,    /* a file, with a time on each line, rotated by size */
	LOG_INHERIT, /* the processes write to batond's own stdout and stderr */
};

struct log_conf {
	enum log_sink sink;
	char *path;        /* LOG_FILE */
	bool json;         /* log_format = json */
	uint64_t max_size; /* log_max_size: rotate past it; 0 never */
	unsigned keep;     /* log_keep: old files kept */
	uint64_t buffer;   /* log_buffer: the last lines kept in memory */
	bool drop;         /* log_overflow = drop, else block */
};

/* A command batond runs to learn how a process is (ready = exec:, check = exec:). */
struct check_conf {
	char *command; /* as written after "exec:", or NULL for none */
	char **argv;   /* its words, each allocated, NULL-terminated */
	size_t argc;
	unsigned line; /* of its key, for what is said about it */
};

/*
 * A file of variables a generation's processes get (environment_file =),
 * read when the generation is created (envfile.h), not with the
 * configuration.
 */
struct env_file_conf {
	char *path;    /* absolute */
	bool optional; /* written -PATH: a missing file is skipped */
};

/* The resource limits of the limit_* keys, for setrlimit(2). */
enum limit_id {
	LIMIT_NOFILE,
	LIMIT_CORE,
	LIMIT_NPROC,
	LIMIT_MEMLOCK,
	LIMIT_STACK,
	LIMIT_COUNT,
};

struct limit_conf {
	bool set;          /* else the processes keep batond's limit */
	rlim_t soft, hard; /* RLIM_INFINITY for infinity; soft <= hard */
};

/* What a limit is: its key, its RLIMIT_ resource, whether it counts bytes. */
struct limit_kind {
	const char *key;
	int resource;
	bool size;
};

/* The limits, indexed by enum limit_id. */
extern const struct limit_kind config_limits[LIMIT_COUNT];

/* The limits written to each generation's cgroup, indexed by enum cgroup_limit_id. */
enum cgroup_limit_id {
	CGROUP_MEMORY_MAX,
	CGROUP_MEMORY_HIGH,
	CGROUP_CPU_MAX,
	CGROUP_CPU_WEIGHT,
	CGROUP_PIDS_MAX,
	CGROUP_IO_WEIGHT,
	CGROUP_LIMIT_COUNT,
};

struct cgroup_limit_conf {
	bool set;        /* else the file is left as the kernel makes it */
	unsigned line;   /* where it was set: a controller missing is found later */
	/* what is written to the file: "67108864", "max", "150000 100000", "100" */
	char value[PARSE_CGROUP_VALUE_MAX];
	/* the value as batond -nv writes it back: "64MiB", "max", "150%", "100" */
	char text[PARSE_CGROUP_VALUE_MAX];
};

/* What a cgroup limit is: its key, its controller and the file it writes. */
struct cgroup_limit_kind {
	const char *key;
	const char *controller;
	const char *file;
};

/* The cgroup limits, indexed by enum cgroup_limit_id. */
extern const struct cgroup_limit_kind config_cgroup_limits[CGROUP_LIMIT_COUNT];

struct service_conf {
	unsigned refs;
	char *name;
	unsigned line;
	char *command; /* as written, continuation lines joined by a space */
	char **argv;
	size_t argc;
	bool argv_owned; /* argv's strings are each allocated (else one block) */
	char **sockets; /* names, in the order given */
	size_t nsockets;
	unsigned instances;
	struct ready_spec ready;
	double ready_timeout;
	int stop_signal;
	double stop_grace;
	double stop_delay;
	enum restart_policy restart;
	double restart_delay;
	double restart_delay_max;
	unsigned start_limit_burst; /* 0: no limit */
	double start_limit_interval;
	unsigned upgrade_batch; /* 0: all at once */
	unsigned max_draining;
	bool has_user;
	char *user;
	uid_t uid;
	gid_t gid; /* the user's own group */
	gid_t *groups;
	int ngroups;
	bool has_group;
	gid_t group_gid;
	char *group;
	char *directory;
	char **env; /* KEY=VALUE, NULL-terminated */
	size_t nenv;
	struct env_file_conf *env_files; /* in the order given; they override env */
	size_t nenv_files;
	unsigned env_files_line; /* where environment_file was set */
	struct limit_conf limits[LIMIT_COUNT];
	bool has_umask; /* else the processes keep batond's */
	mode_t umask;
	bool has_nice;
	int nice; /* CONFIG_NICE_MIN to CONFIG_NICE_MAX */
	unsigned start_nice; /* 0 to 19 added to its nice value until it is ready, or 0 */
	bool has_oom_score_adjust;
	int oom_score_adjust; /* CONFIG_OOM_SCORE_ADJUST_MIN to _MAX */
	uint64_t forward_signals; /* bit n: batond passes signal n on to the processes */
	struct log_conf log;
	struct check_conf ready_check; /* ready = exec: */
	struct check_conf check;       /* check = exec: */
	double check_interval;
	double check_timeout;
	unsigned check_failures;
	double watchdog; /* 0: none */
	struct cgroup_limit_conf cgroup_limits[CGROUP_LIMIT_COUNT];
	struct check_conf upgrade_gate; /* upgrade_gate = COMMAND, or no command */
	double upgrade_gate_timeout;
};

struct config {
	char *path;
	char *control;
	char *control_group;
	bool has_control_group;
	gid_t control_gid;
	char *cgroup;         /* [baton] cgroup: NULL for auto, "none", or an absolute path */
	unsigned cgroup_line; /* where it was set, or 0 */
	struct socket_conf **sockets;
	size_t nsockets;
	struct service_conf **services;
	size_t nservices;
};

/* Defaults, as documented in baton.conf(5). */
#define CONFIG_BACKLOG 1024
#define CONFIG_INSTANCES 1
#define CONFIG_READY_TIMEOUT 30.0
#define CONFIG_STOP_GRACE 10.0
#define CONFIG_RESTART_DELAY 0.1
#define CONFIG_RESTART_DELAY_MAX 10.0
#define CONFIG_START_LIMIT_BURST 5
#define CONFIG_START_LIMIT_INTERVAL 10.0
#define CONFIG_MAX_DRAINING 2
#define CONFIG_CHECK_INTERVAL 1.0
#define CONFIG_CHECK_TIMEOUT 5.0
#define CONFIG_CHECK_FAILURES 3
#define CONFIG_UPGRADE_GATE_TIMEOUT 60.0
#define CONFIG_LOG_MAX_SIZE (10ull << 20)
#define CONFIG_LOG_KEEP 5
#define CONFIG_LOG_BUFFER (64ull << 10)
#define CONFIG_LOG_BUFFER_MAX (64ull << 20)
#define CONFIG_MAX_INSTANCES 10000
#define CONFIG_COMMAND_MAX 8192
#define CONFIG_SOCKETS_MAX 64
#define CONFIG_NICE_MIN (-20)
#define CONFIG_NICE_MAX 19
#define CONFIG_OOM_SCORE_ADJUST_MIN (-1000)
#define CONFIG_OOM_SCORE_ADJUST_MAX 1000

/* Frees a configuration; service definitions still referenced live on. */
void config_destroy(struct config *config);

/* Returns a service's definition by name, or NULL. */
struct service_conf *config_service(const struct config *config, const char *name);

/* Returns a socket's definition by name, or NULL. */
struct socket_conf *config_socket(const struct config *config, const char *name);

/* Adds a reference to conf to the services of config (for a re-exec). */
int config_add_service(struct config *config, struct service_conf *conf);

/* Sets a check's command and its words (copies), or clears it with NULL. Returns 0 or -1. */
int check_conf_set(struct check_conf *c, const char *command, char **words, size_t n);

/* Frees a check's command and words. */
void check_conf_clear(struct check_conf *c);

/*
 * Appends an environment file to a definition's, written as the key has it:
 * PATH, or -PATH for an optional file (not checked). Returns 0 or -1.
 */
int config_add_env_file(struct service_conf *conf, const char *word);

/* Frees a definition's environment files. */
void config_clear_env_files(struct service_conf *conf);

/*
 * Sets a definition's cgroup limit id from its value as baton.conf writes it
 * (512MiB, 150%, max; parse_cgroup_limit), leaving its line to the caller.
 * Returns 0, or -1 with what is wrong in err.
 */
int config_set_cgroup_limit(struct service_conf *conf, enum cgroup_limit_id id, const char *s,
	char *err, size_t errlen);

/* Replaces a definition's command words (or, with env, its environment) by copies. */
int config_set_words(struct service_conf *conf, bool env, char **words, size_t n);

/*
 * Creates a service definition named name, at line, with the defaults of
 * baton.conf(5) and one reference; NULL when out of memory.
 */
struct service_conf *service_conf_create(const char *name, unsigned line);

/* Takes a reference on a service definition. */
struct service_conf *service_conf_ref(struct service_conf *conf);

/* Drops a reference on a service definition, freeing it with the last one. */
void service_conf_unref(struct service_conf *conf);

/* Tells whether two service definitions would start the same processes. */
bool service_conf_equal(const struct service_conf *a, const struct service_conf *b);

/*
 * Frees a definition's command words, one block (parse_words) or copies
 * (config_set_words), for the caller to replace them.
 */
void service_conf_free_argv(struct service_conf *conf);

/*
 * Creates a socket definition named name, at line, with the defaults of
 * baton.conf(5), which config_destroy frees once it is among the sockets of
 * a configuration; NULL when out of memory.
 */
struct socket_conf *socket_conf_create(const char *name, unsigned line);

/* Frees a socket definition that is not among the sockets of a configuration. */
void socket_conf_destroy(struct socket_conf *s);

/* Appends item to the *n pointers at *array, growing it; -1 when out of memory. */
int config_append(void ***array, size_t *n, void *item);

/* Frees n strings and the array that holds them. */
void config_free_names(char **names, size_t n);

#endif
