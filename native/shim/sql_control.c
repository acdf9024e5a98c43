/*-------------------------------------------------------------------------
 *
 * sql_control.c
 *		SQL-callable control of existing workers: tsworker.stop(),
 *		tsworker.start(), tsworker.restart(), tsworker.wake() and
 *		tsworker.reload() (version 0.1).  Arguments are checked here;
 *		slots change only through slot_control.c and slot_restart.c.
 *
 * EXECUTE on all of them is revoked from PUBLIC by the extension script
 * and granted to tsworker_admin.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <errno.h>
#include <signal.h>

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"

PG_FUNCTION_INFO_V1(tsworker_stop);
PG_FUNCTION_INFO_V1(tsworker_wake);
PG_FUNCTION_INFO_V1(tsworker_start);
PG_FUNCTION_INFO_V1(tsworker_reload);
PG_FUNCTION_INFO_V1(tsworker_restart);

static void tsw_check_restart(const char *name);
static void tsw_wait_process_gone(pid_t pid, BackgroundWorkerHandle *handle,
								  TimestampTz deadline);

/* tsworker.stop(name text) returns boolean: true if a running worker was asked to stop. */
Datum
tsworker_stop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pid_t		pid;

	tsw_require_shared();
	pid = tsw_slot_stop(name);

	/*
	 * To the process group, as the postmaster and pg_terminate_backend()
	 * signal a backend: programs the worker started hear it too.
	 */
	if (pid != 0 && kill(-pid, SIGTERM) != 0 && kill(pid, SIGTERM) != 0)
		ereport(WARNING,
				(errmsg("could not signal worker \"%s\" (PID %d): %m", name, (int) pid)));
	PG_RETURN_BOOL(pid != 0);
}

/*
 * tsworker.wake(name text) and tsworker.wake(name text, at_commit boolean)
 * return boolean: set the latch of the worker `name`, or of its instances
 * (`name` followed by a number) when no worker has that name; at commit
 * (the default, as NOTIFY) or at once.  True if one of them runs now.
 *
 * Like NOTIFY without a listener, waking no worker is not an error: a
 * trigger that wakes a worker must not fail the application's write while
 * the worker is stopped, not yet launched after a server restart, or
 * removed from tsworker.workers (it returns false then).  A name that no
 * worker can have is an error (42602), shown cut to a worker name's length.
 */
Datum
tsworker_wake(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		at_commit = PG_NARGS() < 2 || PG_GETARG_BOOL(1);
	bool		running;

	tsw_require_shared();
	if (!tsw_valid_name(name))
	{
		int			len = strlen(name);
		int			shown = pg_mbcliplen(name, len, TSW_NAME_MAXLEN);

		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid worker name \"%.*s%s\"", shown, name, shown < len ? "..." : ""),
				 errdetail("Names are 1 to %d letters, digits or '_', not starting with a digit%s.",
						   TSW_NAME_MAXLEN,
						   shown < len ? psprintf("; this one is %d bytes long", len) : "")));
	}
	running = tsw_slot_wake(name, !at_commit, true);
	if (at_commit)
		tsw_wake_at_commit(name);
	PG_RETURN_BOOL(running);
}

/*
 * tsworker.restart(): load the module of worker `name` as its new process
 * will, before the running one is stopped, so that a module that no longer
 * loads (or is now writable by others) leaves the old process running.
 * Nothing for an unknown name (tsw_slot_restart_stop() reports it).
 */
static void
tsw_check_restart(const char *name)
{
	TswSlot    *copy;
	TswSlot    *slot = NULL;
	char	   *why;
	char	   *detail;
	int			n = tsw_slots_copy(&copy);
	int			i;

	for (i = 0; i < n && slot == NULL; i++)
		if (pg_strcasecmp(copy[i].name, name) == 0)
			slot = &copy[i];
	if (slot == NULL)
		return;
	why = tsw_check_module_file(slot->module);
	if (why != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("refusing to restart worker \"%s\": %s", slot->name, why),
				 errdetail("The running process, if any, was left running."),
				 errhint("A module must be a regular file that only root or the server's OS user can write, in a directory no one else can write.")));
	why = tsw_check_launch(slot->name, slot->config_name, slot->module, slot->settings[0] ? slot->settings : "{}", &detail);
	if (why != NULL)
		ereport(ERROR,
				(errcode(detail ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("could not restart worker \"%s\": %s", slot->name, why),
				 detail ? errdetail("%s. The running process, if any, was left running.", detail) :
				 errdetail("The running process, if any, was left running."),
				 errhint("Fix the module, then run tsworker.restart() again.")));
}

