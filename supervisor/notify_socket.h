#ifndef BATON_NOTIFY_SOCKET_H
#define BATON_NOTIFY_SOCKET_H

#include <stdbool.h>
#include <stddef.h>

struct daemon;

/*
 * The NOTIFY_SOCKET batond gives services with ready = notify: one datagram
 * socket for all of batond, receiving sd_notify messages (notify_message.h)
 * and applying them to the lifecycle. Each message's sender is identified
 * with SO_PASSCRED and believed only when it is the main process of one of
 * baton's services.
 */
struct notify_socket;

/* Binds the socket at path. Returns NULL with the reason in err. */
struct notify_socket *notify_socket_create(struct daemon *d, const char *path, char *err,
	size_t errlen);

/* Wraps an fd bound earlier (by the batond before a re-exec); NULL when out of memory. */
struct notify_socket *notify_socket_adopt(struct daemon *d, const char *path, int fd);

/* Closes the socket, removing its file when remove_file is set, and frees n. */
void notify_socket_destroy(struct notify_socket *n, bool remove_file);

/* Returns the socket's fd. */
int notify_socket_fd(const struct notify_socket *n);

#endif
