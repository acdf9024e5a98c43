/*-------------------------------------------------------------------------
 *
 * slots.c
 *		Shared-memory worker slots: their creation, configured workers'
 *		slots, the view's state, and a worker process claiming its own
 *		(what it then reports in it: worker_slot.c).
 *
 * The array is sized by tsworker.max_workers and guarded by one LWLock.
 * Configured workers (tsworker.workers) take slots 0..n-1 when shared
 * memory is created; tsworker.launch() takes a free one (slot_control.c).
 * Each worker process claims its slot at start (the slot index is its
 * bgw_main_arg).  When it exits, tsw_slot_on_exit() (worker_slot.c) alone decides the exit
 * code from the run's outcome, the module's restart policy, tsworker.stop()
 * and the crash-loop limit, so that the postmaster restarts the worker or
 * forgets it accordingly.  Readers never wait for a worker: a worker only
 * holds the lock to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slots.h"

TswShared  *tsw_shared = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Configured workers registered by _PG_init, copied into slots at startup. */
static TswWorkerSpec *tsw_static_specs = NULL;
static int	tsw_static_count = 0;

static Size tsw_shmem_size(void);
static void tsw_shmem_request(void);
static void tsw_shmem_startup(void);
static void tsw_slot_init_static(TswSlot *slot, const TswWorkerSpec *spec);

static Size
tsw_shmem_size(void)
{
	return add_size(offsetof(TswShared, slots),
					mul_size(sizeof(TswSlot), tsw_max_workers));
}

void
tsw_shmem_init_hooks(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = tsw_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = tsw_shmem_startup;
}

void
tsw_register_static_worker(int index, const TswWorkerSpec *spec)
{
	if (tsw_static_specs == NULL)
		tsw_static_specs = MemoryContextAllocZero(TopMemoryContext,
												  sizeof(TswWorkerSpec) * tsw_max_workers);
	Assert(index < tsw_max_workers);
	tsw_static_specs[index] = *spec;
	tsw_static_specs[index].module = MemoryContextStrdup(TopMemoryContext, spec->module);
	if (spec->settings)
		tsw_static_specs[index].settings = MemoryContextStrdup(TopMemoryContext, spec->settings);
	if (spec->database)
		tsw_static_specs[index].database = MemoryContextStrdup(TopMemoryContext, spec->database);
	if (spec->rolename)
		tsw_static_specs[index].rolename = MemoryContextStrdup(TopMemoryContext, spec->rolename);
	tsw_static_count = Max(tsw_static_count, index + 1);
}

static void
tsw_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(tsw_shmem_size());
	RequestNamedLWLockTranche("pg_tsworker", 1);
}

/* A configured worker's slot, as shared memory is created. */
static void
tsw_slot_init_static(TswSlot *slot, const TswWorkerSpec *spec)
{
	slot->in_use = true;
	slot->dynamic = false;
	strlcpy(slot->name, spec->name, sizeof(slot->name));
	strlcpy(slot->config_name, spec->config_name[0] ? spec->config_name : spec->name,
			sizeof(slot->config_name));
	strlcpy(slot->module, spec->module, sizeof(slot->module));
	strlcpy(slot->database, spec->database ? spec->database : tsw_database, sizeof(slot->database));
	slot->roleid = InvalidOid;
	strlcpy(slot->rolename, spec->rolename ? spec->rolename : tsw_role, sizeof(slot->rolename));
	strlcpy(slot->settings, spec->settings ? spec->settings : "{}", sizeof(slot->settings));
	slot->start_time = spec->start_time;
	tsw_slot_reset_for_start(slot);
	/* as if stopped: tsworker.start() or launch() can start it */
	if (spec->not_registered)
		tsw_slot_mark_no_bgworker(slot, "not started: no free background worker slot at server start");
}

