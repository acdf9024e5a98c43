/*-------------------------------------------------------------------------
 *
 * pg_xact.c
 *		Transactions and savepoints of the addon.
 *
 * Transactions follow worker_spi's shape (start timestamp,
 * StartTransactionCommand, SPI_connect, an active snapshot, activity
 * reporting).  A transaction either runs each statement in its own
 * internal subtransaction (statement savepoints, the default), so that a
 * caught SQL error rolls back only that statement, or runs them directly,
 * as a PostgreSQL session does: a failed statement then fails the
 * innermost savepoint or the transaction.  Savepoints are internal
 * subtransactions that JavaScript opens and closes, handled like
 * PL/Python's.  After SIGTERM, a COMMIT may take only what is left of
 * tsworker.terminate_grace.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"

#include "../shim/pg_tsworker.h"
#include "pg_internal.h"

bool		tsw_xact_open = false;
bool		tsw_stmt_savepoints = true;
bool		tsw_xact_failed = false;

#define TSW_MAX_SAVEPOINTS 64
static TswSavepoint tsw_savepoints[TSW_MAX_SAVEPOINTS];
static int	tsw_savepoint_depth = 0;

static TswError *tsw_aborted_error(void);

TswSavepoint *
tsw_innermost_savepoint(void)
{
	return tsw_savepoint_depth > 0 ? &tsw_savepoints[tsw_savepoint_depth - 1] : NULL;
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
 * Once SIGTERM arrived, a statement may take at most what is left of
 * tsworker.terminate_grace: it is then cancelled (57014) and the worker
 * stops cleanly, instead of being terminated by the watchdog.
 */
int
tsw_timeout_after_sigterm(int timeout_ms)
{
	int			left = tsw_ms_left_before_grace();

	if (left < 0)
		return timeout_ms;
	return timeout_ms > 0 ? Min(timeout_ms, left) : left;
}

/*
 * A cancel the SIGTERM handler set for a call that ended before noticing
 * it must not fail the next statement.
 */
void
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
	int			left;

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
	tsw_slot_set_activity(TSW_ACTIVITY_SQL);
	left = tsw_ms_left_before_grace();
	PG_TRY();
	{
		SPI_finish();
		PopActiveSnapshot();
		if (left > 0)
			enable_timeout_after(STATEMENT_TIMEOUT, left);
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
	if (left > 0)
		disable_timeout(STATEMENT_TIMEOUT, false);
	tsw_query_depth--;
	if (tsw_query_depth == 0)
		tsw_slot_set_activity(TSW_ACTIVITY_JAVASCRIPT);
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
bool
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
