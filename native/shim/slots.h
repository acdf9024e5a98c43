/*-------------------------------------------------------------------------
 *
 * slots.h
 *		Shared-memory layout of the worker slots (private to the shim).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_SLOTS_H
#define TSW_SLOTS_H

#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"

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
	char		rolename[NAMEDATALEN];	/* static workers; empty: tsworker.role */
	char		settings[TSW_SETTINGS_MAXLEN];

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

	int			last_exit;		/* exit code of the last run; -1 while one is due */
	bool		failed_run;		/* this run reported a failure (last_error) */
	bool		restart_run;	/* this run asked to be restarted (restart: always) */
	int32		recent_failures;
	TimestampTz first_recent_failure;

	/* the dynamic registration of this slot's worker, if it has one */
	bool		has_handle;
	BackgroundWorkerHandle handle;
} TswSlot;

typedef struct TswShared
{
	LWLock	   *lock;
	int			nslots;
	TswSlot		slots[FLEXIBLE_ARRAY_MEMBER];
} TswShared;

extern TswShared *tsw_shared;

#endif							/* TSW_SLOTS_H */