/*
 * Wait until the process `pid` is gone, reaped by the postmaster, and (with
 * `handle`) its registration forgotten: only then is its background worker
 * slot free for the new process.  A zombie still answers kill(pid, 0).
 * Gives up at `deadline`; the registration is retried anyway.
 */
static void
tsw_wait_process_gone(pid_t pid, BackgroundWorkerHandle *handle, TimestampTz deadline)
{
	for (;;)
	{
		bool		gone = kill(pid, 0) != 0 && errno == ESRCH;
		pid_t		ignored;

		if (gone && handle != NULL)
			gone = GetBackgroundWorkerPid(handle, &ignored) == BGWH_STOPPED;
		if (gone || GetCurrentTimestamp() > deadline)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * tsworker.restart(name text) returns integer: check that the worker's
 * module loads (else ERROR, the running process untouched), stop the worker
 * (as tsworker.stop(), waiting for its process to be gone) and start it
 * again, so that it loads its module anew; the new pid.  NULL, with a
 * NOTICE, for a configured worker that waits for the postmaster to restart
 * it (it loads its module then).  Concurrent restarts of one worker: the
 * later callers return the pid the first one started.
 */
Datum
tsworker_restart(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	bool		due;
	bool		starting;
	pid_t		old;
	pid_t		pid;

	tsw_require_shared();
	tsw_check_restart(name);
	/* when `starting`, old is 0: tsw_slot_restart_start() waits for that process */
	old = tsw_slot_restart_stop(name, &due, &starting);
	if (due)
	{
		ereport(NOTICE,
				(errmsg("worker \"%s\" is waiting to be restarted; it loads its module when it starts", name)));
		PG_RETURN_NULL();
	}
	if (old != 0)
	{
		/* it leaves within tsworker.terminate_grace: wait a little longer */
		TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														   (tsw_terminate_grace + 10) * 1000);
		BackgroundWorkerHandle handle;
		bool		has_handle = false;

		if (kill(-old, SIGTERM) != 0 && kill(old, SIGTERM) != 0)
			ereport(WARNING,
					(errmsg("could not signal worker \"%s\" (PID %d): %m", name, (int) old)));
		while (!tsw_slot_exited(name, old, &handle, &has_handle))
		{
			if (GetCurrentTimestamp() > deadline)
				ereport(ERROR,
						(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						 errmsg("worker \"%s\" (PID %d) did not stop within %d s", name, (int) old,
								tsw_terminate_grace + 10),
						 errhint("It stays asked to stop; run tsworker.start() once it has.")));
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
		tsw_wait_process_gone(old, has_handle ? &handle : NULL, deadline);
	}
	pid = tsw_slot_restart_start(name);
	if (pid < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not restart worker \"%s\": no free background worker slot", name),
				 errdetail("%s", tsw_bgworker_usage()),
				 errhint("It is stopped; run tsworker.start() once a slot is free.")));
	tsw_require_started(name, pid);
	PG_RETURN_INT32(pid);
}

/*
 * tsworker.start(name text DEFAULT NULL) returns integer: starts again the
 * worker `name`, or every worker when NULL, that is neither running nor due
 * to run (stopped, finished, or disabled after a crash loop), and returns
 * how many it started.
 */
Datum
tsworker_start(PG_FUNCTION_ARGS)
{
	char	   *name = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));

	tsw_require_shared();
	PG_RETURN_INT32(tsw_slot_start_stopped(name));
}

/* tsworker.reload(), extension version 0.1: tsworker.start() for every worker. */
Datum
tsworker_reload(PG_FUNCTION_ARGS)
{
	tsw_require_shared();
	PG_RETURN_INT32(tsw_slot_start_stopped(NULL));
}
