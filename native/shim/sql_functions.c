/*-------------------------------------------------------------------------
 *
 * sql_functions.c
 *		SQL-callable functions of the extension: status, launch, stop,
 *		wake, reload.
 *
 * EXECUTE on all of them is revoked from PUBLIC by the extension script
 * and granted to tsworker_admin.  Launching runs code as the server's
 * OS user, so a non-superuser may only launch a built-in worker or a
 * module inside tsworker.module_path, and the worker's session runs as
 * the launching role (as pg_cron runs jobs as their owner).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slots.h"

PG_FUNCTION_INFO_V1(tsworker_worker_status);
PG_FUNCTION_INFO_V1(tsworker_launch);
PG_FUNCTION_INFO_V1(tsworker_stop);
PG_FUNCTION_INFO_V1(tsworker_wake);
PG_FUNCTION_INFO_V1(tsworker_reload);

static void tsw_require_shared(void);
static int	tsw_find_slot(const char *name);
static int	tsw_lock_slot(const char *name, LWLockMode mode);
static char *tsw_resolve_module(const char *module, bool *builtin);
static bool tsw_path_inside(const char *path, const char *dir);
static pid_t tsw_start_slot(int index, bool wait);
static char *tsw_bgworker_usage(void);

static void
tsw_require_shared(void)
{
	if (tsw_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pg_tsworker is not loaded through shared_preload_libraries"),
				 errhint("Add pg_tsworker to shared_preload_libraries and restart the server.")));
}

/* Index of the in-use slot named `name`, or -1.  Caller holds the lock. */
static int
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
static int
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

/* Is the canonical `path` inside the canonical directory `dir`? */
static bool
tsw_path_inside(const char *path, const char *dir)
{
	size_t		n = strlen(dir);

	if (n > 1 && dir[n - 1] == '/')
		n--;
	return strncmp(path, dir, n) == 0 && path[n] == '/';
}

/*
 * Resolve a module argument of tsworker.launch() to an absolute, canonical
 * path, enforcing tsworker.module_path for non-superusers.
 */
static char *
tsw_resolve_module(const char *module, bool *builtin)
{
	bool		superuser_caller = superuser();
	char	   *candidate = NULL;
	char		resolved[PATH_MAX];
	List	   *dirs = NIL;
	ListCell   *lc;
	char	   *rawpath;

	*builtin = false;
	if (module[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("module must not be empty")));

	/* a built-in worker */
	if (strchr(module, '/') == NULL && strchr(module, '.') == NULL)
	{
		TswWorkerSpec *specs;
		char	   *msg;

		if (tsw_parse_worker_list(module, &specs, &msg) != 1)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("\"%s\" is not a built-in worker", module),
					 errhint("Give an absolute path, or a path relative to a directory of tsworker.module_path.")));
		*builtin = true;
		return specs[0].module;
	}

	rawpath = pstrdup(tsw_module_path ? tsw_module_path : "");
	if (!SplitDirectoriesString(rawpath, ':', &dirs))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid tsworker.module_path")));

	if (is_absolute_path(module))
		candidate = pstrdup(module);
	else
	{
		foreach(lc, dirs)
		{
			char	   *path = psprintf("%s/%s", (char *) lfirst(lc), module);

			if (access(path, F_OK) == 0)
			{
				candidate = path;
				break;
			}
		}
		if (candidate == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_FILE),
					 errmsg("module \"%s\" was not found in tsworker.module_path", module),
					 errdetail("tsworker.module_path is \"%s\".", tsw_module_path ? tsw_module_path : "")));
	}

	if (realpath(candidate, resolved) == NULL)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not resolve module \"%s\": %m", candidate)));

	if (!superuser_caller)
	{
		bool		inside = false;

		foreach(lc, dirs)
		{
			char		dirresolved[PATH_MAX];

			if (realpath((char *) lfirst(lc), dirresolved) != NULL &&
				tsw_path_inside(resolved, dirresolved))
			{
				inside = true;
				break;
			}
		}
		if (!inside)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to launch module \"%s\"", module),
					 errdetail("The module resolves to \"%s\", which is outside every directory of tsworker.module_path.", resolved),
					 errhint("Only superusers may launch modules outside tsworker.module_path.")));
	}
	return pstrdup(resolved);
}

