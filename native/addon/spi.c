/*-------------------------------------------------------------------------
 *
 * spi.c
 *		Transactions, queries, settings and logging for the N-API addon.
 *
 * Every function wraps its PostgreSQL calls in PG_TRY and reports a caught
 * error as a malloc'd TswError, after cleaning up the same way PL/Python
 * and plv8 do.  Transactions follow worker_spi's shape (start timestamp,
 * StartTransactionCommand, SPI_connect, an active snapshot, activity
 * reporting).  Each statement runs in an internal subtransaction, so that
 * a caught SQL error rolls back only that statement and the transaction can
 * go on; a transaction begun without statement savepoints saves that cost,
 * and a failed statement then fails the innermost savepoint or the whole
 * transaction, as in a PostgreSQL session.
 *
 * Parameters arrive in their text form; their types are given or inferred
 * from the query (setup_parse_variable_parameters, as the extended query
 * protocol does) and the values go through the types' input functions.
 * Results are converted by values.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/params.h"
#include "parser/parse_type.h"
#include "parser/parse_param.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "postmaster/interrupt.h"

#include "../shim/pg_tsworker.h"
#include "spi.h"
#include "values.h"

typedef struct TswParamState
{
	Oid		   *types;
	int			ntypes;
} TswParamState;

static bool tsw_xact_open = false;
/* Statement savepoints in this transaction (tsw_begin). */
static bool tsw_stmt_savepoints = true;
/* Without them: a statement failed and the whole transaction was aborted. */
static bool tsw_xact_failed = false;

/* Savepoints opened by tsw_savepoint(), innermost last. */
#define TSW_MAX_SAVEPOINTS 64
typedef struct TswSavepoint
{
	MemoryContext context;
	ResourceOwner owner;
	bool		failed;			/* rolled back by a failed statement */
} TswSavepoint;
static TswSavepoint tsw_savepoints[TSW_MAX_SAVEPOINTS];
static int	tsw_savepoint_depth = 0;

static char *tsw_strdup(const char *s);
static TswError *tsw_capture_error(MemoryContext oldcontext);
static void tsw_param_setup(ParseState *pstate, void *arg);
static const char *tsw_command_name(int spi_rc);
static void tsw_clear_stale_cancel(void);
static void tsw_build_result(SPITupleTable *tuptable, uint64 processed, const char *command,
							 int flags, TswResult **out);

static char *
tsw_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

TswError *
tsw_make_error(const char *sqlstate, const char *message)
{
	TswError   *e = calloc(1, sizeof(TswError));

	if (e == NULL)
		abort();
	memcpy(e->sqlstate, sqlstate, 5);
	e->severity = "ERROR";
	e->message = tsw_strdup(message);
	return e;
}

/* In PG_CATCH: copy the current error out of PostgreSQL's memory and clear it. */
static TswError *
tsw_capture_error(MemoryContext oldcontext)
{
	ErrorData  *edata;
	TswError   *e;

	MemoryContextSwitchTo(oldcontext);
	edata = CopyErrorData();
	FlushErrorState();

	e = calloc(1, sizeof(TswError));
	if (e == NULL)
		abort();
	memcpy(e->sqlstate, unpack_sql_state(edata->sqlerrcode), 5);
	switch (edata->elevel)
	{
		case FATAL:
			e->severity = "FATAL";
			break;
		case PANIC:
			e->severity = "PANIC";
			break;
		default:
			e->severity = "ERROR";
			break;
	}
	e->message = tsw_strdup(edata->message);
	e->detail = tsw_strdup(edata->detail);
	e->hint = tsw_strdup(edata->hint);
	e->context = tsw_strdup(edata->context);
	e->schema = tsw_strdup(edata->schema_name);
	e->table = tsw_strdup(edata->table_name);
	e->column = tsw_strdup(edata->column_name);
	e->datatype = tsw_strdup(edata->datatype_name);
	e->constraint = tsw_strdup(edata->constraint_name);
	e->internal_query = tsw_strdup(edata->internalquery);
	e->position = edata->cursorpos;
	e->internal_position = edata->internalpos;
	FreeErrorData(edata);
	return e;
}

