#ifndef BATON_NOTIFY_H
#define BATON_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>

struct daemon;

/*
 * The NOTIFY_SOCKET of services with ready = notify: one datagram socket for
 * all of batond. Each message's sender is identified with SO_PASSCRED and
 * believed only when it is the main process of one of baton's services.
 */
struct notify;

/* Binds the socket at path. Returns NULL with the reason in err. */
struct notify *notify_create(struct daemon *d, const char *path, char *err, size_t errlen);

/* Wraps an fd bound earlier (by the batond before a re-exec). */
struct notify *notify_adopt(struct daemon *d, const char *path, int fd);

/* Closes the socket, removing its file when remove_file is set. */
void notify_destroy(struct notify *n, bool remove_file);

/* Returns the path children get in NOTIFY_SOCKET. */
const char *notify_path(const struct notify *n);

/* Returns the socket's fd. */
int notify_fd(const struct notify *n);

#endif
