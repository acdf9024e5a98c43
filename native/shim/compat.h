/*-------------------------------------------------------------------------
 *
 * compat.h
 *		Differences between PostgreSQL versions, and what pg_tsworker needs
 *		beyond PostgreSQL's public headers, in one place.
 *
 * BackgroundWorkerHandle is opaque in postmaster/bgworker.h; its layout
 * (bgworker.c) has been { int slot; uint64 generation; } in every release
 * since 9.4, and pg_cron completes the type the same way.  Worker slots
 * keep the handle of a dynamic registration in shared memory, so that
 * tsworker.stop() can cancel a registration that waits to be restarted
 * (TerminateBackgroundWorker) from any backend.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_COMPAT_H
#define TSW_COMPAT_H

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "postmaster/bgworker.h"
#include "postmaster/bgworker_internals.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/memutils.h"
#include "utils/wait_event.h"
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_database.h"
#endif

/*
 * A function that does not return: 18 has the prefix pg_noreturn (C11
 * _Noreturn) instead of the postfix pg_attribute_noreturn().
 */
#ifndef pg_noreturn
#define pg_noreturn __attribute__((noreturn))
#endif

/*
 * The module's magic block: 18 lets a module give its name and version,
 * which pg_get_loaded_modules() shows.  TSW_VERSION is the extension's
 * default_version, passed by the Makefile from pg_tsworker.control.
 * Use once per library: TSW_MODULE_MAGIC("pg_tsworker");
 */
#if PG_VERSION_NUM >= 180000
#define TSW_MODULE_MAGIC(module_name) \
	PG_MODULE_MAGIC_EXT(.name = (module_name), .version = TSW_VERSION)
#else
#define TSW_MODULE_MAGIC(module_name)	PG_MODULE_MAGIC
#endif

struct BackgroundWorkerHandle
{
	int			slot;
	uint64		generation;
};

/* A PGPROC's number and back (PGPROC.pgprocno is gone in 17). */
#if PG_VERSION_NUM >= 170000
#define tsw_procno(proc)	GetNumberFromPGProc(proc)
#define tsw_proc(procno)	GetPGProcByNumber(procno)
#else
#define tsw_procno(proc)	((proc)->pgprocno)
#define tsw_proc(procno)	(&ProcGlobal->allProcs[(procno)])
#endif

/* May `role` connect to database `dboid` (pg_database_aclcheck before 16)? */
#if PG_VERSION_NUM >= 160000
#define tsw_database_aclcheck(dboid, role, mode) \
	object_aclcheck(DatabaseRelationId, (dboid), (role), (mode))
#else
#define tsw_database_aclcheck(dboid, role, mode) \
	pg_database_aclcheck((dboid), (role), (mode))
#endif

/* Is this process an autovacuum worker (IsAutoVacuumWorkerProcess before 17)? */
#if PG_VERSION_NUM >= 170000
#define tsw_am_autovacuum_worker()	AmAutoVacuumWorkerProcess()
#else
#define tsw_am_autovacuum_worker()	IsAutoVacuumWorkerProcess()
#endif

/*
 * A WaitEventSet that lives as long as the process: 17 takes a ResourceOwner
 * (NULL: none, allocated in TopMemoryContext), before 17 a memory context.
 */
#if PG_VERSION_NUM >= 170000
#define tsw_create_wait_event_set(nevents)	CreateWaitEventSet(NULL, (nevents))
#else
#define tsw_create_wait_event_set(nevents)	CreateWaitEventSet(TopMemoryContext, (nevents))
#endif

/*
 * How many background workers are registered so far (in _PG_init, before
 * ours): BackgroundWorkerList became a dlist in 18.
 */
static inline int
tsw_registered_bgworker_count(void)
{
	int			n = 0;
#if PG_VERSION_NUM >= 180000
	dlist_iter	iter;

	dlist_foreach(iter, &BackgroundWorkerList)
		n++;
#else
	slist_iter	iter;

	slist_foreach(iter, &BackgroundWorkerList)
		n++;
#endif
	return n;
}

/*
 * The wait event a worker waits under in its event loop (tsw_host_wait).
 *
 * 17 and later: a custom wait event of type "Extension" named after the
 * worker (WaitEventExtensionNew), so pg_stat_activity.wait_event and
 * pg_wait_events show the worker's own name.  The table of custom wait
 * events holds 128 names for the whole cluster, all extensions together,
 * until the server restarts, and a full table makes every later
 * WaitEventExtensionNew() of any extension fail (postgres_fdw's and
 * dblink's included).  So a worker registers a new name only while fewer
 * than TSW_WAIT_EVENT_BUDGET names of type "Extension" exist; a name that
 * exists already (the same worker, restarted) costs nothing.
 *
 * Before 17 there are no custom wait events: every worker waits under
 * PG_WAIT_EXTENSION, which pg_stat_activity shows as wait_event_type
 * "Extension", wait_event "Extension".
 *
 * Returns the wait_event_info; when the worker cannot have its own name on
 * a version that has them, sets *why.  May ereport(ERROR) (a name taken by
 * another type of custom wait event, say): the caller catches it.
 */
#define TSW_WAIT_EVENT_BUDGET	64

static inline uint32
tsw_worker_wait_event(const char *name, const char **why)
{
#if PG_VERSION_NUM >= 170000
	char	  **names;
	int			n;
	int			i;
	bool		exists = false;

	*why = NULL;
	names = GetWaitEventCustomNames(PG_WAIT_EXTENSION, &n);
	for (i = 0; i < n; i++)
	{
		if (strcmp(names[i], name) == 0)
			exists = true;
		pfree(names[i]);
	}
	if (names != NULL)
		pfree(names);
	if (!exists && n >= TSW_WAIT_EVENT_BUDGET)
	{
		*why = "too many custom wait events of type \"Extension\" already exist (pg_tsworker leaves the rest of the table to other extensions)";
		return PG_WAIT_EXTENSION;
	}
	return WaitEventExtensionNew(name);
#else
	*why = NULL;
	return PG_WAIT_EXTENSION;
#endif
}

#endif							/* TSW_COMPAT_H */
