/*-------------------------------------------------------------------------
 *
 * sql_functions.c
 *		SQL-callable functions of the extension: status, launch, stop,
 *		wake, start.  Arguments and permissions are checked here; slots
 *		change only through slot_control.c.
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

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>

#include "access/htup_details.h"
#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"

PG_FUNCTION_INFO_V1(tsworker_worker_status);
PG_FUNCTION_INFO_V1(tsworker_launch);
PG_FUNCTION_INFO_V1(tsworker_stop);
PG_FUNCTION_INFO_V1(tsworker_wake);
PG_FUNCTION_INFO_V1(tsworker_start);
PG_FUNCTION_INFO_V1(tsworker_reload);
PG_FUNCTION_INFO_V1(tsworker_restart);

static char *tsw_resolve_module(const char *module, bool *builtin);
static bool tsw_path_inside(const char *path, const char *dir);
static void tsw_require_started(const char *name, pid_t pid);

/* ERROR when the worker just started (pid 0 from tsw_slot_register) exited at once. */
static void
tsw_require_started(const char *name, pid_t pid)
{
	if (pid == 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("worker \"%s\" exited at once", name),
				 errhint("See the server log, or last_error in tsworker.stat_workers.")));
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
 * tsworker.launch(name text, module text, settings jsonb, database name)
 * returns the pid of the started worker.
 */
Datum
tsworker_launch(PG_FUNCTION_ARGS)
{
	TswLaunchRequest req;
	char	   *settings = "{}";
	char	   *database;
	char	   *path;
	char	   *name;
	char	   *module;
	bool		builtin;
	AclResult	aclresult;
	int			index;
	pid_t		pid;

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

	req.dboid = get_database_oid(database, false);
	aclresult = tsw_database_aclcheck(req.dboid, GetUserId(), ACL_CONNECT);
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

	req.name = name;
	req.module = path;
	req.builtin = builtin;
	/* a launched built-in reads its settings where configured ones do */
	req.config_name = builtin ? module : name;
	req.database = database;
	req.roleid = GetUserId();
	req.settings = settings;
	index = tsw_slot_prepare_launch(&req);

	pid = tsw_slot_register(index, true);
	if (pid < 0)
	{
		tsw_slot_launch_failed(index);
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not register background worker \"%s\": no free background worker slot", name),
				 errdetail("%s", tsw_bgworker_usage()),
				 errhint("Raise max_worker_processes (needs a restart), or stop workers that wait to be restarted with tsworker.stop().")));
	}
	tsw_require_started(name, pid);
	PG_RETURN_INT32(pid);
}

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
	why = tsw_check_launch(slot->name, slot->module, slot->settings[0] ? slot->settings : "{}", &detail);
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

/* Columns of tsworker.worker_status() at version 0.2 (0.1 had the first 14). */
#define TSW_STATUS_COLUMNS 17

/* tsworker.worker_status(): one row per slot in use. */
Datum
tsworker_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TswSlot    *copy;
	int			n;
	int			i;

	tsw_require_shared();
	InitMaterializedSRF(fcinfo, 0);
	n = tsw_slots_copy(&copy);
	for (i = 0; i < n; i++)
	{
		TswSlot    *s = &copy[i];
		Datum		values[TSW_STATUS_COLUMNS];
		bool		nulls[TSW_STATUS_COLUMNS];
		const char *state = tsw_slot_view_state(s);
		bool		memory = s->pid != 0 && s->memory_at != 0;

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
		/* version 0.2's columns: a database still at 0.1 asks for 14 */
		values[14] = memory ? Int64GetDatum(s->rss_bytes) : (nulls[14] = true, (Datum) 0);
		values[15] = memory ? Int64GetDatum(s->heap_used_bytes) : (nulls[15] = true, (Datum) 0);
		values[16] = memory ? Int64GetDatum(s->heap_limit_bytes) : (nulls[16] = true, (Datum) 0);
		if (rsinfo->setDesc->natts != 14 && rsinfo->setDesc->natts != TSW_STATUS_COLUMNS)
			elog(ERROR, "tsworker.worker_status() returns %d columns, not %d: update the extension",
				 rsinfo->setDesc->natts, TSW_STATUS_COLUMNS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
