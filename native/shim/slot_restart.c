/*-------------------------------------------------------------------------
 *
 * slot_restart.c
 *		tsworker.restart() and tsworker.start(): stop a worker and start it
 *		again, or start stopped ones.
 *
 * The other backend-side writer of slots, beside slot_control.c (whose
 * lookup, lock and registration helpers it uses).  Functions that raise an
 * error release the slot lock first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "utils/wait_event.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"
#include "slots.h"

/* Is another backend's tsworker.restart() starting the slot's worker now?  Caller holds the lock. */
static bool
tsw_started_by_other(TswSlot *slot)
{
	return slot->pid == 0 && slot->starting_by != 0 && slot->starting_by != MyProcPid &&
		kill(slot->starting_by, 0) == 0;
}

pid_t
tsw_slot_restart_stop(const char *name, bool *due, bool *starting)
{
	int			i = tsw_lock_slot(name, LW_EXCLUSIVE);
	TswSlot    *slot = &tsw_shared->slots[i];
	pid_t		pid = slot->pid;

	*due = false;
	*starting = false;
	if (pid != 0)
	{
		slot->stop_requested = true;
		slot->state = TSW_STATE_STOPPING;
	}
	else if (tsw_started_by_other(slot))
	{
		/* a concurrent restart is registering it: its pid is the answer */
		*starting = true;
	}
	else if (slot->last_exit != 0)
	{
		/*
		 * A launched worker waiting to be restarted is started now instead;
		 * the postmaster starts a configured one again, reading its module.
		 */
		*due = !tsw_cancel_registration(slot);
	}
	LWLockRelease(tsw_shared->lock);
	return pid;
}

bool
tsw_slot_exited(const char *name, pid_t pid, BackgroundWorkerHandle *handle, bool *has_handle)
{
	int			i = tsw_lock_slot(name, LW_SHARED);
	TswSlot    *slot = &tsw_shared->slots[i];

	/*
	 * Only the process's own exit callback clears its pid from the slot; a
	 * concurrent restart may since have started another process there.
	 */
	bool		exited = slot->pid != pid;

	if (!exited)
	{
		/* its registration, to wait until the postmaster has forgotten it */
		*has_handle = slot->has_handle;
		if (slot->has_handle)
			memcpy(handle, slot->handle, sizeof(BackgroundWorkerHandle));
	}
	LWLockRelease(tsw_shared->lock);
	return exited;
}

/* How long a restart retries its registration once the old process is gone. */
#define TSW_REGISTER_RETRY_MS 5000

pid_t
tsw_slot_restart_start(const char *name)
{
	int			i = tsw_lock_slot(name, LW_EXCLUSIVE);
	TswSlot    *slot = &tsw_shared->slots[i];
	TimestampTz deadline;
	TimestampTz wait_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 3 * TSW_REGISTER_RETRY_MS);
	pid_t		pid;

	/*
	 * A concurrent restart is starting it (registering, or waiting for the
	 * new process): wait for its pid rather than start a second process.
	 */
	while (tsw_started_by_other(slot) && GetCurrentTimestamp() < wait_deadline)
	{
		LWLockRelease(tsw_shared->lock);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	}
	if (slot->pid != 0 || slot->last_exit != 0)
	{
		/* someone else started it meanwhile */
		pid = slot->pid;
		LWLockRelease(tsw_shared->lock);
		return pid;
	}
	tsw_slot_reset_for_start(slot);
	slot->starting_by = MyProcPid;
	LWLockRelease(tsw_shared->lock);

	/*
	 * The caller waited until the old process was gone, but a background
	 * worker slot is freed only when the postmaster has reaped that process
	 * and forgotten its registration (in the same pass, just after): on a
	 * server whose max_worker_processes are all in use, the first attempt
	 * can come a moment too early.  Retry for a while, taking no interrupt
	 * between attempts (it would leave the slot "starting" with nothing
	 * registered); one while waiting for the new process clears starting_by.
	 */
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), TSW_REGISTER_RETRY_MS);
	PG_TRY();
	{
		while ((pid = tsw_slot_register(i, true)) < 0 && GetCurrentTimestamp() < deadline)
		{
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 20,
							 PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
		}
	}
	PG_CATCH();
	{
		/* cancelled while waiting for the new process to start */
		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		slot->starting_by = 0;
		LWLockRelease(tsw_shared->lock);
		PG_RE_THROW();
	}
	PG_END_TRY();
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	slot->starting_by = 0;
	if (pid < 0)
		tsw_slot_mark_no_bgworker(slot, "not restarted: no free background worker slot");
	LWLockRelease(tsw_shared->lock);
	return pid;
}

int
tsw_slot_start_stopped(const char *name)
{
	int			started = 0;
	int			i;

	if (name != NULL)
	{
		/* an unknown name is an error */
		(void) tsw_lock_slot(name, LW_SHARED);
		LWLockRelease(tsw_shared->lock);
	}
	for (i = 0; i < tsw_shared->nslots; i++)
	{
		TswSlot    *slot = &tsw_shared->slots[i];
		TswSlot		before;
		bool		start = false;

		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		/* not running and not due to run: stopped, finished, or disabled */
		if (slot->in_use && slot->pid == 0 && slot->last_exit == 0 &&
			(name == NULL || pg_strcasecmp(slot->name, name) == 0))
		{
			before = *slot;
			tsw_slot_reset_for_start(slot);
			start = true;
		}
		LWLockRelease(tsw_shared->lock);
		if (!start)
			continue;
		if (tsw_slot_register(i, false) == 0)
		{
			started++;
			continue;
		}

		/* no background worker slot: leave it as it was, and say so */
		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		slot->last_exit = before.last_exit;
		slot->disabled = before.disabled;
		slot->stop_requested = before.stop_requested;
		slot->recent_failures = before.recent_failures;
		slot->state = before.state;
		snprintf(slot->last_error, sizeof(slot->last_error),
				 "not started: no free background worker slot (max_worker_processes is %d)",
				 max_worker_processes);
		slot->last_error_at = GetCurrentTimestamp();
		LWLockRelease(tsw_shared->lock);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start worker \"%s\": no free background worker slot", before.name),
				 errdetail("%s", tsw_bgworker_usage()),
				 errhint("Raise max_worker_processes (needs a restart).")));
	}
	return started;
}
