#ifndef BATON_CONFIG_H
#define BATON_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "parse.h"

/*
 * baton.conf, as described in baton.conf(5): parsed by inih through a reader
 * that counts lines, so every error names file, line and key.
 */

struct socket_conf {
	char *name;
	char *listen; /* as written */
	struct address addr;
	unsigned backlog;
	mode_t mode; /* unix sockets */
	unsigned line;
};

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
	uint64_t forward_signals; /* bit n: batond passes signal n on to the processes */
};

struct config {
	char *path;
	char *control;
	char *control_group;
	bool has_control_group;
	gid_t control_gid;
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
#define CONFIG_MAX_INSTANCES 10000
#define CONFIG_COMMAND_MAX 8192
#define CONFIG_SOCKETS_MAX 64

/*
 * Reads and checks the configuration file at path. Returns the configuration,
 * or NULL with every error found, one `FILE:LINE: KEY: message` per line, in
 * *errors (free it).
 */
struct config *config_load(const char *path, char **errors);

/* Reads a configuration from text in memory; errors cite name as the file. */
struct config *config_load_text(const char *name, const char *text, char **errors);

/*
 * Writes `key = words` so that the parser reads the words back as they are,
 * continuing on indented lines before a line grows long.
 */
void config_write_words(FILE *out, const char *key, char *const *words, size_t count);

/*
 * The words on one line, for a log or a status, in baton.conf(5) syntax as
 * config_write_words writes them (a '$' is no expansion there); a word with
 * control characters as $'...'. NULL when out of memory.
 */
char *config_words_text(char *const *words, size_t count);

/* Frees a configuration; service definitions still referenced live on. */
void config_destroy(struct config *config);

/* Returns a service's definition by name, or NULL. */
struct service_conf *config_service(const struct config *config, const char *name);

/* Returns a socket's definition by name, or NULL. */
struct socket_conf *config_socket(const struct config *config, const char *name);

/* Takes a reference on a service definition. */
struct service_conf *service_conf_ref(struct service_conf *conf);

/* Drops a reference on a service definition, freeing it with the last one. */
void service_conf_unref(struct service_conf *conf);

/* Tells whether two service definitions would start the same processes. */
bool service_conf_equal(const struct service_conf *a, const struct service_conf *b);

/* Prints one service's section in normal form, named name (or its own name). */
void config_print_service(const struct service_conf *conf, const char *name, FILE *out);

/* Prints the [baton] section and the sockets of a configuration in normal form. */
void config_print_sockets(const struct config *config, FILE *out);

/* Adds a reference to conf to the services of config (for a re-exec). */
int config_add_service(struct config *config, struct service_conf *conf);

/* Replaces a definition's command words (or, with env, its environment) by copies. */
int config_set_words(struct service_conf *conf, bool env, char **words, size_t n);

/* Prints a configuration in normal form, every default written out. */
void config_print(const struct config *config, FILE *out);

#endif