/*
 * What holds the background worker slots (max_worker_processes), for the
 * message of a failed registration: pg_tsworker's own running workers and
 * those waiting to be restarted; the rest belong to PostgreSQL or other
 * extensions.
 */
static char *
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

/* Register a dynamic background worker for slot `index`; return its pid. */
static pid_t
tsw_start_slot(int index, bool wait)
{
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	TswSlot    *slot = &tsw_shared->slots[index];
	pid_t		pid = 0;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	/* launched on a hot standby, it runs there (read-only) */
	worker.bgw_start_time = RecoveryInProgress() ? BgWorkerStart_ConsistentState :
		BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = tsw_restart_interval < 0 ? BGW_NEVER_RESTART : tsw_restart_interval;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pg_tsworker_host");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pg_tsworker_host_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pg_tsworker %s", slot->name);
	snprintf(worker.bgw_type, BGW_MAXLEN, "%s", slot->name);
	worker.bgw_main_arg = Int32GetDatum(index);
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		return -1;
	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	slot->handle = *handle;
	slot->has_handle = true;
	LWLockRelease(tsw_shared->lock);
	if (!wait)
		return 0;

	switch (WaitForBackgroundWorkerStartup(handle, &pid))
	{
		case BGWH_STARTED:
			return pid;
		case BGWH_STOPPED:
			return 0;
		case BGWH_POSTMASTER_DIED:
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
					 errmsg("could not start worker \"%s\": the postmaster died", slot->name)));
			break;
		default:
			break;
	}
	return 0;
}

/*
 * tsworker.launch(name text, module text, settings jsonb, database name)
 * returns the pid of the started worker.
 */