void
tsw_free_error(TswError *e)
{
	if (e == NULL)
		return;
	free(e->message);
	free(e->detail);
	free(e->hint);
	free(e->context);
	free(e->schema);
	free(e->table);
	free(e->column);
	free(e->datatype);
	free(e->constraint);
	free(e->internal_query);
	free(e);
}

void
tsw_free_string(char *s)
{
	free(s);
}

int
tsw_in_transaction(void)
{
	return tsw_xact_open ? 1 : 0;
}

int
tsw_begin(int read_only, int statement_savepoints, const char *synchronous_commit,
		  TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int rc = 0;

	if (tsw_xact_open)
	{
		*err = tsw_make_error("25001", "a transaction is already open in this worker");
		return -1;
	}

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (read_only)
			(void) set_config_option("transaction_read_only", "on",
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
		if (synchronous_commit != NULL)
			(void) set_config_option("synchronous_commit", synchronous_commit,
									 PGC_USERSET, PGC_S_SESSION,
									 GUC_ACTION_LOCAL, true, 0, false);
		PushActiveSnapshot(GetTransactionSnapshot());
		tsw_xact_open = true;
		tsw_xact_failed = false;
		tsw_stmt_savepoints = statement_savepoints != 0;
		tsw_savepoint_depth = 0;
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		AbortCurrentTransaction();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

/*
 * A cancel the SIGTERM handler set for a call that ended before noticing
 * it must not fail the next statement.
 */
static void
tsw_clear_stale_cancel(void)
{
	if (tsw_cancel_for_shutdown && tsw_query_depth == 0)
	{
		tsw_cancel_for_shutdown = false;
		QueryCancelPending = false;
	}
}

static TswError *
tsw_aborted_error(void)
{
	return tsw_make_error("25P02", "current transaction is aborted: a statement failed, "
						  "and the transaction was begun without statement savepoints");
}

int
tsw_commit(TswError **err)
{
	volatile int rc = 0;

	if (!tsw_xact_open)
	{
		*err = tsw_make_error("25P01", "no transaction is open in this worker");
		return -1;
	}
	tsw_xact_open = false;
	tsw_savepoint_depth = 0;
	if (tsw_xact_failed)
	{
		/* already rolled back when the statement failed */
		tsw_xact_failed = false;
		*err = tsw_make_error("40000", "the transaction was rolled back: a statement in it failed");
		return -1;
	}

	/*
	 * COMMIT can wait (deferred triggers, a synchronous standby): a SIGTERM
	 * meanwhile cancels the wait, as it cancels a statement.  SyncRep then
	 * stops waiting with a WARNING; the commit stays, locally.
	 */
	tsw_query_depth++;
	PG_TRY();
	{
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		pgstat_report_stat(false);
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(TopMemoryContext);
	}
	PG_CATCH();
	{
		/* e.g. a deferred constraint or a serialization failure at commit */
		/* SPI_finish has deleted the context we were called in */
		*err = tsw_capture_error(TopMemoryContext);
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		rc = -1;
	}
	PG_END_TRY();
	tsw_query_depth--;
	tsw_clear_stale_cancel();
	return rc;
}

int
tsw_rollback(TswError **err)
{
	volatile int rc = 0;

	if (!tsw_xact_open)
	{
		*err = tsw_make_error("25P01", "no transaction is open in this worker");
		return -1;
	}
	tsw_xact_open = false;
	tsw_savepoint_depth = 0;
	if (tsw_xact_failed)
	{
		tsw_xact_failed = false;
		return 0;
	}

	PG_TRY();
	{
		SPI_finish();
		PopActiveSnapshot();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		MemoryContextSwitchTo(TopMemoryContext);
	}
	PG_CATCH();
	{
		/* SPI_finish has deleted the context we were called in */
		*err = tsw_capture_error(TopMemoryContext);
		AbortCurrentTransaction();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

/* True (with *err set) when statements cannot run now. */
static bool
tsw_cannot_run(TswError **err)
{
	int			i;

	if (!tsw_xact_open)
	{
		*err = tsw_make_error("25P01", "the transaction has ended; run queries inside the transaction callback");
		return true;
	}
	if (tsw_xact_failed)
	{
		*err = tsw_aborted_error();
		return true;
	}
	for (i = 0; i < tsw_savepoint_depth; i++)
	{
		if (tsw_savepoints[i].failed)
		{
			*err = tsw_make_error("25P02", "current savepoint is aborted: a statement in it failed, "
								  "and the transaction was begun without statement savepoints");
			return true;
		}
	}
	return false;
}

/*
 * Savepoints: internal subtransactions that JavaScript opens and closes
 * (tx.savepoint(fn)), handled like PL/Python's subtransactions.
 */
int
tsw_savepoint(TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int rc = 0;

	if (tsw_cannot_run(err))
		return -1;
	if (tsw_savepoint_depth >= TSW_MAX_SAVEPOINTS)
	{
		*err = tsw_make_error("54000", "savepoints are nested too deeply");
		return -1;
	}
	PG_TRY();
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(oldcontext);
		tsw_savepoints[tsw_savepoint_depth].context = oldcontext;
		tsw_savepoints[tsw_savepoint_depth].owner = oldowner;
		tsw_savepoints[tsw_savepoint_depth].failed = false;
		tsw_savepoint_depth++;
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

int
tsw_savepoint_end(int commit, TswError **err)
{
	TswSavepoint sp;
	volatile int rc = 0;

	if (!tsw_xact_open || tsw_xact_failed || tsw_savepoint_depth == 0)
	{
		*err = tsw_make_error("3B001", "no savepoint is open");
		return -1;
	}
	sp = tsw_savepoints[--tsw_savepoint_depth];
	if (sp.failed)
	{
		/* its subtransaction was rolled back when the statement failed */
		if (!commit)
			return 0;
		*err = tsw_make_error("40000", "the savepoint was rolled back: a statement in it failed");
		return -1;
	}
	PG_TRY();
	{
		if (commit)
			ReleaseCurrentSubTransaction();
		else
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(sp.context);
		CurrentResourceOwner = sp.owner;
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(sp.context);
		/* the subtransaction is still there after a failed release: undo it */
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(sp.context);
		CurrentResourceOwner = sp.owner;
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

static void
tsw_param_setup(ParseState *pstate, void *arg)
{
	TswParamState *state = (TswParamState *) arg;

	setup_parse_variable_parameters(pstate, &state->types, &state->ntypes);
}

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
 * Copy a tuple table into a TswResult, in its own memory context so that
 * addon.cc can read it after the subtransaction has ended.  values.c
 * decides how each column converts.
 */
static void
tsw_build_result(SPITupleTable *tuptable, uint64 processed, const char *command,
				 int flags, TswResult **out)
{
	MemoryContext mcxt;
	MemoryContext old;
	TswResult  *res;
	TupleDesc	tupdesc;
	TswTypeInfo **infos;
	uint64		r;
	int			c;

	mcxt = AllocSetContextCreate(TopMemoryContext, "pg_tsworker result",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(mcxt);

	/*
	 * Hand the context to the caller at once, so that an error while
	 * converting (an output function, a huge result) still frees it.
	 */
	res = palloc0(sizeof(TswResult));
	res->memory = mcxt;
	*out = res;
	res->command = command;
	res->row_count = processed;

	if (tuptable == NULL)
	{
		MemoryContextSwitchTo(old);
		return;
	}

	tupdesc = tuptable->tupdesc;
	res->ncolumns = tupdesc->natts;
	res->columns = palloc0(sizeof(TswColumn) * Max(tupdesc->natts, 1));
	infos = palloc0(sizeof(TswTypeInfo *) * Max(tupdesc->natts, 1));

	for (c = 0; c < tupdesc->natts; c++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, c);

		res->columns[c].name = pstrdup(NameStr(attr->attname));
		res->columns[c].type_oid = attr->atttypid;
		infos[c] = tsw_type_info(attr->atttypid, flags, mcxt);
	}

	res->nrows = tuptable->numvals;
	res->cells = palloc0(sizeof(TswCell) * Max(res->nrows * tupdesc->natts, 1));

	for (r = 0; r < res->nrows; r++)
	{
		HeapTuple	tuple = tuptable->vals[r];

		for (c = 0; c < tupdesc->natts; c++)
		{
			TswCell    *cell = &res->cells[r * tupdesc->natts + c];
			bool		isnull;
			Datum		d = heap_getattr(tuple, c + 1, tupdesc, &isnull);

			cell->isnull = isnull;
			if (!isnull)
				tsw_datum_to_cell(infos[c], d, cell);
		}
	}

	MemoryContextSwitchTo(old);
}

void
tsw_free_result(TswResult *result)
{
	if (result != NULL)
		MemoryContextDelete((MemoryContext) result->memory);
}

int
tsw_shutdown_requested(void)
{
	return ShutdownRequestPending ? 1 : 0;
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

/* Call inside PG_TRY. */
static void
tsw_stmt_start(const char *sql, int timeout_ms)
{
	tsw_stmt.active = true;
	tsw_stmt.in_subxact = false;
	tsw_stmt.context = CurrentMemoryContext;
	tsw_stmt.owner = CurrentResourceOwner;
	tsw_stmt.sql = sql;
	tsw_stmt.timeout_ms = timeout_ms < 0 ? tsw_statement_timeout : timeout_ms;

	/* a cancel the SIGTERM handler left behind belongs to an earlier statement */
	if (tsw_cancel_for_shutdown)
	{
		tsw_cancel_for_shutdown = false;
		QueryCancelPending = false;
	}
	tsw_query_depth++;
	if (tsw_stmt.timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, tsw_stmt.timeout_ms);
	if (tsw_stmt_savepoints)
	{
		BeginInternalSubTransaction(NULL);
		tsw_stmt.in_subxact = true;
		MemoryContextSwitchTo(tsw_stmt.context);
	}
	debug_query_string = sql;
	pgstat_report_activity(STATE_RUNNING, sql);
}

static void
tsw_stmt_cleanup(void)
{
	tsw_query_depth--;
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
static void
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
	if (tsw_stmt_end_subxact(false))
	{
		/* only the statement is undone */
	}
	else if (tsw_savepoint_depth > 0)
	{
		TswSavepoint *sp = &tsw_savepoints[tsw_savepoint_depth - 1];

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

/* Give up a statement that never ran (its parameters could not be formatted). */
static void
tsw_stmt_abandon(void)
{
	tsw_stmt_end_subxact(false);
	tsw_stmt_cleanup();
}

/* Call in PG_CATCH: capture the error, then undo the statement. */
static TswError *
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

static TswPlan *
tsw_plan_new(int kept)
{
	MemoryContext mcxt = AllocSetContextCreate(TopMemoryContext, "pg_tsworker plan",
											   ALLOCSET_SMALL_SIZES);
	TswPlan    *plan = MemoryContextAllocZero(mcxt, sizeof(TswPlan));

	plan->memory = mcxt;
	plan->kept = kept;
	return plan;
}

static void
tsw_plan_release(TswPlan *plan)
{
	if (plan == NULL)
		return;

	/*
	 * A one-shot plan lives in SPI's transaction memory: a transaction that
	 * a failed statement aborted has freed it already.
	 */
	if (plan->spi_plan != NULL && (plan->kept || (tsw_xact_open && !tsw_xact_failed)))
		SPI_freeplan((SPIPlanPtr) plan->spi_plan);
	MemoryContextDelete((MemoryContext) plan->memory);
}

/*
 * Plan sql with variable parameters (types preset in types[0..ntypes-1],
 * 0 for inferred), then describe them.  expect_params >= 0 requires that
 * many parameters, all used.
 */
static void
tsw_plan_into(TswPlan *plan, const char *sql, int ntypes, const Oid *types,
			  int expect_params, int cursor_options)
{
	MemoryContext old;
	TswParamState state;
	SPIPlanPtr	spi_plan;
	int			i;

	old = MemoryContextSwitchTo((MemoryContext) plan->memory);
	state.ntypes = Max(ntypes, expect_params);
	state.types = palloc0(sizeof(Oid) * Max(state.ntypes, 1));
	for (i = 0; i < ntypes; i++)
		state.types[i] = types[i];
	MemoryContextSwitchTo(old);

	spi_plan = SPI_prepare_params(sql, tsw_param_setup, &state, cursor_options);
	if (spi_plan == NULL)
		elog(ERROR, "SPI_prepare_params failed: %s", SPI_result_code_string(SPI_result));
	plan->spi_plan = spi_plan;
	plan->cursor_options = cursor_options;
	if (expect_params >= 0 && state.ntypes > expect_params)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_PARAMETER),
				 errmsg("query uses parameter $%d but %d parameters were given",
						state.ntypes, expect_params)));

	old = MemoryContextSwitchTo((MemoryContext) plan->memory);
	plan->nparams = state.ntypes;
	plan->params = palloc0(sizeof(TswParamType) * Max(state.ntypes, 1));
	for (i = 0; i < state.ntypes; i++)
	{
		if (state.types[i] == InvalidOid)
			ereport(ERROR,
					(errcode(ERRCODE_INDETERMINATE_DATATYPE),
					 expect_params >= 0 ?
					 errmsg("%d parameters were given but the query does not use $%d",
							expect_params, i + 1) :
					 errmsg("the statement does not use parameter $%d", i + 1)));
		tsw_describe_param(state.types[i], &plan->params[i]);
	}
	MemoryContextSwitchTo(old);
}

int
tsw_plan_statement(const char *sql, int nparams, int cursor_options, int timeout_ms,
				   TswPlan **out, TswError **err)
{
	TswPlan    *volatile plan = NULL;
	volatile int rc = 0;

	*out = NULL;
	if (tsw_cannot_run(err))
		return -1;
	PG_TRY();
	{
		tsw_stmt_start(sql, timeout_ms);
		plan = tsw_plan_new(0);
		tsw_plan_into(plan, sql, 0, NULL, nparams, cursor_options);
		plan->open_subxact = 1;
		*out = plan;
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		tsw_plan_release(plan);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

void
tsw_plan_discard(TswPlan *plan)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	if (plan == NULL)
		return;
	PG_TRY();
	{
		if (plan->open_subxact && tsw_stmt.active)
			tsw_stmt_abandon();
		plan->open_subxact = 0;
		tsw_plan_release(plan);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}

int
tsw_prepare(const char *sql, int ntypes, const char *const *typenames,
			TswPlan **out, TswError **err)
{
	TswPlan    *volatile plan = NULL;
	volatile int rc = 0;

	*out = NULL;
	if (tsw_cannot_run(err))
		return -1;
	PG_TRY();
	{
		Oid		   *types = NULL;
		int			i;

		tsw_stmt_start(sql, -1);
		plan = tsw_plan_new(1);
		if (ntypes > 0)
		{
			types = palloc0(sizeof(Oid) * ntypes);
			for (i = 0; i < ntypes; i++)
			{
				int32		typmod;

				if (typenames[i] != NULL)
					parseTypeString(typenames[i], &types[i], &typmod, false);
			}
		}
		tsw_plan_into(plan, sql, ntypes, types, -1, 0);
		if (SPI_keepplan((SPIPlanPtr) plan->spi_plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		tsw_stmt_finish();
		*out = plan;
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		tsw_plan_release(plan);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

void
tsw_plan_free(TswPlan *plan)
{
	tsw_plan_discard(plan);
}

/*
 * Parameters of plan from their text form, in a new context returned for
 * the caller to delete when the statement ends.  It hangs off
 * TopMemoryContext: a failed statement may abort the transaction first.
 */
static MemoryContext
tsw_make_params(TswPlan *plan, const char *const *params, ParamListInfo *out)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext, "pg_tsworker params",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ParamListInfo paramli = makeParamList(plan->nparams);
	int			i;

	for (i = 0; i < plan->nparams; i++)
	{
		ParamExternData *prm = &paramli->params[i];
		Oid			type = plan->params[i].type_oid;

		prm->ptype = type;
		prm->pflags = PARAM_FLAG_CONST;
		prm->isnull = params == NULL || params[i] == NULL;
		if (prm->isnull)
			prm->value = (Datum) 0;
		else
		{
			Oid			typinput;
			Oid			typioparam;

			getTypeInputInfo(type, &typinput, &typioparam);
			prm->value = OidInputFunctionCall(typinput, (char *) params[i], typioparam, -1);
		}
	}
	MemoryContextSwitchTo(old);
	*out = paramli;
	return cxt;
}

int
tsw_execute(TswPlan *plan, const char *sql, const char *const *params,
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

		if (plan == NULL || !plan->open_subxact)
			tsw_stmt_start(sql, timeout_ms);
		else
			tsw_stmt.sql = sql;
		if (plan != NULL)
			plan->open_subxact = 0;

		if (plan == NULL)
			spi_rc = SPI_execute(sql, false, 0);
		else
		{
			ParamListInfo paramli;

			qcxt = tsw_make_params(plan, params, &paramli);
			spi_rc = SPI_execute_plan_with_paramlist((SPIPlanPtr) plan->spi_plan, paramli, false, 0);
		}
		if (spi_rc < 0)
			elog(ERROR, "SPI failed: %s", SPI_result_code_string(spi_rc));

		tsw_build_result(SPI_tuptable, SPI_processed, tsw_command_name(spi_rc), flags, result);
		SPI_freetuptable(SPI_tuptable);
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

	if (qcxt != NULL)
		MemoryContextDelete(qcxt);
	if (plan != NULL && !plan->kept)
		tsw_plan_discard(plan);
	return rc;
}

/* Cursors -------------------------------------------------------------- */

int
tsw_cursor_open(TswPlan *plan, const char *sql, const char *const *params,
				char **name, TswError **err)
{
	volatile int rc = 0;
	volatile MemoryContext qcxt = NULL;

	*name = NULL;
	if (!plan->open_subxact && tsw_cannot_run(err))
		return -1;

	PG_TRY();
	{
		ParamListInfo paramli;
		Portal		portal;

		if (!plan->open_subxact)
			tsw_stmt_start(sql, -1);
		plan->open_subxact = 0;
		qcxt = tsw_make_params(plan, params, &paramli);
		portal = SPI_cursor_open_with_paramlist(NULL, (SPIPlanPtr) plan->spi_plan, paramli, false);
		if (portal == NULL)
			elog(ERROR, "SPI_cursor_open failed: %s", SPI_result_code_string(SPI_result));
		*name = tsw_strdup(portal->name);
		tsw_stmt_finish();
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		rc = -1;
	}
	PG_END_TRY();

	if (qcxt != NULL)
		MemoryContextDelete(qcxt);
	if (!plan->kept)
		tsw_plan_discard(plan);
	return rc;
}

/* The open cursor called name, or NULL with *err set. */
static Portal
tsw_find_cursor(const char *name, TswError **err)
{
	Portal		portal;

	if (tsw_cannot_run(err))
		return NULL;
	portal = SPI_cursor_find(name);
	if (portal == NULL)
		*err = tsw_make_error("34000", "the cursor is closed (a cursor lasts until the end of the transaction that opened it)");
	return portal;
}

int
tsw_cursor_fetch(const char *name, int forward, int64_t count, int flags,
				 TswResult **result, TswError **err)
{
	volatile int rc = 0;
	Portal		portal;

	*result = NULL;
	if ((portal = tsw_find_cursor(name, err)) == NULL)
		return -1;
	PG_TRY();
	{
		tsw_stmt_start(portal->sourceText, -1);
		SPI_cursor_fetch(portal, forward != 0, (long) count);
		tsw_build_result(SPI_tuptable, SPI_processed, "FETCH", flags, result);
		SPI_freetuptable(SPI_tuptable);
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
	return rc;
}

int
tsw_cursor_move(const char *name, int forward, int64_t count,
				uint64_t *moved, TswError **err)
{
	volatile int rc = 0;
	Portal		portal;

	*moved = 0;
	if ((portal = tsw_find_cursor(name, err)) == NULL)
		return -1;
	PG_TRY();
	{
		tsw_stmt_start(portal->sourceText, -1);
		SPI_cursor_move(portal, forward != 0, (long) count);
		*moved = SPI_processed;
		tsw_stmt_finish();
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

int
tsw_cursor_close(const char *name, TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int rc = 0;

	/* after the transaction the portal is gone already */
	if (!tsw_xact_open || tsw_xact_failed)
		return 0;
	PG_TRY();
	{
		Portal		portal = SPI_cursor_find(name);

		if (portal != NULL)
			SPI_cursor_close(portal);
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

int
tsw_get_setting(const char *name, char **value, TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int rc = 0;

	*value = NULL;
	PG_TRY();
	{
		const char *v = GetConfigOption(name, true, false);

		if (v != NULL)
			*value = tsw_strdup(v);
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

void
tsw_log(int level, const char *msg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	const int	elevel = level == 0 ? DEBUG1 : level == 2 ? NOTICE :
		level == 3 ? WARNING : LOG;
	const char *name = MyBgworkerEntry ? MyBgworkerEntry->bgw_type : "?";

	PG_TRY();
	{
		ereport(elevel,
				(errmsg_internal("tsworker \"%s\": %s", name, msg)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}

/*
 * Slot reports.  The shim's slot functions only take the slot lock, but
 * LWLockAcquire can still raise an error (too many locks held), so they run
 * under PG_TRY like everything else here; a failed report is dropped.
 */
static void
tsw_guarded(void (*fn) (void *), void *arg)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	PG_TRY();
	{
		fn(arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}

static void
tsw_do_state(void *arg)
{
	int			state = *(int *) arg;

	tsw_slot_set_state(state == TSW_REPORT_WAITING ? TSW_STATE_WAITING :
					   state == TSW_REPORT_STOPPING ? TSW_STATE_STOPPING :
					   TSW_STATE_RUNNING);
}

static void
tsw_do_loop(void *arg)
{
	tsw_slot_note_loop();
}

static void
tsw_do_restart(void *arg)
{
	tsw_slot_request_restart();
}

static void
tsw_do_error(void *arg)
{
	tsw_slot_set_error((const char *) arg);
}

static void
tsw_do_status(void *arg)
{
	tsw_slot_set_status((const char *) arg);
}

static void
tsw_do_wakes(void *arg)
{
	*(uint64_t *) arg = tsw_slot_wakes();
}

void
tsw_report_state(int state)
{
	tsw_guarded(tsw_do_state, &state);
}

void
tsw_report_loop(void)
{
	tsw_guarded(tsw_do_loop, NULL);
}

void
tsw_report_restart(void)
{
	tsw_guarded(tsw_do_restart, NULL);
}

void
tsw_report_error(const char *message)
{
	tsw_guarded(tsw_do_error, (void *) message);
}

uint64_t
tsw_read_wakes(void)
{
	uint64_t	wakes = 0;

	tsw_guarded(tsw_do_wakes, &wakes);
	return wakes;
}

int
tsw_report_status(const char *json, int *maxlen)
{
	*maxlen = TSW_STATUS_MAXLEN - 1;
	if (strlen(json) >= TSW_STATUS_MAXLEN)
		return -1;
	tsw_guarded(tsw_do_status, (void *) json);
	return 0;
}
