#ifndef BATON_PIN_H
#define BATON_PIN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "config.h"
#include "sha256.h"

/*
 * What a generation runs, fixed when it is created, whatever is deployed
 * after: its program, found once (through PATH and symlinks) and opened, so
 * that every process of the generation executes the same bytes; its working
 * directory's real path (a `current` symlink switched later changes nothing
 * for it); its environment, environment files included. Pure: files are
 * read, but no event loop.
 *
 * A #! script cannot run from a descriptor closed at exec, and one left
 * open would be an extra descriptor in the process: a script runs from its
 * resolved path, so that a switched symlink changes nothing for it, but a
 * script overwritten in place is read anew. Its interpreter is found by the
 * kernel, as always.
 */
struct pin {
	int exe_fd;     /* the program, opened; -1 when not found or a script */
	char *exe_path; /* its resolved real path, or NULL when not found */
	bool script;    /* a #! script: run from exe_path */
	dev_t dev;      /* its identity, when found */
	ino_t ino;
	struct timespec mtime;
	struct timespec ctime; /* when its inode last changed; 0 in a pin restored by a re-exec */
	off_t size;
	char *directory; /* the real path of the service's directory, or NULL */
	char **env;      /* environment, then environment files' lines, NULL-terminated */
	size_t nenv;
	char hash[17];   /* the first 16 hex digits of its SHA-256, "" until known */
	struct sha256 *hashing; /* the hash being computed, or NULL */
	off_t hashed;           /* bytes of the program hashed so far */
};

/* Empties a pin: nothing pinned. */
void pin_init(struct pin *pin);

/*
 * Pins what conf runs now: a program or directory that cannot be found is
 * not pinned (its processes then fail at exec, and say why). Returns 0, or
 * -1 with the reason in err when an environment file cannot be read or
 * parsed (as "FILE:LINE: message"), or when out of memory.
 */
int pin_resolve(struct pin *pin, const struct service_conf *conf, char *err, size_t errlen);

/* Makes dst a copy of src, the program's descriptor duplicated; -1 when out of fds or memory. */
int pin_copy(struct pin *dst, const struct pin *src);

/*
 * Hashes up to max more bytes of the pinned program, so that a big one is
 * hashed a piece at a time between events. Returns true once pin->hash is
 * known, or cannot be (no program, a program that cannot be read, or one
 * changed while it was read): it then stays "".
 */
bool pin_hash_step(struct pin *pin, size_t max);

/*
 * Whether the pinned program is no longer what was pinned: a program
 * changed in place (its size or modification time differ), or a #! script
 * whose path now names another file. Writes what changed into why.
 */
bool pin_changed(const struct pin *pin, char *why, size_t whylen);

/* Closes and frees what a pin holds; it is then empty. */
void pin_release(struct pin *pin);

/*
 * The names of the variables whose values differ between a and b, or that
 * only one has, separated by blanks, into out (cut to outlen).
 */
void pin_env_changes(const struct pin *a, const struct pin *b, char *out, size_t outlen);

#endif