Datum
tsworker_launch(PG_FUNCTION_ARGS)
{
	char	   *name;
	char	   *module;
	char	   *settings = "{}";
	char	   *database;
	char	   *path;
	bool		builtin;
	Oid			dboid;
	int			index = -1;
	int			i;
	pid_t		pid;
	TswSlot    *slot;
	AclResult	aclresult;

	tsw_require_shared();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("name and module must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	module = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (!PG_ARGISNULL(2))
	{
		Jsonb	   *jb = PG_GETARG_JSONB_P(2);

		if (!JB_ROOT_IS_OBJECT(jb))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("settings must be a JSON object")));
		settings = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
		if (strlen(settings) >= TSW_SETTINGS_MAXLEN)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("settings are longer than %d bytes", TSW_SETTINGS_MAXLEN - 1)));
	}
	database = PG_ARGISNULL(3) ? tsw_database : NameStr(*PG_GETARG_NAME(3));

	if (!tsw_valid_name(name))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid worker name \"%s\"", name),
				 errdetail("Names are at most %d letters, digits or '_', not starting with a digit.", TSW_NAME_MAXLEN)));

	path = tsw_resolve_module(module, &builtin);
	if (builtin && PG_ARGISNULL(3))
	{
		/* a built-in's own database setting, as its configured workers use */
		char	   *own = tsw_declared_setting(module, "database");

		if (own != NULL)
			database = own;
	}
	if (!builtin)
	{
		char	   *why = tsw_check_module_file(path);

		if (why != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("refusing to launch module: %s", why),
					 errhint("A module must be a regular file that only root or the server's OS user can write, in a directory no one else can write.")));
	}

	dboid = get_database_oid(database, false);
	aclresult = pg_database_aclcheck(dboid, GetUserId(), ACL_CONNECT);
	if (aclresult != ACLCHECK_OK)
		aclcheck_error(aclresult, OBJECT_DATABASE, database);

	/* load the module as the worker will, and check the settings given */
	{
		char	   *detail;
		char	   *why = tsw_check_launch(name, path, settings, &detail);

		if (why != NULL)
			ereport(ERROR,
					(errcode(detail ? ERRCODE_INVALID_PARAMETER_VALUE : ERRCODE_INVALID_OBJECT_DEFINITION),
					 errmsg("%s", why),
					 detail ? errdetail("%s.", detail) : 0,
					 detail ? 0 : errhint("Run the module with pg_tsworker's runtime to see the full error, or read the server log.")));
	}

	LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
	i = tsw_find_slot(name);
	if (i >= 0)
	{
		slot = &tsw_shared->slots[i];
		/* running, or due to run (registered, or exited 1 with a restart due) */
		if (slot->pid != 0 || slot->last_exit != 0)
		{
			LWLockRelease(tsw_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("worker \"%s\" already exists and is %s", name,
							slot->pid != 0 ? "running" : "about to start"),
					 errhint("Stop it with tsworker.stop() first, or choose another name.")));
		}
		if (!slot->dynamic && !builtin && strcmp(slot->module, path) != 0)
		{
			LWLockRelease(tsw_shared->lock);
			ereport(ERROR,
					(errcode(ERRCODE_DUPLICATE_OBJECT),
					 errmsg("worker \"%s\" is configured in tsworker.workers with module \"%s\"",
							name, slot->module),
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
		slot->in_use = true;
		slot->dynamic = true;
		strlcpy(slot->name, name, sizeof(slot->name));
		/* a launched built-in reads its settings where configured ones do */
		strlcpy(slot->config_name, builtin ? module : name, sizeof(slot->config_name));
		strlcpy(slot->module, path, sizeof(slot->module));
		strlcpy(slot->database, database, sizeof(slot->database));
		slot->dboid = dboid;
		slot->roleid = GetUserId();
		strlcpy(slot->settings, settings, sizeof(slot->settings));
		strlcpy(slot->status, "{}", sizeof(slot->status));
	}
	slot->procno = -1;
	slot->wakes_base = slot->wakes;
	slot->last_exit = -1;
	slot->stop_requested = false;
	slot->disabled = false;
	slot->recent_failures = 0;
	slot->state = TSW_STATE_STARTING;
	LWLockRelease(tsw_shared->lock);

	pid = tsw_start_slot(index, true);
	if (pid < 0)
	{
		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		if (slot->dynamic)
			slot->in_use = false;
		else
		{
			slot->state = TSW_STATE_STOPPED;
			slot->last_exit = 0;
		}
		LWLockRelease(tsw_shared->lock);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not register background worker \"%s\": no free background worker slot", name),
				 errdetail("%s", tsw_bgworker_usage()),
				 errhint("Raise max_worker_processes (needs a restart), or stop workers that wait to be restarted with tsworker.stop().")));
	}
	/*
	 * Record the pid now, not only when the worker claims its slot a moment
	 * later, so that a tsworker.stop() right after launch finds it (a SIGTERM
	 * that early stays pending until the worker unblocks signals).
	 */
	if (pid > 0)
	{
		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		if (slot->pid == 0 && slot->state == TSW_STATE_STARTING)
			slot->pid = pid;
		LWLockRelease(tsw_shared->lock);
	}
	if (pid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("worker \"%s\" exited at once", name),
				 errhint("See the server log, or last_error in tsworker.workers.")));
	PG_RETURN_INT32(pid);
}

/* tsworker.stop(name text) returns boolean: true if a running worker was asked to stop. */
Datum
tsworker_stop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			i;
	pid_t		pid;
	TswSlot    *slot;

	tsw_require_shared();
	i = tsw_lock_slot(name, LW_EXCLUSIVE);
	slot = &tsw_shared->slots[i];
	slot->stop_requested = true;
	pid = slot->pid;
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
		if (slot->has_handle)
		{
			TerminateBackgroundWorker(&slot->handle);
			slot->has_handle = false;
			slot->last_exit = 0;
		}
		slot->state = TSW_STATE_STOPPED;
	}
	LWLockRelease(tsw_shared->lock);

	if (pid != 0 && kill(pid, SIGTERM) != 0)
		ereport(WARNING,
				(errmsg("could not signal worker \"%s\" (PID %d): %m", name, (int) pid)));
	PG_RETURN_BOOL(pid != 0);
}

