/*-------------------------------------------------------------------------
 *
 * slots.c
 *		Shared-memory worker slots, and what a worker process reports in its
 *		own: state, loops, errors, status, and how its run ended.
 *
 * The array is sized by tsworker.max_workers and guarded by one LWLock.
 * Configured workers (tsworker.workers) take slots 0..n-1 when shared
 * memory is created; tsworker.launch() takes a free one (slot_control.c).
 * Each worker process claims its slot at start (the slot index is its
 * bgw_main_arg).  When it exits, tsw_slot_on_exit() alone decides the exit
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
static int	tsw_my_slot = -1;
/* Exit code decided by tsw_slot_on_exit(), for the final _exit(). */
static int	tsw_final_code = -1;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Configured workers registered by _PG_init, copied into slots at startup. */
static TswWorkerSpec *tsw_static_specs = NULL;
static int	tsw_static_count = 0;

static Size tsw_shmem_size(void);
static void tsw_shmem_request(void);
static void tsw_shmem_startup(void);
static void tsw_slot_init_static(TswSlot *slot, const TswWorkerSpec *spec);
static TswSlot *tsw_own_slot(void);
static void tsw_slot_on_exit(int code, Datum arg);

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
	if (spec->not_registered)
	{
		/* as if stopped: tsworker.start() or launch() can start it */
		slot->state = TSW_STATE_STOPPED;
		slot->last_exit = 0;
		snprintf(slot->last_error, sizeof(slot->last_error),
				 "not started: no free background worker slot at server start (max_worker_processes is %d)",
				 max_worker_processes);
		slot->last_error_at = GetCurrentTimestamp();
	}
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
	{
		tsw_my_slot = index;
		on_shmem_exit(tsw_slot_on_exit, (Datum) 0);
	}
	return ok;
}

static TswSlot *
tsw_own_slot(void)
{
	if (tsw_shared == NULL || tsw_my_slot < 0)
		return NULL;
	return &tsw_shared->slots[tsw_my_slot];
}

bool
tsw_slot_read(TswSlot *copy)
{
	TswSlot    *slot = tsw_own_slot();

	if (slot == NULL)
		return false;
	LWLockAcquire(tsw_shared->lock, LW_SHARED);
	*copy = *slot;
	LWLockRelease(tsw_shared->lock);
	return true;
}

void
tsw_slot_set_state(TswState state)
{
	TswSlot    *slot = tsw_own_slot();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	/* once stopping, only the exit changes the state */
	if (slot->state != TSW_STATE_STOPPING || state == TSW_STATE_STOPPED ||
		state == TSW_STATE_FAILED)
		slot->state = state;
	LWLockRelease(tsw_shared->lock);
}

/*
 * The owner's last store, so that an unchanged activity costs a compare:
 * the host and the addon report at every loop turn and every statement.
 */
static TswActivity tsw_my_activity = TSW_ACTIVITY_NONE;

void
tsw_slot_set_activity(TswActivity activity)
{
	TswSlot    *slot;

	if (activity == tsw_my_activity)
		return;
	slot = tsw_own_slot();
	if (slot == NULL)
		return;
	tsw_my_activity = activity;
	pg_atomic_write_u32(&slot->activity, (uint32) activity);
}

void
tsw_slot_set_memory(int64 rss_bytes, int64 heap_used_bytes, int64 heap_limit_bytes)
{
	TswSlot    *slot = tsw_own_slot();
	TimestampTz now = GetCurrentTimestamp();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	slot->memory_at = now;
	slot->rss_bytes = rss_bytes;
	slot->heap_used_bytes = heap_used_bytes;
	slot->heap_limit_bytes = heap_limit_bytes;
	LWLockRelease(tsw_shared->lock);
}

void
tsw_slot_note_loop(void)
{
	TswSlot    *slot = tsw_own_slot();
	TimestampTz now = GetCurrentTimestamp();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	slot->loops++;
	slot->last_activity = now;
	if (slot->state == TSW_STATE_WAITING || slot->state == TSW_STATE_STARTING)
		slot->state = TSW_STATE_RUNNING;
	LWLockRelease(tsw_shared->lock);
}

void
tsw_slot_set_error(const char *message)
{
	TswSlot    *slot = tsw_own_slot();
	TimestampTz now = GetCurrentTimestamp();
	size_t		len = strcspn(message, "\n");

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	if (!slot->failed_run)
	{
		strlcpy(slot->last_error, message, Min(len + 1, sizeof(slot->last_error)));
		slot->last_error_at = now;
		slot->failed_run = true;
	}
	LWLockRelease(tsw_shared->lock);
}

