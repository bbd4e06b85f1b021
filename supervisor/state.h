#ifndef BATON_STATE_H
#define BATON_STATE_H

#include <stdbool.h>

struct daemon;
struct reexec_fds;

/*
 * The state a re-exec carries from one batond to the next, as text: the line
 * "baton-state 3", then one record (baton-protocol(7) syntax) per thing,
 * written from the structures field by field:
 *
 *   daemon       batond's own fields, the control and notify sockets' fds
 *   config       the running configuration's [baton] section, then a
 *   socket_conf  per [socket:NAME] of it
 *   listener     per socket batond holds open: its fd and address
 *   conf, word   per service definition in use (conf_record.h), by id
 *   config_service  per service of the running configuration: its definition's id
 *   service, gen, proc  per service, its generations oldest first (each with
 *                the output pipes it holds for its descendants), their processes
 *   log_counters, log_line  then what its output came to and its kept lines,
 *                oldest first, at most 16 MiB of them in all (log_buffer's count)
 *   end
 *
 * A word or a command has no size limit: its record gives its length, and its
 * bytes follow. Version 2, written before, carried the configuration and the
 * definitions as baton.conf text with stand-ins patched afterwards; it is
 * still read.
 */

#define STATE_VERSION 3

/*
 * The output pipes a generation holds for its descendants (gen's held field)
 * that a re-exec carries: a generation holds one only while another process
 * may write to it, and the rest are closed at the exec.
 */
#define STATE_HELD_MAX 64

/* Writes d's whole state, and the client socket to answer (or -1), to fd. Returns 0 or -1. */
int state_write(struct daemon *d, int fd, int reply_fd);

/*
 * Rebuilds d from the state in fd (version 2 or 3): configuration, sockets,
 * services, generations and processes, after daemon_prepare. The control and
 * notify sockets' fds go into fds, the client to answer into *reply_fd (-1
 * for none). Returns 0, or -1 after logging why.
 */
int state_read(struct daemon *d, int fd, struct reexec_fds *fds, int *reply_fd);

#endif
