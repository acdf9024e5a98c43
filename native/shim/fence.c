/*-------------------------------------------------------------------------
 *
 * fence.c
 *		The write fence of cluster mode: a lease on writes, kept in shared
 *		memory and checked by every backend.
 *
 * In cluster mode (the built-in promoter with tsworker_promoter.etcd_hosts
 * set) a server accepts writes only while its promoter holds the cluster's
 * leader key in etcd.  Each time the promoter renews its etcd lease it
 * opens the fence until shortly before that lease could expire
 * (tsw_fence_open_for); every backend compares that deadline with the
 * monotonic clock before each statement and at commit.  Past it, a
 * statement that writes fails with SQLSTATE 25006, as on a standby, and a
 * transaction that wrote cannot commit.  Nothing has to happen for the
 * fence to close: a promoter that stops, hangs or dies leaves a deadline
 * that lapses by itself, before any other member can take the leader key.
 * A server whose postmaster is gone refuses writes too.  The fence is
 * closed whenever shared memory is created (server start, crash restart).
 *
 * Without cluster mode none of this is in use: the hooks only call through.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/parallel.h"
#include "access/xlog.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "postmaster/autovacuum.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "fence.h"

#define TSW_FENCE_REASON_LEN 256

typedef struct TswFence
{
	pg_atomic_uint64 open_until_us; /* CLOCK_MONOTONIC microseconds; 0: closed */
	slock_t		mutex;			/* protects reason and closed_at */
	TimestampTz closed_at;		/* when an explicit close shut an open fence */
	char		reason[TSW_FENCE_REASON_LEN];	/* what a refused write reports */
} TswFence;

/* Set in the postmaster by tsw_fence_manage(); inherited by every child. */
static bool tsw_fence_managed = false;
static TswFence *tsw_fence = NULL;
static bool tsw_fenced_guc = false;	/* storage of tsworker.fenced; the show hook answers */

static GucShowHook prev_read_only_show = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

static void tsw_fence_shmem_request(void);
static void tsw_fence_shmem_startup(void);
static void tsw_fence_executor_start(QueryDesc *queryDesc, int eflags);
static void tsw_fence_process_utility(PlannedStmt *pstmt, const char *queryString,
									  bool readOnlyTree, ProcessUtilityContext context,
									  ParamListInfo params, QueryEnvironment *queryEnv,
									  DestReceiver *dest, QueryCompletion *qc);
static void tsw_fence_xact_callback(XactEvent event, void *arg);
static const char *tsw_fence_show(void);
static const char *tsw_fence_show_read_only(void);
static void tsw_fence_report_read_only(void);
static bool tsw_fence_closed(void);
static TimestampTz tsw_fence_wall_time(uint64 mono_us);
pg_noreturn static void tsw_fence_refuse(const char *what);

static uint64
tsw_fence_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64) ts.tv_sec * 1000000 + (uint64) ts.tv_nsec / 1000;
}

static void
tsw_fence_set_reason(const char *reason)
{
	SpinLockAcquire(&tsw_fence->mutex);
	strlcpy(tsw_fence->reason, reason, sizeof(tsw_fence->reason));
	SpinLockRelease(&tsw_fence->mutex);
}

/* The wall-clock time of a CLOCK_MONOTONIC instant in the past. */
static TimestampTz
tsw_fence_wall_time(uint64 mono_us)
{
	return GetCurrentTimestamp() - (TimestampTz) (tsw_fence_now_us() - mono_us);
}

/*
 * Install the hooks and the read-only parameter tsworker.fenced.  Called
 * from _PG_init while shared_preload_libraries is processed.
 */
void
tsw_fence_init(void)
{
	DefineCustomBoolVariable("tsworker.fenced",
							 "Shows whether cluster mode's write fence refuses writes on this server.",
							 "On while the built-in promoter in cluster mode does not hold the leader lease.",
							 &tsw_fenced_guc,
							 false,
							 PGC_INTERNAL,
							 GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
							 NULL, NULL, tsw_fence_show);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = tsw_fence_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = tsw_fence_shmem_startup;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = tsw_fence_executor_start;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = tsw_fence_process_utility;
	RegisterXactCallback(tsw_fence_xact_callback, NULL);
	tsw_fence_report_read_only();
}

