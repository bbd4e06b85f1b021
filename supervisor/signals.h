#ifndef BATON_SIGNALS_H
#define BATON_SIGNALS_H

struct daemon;

/*
 * batond's own signals, through libev: TERM and INT stop every service
 * gracefully, then batond exits; HUP, QUIT, USR1, USR2, WINCH and ALRM are
 * passed on to the processes of every service whose forward_signals has
 * them, and otherwise HUP reloads, USR2 re-executes batond and the others
 * are ignored. None of them may end batond and orphan its services.
 */
struct signals;

/*
 * Starts handling batond's signals on d's loop; NULL when out of memory.
 * Signals blocked and pending find their handler once unblocked.
 */
struct signals *signals_create(struct daemon *d);

/* Blocks every signal for the rest of batond's life, stops handling them and frees s. */
void signals_destroy(struct signals *s);

#endif
