/*-------------------------------------------------------------------------
 *
 * pg_internal.h
 *		State shared by the addon's PostgreSQL files (pg_*.c): the open
 *		transaction, its savepoints, and the running statement.  C only.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_PG_INTERNAL_H
#define TSW_PG_INTERNAL_H

#include "postgres.h"

#include "fmgr.h"
#include "nodes/params.h"
#include "utils/resowner.h"

#include "pg_api.h"

/* The transaction (pg_xact.c). */
extern bool tsw_xact_open;
extern bool tsw_xact_failed;	/* aborted by a failed statement without savepoints */
extern bool tsw_stmt_savepoints;	/* each statement in its own subtransaction */

/* Savepoints opened by tsw_savepoint(), innermost last. */
typedef struct TswSavepoint
{
	MemoryContext context;
	ResourceOwner owner;
	bool		failed;			/* rolled back by a failed statement */
} TswSavepoint;

extern TswSavepoint *tsw_innermost_savepoint(void);

/* True (with *err set) when statements cannot run now. */
extern bool tsw_cannot_run(TswError **err);

/* Call in PG_CATCH: copy the current error out of PostgreSQL and clear it. */
extern TswError *tsw_capture_error(MemoryContext oldcontext);
extern char *tsw_strdup(const char *s);

/*
 * The running statement (pg_stmt.c): tsw_stmt_start() inside PG_TRY, then
 * tsw_stmt_finish() when it succeeded, or tsw_stmt_error() in PG_CATCH,
 * which undoes it (its subtransaction, else the innermost savepoint, else
 * the transaction).
 */
extern const char *tsw_stmt_start(const char *sql, int timeout_ms);
extern void tsw_stmt_start_server(const char *server_sql, int timeout_ms);
extern void tsw_stmt_finish(void);
extern TswError *tsw_stmt_error(void);
/* Give up a statement that never ran (its parameters could not be formatted). */
extern void tsw_stmt_abandon(void);
extern bool tsw_stmt_active(void);

/* A parameter's input function, looked up when the statement is planned
 * (pg_plan.c), called by pg_params.c. */
typedef struct TswParamInput
{
	FmgrInfo	flinfo;
	Oid			typioparam;
} TswParamInput;

/*
 * Parameters of `plan` as Datums (pg_params.c), in a memory context returned
 * for the caller to hand to tsw_release_params when the statement ends.
 */
extern MemoryContext tsw_make_params(TswPlan *plan, const TswParamValue *params,
									 ParamListInfo *out);
extern void tsw_release_params(MemoryContext cxt);

/* After SIGTERM, what is left of tsworker.terminate_grace (pg_xact.c). */
extern int	tsw_timeout_after_sigterm(int timeout_ms);
/* A cancel the SIGTERM handler set for a call that already ended: forget it. */
extern void tsw_clear_stale_cancel(void);

/* Results (pg_result.c), built from SPI_tuptable. */
extern void tsw_build_result(const char *command, int flags, TswResult **out);

#endif							/* TSW_PG_INTERNAL_H */