void
tsw_slot_set_status(const char *json)
{
	TswSlot    *slot = tsw_own_slot();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	strlcpy(slot->status, json, sizeof(slot->status));
	LWLockRelease(tsw_shared->lock);
}

void
tsw_slot_set_policy(TswRestartPolicy policy)
{
	TswSlot    *slot = tsw_own_slot();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	slot->policy = policy;
	LWLockRelease(tsw_shared->lock);
}

void
tsw_slot_set_outcome(TswOutcome outcome)
{
	TswSlot    *slot = tsw_own_slot();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	if (slot->outcome == TSW_OUTCOME_NONE)
		slot->outcome = outcome;
	LWLockRelease(tsw_shared->lock);
}

/*
 * How many times tsworker.wake() was called for this worker.  The runtime
 * compares it at each w.wait(): a wake whose latch was reset by a wait
 * inside PostgreSQL (a lock wait during a query) is not lost.
 */
uint64
tsw_slot_wakes(void)
{
	TswSlot    *slot = tsw_own_slot();
	uint64		wakes;

	if (slot == NULL)
		return 0;
	LWLockAcquire(tsw_shared->lock, LW_SHARED);
	wakes = slot->wakes;
	LWLockRelease(tsw_shared->lock);
	return wakes;
}

int
tsw_slot_final_exit_code(int code)
{
	return tsw_final_code >= 0 ? tsw_final_code : code;
}

/*
 * on_shmem_exit callback of a worker that claimed its slot: decide how the
 * run ended and the exit code the process leaves with (host_exit.c's last
 * on_proc_exit callback _exits with it, whatever path led here).
 *
 *	- A run is a failure when it reported one (last_error) or ended without
 *	  reporting a clean finish (a FATAL, a forced exit).  A failure counts
 *	  towards the crash-loop limit (tsworker.crash_loop_failures within
 *	  tsworker.crash_loop_window); at the limit the slot is disabled.
 *	- Exit 1 makes the postmaster restart the worker after
 *	  tsworker.restart_interval; exit 0 makes it forget the registration.
 *	  So: a failure exits 1, unless the policy is `never`; a clean finish
 *	  exits 0, unless the policy is `always` and nobody asked it to stop;
 *	  a worker stopped by tsworker.stop() or disabled exits 0.
 */
static void
tsw_slot_on_exit(int code, Datum arg)
{
	TswSlot    *slot = tsw_own_slot();
	TimestampTz now = GetCurrentTimestamp();
	bool		failure;
	bool		disabled_now = false;
	int			final;
	int			failures = 0;

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	failure = slot->failed_run || slot->outcome != TSW_OUTCOME_FINISHED;
	if (failure)
		final = slot->policy == TSW_RESTART_NEVER ? 0 : 1;
	else
		final = slot->policy == TSW_RESTART_ALWAYS && !ShutdownRequestPending ? 1 : 0;

	if (failure && !slot->stop_requested && final == 1)
	{
		if (slot->recent_failures == 0 ||
			TimestampDifferenceExceeds(slot->first_recent_failure, now,
									   tsw_crash_loop_window * 1000))
		{
			slot->recent_failures = 0;
			slot->first_recent_failure = now;
		}
		slot->recent_failures++;
		failures = slot->recent_failures;
		if (tsw_crash_loop_failures > 0 && failures >= tsw_crash_loop_failures)
		{
			slot->disabled = true;
			disabled_now = true;
		}
	}
	if (slot->stop_requested || slot->disabled)
		final = 0;
	slot->wakes_base = slot->wakes;
	slot->procno = -1;
	pg_atomic_write_u32(&slot->activity, TSW_ACTIVITY_NONE);
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->last_exit = final;
		/* exit 1 without a failure: a restart (policy `always`) is due */
		slot->state = slot->stop_requested ? TSW_STATE_STOPPED :
			failure ? TSW_STATE_FAILED :
			final == 0 ? TSW_STATE_STOPPED : TSW_STATE_STARTING;
	}
	LWLockRelease(tsw_shared->lock);

	tsw_final_code = final;
	tsw_my_slot = -1;
	if (disabled_now)
		ereport(LOG,
				(errmsg("tsworker \"%s\": failed %d times within %d s; not restarted until tsworker.start() or tsworker.launch()",
						slot->name, failures, tsw_crash_loop_window)));
}
