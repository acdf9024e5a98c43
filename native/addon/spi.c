/*-------------------------------------------------------------------------
 *
 * spi.c
 *		Transactions, queries, settings and logging for the N-API addon.
 *
 * Every function wraps its PostgreSQL calls in PG_TRY and reports a caught
 * error as a malloc'd TswError, after cleaning up the same way PL/Python
 * and plv8 do.  Transactions follow worker_spi's shape (start timestamp,
 * StartTransactionCommand, SPI_connect, an active snapshot, activity
 * reporting).  Each query runs in an internal subtransaction, so that a
 * caught SQL error rolls back only that statement and the transaction can
 * go on.
 *
 * Parameters arrive in their text form; their types are inferred from the
 * query (setup_parse_variable_parameters, as the extended query protocol
 * does) and the values go through the types' input functions.
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
#include "parser/parse_param.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "postmaster/interrupt.h"

#include "../shim/pg_tsworker.h"
#include "spi.h"

typedef struct TswParamState
{
	Oid		   *types;
	int			ntypes;
} TswParamState;

static bool tsw_xact_open = false;

/* Savepoints opened by tsw_savepoint(), innermost last. */
#define TSW_MAX_SAVEPOINTS 64
typedef struct TswSavepoint
{
	MemoryContext context;
	ResourceOwner owner;
} TswSavepoint;
static TswSavepoint tsw_savepoints[TSW_MAX_SAVEPOINTS];
static int	tsw_savepoint_depth = 0;

static char *tsw_strdup(const char *s);
static TswError *tsw_capture_error(MemoryContext oldcontext);
static void tsw_param_setup(ParseState *pstate, void *arg);
static const char *tsw_command_name(int spi_rc);
static void tsw_build_result(SPITupleTable *tuptable, uint64 processed, int rc, TswResult **out);

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
tsw_begin(int read_only, TswError **err)
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
		PushActiveSnapshot(GetTransactionSnapshot());
		tsw_xact_open = true;
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

	if (!tsw_xact_open)
	{
		*err = tsw_make_error("25P01", "no transaction is open in this worker");
		return -1;
	}
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

	if (!tsw_xact_open || tsw_savepoint_depth == 0)
	{
		*err = tsw_make_error("3B001", "no savepoint is open");
		return -1;
	}
	sp = tsw_savepoints[--tsw_savepoint_depth];
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
 * addon.cc can read it after the subtransaction has ended.  Types with a
 * JavaScript counterpart are stored natively; everything else in its text
 * form through the type's output function.
 */
