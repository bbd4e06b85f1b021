#include "pidmap.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#define TOMBSTONE ((pid_t)-1)

struct pidmap_entry {
	pid_t pid; /* 0: empty */
	void *value;
};

void pidmap_init(struct pidmap *map)
{
	map->slots = NULL;
	map->nslots = map->count = map->used = 0;
}

void pidmap_finish(struct pidmap *map)
{
	free(map->slots);
	pidmap_init(map);
}

static size_t hash(pid_t pid, size_t nslots)
{
	return ((uint32_t)pid * 2654435761u) & (nslots - 1);
}

static struct pidmap_entry *find(const struct pidmap *map, pid_t pid)
{
	if (map->nslots == 0)
		return NULL;
	for (size_t i = hash(pid, map->nslots), n = 0; n < map->nslots;
		i = (i + 1) & (map->nslots - 1), n++) {
		struct pidmap_entry *e = &map->slots[i];
		if (e->pid == pid)
			return e;
		if (e->pid == 0)
			return NULL;
	}
	return NULL;
}

static void insert(struct pidmap_entry *slots, size_t nslots, pid_t pid, void *value)
{
	size_t i = hash(pid, nslots);
	while (slots[i].pid != 0 && slots[i].pid != TOMBSTONE)
		i = (i + 1) & (nslots - 1);
	slots[i].pid = pid;
	slots[i].value = value;
}

static int grow(struct pidmap *map)
{
	size_t nslots = map->nslots ? map->nslots : 16;
	while ((map->count + 1) * 2 > nslots)
		nslots *= 2;
	struct pidmap_entry *slots = calloc(nslots, sizeof(*slots));
	if (!slots) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < map->nslots; i++) {
		pid_t pid = map->slots[i].pid;
		if (pid != 0 && pid != TOMBSTONE)
			insert(slots, nslots, pid, map->slots[i].value);
	}
	free(map->slots);
	map->slots = slots;
	map->nslots = nslots;
	map->used = map->count;
	return 0;
}

int pidmap_put(struct pidmap *map, pid_t pid, void *value)
{
	struct pidmap_entry *e = find(map, pid);
	if (e) {
		e->value = value;
		return 0;
	}
	if ((map->used + 1) * 4 > map->nslots * 3 && grow(map) < 0)
		return -1;
	insert(map->slots, map->nslots, pid, value);
	map->count++;
	map->used++;
	return 0;
}

void *pidmap_get(const struct pidmap *map, pid_t pid)
{
	struct pidmap_entry *e = find(map, pid);
	return e ? e->value : NULL;
}

void pidmap_remove(struct pidmap *map, pid_t pid)
{
	struct pidmap_entry *e = find(map, pid);
	if (!e)
		return;
	e->pid = TOMBSTONE;
	e->value = NULL;
	map->count--;
}
