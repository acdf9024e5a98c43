/*-------------------------------------------------------------------------
 *
 * slots.c
 *		Shared-memory worker slots: one per worker, static or launched.
 *
 * The array is sized by tsworker.max_workers and guarded by one LWLock.
 * Static workers (tsworker.workers) take slots 0..n-1 when shared memory is
 * created; tsworker.launch() takes a free slot.  Each worker process claims
 * its slot at start (the slot index is its bgw_main_arg), then reports its
 * state, loops, errors and a free-form JSON status; the SQL functions in
 * sql_functions.c read and control the slots.  Readers never wait for a
 * worker: a worker only holds the lock to copy a few fields.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pg_tsworker.h"
#include "slots.h"

TswShared  *tsw_shared = NULL;
static int	tsw_my_slot = -1;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Static workers registered by _PG_init, copied into slots at startup. */
static TswWorkerSpec *tsw_static_specs = NULL;
static int	tsw_static_count = 0;

static void tsw_shmem_request(void);
static void tsw_shmem_startup(void);
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
		for (i = 0; i < tsw_static_count; i++)
		{
			TswSlot    *slot = &tsw_shared->slots[i];

			slot->in_use = true;
			slot->dynamic = false;
			strlcpy(slot->name, tsw_static_specs[i].name, sizeof(slot->name));
			strlcpy(slot->config_name, tsw_static_specs[i].config_name[0] ? tsw_static_specs[i].config_name :
					tsw_static_specs[i].name, sizeof(slot->config_name));
			strlcpy(slot->module, tsw_static_specs[i].module, sizeof(slot->module));
			strlcpy(slot->database, tsw_static_specs[i].database ? tsw_static_specs[i].database : tsw_database,
					sizeof(slot->database));
			slot->roleid = InvalidOid;
			strlcpy(slot->rolename, tsw_static_specs[i].rolename ? tsw_static_specs[i].rolename : tsw_role,
					sizeof(slot->rolename));
			strlcpy(slot->settings, tsw_static_specs[i].settings ? tsw_static_specs[i].settings : "{}",
					sizeof(slot->settings));
			strlcpy(slot->status, "{}", sizeof(slot->status));
			slot->state = TSW_STATE_STARTING;
			slot->last_exit = -1;
			slot->procno = -1;
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

const char *
tsw_state_name(TswState state)
{
	switch (state)
	{
		case TSW_STATE_STARTING:
			return "starting";
		case TSW_STATE_RUNNING:
			return "running";
		case TSW_STATE_WAITING:
			return "waiting";
		case TSW_STATE_STOPPING:
			return "stopping";
		case TSW_STATE_STOPPED:
			return "stopped";
		case TSW_STATE_FAILED:
			return "failed";
	}
	return "unknown";
}

/*
 * Claim slot `index` for this process.  Returns false, with *why set, when
 * the worker must not run: the slot is unused, or it was stopped, or it is
 * disabled after a crash loop.  The caller then exits with code 0 so that
 * the postmaster does not start it again.
 */
bool
tsw_slot_claim(int index, TswSlotInfo *info, char **why)
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
	else if (slot->stop_requested)
	{
		*why = pstrdup("stopped by tsworker.stop()");
		slot->state = TSW_STATE_STOPPED;
		slot->pid = 0;
		slot->last_exit = 0;
		ok = false;
	}
	else if (slot->disabled)
	{
		*why = pstrdup("disabled after repeated failures; run tsworker.launch() or tsworker.reload() to start it again");
		slot->state = TSW_STATE_FAILED;
		slot->pid = 0;
		slot->last_exit = 0;
		ok = false;
	}
	else
	{
		slot->pid = MyProcPid;
		slot->procno = MyProc->pgprocno;
		slot->state = TSW_STATE_STARTING;
		slot->started_at = GetCurrentTimestamp();
		slot->last_activity = slot->started_at;
		slot->loops = 0;
		if (slot->starts > 0)
			slot->restarts++;
		slot->starts++;
		slot->failed_run = false;
		slot->restart_run = false;
		slot->last_exit = -1;
		strlcpy(slot->status, "{}", sizeof(slot->status));

		info->index = index;
		info->dynamic = slot->dynamic;
		strlcpy(info->name, slot->name, sizeof(info->name));
		strlcpy(info->config_name, slot->config_name, sizeof(info->config_name));
		strlcpy(info->module, slot->module, sizeof(info->module));
		strlcpy(info->database, slot->database, sizeof(info->database));
		info->dboid = slot->dboid;
		info->roleid = slot->roleid;
		strlcpy(info->rolename, slot->rolename, sizeof(info->rolename));
		strlcpy(info->settings, slot->settings, sizeof(info->settings));
		info->recent_failures = slot->recent_failures;
		info->wakes = slot->wakes_base;
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

/*
 * The run failed: keep the first line of `message` as last_error.  The
 * first reason of a run is kept (what follows, such as the FATAL of a
 * worker made to exit, is a consequence).
 */
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

/* The worker ends cleanly but asks to be started again (restart: always). */
void
tsw_slot_request_restart(void)
{
	TswSlot    *slot = tsw_own_slot();

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	slot->restart_run = true;
	LWLockRelease(tsw_shared->lock);
}

/* Exit code decided by tsw_slot_on_exit(), for the final _exit(). */
static int	tsw_final_code = -1;

int
tsw_slot_final_exit_code(int code)
{
	return tsw_final_code >= 0 ? tsw_final_code : code;
}

/*
 * on_shmem_exit callback of a worker that claimed its slot: record how it
 * ended and decide the exit code the process leaves with (host_pg.c's last
 * on_proc_exit callback _exits with it, whatever path led here, a FATAL
 * included).
 *
 * A failure (exit 1 that was not a requested restart) counts towards the
 * crash-loop limit: tsworker.crash_loop_failures within
 * tsworker.crash_loop_window seconds.  At the limit the slot is disabled
 * and the worker exits 0, so that the postmaster does not start it again.
 * A worker stopped by tsworker.stop() exits 0 as well.
 */
static void
tsw_slot_on_exit(int code, Datum arg)
{
	TswSlot    *slot = tsw_own_slot();
	TimestampTz now = GetCurrentTimestamp();
	bool		failure;
	bool		disabled_now = false;
	int			final = code;
	int			failures = 0;

	if (slot == NULL)
		return;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	failure = slot->failed_run || (code != 0 && !slot->restart_run);
	if (failure && !slot->stop_requested)
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
	if (slot->pid == MyProcPid)
	{
		slot->pid = 0;
		slot->last_exit = final;
		/*
		 * Stopped by tsworker.stop() even if it had to be forced; exit 1
		 * without a failure: a requested restart is due.
		 */
		slot->state = slot->stop_requested ? TSW_STATE_STOPPED :
			failure ? TSW_STATE_FAILED :
			final == 0 ? TSW_STATE_STOPPED : TSW_STATE_STARTING;
	}
	LWLockRelease(tsw_shared->lock);

	tsw_final_code = final;
	tsw_my_slot = -1;
	if (disabled_now)
		ereport(LOG,
				(errmsg("tsworker \"%s\": failed %d times within %d s; not restarted until tsworker.launch() or tsworker.reload()",
						slot->name, failures, tsw_crash_loop_window)));
}

/*
 * A module file must be a regular file that only its owner (root or the
 * server's OS user) can write, in a directory that no one else can write
 * (unless it is sticky, like /tmp): whoever can change it runs code as the
 * server.
 */
char *
tsw_check_module_file(const char *path)
{
	struct stat st;
	char	   *dir;
	char	   *slash;

	if (stat(path, &st) != 0)
		return psprintf("module \"%s\" does not exist or cannot be read by the server: %m", path);
	if (!S_ISREG(st.st_mode))
		return psprintf("module \"%s\" is not a regular file", path);
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return psprintf("module \"%s\" is owned by another OS user (uid %d)", path, (int) st.st_uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return psprintf("module \"%s\" is writable by other OS users (mode %04o)", path,
						(int) (st.st_mode & 07777));

	dir = pstrdup(path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
	{
		*(slash == dir ? slash + 1 : slash) = '\0';
		if (stat(dir, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
			!(st.st_mode & S_ISVTX))
			return psprintf("the directory of module \"%s\" is writable by other OS users (mode %04o)",
							path, (int) (st.st_mode & 07777));
	}
	return NULL;
}
