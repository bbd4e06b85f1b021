#ifndef BATON_COMMAND_H
#define BATON_COMMAND_H

#include "protocol.h"

struct client;
struct daemon;

/*
 * The verbs of baton-protocol(7), carried out for control clients: each
 * request's reply is records, then `ok` or `error CODE MESSAGE`. A request
 * that waits (stop --wait, upgrade --wait) marks its client busy and replies
 * once the lifecycle tells that its operation is over.
 */
struct command;

/* Subscribes the verbs to d's events (for the waits); NULL when out of memory. */
struct command *command_create(struct daemon *d);

/* Unsubscribes and frees cmd. */
void command_destroy(struct command *cmd);

/* Carries out one parsed request of c and queues its reply (control_handler.request). */
void command_run(struct command *cmd, struct client *c, const struct protocol_request *req);

#endif
