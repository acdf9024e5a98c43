/*-------------------------------------------------------------------------
 *
 * slot_control.h
 *		What SQL functions do to worker slots (slot_control.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_SLOT_CONTROL_H
#define TSW_SLOT_CONTROL_H

#include "storage/lwlock.h"

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

/* Index of the in-use slot named `name`, or -1.  Caller holds the lock. */
extern int	tsw_find_slot(const char *name);

/* Take the lock in `mode` and return the index of the slot `name`; ERROR (lock released) if none. */
extern int	tsw_lock_slot(const char *name, LWLockMode mode);

/* Cancel a launched slot's pending registration; true if there was one.  Caller holds the lock. */
extern bool tsw_cancel_registration(TswSlot *slot);

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

/* ERROR when the worker just started (pid 0 from tsw_slot_register) exited at once. */
extern void tsw_require_started(const char *name, pid_t pid);

/* The registration failed: free a launched slot, or mark a configured one stopped. */
extern void tsw_slot_launch_failed(int index);

/* tsworker.stop(): the pid to signal, 0 when not running; ERROR for an unknown name. */
extern pid_t tsw_slot_stop(const char *name);

/*
 * tsworker.wake(): the worker named `name`, or when none is, every worker
 * named `name` followed by an instance number (jobq1, jobq2 ...).  With
 * `deliver`, count a wake and set their latches; without, only check.
 * True if one of them runs.  No match is an ERROR unless `missing_ok`.
 */
extern bool tsw_slot_wake(const char *name, bool deliver, bool missing_ok);

/*
 * wake.c: deliver tsw_slot_wake(name) when the current transaction commits
 * (not at all if it, or the current subtransaction, rolls back).
 */
extern void tsw_wake_at_commit(const char *name);

/*
 * tsworker.restart(), first half: ask the running worker `name` to stop
 * (returns its pid: signal it), or cancel the pending restart of a launched
 * one (returns 0).  *due is set when a configured worker is waiting for the
 * postmaster to restart it (nothing to do); *starting when another
 * backend's restart is starting it now (tsw_slot_restart_start() returns
 * that process's pid).  ERROR for an unknown name.
 */
extern pid_t tsw_slot_restart_stop(const char *name, bool *due, bool *starting);

/*
 * Has the process `pid` of worker `name` left its slot (exit decided)?
 * While it has not, *handle (when *has_handle) is its dynamic registration.
 */
extern bool tsw_slot_exited(const char *name, pid_t pid, BackgroundWorkerHandle *handle,
							bool *has_handle);

/*
 * tsworker.restart(), second half: start the stopped worker `name` again;
 * its pid once started, 0 if it exited at once, -1 when no background
 * worker slot is free (then it stays stopped with that last_error); if it
 * runs or is due to run already, its pid (0 while due).
 */
extern pid_t tsw_slot_restart_start(const char *name);

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
