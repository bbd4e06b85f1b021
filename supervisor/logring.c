#include "logring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct logring_line {
	struct logring_line *next; /* newer */
	double time;
	pid_t pid;
	unsigned gen;
	uint32_t len;
	unsigned char stream; /* enum logline_stream */
	bool cut;
	char text[];
};

// glibc's malloc adds 8 bytes to a block and rounds it up to 16.
_Static_assert(sizeof(struct logring_line) + 16 <= LOGRING_LINE_COST,
	"LOGRING_LINE_COST covers a line's header");

void logring_init(struct logring *r, size_t max_bytes)
{
	memset(r, 0, sizeof(*r));
	r->max_bytes = max_bytes;
}

static void drop_oldest(struct logring *r)
{
	struct logring_line *line = r->oldest;
	r->oldest = line->next;
	if (!r->oldest)
		r->newest = NULL;
	r->used -= LOGRING_LINE_COST + line->len;
	r->count--;
	r->dropped++;
	free(line);
}

int logring_add(struct logring *r, const struct logline *l)
{
	if (r->max_bytes <= LOGRING_LINE_COST)
		return 0;
	size_t room = r->max_bytes - LOGRING_LINE_COST, len = l->len;
	if (room > UINT32_MAX)
		room = UINT32_MAX;
	if (len > room)
		len = room;
	struct logring_line *line = malloc(sizeof(*line) + len);
	if (!line)
		return -1;
	*line = (struct logring_line){
		.time = l->time,
		.pid = l->pid,
		.gen = l->gen,
		.len = (uint32_t)len,
		.stream = (unsigned char)l->stream,
		.cut = l->cut || len < l->len,
	};
	if (len)
		memcpy(line->text, l->text, len);
	while (r->oldest && r->used + LOGRING_LINE_COST + len > r->max_bytes)
		drop_oldest(r);
	if (r->newest)
		r->newest->next = line;
	else
		r->oldest = line;
	r->newest = line;
	r->used += LOGRING_LINE_COST + len;
	r->count++;
	return 0;
}

static void call(const struct logring_line *line, const char *service,
	void (*fn)(void *data, const struct logline *l), void *data)
{
	struct logline l = {
		.time = line->time,
		.service = service,
		.pid = line->pid,
		.gen = line->gen,
		.stream = (enum logline_stream)line->stream,
		.text = line->text,
		.len = line->len,
		.cut = line->cut,
	};
	fn(data, &l);
}

static void each_from(const struct logring_line *line, const char *service,
	void (*fn)(void *data, const struct logline *l), void *data)
{
	for (; line; line = line->next)
		call(line, service, fn, data);
}

unsigned long long logring_cursor_start(const struct logring *r, struct logring_cursor *c)
{
	*c = (struct logring_cursor){r->dropped, NULL};
	return r->dropped + r->count;
}

unsigned long long logring_cursor_last(const struct logring *r, struct logring_cursor *c,
	size_t n)
{
	size_t skip = r->count > n ? r->count - n : 0;
	*c = (struct logring_cursor){r->dropped + skip, NULL};
	if (skip > 0) {
		const struct logring_line *line = r->oldest;
		for (size_t i = 1; i < skip; i++)
			line = line->next;
		c->prev = line;
	}
	return r->dropped + r->count;
}

bool logring_read(const struct logring *r, struct logring_cursor *c, unsigned long long end,
	size_t max_cost, const char *service, void (*fn)(void *data, const struct logline *l),
	void *data, unsigned long long *skipped, size_t *cost)
{
	const struct logring_line *line;
	*skipped = 0;
	*cost = 0;
	// c->prev is held while its number, c->next - 1, is not below the oldest's.
	if (c->next <= r->dropped) {
		unsigned long long gone = r->dropped < end ? r->dropped : end;
		*skipped = gone > c->next ? gone - c->next : 0;
		c->next = r->dropped;
		line = r->oldest;
	} else {
		line = c->prev->next;
	}
	for (; line && c->next < end && *cost < max_cost; line = line->next) {
		call(line, service, fn, data);
		*cost += LOGRING_LINE_COST + line->len;
		c->prev = line;
		c->next++;
	}
	return c->next >= end || !line;
}

void logring_each_last(const struct logring *r, const char *service, size_t max_bytes,
	void (*fn)(void *data, const struct logline *l), void *data)
{
	const struct logring_line *line = r->oldest;
	for (size_t used = r->used; line && used > max_bytes; line = line->next)
		used -= LOGRING_LINE_COST + line->len;
	each_from(line, service, fn, data);
}

size_t logring_count(const struct logring *r)
{
	return r->count;
}

void logring_finish(struct logring *r)
{
	while (r->oldest)
		drop_oldest(r);
}
