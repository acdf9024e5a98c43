/*-------------------------------------------------------------------------
 *
 * slot.h
 *		The worker slot: one record per worker in shared memory, and the
 *		only functions that change it.
 *
 * TswSlot is defined here once.  The worker process (host and addon) reads
 * a copy of its own slot and reports through the tsw_slot_* functions
 * (its claim in slots.c, the rest in worker_slot.c); SQL functions control
 * slots through those of slot_control.c and slot_restart.c.
 * Nothing else writes a slot.  Every function takes the slot lock briefly
 * and never raises an error unless it says so.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_SLOT_H
#define TSW_SLOT_H

#include "port/atomics.h"
#include "postmaster/bgworker.h"
#include "utils/timestamp.h"

#define TSW_NAME_MAXLEN		63
#define TSW_STATUS_MAXLEN	2048
#define TSW_ERROR_MAXLEN	1024
#define TSW_SETTINGS_MAXLEN	2048

/* What a worker is doing, as the tsworker.stat_workers view shows it. */
typedef enum TswState
{
	TSW_STATE_STARTING = 0,		/* registered or starting; not yet running JS */
	TSW_STATE_RUNNING,			/* main() runs between two w.wait() calls */
	TSW_STATE_WAITING,			/* main() is in w.wait() */
	TSW_STATE_STOPPING,			/* shutdown asked, not exited yet */
	TSW_STATE_STOPPED,			/* exited with code 0, or stopped */
	TSW_STATE_FAILED			/* exited with code 1 (restart due, or disabled) */
} TswState;

#define TSW_STATE_COUNT (TSW_STATE_FAILED + 1)

/*
 * What a running worker's process does at this moment, as the view shows
 * it in `state` once main() runs: the host writes it around its wait and
 * around JavaScript, the addon around SQL statements.
 */
typedef enum TswActivity
{
	TSW_ACTIVITY_NONE = 0,		/* not reported yet */
	TSW_ACTIVITY_IDLE,			/* waiting in the event loop: `waiting` */
	TSW_ACTIVITY_JAVASCRIPT,	/* running JavaScript: `running` */
	TSW_ACTIVITY_SQL			/* running an SQL statement or COMMIT: `running sql` */
} TswActivity;

/* What happens after a run ends (defineWorker's `restart`). */
typedef enum TswRestartPolicy
{
	TSW_RESTART_ON_FAILURE = 0, /* restarted after a failure */
	TSW_RESTART_ALWAYS,			/* restarted after any end but a stop */
	TSW_RESTART_NEVER			/* never restarted */
} TswRestartPolicy;

/* How a run of the worker ended, as the runtime reports it. */
typedef enum TswOutcome
{
	TSW_OUTCOME_NONE = 0,		/* not reported: the process ended otherwise */
	TSW_OUTCOME_FINISHED,		/* main() returned, or stopped on request */
	TSW_OUTCOME_FAILED			/* an error ended it (last_error says which) */
} TswOutcome;

