/*-------------------------------------------------------------------------
 *
 * pg_stmt.c
 *		Statements of the addon: plans, parameters, execution, results.
 *
 * A statement starts (its timeout, its subtransaction when the transaction
 * runs statement savepoints), then ends well or with an error, which
 * undoes it (pg_internal.h).  Parameters arrive in their text form; their
 * types are given or inferred from the query
 * (setup_parse_variable_parameters, as the extended query protocol does)
 * and the values go through the types' input functions.  Results are
 * built by pg_result.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "parser/parse_param.h"
#include "parser/parse_type.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/timeout.h"

#include "../shim/pg_tsworker.h"
#include "pg_internal.h"
#include "pg_values.h"

static const char *tsw_command_name(int spi_rc);
static void tsw_stmt_cleanup(void);
static bool tsw_stmt_end_subxact(bool commit);
static void tsw_stmt_undo(void);
static void tsw_stmt_begin(const char *sql, int timeout_ms);

static const char *
tsw_command_name(int spi_rc)
{
	switch (spi_rc)
	{
		case SPI_OK_SELECT:
		case SPI_OK_SELINTO:
			return "SELECT";
		case SPI_OK_INSERT:
		case SPI_OK_INSERT_RETURNING:
			return "INSERT";
		case SPI_OK_DELETE:
		case SPI_OK_DELETE_RETURNING:
			return "DELETE";
		case SPI_OK_UPDATE:
		case SPI_OK_UPDATE_RETURNING:
			return "UPDATE";
		case SPI_OK_MERGE:
			return "MERGE";
		case SPI_OK_UTILITY:
			return "UTILITY";
		case SPI_OK_REWRITTEN:
			return "REWRITTEN";
		default:
			return "UNKNOWN";
	}
}

/*
 * One statement at a time.  A statement starts (timeout, subtransaction),
 * then ends well or with an error; a planned one-shot statement spans two
 * calls (tsw_plan_statement, tsw_execute), so the state is kept here.
 */
typedef struct TswStatementState
{
	bool		active;
	bool		in_subxact;
	int			timeout_ms;
	MemoryContext context;		/* caller's context */
	ResourceOwner owner;
	const char *sql;
} TswStatementState;

static TswStatementState tsw_stmt;

StaticAssertDecl(TSW_CURSOR_SCROLL == CURSOR_OPT_SCROLL &&
				 TSW_CURSOR_NO_SCROLL == CURSOR_OPT_NO_SCROLL,
				 "cursor options match PostgreSQL's");

/*
 * Call inside PG_TRY, for a statement whose text (UTF-8, as JavaScript gave
 * it) is not yet in the database's encoding.  Returns the converted text,
 * for SPI.
 */
const char *
tsw_stmt_start(const char *sql, int timeout_ms)
{
	size_t		len = strlen(sql);
	const char *server_sql;

	tsw_stmt_begin(sql, timeout_ms);
	/* a conversion error is the statement's: it is undone as any other */
	server_sql = tsw_utf8_to_server(sql, &len);
	debug_query_string = server_sql;
	pgstat_report_activity(STATE_RUNNING, server_sql);
	return server_sql;
}

/* Call inside PG_TRY, for a statement whose text is the server's (a portal's). */
void
tsw_stmt_start_server(const char *server_sql, int timeout_ms)
{
	tsw_stmt_begin(server_sql, timeout_ms);
	debug_query_string = server_sql;
	pgstat_report_activity(STATE_RUNNING, server_sql);
}

static void
tsw_stmt_begin(const char *sql, int timeout_ms)
{
	tsw_stmt.active = true;
	tsw_stmt.in_subxact = false;
	tsw_stmt.context = CurrentMemoryContext;
	tsw_stmt.owner = CurrentResourceOwner;
	tsw_stmt.sql = sql;
	tsw_stmt.timeout_ms = tsw_timeout_after_sigterm(timeout_ms < 0 ? tsw_statement_timeout : timeout_ms);

	/* a cancel the SIGTERM handler left behind belongs to an earlier statement */
	if (tsw_cancel_for_shutdown)
	{
		tsw_cancel_for_shutdown = false;
		QueryCancelPending = false;
	}
	tsw_query_depth++;
	tsw_slot_set_activity(TSW_ACTIVITY_SQL);
	if (tsw_stmt.timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, tsw_stmt.timeout_ms);
	if (tsw_stmt_savepoints)
	{
		BeginInternalSubTransaction(NULL);
		tsw_stmt.in_subxact = true;
		MemoryContextSwitchTo(tsw_stmt.context);
	}
}

