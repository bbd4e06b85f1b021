#ifndef BATON_PIDMAP_H
#define BATON_PIDMAP_H

#include <stddef.h>
#include <sys/types.h>

/* A hash table from pid to an object, so that an exit is found in O(1). */
struct pidmap {
	struct pidmap_entry *slots;
	size_t nslots; /* a power of two, or 0 */
	size_t count;
	size_t used; /* live entries and tombstones */
};

/* Initialises an empty map. */
void pidmap_init(struct pidmap *map);
/* Frees the map's memory; the objects are not touched. */
void pidmap_finish(struct pidmap *map);
/* Maps pid to value, replacing an earlier value. Returns 0, or -1 on ENOMEM. */
int pidmap_put(struct pidmap *map, pid_t pid, void *value);
/* Returns the value of pid, or NULL. */
void *pidmap_get(const struct pidmap *map, pid_t pid);
/* Removes pid; does nothing when it is absent. */
void pidmap_remove(struct pidmap *map, pid_t pid);

#endif
