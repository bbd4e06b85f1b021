#ifndef BATON_LIST_H
#define BATON_LIST_H

#include <stdbool.h>
#include <stddef.h>

/* An intrusive doubly linked list: embed a struct list in each element. */
struct list {
	struct list *prev, *next;
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define list_for_each(pos, head) for (pos = (head)->next; pos != (head); pos = pos->next)

#define list_for_each_safe(pos, tmp, head)                                                        \
	for (pos = (head)->next, tmp = pos->next; pos != (head); pos = tmp, tmp = pos->next)

static inline void list_init(struct list *head)
{
	head->prev = head->next = head;
}

static inline bool list_empty(const struct list *head)
{
	return head->next == head;
}

static inline void list_insert_after(struct list *at, struct list *item)
{
	item->prev = at;
	item->next = at->next;
	at->next->prev = item;
	at->next = item;
}

/* Adds item at the end of the list. */
static inline void list_append(struct list *head, struct list *item)
{
	list_insert_after(head->prev, item);
}

static inline void list_remove(struct list *item)
{
	item->prev->next = item->next;
	item->next->prev = item->prev;
	item->prev = item->next = item;
}

static inline size_t list_length(const struct list *head)
{
	size_t n = 0;
	for (const struct list *p = head->next; p != head; p = p->next)
		n++;
	return n;
}

#endif
