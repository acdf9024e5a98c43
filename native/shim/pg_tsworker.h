/*-------------------------------------------------------------------------
 *
 * pg_tsworker.h
 *		Interface of the pg_tsworker shim (pg_tsworker.so) used by the worker
 *		host library and the N-API addon.
 *
 * The shim is loaded by the postmaster through shared_preload_libraries and
 * owns everything that exists before JavaScript runs: GUCs, the parsed
 * worker list, background worker registration and the worker slots
 * (slot.h).  Worker processes inherit it, so the host library and the
 * addon call these functions directly.  C only.
 *
 * What they call is declared PGDLLEXPORT: PGXS compiles modules with
 * -fvisibility=hidden since PostgreSQL 16, and an unmarked symbol of the
 * shim would be missing when the host library is loaded ("undefined
 * symbol").  Mark any new function or variable they use the same way.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_TSWORKER_H
#define PG_TSWORKER_H

#include <signal.h>

#include "log_level.h"
#include "slot.h"


/* The smallest tsworker.max_old_space_mb Node.js starts with. */
#define TSW_MIN_HEAP_MB 32

/* One entry of tsworker.workers, resolved. */
typedef struct TswWorkerSpec
{
	char		name[TSW_NAME_MAXLEN + 1];	/* worker name: bgw_type, log prefix */
	char		config_name[TSW_NAME_MAXLEN + 1];	/* settings prefix: the tsworker.workers entry */
	char	   *module;			/* absolute path of the module to load */
	bool		builtin;		/* module is one of the shipped workers */

	/* what the module declares (worker_settings.c); defaults before that */
	int			start_time;		/* BgWorkerStartTime */
	char	   *instances;		/* setting giving the number of instances, or NULL */

	/* per process, once instances are known (pg_tsworker.c) */
	char	   *settings;		/* JSON for the slot, e.g. {"index": 2}; NULL: {} */
	char	   *database;		/* NULL: tsworker.database */
	char	   *rolename;		/* NULL: tsworker.role */
	bool		not_registered; /* no background worker slot was free */
} TswWorkerSpec;

/* elevel of a TswLogLevel */
#define TSW_ELEVEL(level) \
	((level) == TSW_LOG_DEBUG ? DEBUG1 : (level) == TSW_LOG_NOTICE ? NOTICE : \
	 (level) == TSW_LOG_WARNING ? WARNING : LOG)

/* Check a module file before it is loaded; returns NULL or a palloc'd reason. */
extern PGDLLEXPORT char *tsw_check_module_file(const char *path);

/* tsworker_<config_name>.<setting>, palloc'd, or NULL when unset or empty. */
extern char *tsw_declared_setting(const char *config_name, const char *setting);

/* Define the settings configured workers declare (worker_settings.c). */
extern void tsw_define_worker_settings(TswWorkerSpec *specs, int n);

/*
 * Load a module as worker `name` would and check the settings given to
 * tsworker.launch() against the parameters tsworker_<config_name>.* with
 * PostgreSQL's rules; NULL if it can start, else the reason (and in
 * *detail every bad setting).  Runs a Node.js child process; cancellable.
 */
extern char *tsw_check_launch(const char *name, const char *config_name, const char *module,
							  const char *settings, char **detail);

/*
 * Run a script of the installed runtime in a pg_tsworker_node child
 * (node_child.c); its output, or NULL after a WARNING about `what`.
 */
extern char *tsw_run_node_script(const char *script_rel, char **args, int nargs, bool in_backend,
								 int timeout_ms, const char *what);

/* How a child of tsw_run_node_script_lines() ended. */
typedef struct TswChildEnd
{
	enum
	{
		TSW_CHILD_NOT_RUN,		/* could not be started (a WARNING said why) */
		TSW_CHILD_EXITED,		/* code: its exit status */
		TSW_CHILD_SIGNALED,		/* code: the signal */
		TSW_CHILD_TIMED_OUT		/* killed: no line within the time limit */
	}			kind;
	int			code;
} TswChildEnd;

/*
 * The same for a script that prints one line per step: the time limit
 * applies to each line (it starts again at every newline), and what it
 * printed is returned however it ended (*end says how; NULL when it could
 * not be started).  No WARNING: the caller reports.
 */
extern char *tsw_run_node_script_lines(const char *script_rel, char **args, int nargs,
									   bool in_backend, int line_timeout_ms, TswChildEnd *end);

/* Cluster mode (fence.c, cluster_boot.c) */
extern void tsw_fence_init(void);
extern void tsw_fence_manage(void);
extern void tsw_cluster_boot(void);
extern char *tsw_cluster_promoter(char **hosts_out);
extern char *tsw_member_name(const char *config_name);

/* The configured workers' registration in the postmaster (worker_register.c) */
extern void tsw_register_workers(void);

/* Shared memory (slots.c) */
extern void tsw_shmem_init_hooks(void);
extern void tsw_register_static_worker(int index, const TswWorkerSpec *spec);

/* GUC variables (defined in pg_tsworker.c) */
extern char *tsw_workers;
extern char *tsw_database;
extern char *tsw_role;
extern int	tsw_restart_interval;
extern PGDLLEXPORT int	tsw_max_old_space_mb;
extern PGDLLEXPORT int	tsw_max_memory_mb;
extern int	tsw_max_workers;
extern char *tsw_module_path;
extern int	tsw_crash_loop_failures;
extern int	tsw_crash_loop_window;
extern PGDLLEXPORT int	tsw_statement_timeout;
extern PGDLLEXPORT int	tsw_terminate_grace;
extern int	tsw_module_load_timeout;

/*
 * Nonzero while the addon runs a statement through SPI: the worker's SIGTERM
 * handler then also cancels the statement.  tsw_cancel_for_shutdown records
 * that it did, so that the cancel does not leak into a later statement.
 */
extern PGDLLEXPORT volatile sig_atomic_t tsw_query_depth;
extern PGDLLEXPORT volatile sig_atomic_t tsw_cancel_for_shutdown;

/*
 * When SIGTERM first arrived (CLOCK_MONOTONIC, milliseconds; 0: not yet),
 * set by the worker's signal handler.  After it, no statement or COMMIT may
 * outlast tsworker.terminate_grace (tsw_ms_left_before_grace()).
 */
extern PGDLLEXPORT volatile int64 tsw_shutdown_at_ms;
extern PGDLLEXPORT int64 tsw_monotonic_ms(void);
extern PGDLLEXPORT int	tsw_ms_left_before_grace(void);

/*
 * Parse a tsworker.workers value.  Returns the number of entries and sets
 * *specs to a palloc'd array, or returns -1 and sets *errmsg_out to a
 * palloc'd message describing the first bad entry.
 */
extern int	tsw_parse_worker_list(const char *value, TswWorkerSpec **specs,
								  char **errmsg_out);

/* Is `name` a valid worker name (an identifier of at most 63 bytes)? */
extern bool tsw_valid_name(const char *name);

/* Directory holding the installed runtime: <sharedir>/pg_tsworker */
extern PGDLLEXPORT void tsw_runtime_dir(char *buf, size_t len);

/* Directory holding the installed native pieces: <pkglibdir>/pg_tsworker */
extern PGDLLEXPORT void tsw_native_dir(char *buf, size_t len);

#endif							/* PG_TSWORKER_H */
