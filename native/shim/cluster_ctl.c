/*-------------------------------------------------------------------------
 *
 * cluster_ctl.c
 *		SQL functions of cluster mode's planned operations:
 *		tsworker.switchover(), tsworker.failover(), tsworker.pause(),
 *		tsworker.resume().
 *
 * Each runs dist/workers/cluster/ctl.js in a pg_tsworker_node child of the
 * calling backend, with the member's cluster settings (those of the
 * built-in promoter in cluster mode).  The child talks to etcd and the
 * members, posts the request the members act on, and prints one line:
 *
 *     ok <JSON>
 *     error <SQLSTATE> <message> <detail> <hint>
 *
 * The wait is bounded (the timeout argument, and a margin for the child
 * itself) and can be cancelled (pg_cancel_backend, statement_timeout):
 * the child is killed then, and a request it posted ends at its deadline.
 * On a standby the waiting backend advertises no xmin when that is safe
 * (tsw_may_release_xmin), so that its own snapshot cannot hold back the
 * replay a promotion of this member needs.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/transam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "storage/proc.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pg_tsworker.h"

PG_FUNCTION_INFO_V1(tsworker_switchover);
PG_FUNCTION_INFO_V1(tsworker_failover);
PG_FUNCTION_INFO_V1(tsworker_pause);
PG_FUNCTION_INFO_V1(tsworker_resume);

/*
 * What the child may take beyond the operation's own timeout before it is
 * killed.  The child counts the timeout from the call (--started_at); past
 * it, it waits up to 3 s to report how a request the members had begun
 * ended, and its last etcd read may take up to max(retry_timeout, 5 s).
 */
#define TSW_CTL_MARGIN_MS 15000
#define TSW_CTL_DEFAULT_MS 60000

static bool tsw_may_release_xmin(FunctionCallInfo fcinfo);
static char *tsw_cluster_request(FunctionCallInfo fcinfo, const char *op, const char *candidate,
								 const char *leader, bool force, int64 timeout_ms);

/* Milliseconds of an interval argument, within 1 s .. 1 h. */
static int64
tsw_timeout_ms(Interval *iv)
{
	double		ms = iv->time / 1000.0 + iv->day * 86400000.0 + iv->month * (double) DAYS_PER_MONTH * 86400000.0;

	if (ms < 1000 || ms > 3600000)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("timeout must be between 1 second and 1 hour")));
	return (int64) ms;
}

/* Split `s` at tabs in place, into at most `max` fields; returns how many. */
static int
tsw_split_tabs(char *s, char **fields, int max)
{
	int			n = 0;

	while (n < max)
	{
		char	   *tab = strchr(s, '\t');

		fields[n++] = s;
		if (tab == NULL)
			break;
		*tab = '\0';
		s = tab + 1;
	}
	return n;
}

/*
 * Whether this backend may advertise no xmin while a switchover or failover
 * it asked for runs.
 *
 * On a standby, the snapshot of a running statement holds back the replay
 * of a record that removes rows it still sees (a recovery conflict): the
 * startup process waits up to max_standby_streaming_delay, then cancels
 * the statement.  A switchover or failover to this very member needs that
 * replay (the promotion ends only once everything received is replayed),
 * so the call would hold back its own switchover for the delay and then
 * fail with 40001 although the switchover went through.
 *
 * Advertising no xmin is safe when nothing will read tuples with a
 * snapshot taken before or during the wait: the statement is a plain
 * "SELECT tsworker.switchover(...)" (a Result plan with no relation whose
 * only output column is this function's call: not called from a function,
 * nor next to one, that could read with the statement's snapshot
 * afterwards), outside a transaction block and with no other portal open
 * (no other snapshot of the transaction, such as a cursor's or a partly
 * fetched portal's, exists), at READ COMMITTED. Anything else keeps its
 * xmin, and the promotion ends the session if it holds the replay back
 * (src/workers/recovery-conflicts.ts).
 */
