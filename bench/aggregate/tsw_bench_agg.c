/*
 * tsw_bench_agg.c — the C side of the pg_tsworker aggregate benchmark
 * (bench/aggregate).
 *
 * PostgreSQL 15's src/test/modules/worker_spi/worker_spi.c, ported as
 * faithfully as a benchmark baseline allows: the same initialize_worker_spi()
 * (schema<N>.counted with its CHECK and its unique index on the one 'total'
 * row), the same fold statement run with SPI_execute in one transaction per
 * pass, the same pgstat_report_activity / pgstat_report_stat calls, the same
 * LOG line, and the same WaitLatch(naptime) loop with SIGHUP handled by
 * SignalHandlerForConfigReload and SIGTERM by die.
 *
 * What differs from worker_spi, and why:
 *   - It is only ever launched dynamically (tsw_bench_agg_launch), so it
 *     needs no shared_preload_libraries and registers nothing in _PG_init.
 *   - The naptime comes from the launcher in milliseconds (bgw_extra)
 *     instead of the worker_spi.naptime GUC in seconds.
 *   - It connects to the launcher's database (or the one named) as the
 *     launching role, by OID, like worker_spi does since PostgreSQL 16,
 *     instead of the worker_spi.database GUC.
 *   - tsw_bench_agg_wake(pid) sets the worker's latch from SQL, the
 *     counterpart of tsworker.wake(name).
 */
#include "postgres.h"

/* These are always necessary for a bgworker */
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"

/* these headers are used by this particular worker's code */
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "pgstat.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(tsw_bench_agg_launch);
PG_FUNCTION_INFO_V1(tsw_bench_agg_wake);

PGDLLEXPORT void tsw_bench_agg_main(Datum main_arg);

#define TSW_BENCH_AGG_TYPE "tsw_bench_agg"

/* What the launching backend hands to the worker, in bgw_extra. */
typedef struct AggArgs
{
	Oid			dboid;
	Oid			roleoid;
	int32		naptime_ms;
} AggArgs;

StaticAssertDecl(sizeof(AggArgs) <= BGW_EXTRALEN, "AggArgs must fit in bgw_extra");

typedef struct worktable
{
	const char *schema;
	const char *name;
} worktable;

/*
 * Initialize workspace for a worker process: create the schema if it doesn't
 * already exist.  (worker_spi's initialize_worker_spi, unchanged.)
 */
static void
initialize_worker_spi(worktable *table)
{
	int			ret;
	int			ntup;
	bool		isnull;
	StringInfoData buf;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "initializing worker_spi schema");

	/* XXX could we use CREATE SCHEMA IF NOT EXISTS? */
	initStringInfo(&buf);
	appendStringInfo(&buf, "select count(*) from pg_namespace where nspname = '%s'",
					 table->schema);

	debug_query_string = buf.data;
	ret = SPI_execute(buf.data, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(FATAL, "SPI_execute failed: error code %d", ret);

	if (SPI_processed != 1)
		elog(FATAL, "not a singleton result");

	ntup = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
									   SPI_tuptable->tupdesc,
									   1, &isnull));
	if (isnull)
		elog(FATAL, "null result");

	if (ntup == 0)
	{
		debug_query_string = NULL;
		resetStringInfo(&buf);
		appendStringInfo(&buf,
						 "CREATE SCHEMA \"%s\" "
						 "CREATE TABLE \"%s\" ("
						 "		type text CHECK (type IN ('total', 'delta')), "
						 "		value	integer)"
						 "CREATE UNIQUE INDEX \"%s_unique_total\" ON \"%s\" (type) "
						 "WHERE type = 'total'",
						 table->schema, table->name, table->name, table->name);

		/* set statement start time */
		SetCurrentStatementStartTimestamp();

		debug_query_string = buf.data;
		ret = SPI_execute(buf.data, false, 0);

		if (ret != SPI_OK_UTILITY)
			elog(FATAL, "failed to create my schema");

		debug_query_string = NULL;	/* rest is not statement-specific */
	}

	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	debug_query_string = NULL;
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
tsw_bench_agg_main(Datum main_arg)
{
	int			index = DatumGetInt32(main_arg);
	AggArgs		args;
	worktable  *table;
	StringInfoData buf;
	char		name[20];

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));

	table = palloc(sizeof(worktable));
	sprintf(name, "schema%d", index);
	table->schema = pstrdup(name);
	table->name = pstrdup("counted");

	/* Establish signal handlers before unblocking signals. */
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);

	/* We're now ready to receive signals */
	BackgroundWorkerUnblockSignals();

	/* Connect to our database */
	BackgroundWorkerInitializeConnectionByOid(args.dboid, args.roleoid, 0);

	elog(LOG, "%s initialized with %s.%s",
		 MyBgworkerEntry->bgw_name, table->schema, table->name);
	initialize_worker_spi(table);

	/*
	 * Quote identifiers passed to us.  Note that this must be done after
	 * initialize_worker_spi, because that routine assumes the names are not
	 * quoted.
	 *
	 * Note some memory might be leaked here.
	 */
	table->schema = quote_identifier(table->schema);
	table->name = quote_identifier(table->name);

	initStringInfo(&buf);
	appendStringInfo(&buf,
					 "WITH deleted AS (DELETE "
					 "FROM %s.%s "
					 "WHERE type = 'delta' RETURNING value), "
					 "total AS (SELECT coalesce(sum(value), 0) as sum "
					 "FROM deleted) "
					 "UPDATE %s.%s "
					 "SET value = %s.value + total.sum "
					 "FROM total WHERE type = 'total' "
					 "RETURNING %s.value",
					 table->schema, table->name,
					 table->schema, table->name,
					 table->name,
					 table->name);

	/*
	 * Main loop: do this until SIGTERM is received and processed by
	 * ProcessInterrupts.
	 */
	for (;;)
	{
		int			ret;

		/*
		 * Background workers mustn't call usleep() or any direct equivalent:
		 * instead, they may wait on their process latch, which sleeps as
		 * necessary, but is awakened if postmaster dies.  That way the
		 * background process goes away immediately in an emergency.
		 */
		(void) WaitLatch(MyLatch,
						 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 args.naptime_ms,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);

		CHECK_FOR_INTERRUPTS();

		/*
		 * In case of a SIGHUP, just reload the configuration.
		 */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		/*
		 * Start a transaction on which we can run queries.  Note that each
		 * StartTransactionCommand() call should be preceded by a
		 * SetCurrentStatementStartTimestamp() call, which sets both the time
		 * for the statement we're about the run, and also the transaction
		 * start time.
		 *
		 * The SPI_connect() call lets us run queries through the SPI manager,
		 * and the PushActiveSnapshot() call creates an "active" snapshot
		 * which is necessary for queries to have MVCC data to work on.
		 *
		 * The pgstat_report_activity() call makes our activity visible
		 * through the pgstat views.
		 */
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		debug_query_string = buf.data;
		pgstat_report_activity(STATE_RUNNING, buf.data);

		/* We can now execute queries via SPI */
		ret = SPI_execute(buf.data, false, 0);

		if (ret != SPI_OK_UPDATE_RETURNING)
			elog(FATAL, "cannot select from table %s.%s: error code %d",
				 table->schema, table->name, ret);

		if (SPI_processed > 0)
		{
			bool		isnull;
			int32		val;

			val = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
											  SPI_tuptable->tupdesc,
											  1, &isnull));
			if (!isnull)
				elog(LOG, "%s: count in %s.%s is now %d",
					 MyBgworkerEntry->bgw_name,
					 table->schema, table->name, val);
		}

		/*
		 * And finish our transaction.
		 */
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		debug_query_string = NULL;
		pgstat_report_stat(true);
		pgstat_report_activity(STATE_IDLE, NULL);
	}

	/* Not reachable */
}

