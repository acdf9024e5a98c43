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

#include "postmaster/bgworker.h"
#include "storage/proc.h"
#include "utils/acl.h"
#if PG_VERSION_NUM >= 160000
#include "catalog/pg_database.h"
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

#endif							/* TSW_COMPAT_H */
