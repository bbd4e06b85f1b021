#ifndef BATON_CONFIG_READ_H
#define BATON_CONFIG_READ_H

#include "config.h"

/*
 * The reader of baton.conf(5): inih parses it through a line reader that
 * counts lines, so every error names file, line and key.
 */

/*
 * Reads and checks the configuration file at path. Returns the configuration,
 * or NULL with every error found, one `FILE:LINE: KEY: message` per line, in
 * *errors (free it).
 */
struct config *config_load(const char *path, char **errors);

/* Reads a configuration from text in memory; errors cite name as the file. */
struct config *config_load_text(const char *name, const char *text, char **errors);

#endif