static void
tsw_shmem_startup(void)
{
	bool		found;
	int			i;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	tsw_shared = ShmemInitStruct("pg_tsworker", tsw_shmem_size(), &found);
	if (!found)
	{
		memset(tsw_shared, 0, tsw_shmem_size());
		tsw_shared->lock = &(GetNamedLWLockTranche("pg_tsworker"))->lock;
		tsw_shared->nslots = tsw_max_workers;
		for (i = 0; i < tsw_shared->nslots; i++)
			pg_atomic_init_u32(&tsw_shared->slots[i].activity, TSW_ACTIVITY_NONE);
		for (i = 0; i < tsw_static_count; i++)
			tsw_slot_init_static(&tsw_shared->slots[i], &tsw_static_specs[i]);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Caller holds the lock.  The worker is stopped (tsworker.start() can start
 * it); last_error says why, with the max_worker_processes in force.
 */
void
tsw_slot_mark_no_bgworker(TswSlot *slot, const char *what)
{
	slot->state = TSW_STATE_STOPPED;
	slot->last_exit = 0;
	snprintf(slot->last_error, sizeof(slot->last_error),
			 "%s (max_worker_processes is %d)", what, max_worker_processes);
	slot->last_error_at = GetCurrentTimestamp();
}

/* Caller holds the lock. */
void
tsw_slot_reset_for_start(TswSlot *slot)
{
	strlcpy(slot->status, "{}", sizeof(slot->status));
	slot->state = TSW_STATE_STARTING;
	slot->last_exit = -1;
	slot->procno = -1;
	slot->wakes_base = slot->wakes;
	slot->stop_requested = false;
	slot->disabled = false;
	slot->recent_failures = 0;

	/*
	 * Started by hand (launch, start, restart): an error of an earlier run
	 * no longer describes it.  Restarts by the postmaster after a failure
	 * keep it, next to `restarts`.
	 */
	slot->last_error[0] = '\0';
	slot->last_error_at = 0;
}

const char *
tsw_state_name(TswState state)
{
	static const char *const names[TSW_STATE_COUNT] = {
		[TSW_STATE_STARTING] = "starting",
		[TSW_STATE_RUNNING] = "running",
		[TSW_STATE_WAITING] = "waiting",
		[TSW_STATE_STOPPING] = "stopping",
		[TSW_STATE_STOPPED] = "stopped",
		[TSW_STATE_FAILED] = "failed",
	};

	return state >= 0 && state < TSW_STATE_COUNT ? names[state] : "unknown";
}

/*
 * The state the view shows for a copy of a slot: once main() runs, what
 * the process does now (JavaScript, SQL, or waiting in its loop), else the
 * lifecycle state.
 */
const char *
tsw_slot_view_state(TswSlot *copy)
{
	if (copy->disabled && copy->pid == 0)
		return "failed";
	if (copy->pid != 0 &&
		(copy->state == TSW_STATE_RUNNING || copy->state == TSW_STATE_WAITING))
	{
		switch ((TswActivity) pg_atomic_read_u32(&copy->activity))
		{
			case TSW_ACTIVITY_IDLE:
				return "waiting";
			case TSW_ACTIVITY_JAVASCRIPT:
				return "running";
			case TSW_ACTIVITY_SQL:
				return "running sql";
			case TSW_ACTIVITY_NONE:
				break;
		}
	}
	return tsw_state_name(copy->state);
}

void
tsw_fill_bgworker(BackgroundWorker *worker, int index, const char *name,
				  int start_time, pid_t notify_pid)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = start_time;
	worker->bgw_restart_time = tsw_restart_interval < 0 ? BGW_NEVER_RESTART : tsw_restart_interval;
	snprintf(worker->bgw_library_name, BGW_MAXLEN, "pg_tsworker_host");
	snprintf(worker->bgw_function_name, BGW_MAXLEN, "pg_tsworker_host_main");
	snprintf(worker->bgw_name, BGW_MAXLEN, "pg_tsworker %s", name);
	snprintf(worker->bgw_type, BGW_MAXLEN, "%s", name);
	worker->bgw_main_arg = Int32GetDatum(index);
	worker->bgw_notify_pid = notify_pid;
}

bool
tsw_slot_claim(int index, TswSlot *copy, char **why)
{
	TswSlot    *slot;
	bool		ok = true;

	*why = NULL;
	if (tsw_shared == NULL || index < 0 || index >= tsw_shared->nslots)
	{
		*why = psprintf("worker slot %d does not exist", index);
		return false;
	}
	slot = &tsw_shared->slots[index];

	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	if (!slot->in_use)
	{
		*why = psprintf("worker slot %d is not in use", index);
		ok = false;
	}
	else if (slot->stop_requested || slot->disabled)
	{
		*why = pstrdup(slot->stop_requested ? "stopped by tsworker.stop()" :
					   "disabled after repeated failures; run tsworker.start() or tsworker.launch() to start it again");
		slot->state = slot->stop_requested ? TSW_STATE_STOPPED : TSW_STATE_FAILED;
		slot->pid = 0;
		slot->last_exit = 0;
		ok = false;
	}
	else
	{
		slot->pid = MyProcPid;
		slot->procno = tsw_procno(MyProc);
		slot->state = TSW_STATE_STARTING;
		slot->started_at = GetCurrentTimestamp();
		slot->last_activity = slot->started_at;
		slot->loops = 0;
		pg_atomic_write_u32(&slot->activity, TSW_ACTIVITY_NONE);
		slot->memory_at = 0;
		slot->rss_bytes = slot->heap_used_bytes = slot->heap_limit_bytes = 0;
		if (slot->starts > 0)
			slot->restarts++;
		slot->starts++;
		slot->failed_run = false;
		slot->outcome = TSW_OUTCOME_NONE;
		slot->policy = TSW_RESTART_ON_FAILURE;
		slot->last_exit = -1;
		strlcpy(slot->status, "{}", sizeof(slot->status));
		*copy = *slot;
	}
	LWLockRelease(tsw_shared->lock);

	if (ok)
		tsw_slot_adopt(index);
	return ok;
}
