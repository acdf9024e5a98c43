/*-------------------------------------------------------------------------
 *
 * sql_launch.c
 *		tsworker.launch(): checks a launch request (name, module, settings,
 *		database, the caller's rights) and starts the worker.  The slot
 *		changes only through slot_control.c.
 *
 * EXECUTE is revoked from PUBLIC by the extension script and granted to
 * tsworker_admin.  Launching runs code as the server's OS user, so a
 * non-superuser may only launch a built-in worker or a module inside
 * tsworker.module_path, and the worker's session runs as the launching
 * role (as pg_cron runs jobs as their owner).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/varlena.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"

PG_FUNCTION_INFO_V1(tsworker_launch);

static char *tsw_resolve_module(const char *module, bool *builtin);
static bool tsw_path_inside(const char *path, const char *dir);

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
		/*
		 * Built-in workers act for the whole server as its OS user: they
		 * open connections that peer authentication or ~/.pgpass lets in
		 * as any role, run commands, promote.  Their settings are a
		 * superuser's to give, as dblink refuses a non-superuser's
		 * connection without a password.
		 */
		if (!superuser_caller)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("permission denied to launch built-in worker \"%s\"", module),
					 errdetail("A built-in worker acts for the whole server as its operating system user (connections, commands, promotion)."),
					 errhint("A superuser launches it, or configures it in tsworker.workers.")));
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

	/*
	 * load the module as the worker will, and check the settings given as
	 * PostgreSQL checks postgresql.conf (the declared settings become
	 * parameters in this session if they are not yet)
	 */
	{
		char	   *detail;
		char	   *why = tsw_check_launch(name, builtin ? module : name, path, settings, &detail);

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