static bool
tsw_may_release_xmin(FunctionCallInfo fcinfo)
{
	PlannedStmt *ps;
	ListCell   *lc;
	bool		found = false;

	if (fcinfo == NULL || !RecoveryInProgress() || IsTransactionBlock() ||
		XactIsoLevel != XACT_READ_COMMITTED)
		return false;
	if (ActivePortal == NULL || list_length(ActivePortal->stmts) != 1)
		return false;
	ps = linitial_node(PlannedStmt, ActivePortal->stmts);
	if (ps->commandType != CMD_SELECT || ps->planTree == NULL ||
		!IsA(ps->planTree, Result) || outerPlan(ps->planTree) != NULL)
		return false;
	foreach(lc, ps->rtable)
	{
		if (lfirst_node(RangeTblEntry, lc)->rtekind != RTE_RESULT)
			return false;
	}
	if (!ThereAreNoReadyPortals())
		return false;
	foreach(lc, ps->planTree->targetlist)
	{
		TargetEntry *te = lfirst_node(TargetEntry, lc);

		if (te->resjunk)
			continue;
		if (!IsA(te->expr, FuncExpr) || ((FuncExpr *) te->expr)->funcid != fcinfo->flinfo->fn_oid)
			return false;
		found = true;
	}
	return found;
}

/*
 * Run operation `op` of ctl.js for this member; returns the JSON of an
 * `ok` answer, or raises the error the child reported.  `fcinfo` is the
 * SQL function's call when its wait may release the xmin, else NULL.
 */
static char *
tsw_cluster_request(FunctionCallInfo fcinfo, const char *op, const char *candidate,
					const char *leader, bool force, int64 timeout_ms)
{
	/* the timeout counts from here: the child's start-up is part of it */
	TimestampTz started = GetCurrentTimestamp();
	int64		started_epoch_ms = started / 1000 +
		(int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * 1000;
	char	   *hosts;
	char	   *config_name = tsw_cluster_promoter(&hosts);
	char	   *args[32];
	int			nargs = 0;
	char	   *volatile output;
	char	   *fields[5];
	int			n;
	const char *optional[] = {"scope", "namespace", "retry_timeout", "citus_group"};
	int			i;
	char	   *v;
	volatile bool released = false;
	volatile TransactionId saved_xmin = InvalidTransactionId;

	/* an empty name is a script's unset variable, not "the most advanced member" */
	if (candidate != NULL && candidate[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("candidate must not be empty"),
				 errhint("Give a member's name, or NULL (switchover only) for the most advanced eligible member.")));
	if (leader != NULL && leader[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("leader must not be empty"),
				 errhint("Give the name of the member expected to lead, or NULL for no check.")));
	if (config_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cluster mode is not on on this server"),
				 errhint("Run the built-in promoter with tsworker_promoter.etcd_hosts set (docs/failover.md, \"Cluster mode\").")));

	args[nargs++] = (char *) op;
	args[nargs++] = "--hosts";
	args[nargs++] = hosts;
	args[nargs++] = "--name";
	args[nargs++] = tsw_member_name(config_name);
	for (i = 0; i < lengthof(optional); i++)
	{
		v = tsw_declared_setting(config_name, optional[i]);
		if (v == NULL)
			continue;
		args[nargs++] = psprintf("--%s", optional[i]);
		args[nargs++] = v;
	}
	v = tsw_declared_setting(config_name, "maximum_lag_on_failover");
	if (v != NULL)
	{
		args[nargs++] = "--max_lag";
		args[nargs++] = v;
	}
	args[nargs++] = "--timeout";
	args[nargs++] = psprintf(INT64_FORMAT, timeout_ms);
	args[nargs++] = "--pid";
	args[nargs++] = psprintf("%d", MyProcPid);
	if (candidate != NULL)
	{
		args[nargs++] = "--candidate";
		args[nargs++] = (char *) candidate;
	}
	if (leader != NULL)
	{
		args[nargs++] = "--leader";
		args[nargs++] = (char *) leader;
	}
	args[nargs++] = "--started_at";
	args[nargs++] = psprintf(INT64_FORMAT, started_epoch_ms);
	if (force)
	{
		args[nargs++] = "--force";
		args[nargs++] = "on";
	}

	if (tsw_may_release_xmin(fcinfo))
	{
		/* the catalog snapshot, if any, is the only other one: drop it */
		InvalidateCatalogSnapshot();
		saved_xmin = MyProc->xmin;
		MyProc->xmin = InvalidTransactionId;
		released = true;
	}
	PG_TRY();
	{
		output = tsw_run_node_script("dist/workers/cluster/ctl.js", args, nargs, true,
									 (int) (timeout_ms + TSW_CTL_MARGIN_MS),
									 psprintf("tsworker.%s()", op));
	}
	PG_FINALLY();
	{
		/* the statement's snapshots are still registered: advertise their xmin again */
		if (released && TransactionIdIsValid(saved_xmin) &&
			(!TransactionIdIsValid(MyProc->xmin) || TransactionIdPrecedes(saved_xmin, MyProc->xmin)))
			MyProc->xmin = saved_xmin;
	}
	PG_END_TRY();
	if (output == NULL || output[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("tsworker.%s() could not run", op),
				 errdetail("The pg_tsworker_node child failed; the server log says why.")));
	output[strcspn(output, "\n")] = '\0';
	n = tsw_split_tabs(output, fields, lengthof(fields));
	if (n == 2 && strcmp(fields[0], "ok") == 0)
		return fields[1];
	if (n >= 3 && strcmp(fields[0], "error") == 0 && strlen(fields[1]) == 5)
	{
		const char *s = fields[1];

		ereport(ERROR,
				(errcode(MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4])),
				 errmsg("%s", fields[2]),
				 n > 3 && fields[3][0] != '\0' ? errdetail("%s", fields[3]) : 0,
				 n > 4 && fields[4][0] != '\0' ? errhint("%s", fields[4]) : 0));
	}
	ereport(ERROR,
			(errcode(ERRCODE_INTERNAL_ERROR),
			 errmsg("tsworker.%s(): unexpected answer from the child: %s", op, output)));
	return NULL;				/* not reached */
}

