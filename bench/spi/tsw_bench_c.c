/*
 * tsw_bench_c.c — the C side of the pg_tsworker SPI benchmark (bench/spi).
 *
 * tsw_bench_c.run(workload text, n int, read_only bool) starts a dynamic background worker
 * connected to the caller's database as the caller's role, waits until it
 * has exited and returns the seconds it measured. The worker runs the
 * workload with SPI in worker_spi's canonical shape
 * (SetCurrentStatementStartTimestamp, StartTransactionCommand, SPI_connect,
 * PushActiveSnapshot, pgstat_report_activity, ..., SPI_finish,
 * PopActiveSnapshot, CommitTransactionCommand), timing only the workload
 * with clock_gettime(CLOCK_MONOTONIC), and writes the result into
 * public.tsw_bench_results before exiting 0.
 *
 * Workloads (identical for every system of the benchmark):
 *   select1  n transactions, each running SELECT 1
 *   insert   one transaction, n times INSERT INTO bench_ins(id, v) VALUES ($1, $2)
 *            (SPI_prepare once, SPI_execute_plan in the loop)
 *   read     one transaction reading every row of bench_read through a cursor
 *            (SPI_cursor_fetch, 10000 rows a batch), every column turned into
 *            a C value (SPI_getbinval; output function for numeric, text,
 *            timestamptz)
 *   lookup   one transaction, n times the prepared
 *            SELECT t FROM bench_read WHERE id = $1 with ids from a
 *            deterministic PRNG (the same sequence as the other systems)
 *
 * read_only (default false) is what select1, read and lookup pass to SPI:
 * false, as the TypeScript bindings do (they cannot know that a statement
 * only reads) and as worker_spi does: SPI then takes a snapshot for each
 * statement and advances the command counter, so that a statement sees
 * what committed before it.  true (lookup then also asks for one row,
 * count = 1) is what a C author who knows the statements only read may
 * write: SPI reuses the transaction's snapshot, so the loop's statements
 * see the database as of the transaction's start.
 *
 * Each workload first runs untimed on a tenth of its size (insert's warm-up
 * rolled back, lookup's from another PRNG seed, read's on the first tenth of
 * the rows), as the TypeScript worker does, so that both time their steady
 * state rather than their first calls.
 *
 * What this code is written to be: what a C author would naturally write for
 * these loops, nothing more clever.
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(tsw_bench_c_run);
PGDLLEXPORT void tsw_bench_c_main(Datum main_arg);

#define READ_BATCH 10000
#define READ_SQL "SELECT id, n, f, t, ts, b FROM bench_read"
/* The untimed warm-up before each workload: a tenth of it (lookup: its own PRNG seed). */
#define WARMUP(n) ((n) / 10)
#define WARMUP_SEED 7

/* What the launching backend hands to the worker, in bgw_extra. */
typedef struct BenchArgs
{
	Oid			dboid;
	Oid			roleoid;
	int32		n;
	int64		token;
	bool		read_only;		/* SPI's read_only for select1, read, lookup */
	char		workload[32];
} BenchArgs;

StaticAssertDecl(sizeof(BenchArgs) <= BGW_EXTRALEN, "BenchArgs must fit in bgw_extra");

/* SPI's read_only argument for select1, read and lookup (BenchArgs). */
static bool bench_read_only = false;

/* Result of one workload. */
typedef struct BenchResult
{
	double		seconds;
	double		cpu_seconds;	/* CPU time of this process (all threads) */
	int64		checksum;		/* workload-specific, compared across systems */
	int64		sink;			/* keeps the compiler from skipping conversions */
} BenchResult;

static double
now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static double
cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* worker_spi's transaction prologue and epilogue */
static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

/* Roll back instead (the insert workload's warm-up). */
static void
abort_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	AbortCurrentTransaction();
	pgstat_report_activity(STATE_IDLE, NULL);
}

static void
end_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* The PRNG every system uses for lookup ids: x = (x * 1103515245 + 12345) mod 2^31. */
static inline uint32
next_rand(uint32 x)
{
	return (x * 1103515245u + 12345u) & 0x7fffffffu;
}

