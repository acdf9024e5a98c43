/*-------------------------------------------------------------------------
 *
 * pg_tsworker.h
 *		Interface of the pg_tsworker shim (pg_tsworker.so) used by the worker
 *		host library and the N-API addon.
 *
 * The shim is loaded by the postmaster through shared_preload_libraries and
 * owns everything that exists before JavaScript runs: GUCs, the parsed
 * worker list and background worker registration.  Worker processes inherit
 * it, so the host library calls these functions directly.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PG_TSWORKER_H
#define PG_TSWORKER_H

#ifdef __cplusplus
extern "C" {
#endif

#define TSW_NAME_MAXLEN 63

/* One entry of tsworker.workers, resolved. */
typedef struct TswWorkerSpec
{
	char		name[TSW_NAME_MAXLEN + 1];	/* worker name: bgw_type, log prefix */
	char	   *module;			/* absolute path of the module to load */
	bool		builtin;		/* module is one of the shipped workers */
} TswWorkerSpec;

/* GUC variables (defined in pg_tsworker.c) */
extern char *tsw_workers;
extern char *tsw_database;
extern char *tsw_role;
extern int	tsw_restart_interval;
extern int	tsw_max_old_space_mb;

/*
 * Parse a tsworker.workers value.  Returns the number of entries and sets
 * *specs to a palloc'd array, or returns -1 and sets *errmsg_out to a
 * palloc'd message describing the first bad entry.
 */
extern int	tsw_parse_worker_list(const char *value, TswWorkerSpec **specs,
								  char **errmsg_out);

/* Directory holding the installed runtime: <sharedir>/pg_tsworker */
extern void tsw_runtime_dir(char *buf, size_t len);

/* Directory holding the installed native pieces: <pkglibdir>/pg_tsworker */
extern void tsw_native_dir(char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif							/* PG_TSWORKER_H */
