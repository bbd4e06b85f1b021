#ifndef BATON_COMMAND_H
#define BATON_COMMAND_H

#include "protocol.h"

struct daemon;
struct client;

/*
 * Carries out one parsed request of a control client and queues its reply:
 * records, then `ok` or `error CODE MESSAGE` (baton-protocol(7)). A request
 * that waits (upgrade --wait) marks the client busy and replies later.
 */
void command_run(struct daemon *d, struct client *c, const struct protocol_request *req);

#endif
