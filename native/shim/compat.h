/*-------------------------------------------------------------------------
 *
 * compat.h
 *		What pg_tsworker needs from PostgreSQL beyond its public headers.
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

struct BackgroundWorkerHandle
{
	int			slot;
	uint64		generation;
};

#endif							/* TSW_COMPAT_H */
