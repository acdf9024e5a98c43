/*-------------------------------------------------------------------------
 *
 * slot_control.c
 *		What SQL functions do to worker slots: take one for a launch,
 *		register its background worker, stop, wake, and read them all for
 *		the view.  Restarting and starting stopped ones: slot_restart.c.
 *
 * With slot_restart.c, the only code outside the worker's own process
 * (slots.c, worker_slot.c) that changes a slot; the SQL functions
 * (sql_launch.c, sql_control.c, sql_status.c) check arguments and
 * permissions and call these.  Functions that raise an error release the
 * slot lock first.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/xlog.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"
#include "slots.h"

StaticAssertDecl(sizeof(BackgroundWorkerHandle) == sizeof(((TswSlot *) 0)->handle),
				 "a slot holds a BackgroundWorkerHandle");


/* Index of the in-use slot named `name`, or -1.  Caller holds the lock. */
int
tsw_find_slot(const char *name)
{
	int			i;

	for (i = 0; i < tsw_shared->nslots; i++)
	{
		if (tsw_shared->slots[i].in_use &&
			pg_strcasecmp(tsw_shared->slots[i].name, name) == 0)
			return i;
	}
	return -1;
}

/*
 * Take the slot lock in `mode` and return the index of the slot named
 * `name`; an unknown name is an error (raised after releasing the lock).
 */
int
tsw_lock_slot(const char *name, LWLockMode mode)
{
	int			i;

	LWLockAcquire(tsw_shared->lock, mode);
	i = tsw_find_slot(name);
	if (i < 0)
	{
		LWLockRelease(tsw_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("worker \"%s\" does not exist", name)));
	}
	return i;
}

void
tsw_require_shared(void)
{
	if (tsw_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_tsworker is not loaded through shared_preload_libraries"),
				 errhint("Add pg_tsworker to shared_preload_libraries and restart the server.")));
}

void
tsw_require_started(const char *name, pid_t pid)
{
	if (pid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("worker \"%s\" exited at once", name),
				 errhint("See the server log, or last_error in tsworker.stat_workers.")));
}

int
tsw_slot_prepare_launch(const TswLaunchRequest *req)
{
	TswSlot    *slot;
	int			index = -1;
	int			i;

	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	i = tsw_find_slot(req->name);
	if (i >= 0)
	{
		slot = &tsw_shared->slots[i];
		/* running, or due to run (registered, or exited 1 with a restart due) */
		if (slot->pid != 0 || slot->last_exit != 0)
		{
			LWLockRelease(tsw_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("worker \"%s\" already exists and is %s", req->name,
							slot->pid != 0 ? "running" : "about to start"),
					 errhint("Stop it with tsworker.stop() first, or choose another name.")));
		}
		if (!slot->dynamic && !req->builtin && strcmp(slot->module, req->module) != 0)
		{
			LWLockRelease(tsw_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("worker \"%s\" is configured in tsworker.workers with module \"%s\"",
							req->name, slot->module),
					 errhint("Launch it with that module to start it again, or choose another name.")));
		}
		/* a configured worker starts again as configured; a launched one reuses its slot */
		index = i;
	}
	else
	{
		/* a free slot, else the oldest stopped launched worker's */
		for (i = 0; i < tsw_shared->nslots && index < 0; i++)
			if (!tsw_shared->slots[i].in_use)
				index = i;
		for (i = 0; i < tsw_shared->nslots && index < 0; i++)
		{
			TswSlot    *s = &tsw_shared->slots[i];

			if (s->dynamic && s->pid == 0 &&
				(s->state == TSW_STATE_STOPPED || s->disabled || s->stop_requested))
				index = i;
		}
		if (index < 0)
		{
			LWLockRelease(tsw_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("all %d worker slots are in use", tsw_shared->nslots),
					 errhint("Stop a worker, or raise tsworker.max_workers.")));
		}
	}

	slot = &tsw_shared->slots[index];
	if (slot->dynamic || !slot->in_use)
	{
		memset(slot, 0, sizeof(TswSlot));
		pg_atomic_init_u32(&slot->activity, TSW_ACTIVITY_NONE);
		slot->in_use = true;
		slot->dynamic = true;
		strlcpy(slot->name, req->name, sizeof(slot->name));
		strlcpy(slot->config_name, req->config_name, sizeof(slot->config_name));
		strlcpy(slot->module, req->module, sizeof(slot->module));
		strlcpy(slot->database, req->database, sizeof(slot->database));
		slot->dboid = req->dboid;
		slot->roleid = req->roleid;
		strlcpy(slot->settings, req->settings, sizeof(slot->settings));
	}
	/* launched on a hot standby, it runs there (read-only) */
	slot->start_time = RecoveryInProgress() ? BgWorkerStart_ConsistentState :
		BgWorkerStart_RecoveryFinished;
	tsw_slot_reset_for_start(slot);
	LWLockRelease(tsw_shared->lock);
	return index;
}

pid_t
tsw_slot_register(int index, bool wait)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	TswSlot    *slot = &tsw_shared->slots[index];
	pid_t		pid = 0;

	tsw_fill_bgworker(&worker, index, slot->name, slot->start_time, MyProcPid);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return -1;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	memcpy(slot->handle, handle, sizeof(slot->handle));
	slot->has_handle = true;
	LWLockRelease(tsw_shared->lock);
	if (!wait)
		return 0;

	switch (WaitForBackgroundWorkerStartup(handle, &pid))
	{
		case BGWH_STARTED:
			break;
		case BGWH_POSTMASTER_DIED:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start worker \"%s\": the postmaster died", slot->name)));
			break;
		default:
			return 0;
	}

	/*
	 * Record the pid now, not only when the worker claims its slot a moment
	 * later, so that a tsworker.stop() right after launch finds it (a SIGTERM
	 * that early stays pending until the worker unblocks signals).
	 */
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	if (slot->pid == 0 && slot->state == TSW_STATE_STARTING)
		slot->pid = pid;
	LWLockRelease(tsw_shared->lock);
	return pid;
}

