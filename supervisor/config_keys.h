#ifndef BATON_CONFIG_KEYS_H
#define BATON_CONFIG_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/*
 * The keys of baton.conf(5): which section each belongs to, whether its value
 * may continue on indented lines, and the setter that checks a value and
 * stores it. The reader (config_read) finds a key here and hands its setter a
 * key_target: the configuration, and the socket or service of the section the
 * key is in. A setter says what is wrong in err and knows nothing of files,
 * lines, sections or the errors collected: the reader turns err into
 * "FILE:LINE: KEY: message". So config_keys depends on config alone, and
 * config_read on config_keys and config; nothing here includes the reader.
 */

enum section_type {
	SECTION_BATON,
	SECTION_SOCKET,
	SECTION_SERVICE,
};

enum key_id {
	KEY_CONTROL,
	KEY_CONTROL_GROUP,
	KEY_CGROUP,
	KEY_LISTEN,
	KEY_BACKLOG,
	KEY_MODE,
	KEY_OWNER,
	KEY_SOCKET_GROUP,
	KEY_COMMAND,
	KEY_SOCKETS,
	KEY_INSTANCES,
	KEY_READY,
	KEY_READY_TIMEOUT,
	KEY_STOP_SIGNAL,
	KEY_STOP_GRACE,
	KEY_STOP_DELAY,
	KEY_RESTART,
	KEY_RESTART_DELAY,
	KEY_RESTART_DELAY_MAX,
	KEY_START_LIMIT,
	KEY_UPGRADE,
	KEY_MAX_DRAINING,
	KEY_USER,
	KEY_GROUP,
	KEY_DIRECTORY,
	KEY_ENVIRONMENT,
	KEY_ENVIRONMENT_FILE,
	KEY_LIMIT_NOFILE,
	KEY_LIMIT_CORE,
	KEY_LIMIT_NPROC,
	KEY_LIMIT_MEMLOCK,
	KEY_LIMIT_STACK,
	KEY_UMASK,
	KEY_NICE,
	KEY_START_NICE,
	KEY_OOM_SCORE_ADJUST,
	KEY_MEMORY_MAX,
	KEY_MEMORY_HIGH,
	KEY_CPU_MAX,
	KEY_CPU_WEIGHT,
	KEY_PIDS_MAX,
	KEY_IO_WEIGHT,
	KEY_FORWARD_SIGNALS,
	KEY_LOG,
	KEY_LOG_FORMAT,
	KEY_LOG_MAX_SIZE,
	KEY_LOG_KEEP,
	KEY_LOG_BUFFER,
	KEY_LOG_OVERFLOW,
	KEY_CHECK,
	KEY_CHECK_INTERVAL,
	KEY_CHECK_TIMEOUT,
	KEY_CHECK_FAILURES,
	KEY_WATCHDOG,
	KEY_UPGRADE_GATE,
	KEY_UPGRADE_GATE_TIMEOUT,
	KEY_COUNT,
};

struct key_target {
	struct config *config;
	struct socket_conf *socket;   /* in a [socket:NAME] section, else NULL */
	struct service_conf *service; /* in a [service:NAME] section, else NULL */
	unsigned line;                /* the key's line */
};

struct key {
	const char *name;
	enum section_type type;
	bool multiline; /* may continue on indented lines: set once whole */
	/* 0, or -1 with what is wrong with value in err (errlen bytes). */
	int (*set)(const struct key_target *t, const char *value, char *err, size_t errlen);
};

/* The keys, indexed by enum key_id. */
extern const struct key config_keys[KEY_COUNT];

/* Returns the key_id of the key called name in a section of type type, or -1. */
int config_keys_lookup(enum section_type type, const char *name);

#endif