/*
 * SQL: tsw_bench_agg_launch(index int, naptime_ms int DEFAULT 10000,
 *                           database name DEFAULT NULL) returns int
 *
 * Dynamically launch a worker (worker_spi_launch, plus the naptime, the
 * database and the role in bgw_extra) and return its pid once started.
 */
Datum
tsw_bench_agg_launch(PG_FUNCTION_ARGS)
{
	int32		i;
	int32		naptime_ms = PG_ARGISNULL(1) ? 10000 : PG_GETARG_INT32(1);
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	AggArgs		args;
	pid_t		pid;

	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("index must not be null")));
	i = PG_GETARG_INT32(0);
	if (i < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("index must not be negative")));
	if (naptime_ms < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("naptime_ms must be at least 1")));

	memset(&args, 0, sizeof(args));
	args.dboid = PG_ARGISNULL(2) ? MyDatabaseId
		: get_database_oid(NameStr(*PG_GETARG_NAME(2)), false);
	args.roleoid = GetUserId();
	args.naptime_ms = naptime_ms;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS |
		BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	sprintf(worker.bgw_library_name, "tsw_bench_agg");
	sprintf(worker.bgw_function_name, "tsw_bench_agg_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "tsw_bench_agg worker %d", i);
	snprintf(worker.bgw_type, BGW_MAXLEN, TSW_BENCH_AGG_TYPE);
	worker.bgw_main_arg = Int32GetDatum(i);
	memcpy(worker.bgw_extra, &args, sizeof(args));
	/* set bgw_notify_pid so that we can use WaitForBackgroundWorkerStartup */
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not register background worker"),
				 errhint("Raise max_worker_processes.")));

	status = WaitForBackgroundWorkerStartup(handle, &pid);

	if (status == BGWH_STOPPED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start background process"),
				 errhint("More details may be available in the server log.")));
	if (status == BGWH_POSTMASTER_DIED)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("cannot start background processes without postmaster"),
				 errhint("Kill all remaining database processes and restart the database.")));
	Assert(status == BGWH_STARTED);

	PG_RETURN_INT32(pid);
}

/*
 * SQL: tsw_bench_agg_wake(pid int) returns boolean
 *
 * Set the latch of a running tsw_bench_agg worker, as tsworker.wake() does
 * for a pg_tsworker worker. A worker that has started but not yet connected
 * to its database is not in the proc array yet: false, as for an unknown pid.
 */
Datum
tsw_bench_agg_wake(PG_FUNCTION_ARGS)
{
	int32		pid = PG_GETARG_INT32(0);
	const char *type;
	PGPROC	   *proc;

	type = GetBackgroundWorkerTypeByPid((pid_t) pid);
	if (type == NULL || strcmp(type, TSW_BENCH_AGG_TYPE) != 0)
		PG_RETURN_BOOL(false);
	proc = BackendPidGetProc(pid);
	if (proc == NULL)
		PG_RETURN_BOOL(false);
	SetLatch(&proc->procLatch);
	PG_RETURN_BOOL(true);
}