void
tsw_slot_launch_failed(int index)
{
	TswSlot    *slot = &tsw_shared->slots[index];

	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	if (slot->dynamic)
		slot->in_use = false;
	else
	{
		slot->state = TSW_STATE_STOPPED;
		slot->last_exit = 0;
	}
	LWLockRelease(tsw_shared->lock);
}

pid_t
tsw_slot_stop(const char *name)
{
	int			i = tsw_lock_slot(name, LW_EXCLUSIVE);
	TswSlot    *slot = &tsw_shared->slots[i];
	pid_t		pid = slot->pid;

	slot->stop_requested = true;
	if (pid != 0)
		slot->state = TSW_STATE_STOPPING;
	else if (slot->last_exit != 0)
	{
		/*
		 * Registered and waiting to be (re)started: cancel a dynamic
		 * registration now, so that it does not hold a background worker
		 * slot until its restart time.  (A configured worker's registration
		 * stays until then; it exits at once when started.)
		 */
		(void) tsw_cancel_registration(slot);
		slot->state = TSW_STATE_STOPPED;
	}
	LWLockRelease(tsw_shared->lock);
	return pid;
}

/*
 * Cancel the dynamic registration of a slot waiting to be restarted; false
 * when it has none (a configured worker's static one).  Caller holds the
 * lock exclusively.
 */
bool
tsw_cancel_registration(TswSlot *slot)
{
	if (!slot->has_handle)
		return false;
	TerminateBackgroundWorker((BackgroundWorkerHandle *) slot->handle);
	slot->has_handle = false;
	slot->last_exit = 0;
	return true;
}

/*
 * Is `slot_name` an instance of `group`: `group` followed by an instance
 * number (a digit 1-9, then digits), as instances of a worker declaring
 * `instances` are named?  Case-insensitive, as names are.
 */
static bool
tsw_instance_of(const char *slot_name, const char *group)
{
	size_t		n = strlen(group);
	const char *p = slot_name + n;

	if (n == 0 || pg_strncasecmp(slot_name, group, n) != 0 || *p < '1' || *p > '9')
		return false;
	for (p++; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

/* Caller holds the lock exclusively.  True if the slot's worker runs. */
static bool
tsw_wake_one(TswSlot *slot, bool deliver)
{
	if (slot->pid == 0)
		return false;
	if (deliver)
	{
		/* counted even before the worker has claimed its slot */
		slot->wakes++;
		if (slot->procno >= 0)
			SetLatch(&tsw_proc(slot->procno)->procLatch);
	}
	return true;
}

bool
tsw_slot_wake(const char *name, bool deliver, bool missing_ok)
{
	bool		running = false;
	int			matched = 0;
	int			i;

	LWLockAcquire(tsw_shared->lock, deliver ? LW_EXCLUSIVE : LW_SHARED);
	i = tsw_find_slot(name);
	if (i >= 0)
	{
		running = tsw_wake_one(&tsw_shared->slots[i], deliver);
		matched = 1;
	}
	else
	{
		for (i = 0; i < tsw_shared->nslots; i++)
		{
			TswSlot    *slot = &tsw_shared->slots[i];

			if (slot->in_use && tsw_instance_of(slot->name, name))
			{
				running |= tsw_wake_one(slot, deliver);
				matched++;
			}
		}
	}
	LWLockRelease(tsw_shared->lock);
	if (matched == 0 && !missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("worker \"%s\" does not exist", name),
				 errdetail("No worker is named \"%s\", nor \"%s\" followed by an instance number.", name, name)));
	return running;
}

int
tsw_slots_copy(TswSlot **out)
{
	int			n = 0;
	int			i;

	*out = palloc(sizeof(TswSlot) * tsw_shared->nslots);
	LWLockAcquire(tsw_shared->lock, LW_SHARED);
	for (i = 0; i < tsw_shared->nslots; i++)
		if (tsw_shared->slots[i].in_use)
			(*out)[n++] = tsw_shared->slots[i];
	LWLockRelease(tsw_shared->lock);
	return n;
}

/*
 * What holds the background worker slots (max_worker_processes), for the
 * message of a failed registration: pg_tsworker's own running workers and
 * those waiting to be restarted; the rest belong to PostgreSQL or other
 * extensions.
 */
char *
tsw_bgworker_usage(void)
{
	int			running = 0;
	int			waiting = 0;
	int			i;

	LWLockAcquire(tsw_shared->lock, LW_SHARED);
	for (i = 0; i < tsw_shared->nslots; i++)
	{
		TswSlot    *s = &tsw_shared->slots[i];

		if (!s->in_use)
			continue;
		if (s->pid != 0)
			running++;
		else if (s->last_exit != 0)
			waiting++;
	}
	LWLockRelease(tsw_shared->lock);
	return psprintf("max_worker_processes is %d: pg_tsworker holds %d of its slots (%d running, "
					"%d waiting to be restarted); the others belong to PostgreSQL "
					"(the logical replication launcher and workers, parallel query workers) or to other extensions.",
					max_worker_processes, running + waiting, running, waiting);
}