typedef struct TswSlot
{
	bool		in_use;
	bool		dynamic;		/* started by tsworker.launch() */
	bool		stop_requested; /* tsworker.stop(): exit 0, do not come back */
	bool		disabled;		/* crash loop: not restarted */
	char		name[TSW_NAME_MAXLEN + 1];
	char		config_name[TSW_NAME_MAXLEN + 1];	/* settings are tsworker_<config_name>.* */
	char		module[MAXPGPATH];
	char		database[NAMEDATALEN];
	Oid			dboid;			/* InvalidOid: connect by name */
	Oid			roleid;			/* InvalidOid: rolename */
	char		rolename[NAMEDATALEN];	/* empty: tsworker.role */
	char		settings[TSW_SETTINGS_MAXLEN];	/* JSON object from tsworker.launch() */
	int			start_time;		/* BgWorkerStartTime of its registration */

	TswState	state;
	pid_t		pid;			/* 0 when not running */
	int			procno;			/* PGPROC number, for wake(); -1 until claimed */
	TimestampTz started_at;
	TimestampTz last_activity;
	int64		loops;
	uint64		wakes;			/* tsworker.wake() calls, ever */
	uint64		wakes_base;		/* wakes already seen by earlier runs */
	int32		starts;
	int32		restarts;
	char		last_error[TSW_ERROR_MAXLEN];
	TimestampTz last_error_at;
	char		status[TSW_STATUS_MAXLEN];

	TswRestartPolicy policy;	/* the module's, once loaded */
	TswOutcome	outcome;		/* this run's, as reported */
	int			last_exit;		/* exit code of the last run; -1 while one is due */
	bool		failed_run;		/* this run reported a failure (last_error) */
	int32		recent_failures;
	TimestampTz first_recent_failure;

	/*
	 * Written by the worker process alone, without the lock (a 4-byte
	 * atomic store each time it changes): a TswActivity.
	 */
	pg_atomic_uint32 activity;

	/* memory of the running process, as it last reported it (0: not yet) */
	TimestampTz memory_at;
	int64		rss_bytes;		/* resident set size */
	int64		heap_used_bytes;	/* V8 heap in use */
	int64		heap_limit_bytes;	/* V8 heap limit (tsworker.max_old_space_mb and V8's own) */

	/* the dynamic registration of this slot's worker, if it has one */
	bool		has_handle;
	char		handle[16];		/* a BackgroundWorkerHandle (compat.h) */

	/* the backend whose tsworker.restart() is starting it now; 0: none */
	pid_t		starting_by;
} TswSlot;

/* The name of a state, as the view shows it. */
extern PGDLLEXPORT const char *tsw_state_name(TswState state);

/* The state the view shows for a copy of a slot (read by SQL functions). */
extern const char *tsw_slot_view_state(TswSlot *copy);

/*
 * Fill `worker` to run slot `index` (one place for every registration):
 * the host library's entry point, the slot as its argument.
 */
extern void tsw_fill_bgworker(BackgroundWorker *worker, int index, const char *name,
							  int start_time, pid_t notify_pid);

/* ---- the worker process: slots.c (claim), worker_slot.c (the rest) ---- */

/*
 * Claim slot `index` for this process and copy it into *copy.  False, with
 * *why, when the worker must not run (stopped, disabled, unused): the
 * caller then exits with code 0.
 */
extern PGDLLEXPORT bool tsw_slot_claim(int index, TswSlot *copy, char **why);

/* A copy of this process's slot; false before it is claimed. */
extern PGDLLEXPORT bool tsw_slot_read(TswSlot *copy);

extern PGDLLEXPORT void tsw_slot_set_state(TswState state);
/* Lock-free, and free when the activity does not change. */
extern PGDLLEXPORT void tsw_slot_set_activity(TswActivity activity);
extern PGDLLEXPORT void tsw_slot_set_memory(int64 rss_bytes, int64 heap_used_bytes, int64 heap_limit_bytes);
extern PGDLLEXPORT void tsw_slot_note_loop(void);
/* The run failed: keep the first line of its first reason as last_error. */
extern PGDLLEXPORT void tsw_slot_set_error(const char *message);
extern PGDLLEXPORT void tsw_slot_set_status(const char *json);
extern PGDLLEXPORT void tsw_slot_set_policy(TswRestartPolicy policy);
extern PGDLLEXPORT void tsw_slot_set_outcome(TswOutcome outcome);
extern PGDLLEXPORT uint64 tsw_slot_wakes(void);
extern PGDLLEXPORT bool tsw_slot_stop_requested(void);

/*
 * The exit code this process leaves with, decided once its slot's exit
 * callback ran (which applies the restart policy, tsworker.stop() and the
 * crash-loop limit); `code` when it never claimed a slot.
 */
extern PGDLLEXPORT int	tsw_slot_final_exit_code(int code);

#endif							/* TSW_SLOT_H */