/* tsworker.wake(name text) returns boolean: sets the worker's latch. */
Datum
tsworker_wake(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			i;
	bool		woken = false;

	tsw_require_shared();
	i = tsw_lock_slot(name, LW_EXCLUSIVE);
	if (tsw_shared->slots[i].pid != 0)
	{
		/* counted even before the worker has claimed its slot */
		tsw_shared->slots[i].wakes++;
		if (tsw_shared->slots[i].procno >= 0)
			SetLatch(&ProcGlobal->allProcs[tsw_shared->slots[i].procno].procLatch);
		woken = true;
	}
	LWLockRelease(tsw_shared->lock);
	PG_RETURN_BOOL(woken);
}

/*
 * tsworker.reload() returns integer: starts again every worker that is not
 * running and not due to run (stopped by tsworker.stop(), finished, or
 * disabled after a crash loop), and returns how many it started.
 */
Datum
tsworker_reload(PG_FUNCTION_ARGS)
{
	int			started = 0;
	int			i;

	tsw_require_shared();
	for (i = 0; i < tsw_shared->nslots; i++)
	{
		TswSlot    *slot = &tsw_shared->slots[i];
		TswSlot		before;
		bool		start = false;

		LWLockAcquire(tsw_shared->lock, LW_EXCLUSIVE);
		/* not running and not due to run: stopped, finished, or disabled */
		if (slot->in_use && slot->pid == 0 && slot->last_exit == 0)
		{
			before = *slot;
			slot->last_exit = -1;
			slot->disabled = false;
			slot->stop_requested = false;
			slot->recent_failures = 0;
			slot->state = TSW_STATE_STARTING;
			start = true;
		}
		LWLockRelease(tsw_shared->lock);
		if (!start)
			continue;
		if (tsw_start_slot(i, false) == 0)
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
				 "not started by tsworker.reload(): no free background worker slot (max_worker_processes is %d)",
				 max_worker_processes);
		slot->last_error_at = GetCurrentTimestamp();
		LWLockRelease(tsw_shared->lock);
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start worker \"%s\": no free background worker slot", slot->name),
				 errdetail("%s", tsw_bgworker_usage()),
				 errhint("Raise max_worker_processes (needs a restart).")));
	}
	PG_RETURN_INT32(started);
}

/* tsworker.worker_status(): one row per slot in use. */
Datum
tsworker_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TswSlot    *copy;
	int			n = 0;
	int			i;

	tsw_require_shared();
	InitMaterializedSRF(fcinfo, 0);

	copy = palloc(sizeof(TswSlot) * tsw_shared->nslots);
	LWLockAcquire(tsw_shared->lock, LW_SHARED);
	for (i = 0; i < tsw_shared->nslots; i++)
		if (tsw_shared->slots[i].in_use)
			copy[n++] = tsw_shared->slots[i];
	LWLockRelease(tsw_shared->lock);

	for (i = 0; i < n; i++)
	{
		TswSlot    *s = &copy[i];
		Datum		values[14];
		bool		nulls[14];
		const char *state = s->disabled && s->pid == 0 ? "failed" : tsw_state_name(s->state);

		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(s->name);
		values[1] = s->pid != 0 ? Int32GetDatum(s->pid) : (nulls[1] = true, (Datum) 0);
		values[2] = CStringGetTextDatum(s->module);
		values[3] = CStringGetTextDatum(s->database);
		values[4] = CStringGetTextDatum(state);
		values[5] = s->started_at != 0 ? TimestampTzGetDatum(s->started_at) : (nulls[5] = true, (Datum) 0);
		values[6] = s->last_activity != 0 ? TimestampTzGetDatum(s->last_activity) : (nulls[6] = true, (Datum) 0);
		values[7] = Int64GetDatum(s->loops);
		values[8] = Int32GetDatum(s->restarts);
		values[9] = s->last_error[0] != '\0' ? CStringGetTextDatum(s->last_error) : (nulls[9] = true, (Datum) 0);
		values[10] = s->last_error_at != 0 ? TimestampTzGetDatum(s->last_error_at) : (nulls[10] = true, (Datum) 0);
		values[11] = DirectFunctionCall1(jsonb_in, CStringGetDatum(s->status[0] ? s->status : "{}"));
		values[12] = BoolGetDatum(s->dynamic);
		values[13] = BoolGetDatum(s->disabled);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
