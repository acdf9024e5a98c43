/*-------------------------------------------------------------------------
 *
 * slot_control.h
 *		What SQL functions do to worker slots (slot_control.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_SLOT_CONTROL_H
#define TSW_SLOT_CONTROL_H

#include "slot.h"

/* A checked tsworker.launch() request. */
typedef struct TswLaunchRequest
{
	const char *name;
	const char *module;			/* canonical path */
	bool		builtin;
	const char *config_name;	/* settings prefix: a built-in's name, else name */
	const char *database;
	Oid			dboid;
	Oid			roleid;			/* the launching role */
	const char *settings;		/* JSON object */
} TswLaunchRequest;

/* ERROR unless pg_tsworker's shared memory exists (shared_preload_libraries). */
extern void tsw_require_shared(void);

/*
 * Take the slot for a launch: the worker's own when it exists and is
 * neither running nor due to run, else a free one, else the oldest stopped
 * launched worker's.  Returns its index, ready to start; ERROR when the
 * name is taken or no slot is left.
 */
extern int	tsw_slot_prepare_launch(const TswLaunchRequest *req);

/*
 * Register slot `index`'s background worker (keeping its handle).  With
 * `wait`, return its pid once started (0 if it exited at once); without,
 * 0.  -1 when no background worker slot is free.
 */
extern pid_t tsw_slot_register(int index, bool wait);

/* The registration failed: free a launched slot, or mark a configured one stopped. */
extern void tsw_slot_launch_failed(int index);

/* tsworker.stop(): the pid to signal, 0 when not running; ERROR for an unknown name. */
extern pid_t tsw_slot_stop(const char *name);

/* tsworker.wake(): true if it runs; ERROR for an unknown name. */
extern bool tsw_slot_wake(const char *name);

/*
 * tsworker.start(): register again the worker `name` (NULL: every worker)
 * that is neither running nor due to run; returns how many started.  One
 * that finds no background worker slot is left as it was, with a WARNING
 * and its last_error set.
 */
extern int	tsw_slot_start_stopped(const char *name);

/* Copies of the slots in use (palloc'd); returns how many. */
extern int	tsw_slots_copy(TswSlot **out);

/* Who holds the background worker slots, for error details (palloc'd). */
extern char *tsw_bgworker_usage(void);

#endif							/* TSW_SLOT_CONTROL_H */
