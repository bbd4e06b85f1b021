#ifndef BATON_CONF_RECORD_H
#define BATON_CONF_RECORD_H

#include <stddef.h>

#include "config.h"
#include "protocol.h"

/*
 * Service definitions and a configuration as records (baton-protocol(7)
 * syntax), field by field, for the state a re-exec carries: what is read
 * back is what was written, bytes, ids and resolved users included, with no
 * baton.conf text in between. A word or a command has no size limit: its
 * record gives its length, and its bytes follow on the next line.
 */

/*
 * Appends `conf id=ID ...` with every field of c and its command's bytes, then
 * a `word conf=ID list=LIST` record and its bytes per word: argv, env,
 * socket, ready_check, check and upgrade_gate words; the upgrade gate's
 * text as written (gate_command); a supplementary group's gid (group);
 * an environment file as PATH or -PATH (env_file); each limit, umask,
 * nice, oom_score_adjust and cgroup limit that is set as KEY=VALUE in
 * baton.conf's syntax (setting); and the line of each cgroup limit as
 * KEY=LINE (cgroup_line).
 */
void conf_record_write_service(struct protocol_buf *b, size_t id, const struct service_conf *c);

/*
 * Appends `config ...` (the [baton] section, cgroup and its line when set)
 * and a `socket_conf ...` per socket.
 */
void conf_record_write_config(struct protocol_buf *b, const struct config *c);

/*
 * Creates a definition from a `conf` record, taking command (the bytes that
 * followed it). Returns NULL when a field is missing or bad, or out of
 * memory (command is freed then).
 */
struct service_conf *conf_record_read_service(const struct protocol_record *rec, char *command);

/*
 * Appends word (taken; NULL is refused) to c's list: "argv", "env",
 * "socket", "ready_check", "check", "upgrade_gate", "gate_command" (the
 * gate's text, once), "group" (a gid), "env_file" (PATH or -PATH),
 * "setting" (KEY=VALUE) or "cgroup_line" (KEY=LINE of a cgroup limit set
 * before). Returns 0, or -1 with word freed.
 */
int conf_record_add_word(struct service_conf *c, const char *list, char *word);

/* Creates an empty configuration from a `config` record, or NULL. */
struct config *conf_record_read_config(const struct protocol_record *rec);

/* Adds the socket of a `socket_conf` record to config. Returns 0 or -1. */
int conf_record_add_socket(struct config *config, const struct protocol_record *rec);

#endif
