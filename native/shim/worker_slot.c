/*-------------------------------------------------------------------------
 *
 * worker_slot.c
 *		What a worker process reports in its own slot: state, activity,
 *		memory, loops, errors, status, wakes seen, and how its run ended
 *		(tsw_slot_on_exit decides the exit code).
 *
 * The worker adopts its slot once slots.c's tsw_slot_claim() succeeded.
 * It holds the slot lock only to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slots.h"

static int	tsw_my_slot = -1;
/* Exit code decided by tsw_slot_on_exit(), for the final _exit(). */
static int	tsw_final_code = -1;

static TswSlot *tsw_own_slot(void);
static void tsw_slot_on_exit(int code, Datum arg);

/* This process runs the worker of slot `index` (claimed): report there, decide the exit. */
void
tsw_slot_adopt(int index)
{
	tsw_my_slot = index;
	on_shmem_exit(tsw_slot_on_exit, (Datum) 0);
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
/* Whether tsworker.stop() or tsworker.restart() asked this worker to stop (not a server shutdown). */
bool
tsw_slot_stop_requested(void)
{
	TswSlot    *slot = tsw_own_slot();
	bool		requested;

	if (slot == NULL)
		return false;
	LWLockAcquire(tsw_shared->lock, LW_SHARED);
	requested = slot->stop_requested;
	LWLockRelease(tsw_shared->lock);
	return requested;
}

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
