/*-------------------------------------------------------------------------
 *
 * host_pg_loop.h
 *		What host_pg.c (the worker's start) and host_pg_loop.c (the
 *		PostgreSQL calls made while Node.js runs) share.  C only: host.cc
 *		includes host_pg.h.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_HOST_PG_LOOP_H
#define TSW_HOST_PG_LOOP_H

#include "../shim/slot.h"

/* The worker's name, for log lines; "?" until its slot is claimed. */
extern char tsw_host_name[TSW_NAME_MAXLEN + 1];

/* Choose the event loop's wait event, once connected (host_pg_loop.c). */
extern void tsw_host_set_wait_event(void);

#endif							/* TSW_HOST_PG_LOOP_H */
