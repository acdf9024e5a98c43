/*-------------------------------------------------------------------------
 *
 * pg_tsworker.c
 *		The pg_tsworker shim: its GUCs, and _PG_init, which defines them and
 *		registers the configured workers (worker_register.c).
 *
 * This library is listed in shared_preload_libraries and so is loaded by
 * the postmaster.  It never links libnode: the postmaster must not start V8
 * threads, and threads do not survive fork().  Each registered worker runs
 * pg_tsworker_host_main() from the separate pg_tsworker_host library, which
 * embeds Node.js.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <time.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

#include "compat.h"
#include "pg_tsworker.h"

TSW_MODULE_MAGIC("pg_tsworker");

void		_PG_init(void);

/* GUC variables */
char	   *tsw_workers = NULL;
char	   *tsw_database = NULL;
char	   *tsw_role = NULL;
int			tsw_restart_interval = 10;
int			tsw_max_old_space_mb = 256;
int			tsw_max_memory_mb = 2048;
int			tsw_max_workers = 16;
char	   *tsw_module_path = NULL;
int			tsw_crash_loop_failures = 5;
int			tsw_crash_loop_window = 60;
int			tsw_statement_timeout = 0;
int			tsw_terminate_grace = 5;
int			tsw_module_load_timeout = 30;
volatile sig_atomic_t tsw_query_depth = 0;
volatile sig_atomic_t tsw_cancel_for_shutdown = 0;
volatile int64 tsw_shutdown_at_ms = 0;

static bool tsw_check_workers(char **newval, void **extra, GucSource source);
static bool tsw_check_heap(int *newval, void **extra, GucSource source);
static bool tsw_check_ident(char **newval, void **extra, GucSource source);

static bool
tsw_check_workers(char **newval, void **extra, GucSource source)
{
	TswWorkerSpec *specs;
	char	   *msg;

	if (tsw_parse_worker_list(*newval, &specs, &msg) < 0)
	{
		GUC_check_errdetail("%s.", msg);
		GUC_check_errhint("Each entry is a built-in worker name or an absolute path to a .ts or .js module, optionally prefixed by \"name=\".");
		return false;
	}
	return true;
}

/*
 * Node.js itself needs about 20 MB of heap to start: below TSW_MIN_HEAP_MB
 * it would abort (by a signal) before the worker could say anything.
 */
static bool
tsw_check_heap(int *newval, void **extra, GucSource source)
{
	if (*newval != 0 && *newval < TSW_MIN_HEAP_MB)
	{
		GUC_check_errdetail("A worker needs at least %d MB of heap to start; 0 keeps V8's default.", TSW_MIN_HEAP_MB);
		return false;
	}
	return true;
}

static bool
tsw_check_ident(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && strlen(*newval) >= NAMEDATALEN)
	{
		GUC_check_errdetail("Names are at most %d bytes long.", NAMEDATALEN - 1);
		return false;
	}
	return true;
}