static void
tsw_stmt_cleanup(void)
{
	tsw_query_depth--;
	if (tsw_query_depth == 0)
		tsw_slot_set_activity(TSW_ACTIVITY_JAVASCRIPT);
	if (tsw_stmt.timeout_ms > 0)
		disable_timeout(STATEMENT_TIMEOUT, false);
	debug_query_string = NULL;
	tsw_stmt.active = false;
	tsw_clear_stale_cancel();
}

/* End the statement's own subtransaction, if it has one; true if it had. */
static bool
tsw_stmt_end_subxact(bool commit)
{
	if (!tsw_stmt.in_subxact)
		return false;
	if (commit)
		ReleaseCurrentSubTransaction();
	else
		RollbackAndReleaseCurrentSubTransaction();
	tsw_stmt.in_subxact = false;
	MemoryContextSwitchTo(tsw_stmt.context);
	CurrentResourceOwner = tsw_stmt.owner;
	return true;
}

/* Call inside PG_TRY, when the statement succeeded. */
void
tsw_stmt_finish(void)
{
	tsw_stmt_end_subxact(true);
	tsw_stmt_cleanup();
}

/*
 * Undo a statement.  Without its own subtransaction, the innermost
 * savepoint is rolled back and marked failed, or else the transaction.
 */
static void
tsw_stmt_undo(void)
{
	TswSavepoint *sp;

	if (tsw_stmt_end_subxact(false))
	{
		/* only the statement is undone */
	}
	else if ((sp = tsw_innermost_savepoint()) != NULL)
	{
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(sp->context);
		CurrentResourceOwner = sp->owner;
		sp->failed = true;
	}
	else
	{
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		tsw_xact_failed = true;
	}
	tsw_stmt_cleanup();
}

bool
tsw_stmt_active(void)
{
	return tsw_stmt.active;
}

void
tsw_stmt_abandon(void)
{
	tsw_stmt_end_subxact(false);
	tsw_stmt_cleanup();
}

/* Call in PG_CATCH: capture the error, then undo the statement. */
TswError *
tsw_stmt_error(void)
{
	TswError   *e = tsw_capture_error(tsw_stmt.context);

	/*
	 * SPI reports a position in the statement as an internal position of an
	 * internal query (_SPI_error_callback); the statement is the caller's
	 * own, so report it as a plain position.
	 */
	if (e->position == 0 && e->internal_position > 0 && tsw_stmt.sql != NULL &&
		e->internal_query != NULL && strcmp(e->internal_query, tsw_stmt.sql) == 0)
	{
		e->position = e->internal_position;
		e->internal_position = 0;
		free(e->internal_query);
		e->internal_query = NULL;
	}
	tsw_stmt_undo();
	return e;
}

int
tsw_execute(TswPlan *plan, const char *sql, const TswParamValue *params,
			int timeout_ms, int flags, TswResult **result, TswError **err)
{
	volatile int rc = 0;
	volatile MemoryContext qcxt = NULL;

	*result = NULL;
	if (plan == NULL || !plan->open_subxact)
	{
		if (tsw_cannot_run(err))
			return -1;
	}

	PG_TRY();
	{
		int			spi_rc;
		const char *server_sql = sql;

		if (plan == NULL || !plan->open_subxact)
			server_sql = tsw_stmt_start(sql, timeout_ms);
		else
			tsw_stmt.sql = sql;
		if (plan != NULL)
			plan->open_subxact = 0;

		if (plan == NULL)
			spi_rc = SPI_execute(server_sql, false, 0);
		else
		{
			ParamListInfo paramli;

			qcxt = tsw_make_params(plan, params, &paramli);
			spi_rc = SPI_execute_plan_with_paramlist((SPIPlanPtr) plan->spi_plan, paramli, false, 0);
		}
		if (spi_rc < 0)
			elog(ERROR, "SPI failed: %s", SPI_result_code_string(spi_rc));

		tsw_build_result(tsw_command_name(spi_rc), flags, result);
		tsw_stmt_finish();
	}
	PG_CATCH();
	{
		tsw_free_result(*result);
		*result = NULL;
		*err = tsw_stmt_error();
		rc = -1;
	}
	PG_END_TRY();

	tsw_release_params(qcxt);
	if (plan != NULL && !plan->kept)
		tsw_plan_discard(plan);
	return rc;
}