/*
 * tsworker.switchover(candidate text DEFAULT NULL, timeout interval DEFAULT '60s',
 *					   leader text DEFAULT NULL)
 * RETURNS jsonb: the leader hands over to the candidate (or the most
 * advanced eligible standby) without losing a commit; returns once the
 * new leader accepts writes.  With `leader`, refused unless that member
 * leads.  A definition from before `leader` existed passes two arguments.
 */
Datum
tsworker_switchover(PG_FUNCTION_ARGS)
{
	char	   *candidate = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	int64		timeout_ms = PG_ARGISNULL(1) ? TSW_CTL_DEFAULT_MS : tsw_timeout_ms(PG_GETARG_INTERVAL_P(1));
	char	   *leader = PG_NARGS() > 2 && !PG_ARGISNULL(2) ? text_to_cstring(PG_GETARG_TEXT_PP(2)) : NULL;
	char	   *json = tsw_cluster_request(fcinfo, "switchover", candidate, leader, false, timeout_ms);

	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/*
 * tsworker.failover(candidate text, force boolean DEFAULT false, timeout interval DEFAULT '60s')
 * RETURNS jsonb: with no leader, the candidate takes over; refused when
 * another member holds more WAL, unless forced.
 */
Datum
tsworker_failover(PG_FUNCTION_ARGS)
{
	char	   *candidate;
	bool		force = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	int64		timeout_ms = PG_ARGISNULL(2) ? TSW_CTL_DEFAULT_MS : tsw_timeout_ms(PG_GETARG_INTERVAL_P(2));
	char	   *json;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a manual failover needs a candidate")));
	candidate = text_to_cstring(PG_GETARG_TEXT_PP(0));
	json = tsw_cluster_request(fcinfo, "failover", candidate, NULL, force, timeout_ms);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/* tsworker.pause() RETURNS boolean: maintenance mode on; true when it was off. */
Datum
tsworker_pause(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(strcmp(tsw_cluster_request(NULL, "pause", NULL, NULL, false, 10000), "true") == 0);
}

/* tsworker.resume() RETURNS boolean: maintenance mode off; true when it was on. */
Datum
tsworker_resume(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(strcmp(tsw_cluster_request(NULL, "resume", NULL, NULL, false, 10000), "true") == 0);
}