void
_PG_init(void)
{
	/*
	 * Settings read when a worker starts.  They are PGC_SIGHUP so that a
	 * changed value applies to workers started afterwards.
	 */
	DefineCustomIntVariable("tsworker.max_old_space_mb",
							"Sets the V8 old-generation heap limit of each worker.",
							"A worker that exceeds it is stopped with an error and restarted. 0 keeps V8's default; otherwise at least 32 MB.",
							&tsw_max_old_space_mb,
							256, 0, 65536,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							tsw_check_heap, NULL, NULL);

	DefineCustomIntVariable("tsworker.max_memory_mb",
							"Sets the limit of each worker's private memory (RLIMIT_DATA): V8's heap, Buffers, PostgreSQL's own.",
							"An allocation beyond it fails: a RangeError in JavaScript, out of memory in SQL, or a logged exit 1; never the kernel's OOM killer. 0 is no limit.",
							&tsw_max_memory_mb,
							2048, 0, INT_MAX / 2,
							PGC_SIGHUP,
							GUC_UNIT_MB,
							NULL, NULL, NULL);

	DefineCustomStringVariable("tsworker.module_path",
							   "Directories from which non-superusers may launch worker modules.",
							   "Colon-separated absolute directories; relative module names given to tsworker.launch() resolve here.",
							   &tsw_module_path,
							   "",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("tsworker.crash_loop_failures",
							"Failures within tsworker.crash_loop_window after which a worker is no longer restarted.",
							"0 disables the limit.",
							&tsw_crash_loop_failures,
							5, 0, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tsworker.crash_loop_window",
							"Window in which worker failures are counted towards tsworker.crash_loop_failures.",
							NULL,
							&tsw_crash_loop_window,
							60, 1, 86400,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tsworker.statement_timeout",
							"Longest a statement run by a worker may take; 0 is no limit.",
							"A statement over it fails with SQLSTATE 57014. A call can set its own timeout.",
							&tsw_statement_timeout,
							0, 0, INT_MAX,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tsworker.terminate_grace",
							"Seconds a worker has to stop after SIGTERM before its JavaScript is terminated.",
							"Covers busy loops that never wait and main() functions that do not return.",
							&tsw_terminate_grace,
							5, 0, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tsworker.module_load_timeout",
							"Seconds a worker module may take to load when its declarations are read.",
							"At server start (per configured module), and by tsworker.launch() and tsworker.restart(): "
							"a module whose top-level code runs longer fails alone.",
							&tsw_module_load_timeout,
							30, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	if (!process_shared_preload_libraries_in_progress)
		return;

	/*
	 * A custom parameter whose configured value fails its check hook only
	 * draws a WARNING and falls back to the default, which here would start
	 * no worker at all without anyone noticing.  Refuse to start instead,
	 * as PostgreSQL does for its own bad settings.
	 */
	{
		const char *configured = GetConfigOption("tsworker.workers", true, false);
		TswWorkerSpec *specs;
		char	   *msg;

		if (configured != NULL && tsw_parse_worker_list(configured, &specs, &msg) < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for parameter \"tsworker.workers\": \"%s\"", configured),
					 errdetail("%s.", msg),
					 errhint("Each entry is a built-in worker name or an absolute path to a .ts or .js module, optionally prefixed by \"name=\".")));
	}

	DefineCustomStringVariable("tsworker.workers",
							   "Background workers to start: built-in names or absolute paths to .ts/.js modules.",
							   "Comma-separated; an entry may be written name=module to choose the worker's name.",
							   &tsw_workers,
							   "",
							   PGC_POSTMASTER,
							   GUC_LIST_INPUT,
							   tsw_check_workers, NULL, NULL);

	DefineCustomStringVariable("tsworker.database",
							   "Database the workers connect to.",
							   NULL,
							   &tsw_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   tsw_check_ident, NULL, NULL);

	DefineCustomStringVariable("tsworker.role",
							   "Role the workers connect as; empty means the bootstrap superuser.",
							   NULL,
							   &tsw_role,
							   "",
							   PGC_POSTMASTER,
							   0,
							   tsw_check_ident, NULL, NULL);

	DefineCustomIntVariable("tsworker.restart_interval",
							"Seconds before a worker that failed is started again; -1 never restarts it.",
							NULL,
							&tsw_restart_interval,
							10, -1, 86400,
							PGC_POSTMASTER,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("tsworker.max_workers",
							"Worker slots in shared memory: configured plus launched workers.",
							"Each worker also needs a background worker slot (max_worker_processes).",
							&tsw_max_workers,
							16, 1, 1024,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);

	tsw_fence_init();			/* before the prefix is reserved: defines tsworker.fenced */

	MarkGUCPrefixReserved("tsworker");

	tsw_shmem_init_hooks();

	/*
	 * pg_upgrade starts both servers in binary-upgrade mode, and restores
	 * the schema with connections of its own: a worker connected to a
	 * database would make that fail ("being accessed by other users"), and
	 * nothing may write meanwhile.  A single-user server runs no background
	 * workers at all.  Declared settings stay placeholders then.
	 */
	if (IsBinaryUpgrade || !IsPostmasterEnvironment)
	{
		ereport(LOG,
				(errmsg("pg_tsworker: no workers start in %s mode",
						IsBinaryUpgrade ? "binary-upgrade" : "single-user")));
		return;
	}
	tsw_register_workers();
	tsw_cluster_boot();
}

/* CLOCK_MONOTONIC in milliseconds (async-signal-safe). */
int64
tsw_monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Milliseconds a statement or COMMIT may still take once SIGTERM arrived:
 * what is left of tsworker.terminate_grace, less a margin so that it ends
 * before the watchdog acts (at least 1); -1 when no SIGTERM arrived.
 */
int
tsw_ms_left_before_grace(void)
{
	int64		at = tsw_shutdown_at_ms;
	int64		left;

	if (at == 0)
		return -1;
	left = (int64) tsw_terminate_grace * 1000 - (tsw_monotonic_ms() - at) - 200;
	return (int) Max(left, 1);
}

/* A setting a worker module declared, palloc'd, or NULL when unset or empty. */
char *
tsw_declared_setting(const char *config_name, const char *setting)
{
	const char *v = GetConfigOption(psprintf("tsworker_%s.%s", config_name, setting), true, false);

	return v != NULL && v[0] != '\0' ? pstrdup(v) : NULL;
}
