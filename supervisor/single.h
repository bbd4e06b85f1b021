#ifndef BATON_SINGLE_H
#define BATON_SINGLE_H

#include <stddef.h>

/*
 * Single-command mode: `batond [--listen ADDR]... [options] -- CMD ARGS...`
 * runs one service named after the command, with no configuration file.
 */

#define SINGLE_LISTEN_MAX 16

struct single_options {
	const char *listen[SINGLE_LISTEN_MAX];
	int nlisten;
	const char *name;
	const char *instances;
	const char *ready;
	const char *ready_timeout;
	const char *stop_signal;
	const char *stop_grace;
	const char *stop_delay;
	const char *restart;
	const char *forward;
	const char *log;
	char **argv; /* the command */
	int argc;
};

/* Tells whether any single-command option was given. */
int single_wanted(const struct single_options *o);

/* The command the configuration names, until the real words replace it. */
#define SINGLE_COMMAND_PLACEHOLDER "-"

/*
 * Writes the configuration the options stand for, in baton.conf syntax:
 * sockets `listen`, `listen2`... and one service whose command is
 * SINGLE_COMMAND_PLACEHOLDER: the caller puts o->argv in after loading it
 * (config_set_words), as they are. Returns it (to free), or NULL with
 * `--option: what was expected` in err.
 */
char *single_config(const struct single_options *o, char *err, size_t errlen);

#endif
