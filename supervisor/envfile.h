#ifndef BATON_ENVFILE_H
#define BATON_ENVFILE_H

#include <stddef.h>
#include <stdio.h>

/*
 * Environment files, read as systemd reads those of EnvironmentFile=: a
 * NAME=VALUE assignment a line, blanks around the name and before the value
 * ignored; lines that are blank, start with '#' or ';', or have no '=' are
 * skipped. A value is a run of parts: '...' taken literally, "..." with
 * \" \\ \$ \` standing for the character and a backslash-newline dropped,
 * then up to the end of the line an unquoted part, where a backslash takes
 * the next character literally, a backslash at the end of the line joins
 * the next one, and blanks at the end are dropped. Quoted parts may span
 * lines. There is no `export`, no expansion and no comment after a value.
 *
 * Stricter than systemd, which skips such lines with a warning: a name that
 * is not a variable name, a quote never closed, a NUL byte or a value that
 * is not UTF-8 make the whole file an error.
 */

/* The largest file envfile_read reads. */
#define ENVFILE_MAX (1u << 20)

struct envfile {
	char **env; /* NAME=VALUE, each allocated, NULL-terminated */
	size_t n;
};

/*
 * Parses the len bytes of text into out: one NAME=VALUE a name, where the
 * name was first set, with its last value. Returns 0, or -1 with out empty,
 * errno set (EINVAL, ENOMEM) and "NAME:LINE: message" in err (errlen bytes),
 * name being what the message calls the text.
 */
int envfile_parse(const char *text, size_t len, const char *name, struct envfile *out, char *err,
	size_t errlen);

/*
 * Reads the file at path, at most ENVFILE_MAX bytes, without blocking on it,
 * and parses it as envfile_parse does. Returns 0, or -1 with out empty,
 * errno set (ENOENT for a missing file, EFBIG for one too large) and
 * "PATH: reason" or "PATH:LINE: message" in err.
 */
int envfile_read(const char *path, struct envfile *out, char *err, size_t errlen);

/*
 * Writes the variables of e in a form envfile_parse reads back the same:
 * NAME=VALUE, the value in double quotes unless it is plain. Returns 0, or
 * -1 when out fails.
 */
int envfile_print(const struct envfile *e, FILE *out);

/* Frees the variables of e and empties it; an empty e is fine. */
void envfile_finish(struct envfile *e);

#endif