static void
tsw_build_result(SPITupleTable *tuptable, uint64 processed, int rc, TswResult **out)
{
	MemoryContext mcxt;
	MemoryContext old;
	TswResult  *res;
	TupleDesc	tupdesc;
	FmgrInfo   *out_funcs;
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
	res->command = tsw_command_name(rc);
	res->row_count = processed;

	if (tuptable == NULL)
	{
		MemoryContextSwitchTo(old);
		return;
	}

	tupdesc = tuptable->tupdesc;
	res->ncolumns = tupdesc->natts;
	res->columns = palloc0(sizeof(TswColumn) * Max(tupdesc->natts, 1));
	out_funcs = palloc0(sizeof(FmgrInfo) * Max(tupdesc->natts, 1));

	for (c = 0; c < tupdesc->natts; c++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, c);
		Oid			base = getBaseType(attr->atttypid);
		TswColumn  *col = &res->columns[c];

		col->name = pstrdup(NameStr(attr->attname));
		col->type_oid = attr->atttypid;
		switch (base)
		{
			case BOOLOID:
				col->kind = TSW_KIND_BOOL;
				break;
			case INT2OID:
				col->kind = TSW_KIND_INT32;
				col->is_narrow = 1;
				break;
			case INT4OID:
				col->kind = TSW_KIND_INT32;
				break;
			case OIDOID:
				col->kind = TSW_KIND_INT32;
				col->is_unsigned = 1;
				break;
			case INT8OID:
				col->kind = TSW_KIND_INT64;
				break;
			case FLOAT4OID:
				col->kind = TSW_KIND_FLOAT64;
				col->is_narrow = 1;
				break;
			case FLOAT8OID:
				col->kind = TSW_KIND_FLOAT64;
				break;
			default:
				{
					Oid			typoutput;
					bool		typisvarlena;

					col->kind = TSW_KIND_TEXT;
					getTypeOutputInfo(base, &typoutput, &typisvarlena);
					fmgr_info_cxt(typoutput, &out_funcs[c], mcxt);
				}
				break;
		}
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
			if (isnull)
				continue;
			switch (res->columns[c].kind)
			{
				case TSW_KIND_BOOL:
					cell->v.b = DatumGetBool(d);
					break;
				case TSW_KIND_INT32:
					if (res->columns[c].is_unsigned)
						cell->v.u32 = DatumGetObjectId(d);
					else if (res->columns[c].is_narrow)
						cell->v.i32 = DatumGetInt16(d);
					else
						cell->v.i32 = DatumGetInt32(d);
					break;
				case TSW_KIND_INT64:
					cell->v.i64 = DatumGetInt64(d);
					break;
				case TSW_KIND_FLOAT64:
					if (res->columns[c].is_narrow)
						cell->v.f64 = DatumGetFloat4(d);
					else
						cell->v.f64 = DatumGetFloat8(d);
					break;
				case TSW_KIND_TEXT:
					{
						char	   *s = OutputFunctionCall(&out_funcs[c], d);

						cell->v.text.ptr = s;
						cell->v.text.len = strlen(s);
					}
					break;
			}
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

int
tsw_query(const char *sql, int nparams, const char *const *params,
		  int timeout_arg, TswResult **result, TswError **err)
{
	volatile int timeout_ms = timeout_arg;
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int rc = 0;
	volatile bool in_subxact = false;
	MemoryContext qcxt;

	*result = NULL;
	if (!tsw_xact_open)
	{
		*err = tsw_make_error("25P01", "the transaction has ended; run queries inside the transaction callback");
		return -1;
	}

	/*
	 * Parameters and their parse state live in a context of their own,
	 * deleted when the statement ends, so that a long transaction does not
	 * accumulate them.  (The types array must not be allocated by the
	 * parser hook: that would be in SPI's executor context, which
	 * SPI_prepare_params resets before returning.)
	 */
	qcxt = AllocSetContextCreate(oldcontext, "pg_tsworker query", ALLOCSET_SMALL_SIZES);

	/* a cancel the SIGTERM handler left behind belongs to an earlier statement */
	if (tsw_cancel_for_shutdown)
	{
		tsw_cancel_for_shutdown = false;
		QueryCancelPending = false;
	}
	if (timeout_ms < 0)
		timeout_ms = tsw_statement_timeout;

	PG_TRY();
	{
		int			spi_rc;
		SPIPlanPtr	plan = NULL;

		tsw_query_depth++;
		if (timeout_ms > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, timeout_ms);
		BeginInternalSubTransaction(NULL);
		in_subxact = true;
		MemoryContextSwitchTo(oldcontext);

		debug_query_string = sql;
		pgstat_report_activity(STATE_RUNNING, sql);

		if (nparams == 0)
			spi_rc = SPI_execute(sql, false, 0);
		else
		{
			TswParamState state;
			ParamListInfo paramli;
			int			i;

			state.types = MemoryContextAllocZero(qcxt, sizeof(Oid) * nparams);
			state.ntypes = nparams;
			plan = SPI_prepare_params(sql, tsw_param_setup, &state, 0);
			if (plan == NULL)
				elog(ERROR, "SPI_prepare_params failed: %s",
					 SPI_result_code_string(SPI_result));
			if (state.ntypes > nparams)
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_PARAMETER),
						 errmsg("query uses parameter $%d but %d parameters were given",
								state.ntypes, nparams)));

			MemoryContextSwitchTo(qcxt);
			paramli = makeParamList(nparams);
			for (i = 0; i < nparams; i++)
			{
				ParamExternData *prm = &paramli->params[i];
				Oid			type = state.types[i];

				if (type == InvalidOid)
					ereport(ERROR,
							(errcode(ERRCODE_PROTOCOL_VIOLATION),
							 errmsg("%d parameters were given but the query does not use $%d",
									nparams, i + 1)));
				prm->ptype = type;
				prm->pflags = PARAM_FLAG_CONST;
				prm->isnull = params[i] == NULL;
				if (prm->isnull)
					prm->value = (Datum) 0;
				else
				{
					Oid			typinput;
					Oid			typioparam;

					getTypeInputInfo(type, &typinput, &typioparam);
					prm->value = OidInputFunctionCall(typinput, (char *) params[i],
													  typioparam, -1);
				}
			}
			MemoryContextSwitchTo(oldcontext);
			spi_rc = SPI_execute_plan_with_paramlist(plan, paramli, false, 0);
		}

		if (spi_rc < 0)
			elog(ERROR, "SPI failed: %s", SPI_result_code_string(spi_rc));

		tsw_build_result(SPI_tuptable, SPI_processed, spi_rc, result);
		SPI_freetuptable(SPI_tuptable);
		if (plan != NULL)
			SPI_freeplan(plan);

		ReleaseCurrentSubTransaction();
		in_subxact = false;
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (timeout_ms > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		tsw_query_depth--;
	}
	PG_CATCH();
	{
		tsw_query_depth--;
		if (timeout_ms > 0)
			disable_timeout(STATEMENT_TIMEOUT, false);
		if (*result != NULL)
		{
			tsw_free_result(*result);
			*result = NULL;
		}
		*err = tsw_capture_error(oldcontext);

		/*
		 * SPI reports a position in the statement as an internal position
		 * of an internal query (_SPI_error_callback); the statement is the
		 * caller's own, so report it as a plain position.
		 */
		if ((*err)->position == 0 && (*err)->internal_position > 0 &&
			(*err)->internal_query != NULL && strcmp((*err)->internal_query, sql) == 0)
		{
			(*err)->position = (*err)->internal_position;
			(*err)->internal_position = 0;
			free((*err)->internal_query);
			(*err)->internal_query = NULL;
		}
		if (in_subxact)
			RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		rc = -1;
	}
	PG_END_TRY();

	MemoryContextDelete(qcxt);
	debug_query_string = NULL;
	if (tsw_cancel_for_shutdown && tsw_query_depth == 0)
	{
		/* the statement ended before it noticed the cancel */
		tsw_cancel_for_shutdown = false;
		QueryCancelPending = false;
	}
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
