#ifndef BATON_LOGRING_H
#define BATON_LOGRING_H

#include <stddef.h>

#include "logline.h"

/*
 * A service's last lines, within a budget of bytes, for `batonctl logs`:
 * each line is a copy of its text and of what logline tells of it but the
 * service. Pure: a list of lines in memory, one allocation each, nothing
 * allocated beyond the lines held.
 */

/*
 * What a line costs against the budget besides its text: its header and
 * what the allocator adds, so that the budget is about what the lines take.
 */
#define LOGRING_LINE_COST 48

struct logring {
	struct logring_line *oldest, *newest;
	size_t max_bytes; /* the budget */
	size_t used;      /* what the lines held cost: their text and LOGRING_LINE_COST each */
	size_t count;     /* lines held */
	unsigned long long dropped; /* lines dropped so far: the oldest held is numbered so */
};

/*
 * Where a reader of a ring is between two reads, while lines come and go:
 * lines are numbered from 0 as they are added, and the oldest are dropped
 * first, so that a line numbered from `dropped` on is still held.
 */
struct logring_cursor {
	unsigned long long next;         /* the number of the next line to read */
	const struct logring_line *prev; /* the line numbered next - 1, when next > 0 */
};

/* Initialises an empty ring with a budget of max_bytes; it allocates nothing. */
void logring_init(struct logring *r, size_t max_bytes);

/*
 * Keeps a copy of the line as the newest, then drops the oldest lines while
 * the lines cost more than the budget. A line whose text alone would cost
 * more is cut to fit and kept alone, marked cut; with a budget of
 * LOGRING_LINE_COST bytes or less, nothing is kept. l->service is not kept.
 * Returns 0, or -1 with errno ENOMEM, the ring then unchanged. O(1)
 * amortised.
 */
int logring_add(struct logring *r, const struct logline *l);

/*
 * Calls fn for the newest lines held, as many as cost at most max_bytes in
 * all, oldest first, with service as the line's service. The logline is
 * valid during the call only, and fn must not add to the ring or finish it.
 */
void logring_each_last(const struct logring *r, const char *service, size_t max_bytes,
	void (*fn)(void *data, const struct logline *l), void *data);

/*
 * Puts c at the oldest line held; returns the number the next line added
 * will have, where a read of what the ring holds now ends.
 */
unsigned long long logring_cursor_start(const struct logring *r, struct logring_cursor *c);

/*
 * Puts c at the n-th newest line held, or at the oldest when fewer are held;
 * returns what logring_cursor_start does.
 */
unsigned long long logring_cursor_last(const struct logring *r, struct logring_cursor *c,
	size_t n);

/*
 * Calls fn as logring_each_last does for the lines from c on, oldest
 * first, up to the one numbered end (not included), until what they cost
 * against the budget (*cost: their text and LOGRING_LINE_COST each) comes
 * to max_cost or more, and moves c past them. Lines before end dropped since
 * c was there are skipped: *skipped counts them. Returns true once c is at
 * end (or past the newest line). fn must not add to the ring or finish it.
 */
bool logring_read(const struct logring *r, struct logring_cursor *c, unsigned long long end,
	size_t max_cost, const char *service, void (*fn)(void *data, const struct logline *l),
	void *data, unsigned long long *skipped, size_t *cost);

/* Returns how many lines the ring holds. */
size_t logring_count(const struct logring *r);

/* Frees every line; the ring is then empty, with the same budget. */
void logring_finish(struct logring *r);

#endif