/*
 * default_transaction_read_only, as reported to clients (GUC_REPORT) and
 * shown, follows the fence: "on" on a fenced primary.  libpq decides
 * target_session_attrs=read-write from the reported value (PostgreSQL 14
 * and later report it with in_hot_standby at connection start), so a
 * multi-host connection string skips a fenced former leader as it skips a
 * standby.  Only what is shown changes: the session's setting is left
 * alone, so a session opened while the fence was closed writes once it
 * opens.  The show hook of the built-in parameter (it has none in any
 * release) is replaced from _PG_init, before any backend exists.
 */
static void
tsw_fence_report_read_only(void)
{
	struct config_generic *gen = NULL;

#if PG_VERSION_NUM >= 160000
	gen = find_option("default_transaction_read_only", false, true, ERROR);
#else
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	for (int i = 0; i < n; i++)
	{
		if (strcmp(vars[i]->name, "default_transaction_read_only") == 0)
		{
			gen = vars[i];
			break;
		}
	}
#endif
	if (gen == NULL || gen->vartype != PGC_BOOL)
		return;
	prev_read_only_show = ((struct config_bool *) gen)->show_hook;
	((struct config_bool *) gen)->show_hook = tsw_fence_show_read_only;
}

static const char *
tsw_fence_show_read_only(void)
{
	if (tsw_fence_closed())
		return "on";
	if (prev_read_only_show)
		return prev_read_only_show();
	return DefaultXactReadOnly ? "on" : "off";
}

/* Put writes under the fence (cluster mode).  Postmaster only, before shared memory exists. */
void
tsw_fence_manage(void)
{
	tsw_fence_managed = true;
}

static void
tsw_fence_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(TswFence)));
}

static void
tsw_fence_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	tsw_fence = ShmemInitStruct("pg_tsworker fence", sizeof(TswFence), &found);
	if (!found)
	{
		pg_atomic_init_u64(&tsw_fence->open_until_us, 0);
		SpinLockInit(&tsw_fence->mutex);
		tsw_fence->closed_at = GetCurrentTimestamp();
		strlcpy(tsw_fence->reason,
				"this server has not held the cluster's leader lease since it started",
				sizeof(tsw_fence->reason));
	}
	LWLockRelease(AddinShmemInitLock);
}

void
tsw_fence_open_for(int64_t ms, const char *reason)
{
	uint64		until;
	uint64		now;

	if (tsw_fence == NULL)
		return;
	if (reason != NULL)
		tsw_fence_set_reason(reason);
	now = tsw_fence_now_us();
	if (ms <= 0)
	{
		/*
		 * Since when writes are refused: now, if the fence was open; when its
		 * deadline passed, if it lapsed; unchanged, if it was closed already
		 * (a close repeated each loop must not move it).
		 */
		until = pg_atomic_read_u64(&tsw_fence->open_until_us);
		if (until != 0)
		{
			SpinLockAcquire(&tsw_fence->mutex);
			tsw_fence->closed_at = until > now ? GetCurrentTimestamp() : tsw_fence_wall_time(until);
			SpinLockRelease(&tsw_fence->mutex);
		}
	}
	pg_atomic_write_u64(&tsw_fence->open_until_us, ms > 0 ? now + (uint64) ms * 1000 : 0);
}

int
tsw_fence_state(int64_t *remaining_ms)
{
	uint64		until;

	*remaining_ms = 0;
	if (!tsw_fence_managed || tsw_fence == NULL)
		return 0;
	until = pg_atomic_read_u64(&tsw_fence->open_until_us);
	if (until != 0)
		*remaining_ms = ((int64_t) until - (int64_t) tsw_fence_now_us()) / 1000;
	return 1;
}

/* True when this server is in cluster mode and must not accept a write now. */
static bool
tsw_fence_closed(void)
{
	uint64		until;

	if (!tsw_fence_managed || tsw_fence == NULL)
		return false;
	if (RecoveryInProgress())
		return false;			/* a standby refuses writes by itself */
	if (!PostmasterIsAlive())
		return true;
	until = pg_atomic_read_u64(&tsw_fence->open_until_us);
	return until == 0 || tsw_fence_now_us() >= until;
}

