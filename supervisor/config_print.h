#ifndef BATON_CONFIG_PRINT_H
#define BATON_CONFIG_PRINT_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/*
 * The printer of baton.conf(5): writes a configuration, or a service's
 * words, so that config_read reads them back as they are.
 */

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

/* Prints one service's section in normal form, named name (or its own name). */
void config_print_service(const struct service_conf *conf, const char *name, FILE *out);

/* Prints the [baton] section and the sockets of a configuration in normal form. */
void config_print_sockets(const struct config *config, FILE *out);

/* Prints a configuration in normal form, every default written out. */
void config_print(const struct config *config, FILE *out);

#endif