/* select1: n transactions, each SELECT 1. */
static void
run_select1(int n, BenchResult *res)
{
	const char *sql = "SELECT 1";
	int64		sum = 0;
	double		t0 = now_seconds();
	double		c0 = cpu_seconds();

	for (int i = 0; i < n; i++)
	{
		bool		isnull;
		int			ret;

		CHECK_FOR_INTERRUPTS();
		begin_tx(sql);
		ret = SPI_execute(sql, bench_read_only, 0);
		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "SELECT 1 failed: %s", SPI_result_code_string(ret));
		sum += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		end_tx();
	}
	res->seconds = now_seconds() - t0;
	res->cpu_seconds = cpu_seconds() - c0;
	res->checksum = sum;
}

/* insert: one transaction of n parameterised single-row inserts (rolled back unless keep). */
static void
run_insert(int n, bool keep, BenchResult *res)
{
	const char *sql = "INSERT INTO bench_ins(id, v) VALUES ($1, $2)";
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	int64		inserted = 0;
	double		t0 = now_seconds();
	double		c0 = cpu_seconds();
	SPIPlanPtr	plan;
	MemoryContext loopcxt;

	begin_tx(sql);
	plan = SPI_prepare(sql, 2, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	loopcxt = AllocSetContextCreate(CurrentMemoryContext, "tsw_bench_c insert", ALLOCSET_SMALL_SIZES);
	for (int i = 1; i <= n; i++)
	{
		Datum		values[2];
		char		buf[32];
		MemoryContext old;
		int			ret;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(loopcxt);
		snprintf(buf, sizeof(buf), "v%d", i);
		values[0] = Int64GetDatum((int64) i);
		values[1] = CStringGetTextDatum(buf);
		MemoryContextSwitchTo(old);
		ret = SPI_execute_plan(plan, values, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "INSERT failed: %s", SPI_result_code_string(ret));
		inserted += SPI_processed;
		MemoryContextReset(loopcxt);
	}
	SPI_freeplan(plan);
	if (keep)
		end_tx();
	else
		abort_tx();
	res->seconds = now_seconds() - t0;
	res->cpu_seconds = cpu_seconds() - c0;
	res->checksum = inserted;
}

/* read: every row and column of sql's rows (bench_read's) through a cursor. */
static void
run_read(const char *sql, BenchResult *res)
{
	int64		rows = 0;
	int64		sink = 0;
	double		fsum = 0;
	double		t0 = now_seconds();
	double		c0 = cpu_seconds();
	SPIPlanPtr	plan;
	Portal		portal;
	FmgrInfo	numeric_out,
				text_out,
				tstz_out;
	Oid			func;
	bool		varlena;
	MemoryContext batchcxt;

	begin_tx(sql);
	getTypeOutputInfo(NUMERICOID, &func, &varlena);
	fmgr_info(func, &numeric_out);
	getTypeOutputInfo(TEXTOID, &func, &varlena);
	fmgr_info(func, &text_out);
	getTypeOutputInfo(TIMESTAMPTZOID, &func, &varlena);
	fmgr_info(func, &tstz_out);

	plan = SPI_prepare(sql, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, bench_read_only);
	batchcxt = AllocSetContextCreate(CurrentMemoryContext, "tsw_bench_c read", ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		got;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, READ_BATCH);
		got = SPI_processed;
		tt = SPI_tuptable;
		if (got == 0)
		{
			SPI_freetuptable(tt);
			break;
		}
		for (uint64 r = 0; r < got; r++)
		{
			HeapTuple	tup = tt->vals[r];
			TupleDesc	desc = tt->tupdesc;
			MemoryContext old = MemoryContextSwitchTo(batchcxt);
			bool		isnull;
			Datum		d;

			d = SPI_getbinval(tup, desc, 1, &isnull);
			if (!isnull)
				sink += DatumGetInt64(d);
			d = SPI_getbinval(tup, desc, 2, &isnull);
			if (!isnull)
				sink += strlen(OutputFunctionCall(&numeric_out, d));
			d = SPI_getbinval(tup, desc, 3, &isnull);
			if (!isnull)
				fsum += DatumGetFloat8(d);
			d = SPI_getbinval(tup, desc, 4, &isnull);
			if (!isnull)
				sink += strlen(OutputFunctionCall(&text_out, d));
			d = SPI_getbinval(tup, desc, 5, &isnull);
			if (!isnull)
				sink += strlen(OutputFunctionCall(&tstz_out, d));
			d = SPI_getbinval(tup, desc, 6, &isnull);
			if (!isnull)
				sink += DatumGetBool(d) ? 1 : 0;
			MemoryContextSwitchTo(old);
			rows++;
		}
		SPI_freetuptable(tt);
		MemoryContextReset(batchcxt);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	end_tx();
	res->seconds = now_seconds() - t0;
	res->cpu_seconds = cpu_seconds() - c0;
	res->checksum = rows;
	res->sink = sink + (int64) fsum;
}

/* lookup: n prepared point lookups with PRNG ids in 1..maxid, from seed. */
static void
run_lookup(int n, int64 maxid, uint32 seed, BenchResult *res)
{
	const char *sql = "SELECT t FROM bench_read WHERE id = $1";
	Oid			argtypes[1] = {INT8OID};
	int64		total_len = 0;
	uint32		x = seed;
	double		t0 = now_seconds();
	double		c0 = cpu_seconds();
	SPIPlanPtr	plan;

	begin_tx(sql);
	plan = SPI_prepare(sql, 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	for (int i = 0; i < n; i++)
	{
		Datum		arg;
		int			ret;

		CHECK_FOR_INTERRUPTS();
		x = next_rand(x);
		arg = Int64GetDatum(1 + (int64) (x % (uint64) maxid));
		ret = SPI_execute_plan(plan, &arg, NULL, bench_read_only, bench_read_only ? 1 : 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "lookup failed: %s", SPI_result_code_string(ret));
		if (SPI_processed == 1)
		{
			bool		isnull;
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull)
			{
				char	   *s = TextDatumGetCString(d);

				total_len += strlen(s);
				pfree(s);
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_freeplan(plan);
	end_tx();
	res->seconds = now_seconds() - t0;
	res->cpu_seconds = cpu_seconds() - c0;
	res->checksum = total_len;
}

/* max(id) of bench_read, outside the timed part */
static int64
read_maxid(void)
{
	const char *sql = "SELECT max(id) FROM bench_read";
	bool		isnull;
	Datum		d;
	int64		maxid;

	begin_tx(sql);
	if (SPI_execute(sql, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "%s failed", sql);
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	maxid = isnull ? 0 : DatumGetInt64(d);
	end_tx();
	if (maxid < 1)
		elog(ERROR, "bench_read is empty");
	return maxid;
}

static void
write_result(const BenchArgs *args, const BenchResult *res)
{
	const char *sql = "INSERT INTO public.tsw_bench_results(system, workload, n, seconds, checksum, token, cpu_seconds) "
		"VALUES ('c', $1, $2, $3, $4, $5, $6)";
	Oid			argtypes[6] = {TEXTOID, INT4OID, FLOAT8OID, INT8OID, INT8OID, FLOAT8OID};
	Datum		values[6];
	int			ret;

	begin_tx(sql);
	values[0] = CStringGetTextDatum(args->workload);
	values[1] = Int32GetDatum(args->n);
	values[2] = Float8GetDatum(res->seconds);
	values[3] = Int64GetDatum(res->checksum);
	values[4] = Int64GetDatum(args->token);
	values[5] = Float8GetDatum(res->cpu_seconds);
	ret = SPI_execute_with_args(sql, 6, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "writing the result failed: %s", SPI_result_code_string(ret));
	end_tx();
}

void
tsw_bench_c_main(Datum main_arg)
{
	BenchArgs	args;
	BenchResult res = {0};
	BenchResult warm = {0};

	memcpy(&args, MyBgworkerEntry->bgw_extra, sizeof(args));
	bench_read_only = args.read_only;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(args.dboid, args.roleoid, 0);
	pgstat_report_appname("tsw_bench_c");

	/*
	 * Each workload runs first untimed on a tenth of its size (as the
	 * TypeScript worker does: there it is JIT compilation and the heap's
	 * growth, here the caches), then timed.
	 */
	if (strcmp(args.workload, "select1") == 0)
	{
		run_select1(WARMUP(args.n), &warm);
		run_select1(args.n, &res);
	}
	else if (strcmp(args.workload, "insert") == 0)
	{
		run_insert(WARMUP(args.n), false, &warm);
		run_insert(args.n, true, &res);
	}
	else if (strcmp(args.workload, "read") == 0)
	{
		char		warm_sql[128];

		/* n: bench_read's rows */
		snprintf(warm_sql, sizeof(warm_sql), "%s LIMIT %d", READ_SQL, WARMUP(args.n));
		run_read(warm_sql, &warm);
		run_read(READ_SQL, &res);
	}
	else if (strcmp(args.workload, "lookup") == 0)
	{
		int64		maxid = read_maxid();

		run_lookup(WARMUP(args.n), maxid, WARMUP_SEED, &warm);
		run_lookup(args.n, maxid, 42, &res);
	}
	else
		elog(ERROR, "unknown workload \"%s\"", args.workload);

	write_result(&args, &res);
	elog(DEBUG1, "tsw_bench_c: %s n=%d: %.6f s, checksum " INT64_FORMAT ", sink " INT64_FORMAT,
		 args.workload, args.n, res.seconds, res.checksum, res.sink);
	proc_exit(0);
}

/* SQL: tsw_bench_c.run(workload text, n int, read_only bool = false) returns float8 */
Datum
tsw_bench_c_run(PG_FUNCTION_ARGS)
{
	char	   *workload = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int32		n = PG_GETARG_INT32(1);
	bool		read_only = PG_NARGS() > 2 ? PG_GETARG_BOOL(2) : false;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	BgwHandleStatus status;
	BenchArgs	args;
	pid_t		pid;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	double		seconds;
	bool		isnull;
	int			ret;

	if (strlen(workload) >= sizeof(args.workload))
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("workload name too long")));
	if (strcmp(workload, "select1") != 0 && strcmp(workload, "insert") != 0 &&
		strcmp(workload, "read") != 0 && strcmp(workload, "lookup") != 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("unknown workload \"%s\"", workload),
						errhint("Use select1, insert, read or lookup.")));
	if (n < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("n must not be negative")));

	memset(&args, 0, sizeof(args));
	args.dboid = MyDatabaseId;
	args.roleoid = GetUserId();
	args.n = n;
	args.read_only = read_only;
	args.token = ((int64) GetCurrentTimestamp() << 8) ^ MyProcPid;
	strlcpy(args.workload, workload, sizeof(args.workload));

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "tsw_bench_c");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tsw_bench_c_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "tsw_bench_c %s", workload);
	snprintf(worker.bgw_type, BGW_MAXLEN, "tsw_bench_c");
	worker.bgw_main_arg = Int32GetDatum(n);
	memcpy(worker.bgw_extra, &args, sizeof(args));
	worker.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
						errmsg("could not register background worker"),
						errhint("Raise max_worker_processes.")));
	status = WaitForBackgroundWorkerStartup(handle, &pid);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(ERROR, (errmsg("postmaster died while starting the benchmark worker")));
	status = WaitForBackgroundWorkerShutdown(handle);
	if (status == BGWH_POSTMASTER_DIED)
		ereport(ERROR, (errmsg("postmaster died during the benchmark")));

	/* The worker committed its row before exiting: a new snapshot sees it. */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	values[0] = Int64GetDatum(args.token);
	ret = SPI_execute_with_args("SELECT seconds FROM public.tsw_bench_results WHERE system = 'c' AND token = $1",
								1, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "reading the result failed: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1)
		ereport(ERROR, (errmsg("the benchmark worker (pid %d) wrote no result", (int) pid),
						errhint("See the server log for its error.")));
	seconds = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_FLOAT8(seconds);
}