static void
tsw_fence_refuse(const char *what)
{
	char		reason[TSW_FENCE_REASON_LEN];
	TimestampTz since;
	uint64		until;

	if (!PostmasterIsAlive())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot %s: this server does not accept writes", what),
				 errdetail("The postmaster is gone.")));
	SpinLockAcquire(&tsw_fence->mutex);
	strlcpy(reason, tsw_fence->reason, sizeof(reason));
	since = tsw_fence->closed_at;
	SpinLockRelease(&tsw_fence->mutex);
	/* a fence that lapsed (its deadline passed, no renewal) closed at its deadline */
	until = pg_atomic_read_u64(&tsw_fence->open_until_us);
	if (until != 0)
		since = tsw_fence_wall_time(until);
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("cannot %s: this server does not accept writes", what),
			 errdetail("It is fenced since %s: %s.", timestamptz_to_str(since), reason),
			 errhint("Write to the cluster's leader (GET /primary of the promoter's REST API answers 200 there).")));
}

/*
 * Before a statement runs: a fenced server runs it read-only, so that
 * anything it would write (a function called by a SELECT, nextval()) fails
 * as on a standby; a statement that is itself a write is refused with the
 * reason.
 */
static void
tsw_fence_executor_start(QueryDesc *queryDesc, int eflags)
{
	if (!IsParallelWorker() && tsw_fence_closed())
	{
		XactReadOnly = true;
		if (queryDesc->operation != CMD_SELECT || queryDesc->plannedstmt->hasModifyingCTE)
			tsw_fence_refuse(queryDesc->operation == CMD_INSERT ? "execute INSERT" :
							 queryDesc->operation == CMD_UPDATE ? "execute UPDATE" :
							 queryDesc->operation == CMD_DELETE ? "execute DELETE" : "write");
	}
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * Utility statements (DDL, COPY FROM, ...) run read-only on a fenced server.
 * Two-phase commit is refused outright: PostgreSQL lets COMMIT PREPARED and
 * ROLLBACK PREPARED run in a read-only transaction, and the transaction
 * running them has no transaction ID of its own, so neither read-only mode
 * nor the commit check would stop a fenced server from committing a
 * prepared transaction (and acknowledging it) after another member took
 * over; PREPARE TRANSACTION writes its state even without one.
 */
static void
tsw_fence_process_utility(PlannedStmt *pstmt, const char *queryString,
						  bool readOnlyTree, ProcessUtilityContext context,
						  ParamListInfo params, QueryEnvironment *queryEnv,
						  DestReceiver *dest, QueryCompletion *qc)
{
	if (!IsParallelWorker() && IsTransactionState() && tsw_fence_closed())
	{
		Node	   *stmt = pstmt->utilityStmt;

		XactReadOnly = true;
		if (stmt != NULL && IsA(stmt, TransactionStmt))
		{
			TransactionStmtKind kind = ((TransactionStmt *) stmt)->kind;

			if (kind == TRANS_STMT_PREPARE)
				tsw_fence_refuse("execute PREPARE TRANSACTION");
			if (kind == TRANS_STMT_COMMIT_PREPARED)
				tsw_fence_refuse("execute COMMIT PREPARED");
			if (kind == TRANS_STMT_ROLLBACK_PREPARED)
				tsw_fence_refuse("execute ROLLBACK PREPARED");
		}
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

/*
 * At commit: a transaction that wrote (it has a transaction ID) cannot
 * commit on a fenced server, whenever its writes happened.  Autovacuum's
 * own bookkeeping is let through.
 */
static void
tsw_fence_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_PRE_PREPARE)
		return;
	if (tsw_am_autovacuum_worker() || !TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return;
	if (tsw_fence_closed())
		tsw_fence_refuse(event == XACT_EVENT_PRE_PREPARE ? "prepare a transaction that wrote" :
						 "commit a transaction that wrote");
}

static const char *
tsw_fence_show(void)
{
	return tsw_fence_closed() ? "on" : "off";
}
