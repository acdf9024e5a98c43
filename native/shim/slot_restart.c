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

#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"
#include "slots.h"

pid_t
tsw_slot_restart_stop(const char *name, bool *due)
{
	int			i = tsw_lock_slot(name, LW_EXCLUSIVE);
	TswSlot    *slot = &tsw_shared->slots[i];
	pid_t		pid = slot->pid;

	*due = false;
	if (pid != 0)
	{
		slot->stop_requested = true;
		slot->state = TSW_STATE_STOPPING;
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
tsw_slot_exited(const char *name, pid_t pid)
{
	int			i = tsw_lock_slot(name, LW_SHARED);
	TswSlot    *slot = &tsw_shared->slots[i];
	bool		exited = slot->pid != pid && slot->last_exit >= 0;

	LWLockRelease(tsw_shared->lock);
	return exited;
}

pid_t
tsw_slot_restart_start(const char *name)
{
	int			i = tsw_lock_slot(name, LW_EXCLUSIVE);
	TswSlot    *slot = &tsw_shared->slots[i];
	pid_t		pid;

	if (slot->pid != 0 || slot->last_exit != 0)
	{
		/* someone else started it meanwhile */
		pid = slot->pid;
		LWLockRelease(tsw_shared->lock);
		return pid;
	}
	tsw_slot_reset_for_start(slot);
	LWLockRelease(tsw_shared->lock);
	pid = tsw_slot_register(i, true);
	if (pid < 0)
	{
		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		slot->state = TSW_STATE_STOPPED;
		slot->last_exit = 0;
		snprintf(slot->last_error, sizeof(slot->last_error),
				 "not restarted: no free background worker slot (max_worker_processes is %d)",
				 max_worker_processes);
		slot->last_error_at = GetCurrentTimestamp();
		LWLockRelease(tsw_shared->lock);
	}
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
