/*-------------------------------------------------------------------------
 *
 * wake.c
 *		tsworker.wake() at commit: wakes asked in a transaction are queued
 *		and delivered when it commits, as NOTIFY is, and dropped when it (or
 *		the subtransaction that asked) rolls back.
 *
 * A trigger that wakes a worker about the row it inserts must not wake it
 * before the row is visible: the worker would find nothing and sleep a
 * whole naptime.  The queue lives in TopTransactionContext, one entry per
 * name and subtransaction; a committed subtransaction hands its entries to
 * its parent, an aborted one drops them (the SubXactCallback), and the
 * top-level commit delivers each name once (the XactCallback, which must
 * not fail: a name that no longer matches any worker is skipped).  Like
 * NOTIFY, a transaction that queued wakes cannot be prepared for two-phase
 * commit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "nodes/pg_list.h"
#include "utils/memutils.h"

#include "pg_tsworker.h"
#include "slot_control.h"

typedef struct TswPendingWake
{
	SubTransactionId subid;		/* the subtransaction that asked */
	char		name[TSW_NAME_MAXLEN + 1];
} TswPendingWake;

/* in TopTransactionContext; NIL outside a transaction that woke */
static List *tsw_pending_wakes = NIL;
static bool tsw_wake_callbacks = false;

static void tsw_wake_xact_callback(XactEvent event, void *arg);
static void tsw_wake_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
									  SubTransactionId parentSubid, void *arg);

void
tsw_wake_at_commit(const char *name)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	ListCell   *lc;
	TswPendingWake *wake;
	MemoryContext oldcontext;

	if (!tsw_wake_callbacks)
	{
		RegisterXactCallback(tsw_wake_xact_callback, NULL);
		RegisterSubXactCallback(tsw_wake_subxact_callback, NULL);
		tsw_wake_callbacks = true;
	}

	/* a trigger firing for every row asks for the same wake many times */
	foreach(lc, tsw_pending_wakes)
	{
		wake = (TswPendingWake *) lfirst(lc);
		if (wake->subid == subid && pg_strcasecmp(wake->name, name) == 0)
			return;
	}

	oldcontext = MemoryContextSwitchTo(TopTransactionContext);
	wake = palloc(sizeof(TswPendingWake));
	wake->subid = subid;
	strlcpy(wake->name, name, sizeof(wake->name));
	tsw_pending_wakes = lappend(tsw_pending_wakes, wake);
	MemoryContextSwitchTo(oldcontext);
}

static void
tsw_wake_xact_callback(XactEvent event, void *arg)
{
	ListCell   *lc;

	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			if (tsw_pending_wakes != NIL)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("cannot PREPARE a transaction that has called tsworker.wake()")));
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			/* each name once; nothing here may fail: the commit is done */
			foreach(lc, tsw_pending_wakes)
			{
				TswPendingWake *wake = (TswPendingWake *) lfirst(lc);
				bool		seen = false;
				int			i;

				for (i = 0; i < foreach_current_index(lc) && !seen; i++)
					seen = pg_strcasecmp(((TswPendingWake *) list_nth(tsw_pending_wakes, i))->name,
										 wake->name) == 0;
				if (!seen)
					(void) tsw_slot_wake(wake->name, true, true);
			}
			tsw_pending_wakes = NIL;	/* its memory goes with the transaction's */
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			tsw_pending_wakes = NIL;
			break;
		default:
			break;
	}
}

static void
tsw_wake_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						  SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		foreach(lc, tsw_pending_wakes)
		{
			TswPendingWake *wake = (TswPendingWake *) lfirst(lc);

			if (wake->subid == mySubid)
				wake->subid = parentSubid;
		}
	}
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		foreach(lc, tsw_pending_wakes)
		{
			TswPendingWake *wake = (TswPendingWake *) lfirst(lc);

			if (wake->subid == mySubid)
				tsw_pending_wakes = foreach_delete_current(tsw_pending_wakes, lc);
		}
	}
}
