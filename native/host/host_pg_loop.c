/*-------------------------------------------------------------------------
 *
 * host_pg_loop.c
 *		The PostgreSQL calls the running worker host makes while Node.js
 *		runs: the shared event loop's wait (latch, postmaster death, the
 *		libuv fd) and its wait event, interrupts, configuration reload,
 *		logging, and the reports written to the worker's slot; the
 *		watchdog thread's questions (grace, shutdown, postmaster pid).
 *
 * host.cc and host_guard.cc call these through host_pg.h.  Each one either
 * cannot fail or catches its own error (logged as LOG), so that no
 * ereport(ERROR) longjmp crosses a C++ or V8 frame.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/interrupt.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "../shim/compat.h"
#include "../shim/manifest.h"
#include "../shim/pg_tsworker.h"
#include "host_pg.h"
#include "host_pg_loop.h"

static WaitEventSet *tsw_wait_set = NULL;
static uint32 tsw_wait_event_info = PG_WAIT_EXTENSION;
static int	tsw_wait_set_fd = -1;

static void tsw_host_log_caught(const char *what, MemoryContext oldcontext);

/*
 * The wait event of the event loop: the worker's own name where the server
 * has custom wait events (17+), else "Extension" (compat.h says when and
 * why).  A failure leaves "Extension" and is logged: it never stops the
 * worker.
 */
void
tsw_host_set_wait_event(void)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	const char *volatile why = NULL;

	PG_TRY();
	{
		const char *reason = NULL;

		tsw_wait_event_info = tsw_worker_wait_event(tsw_host_name, &reason);
		why = reason;
	}
	PG_CATCH();
	{
		tsw_host_log_caught("no wait event of its own, waits as \"Extension\"", oldcontext);
		tsw_wait_event_info = PG_WAIT_EXTENSION;
	}
	PG_END_TRY();
	if (why != NULL)
		ereport(LOG,
				(errmsg("tsworker \"%s\": waits as \"Extension\": %s", tsw_host_name, why)));
}

/* In a PG_CATCH block: log the error as LOG and clear it. */
static void
tsw_host_log_caught(const char *what, MemoryContext oldcontext)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(oldcontext);
	edata = CopyErrorData();
	FlushErrorState();
	ereport(LOG,
			(errmsg("tsworker \"%s\": %s: %s", tsw_host_name, what, edata->message)));
	FreeErrorData(edata);
}

int
tsw_host_wait(int uv_fd, int timeout_ms)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	WaitEvent	events[3];
	volatile int result = 0;

	PG_TRY();
	{
		int			n;
		int			i;

		if (tsw_wait_set == NULL || tsw_wait_set_fd != uv_fd)
		{
			if (tsw_wait_set != NULL)
				FreeWaitEventSet(tsw_wait_set);
			tsw_wait_set = NULL;
			tsw_wait_set = tsw_create_wait_event_set(3);
			AddWaitEventToSet(tsw_wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(tsw_wait_set, WL_POSTMASTER_DEATH, PGINVALID_SOCKET, NULL, NULL);
			AddWaitEventToSet(tsw_wait_set, WL_SOCKET_READABLE, uv_fd, NULL, NULL);
			tsw_wait_set_fd = uv_fd;
		}

		n = WaitEventSetWait(tsw_wait_set, timeout_ms, events, lengthof(events),
							 tsw_wait_event_info);
		if (n == 0)
			result = TSW_EV_TIMEOUT;
		for (i = 0; i < n; i++)
		{
			if (events[i].events & WL_LATCH_SET)
			{
				ResetLatch(MyLatch);
				result |= TSW_EV_LATCH;
			}
			if (events[i].events & WL_POSTMASTER_DEATH)
				result |= TSW_EV_PM_DEATH;
			if (events[i].events & WL_SOCKET_READABLE)
				result |= TSW_EV_LOOP;
		}
	}
	PG_CATCH();
	{
		tsw_host_log_caught("wait failed", oldcontext);
		result = TSW_EV_ERROR;
	}
	PG_END_TRY();
	return result;
}

void
tsw_host_check_interrupts(void)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	if (!InterruptPending)
		return;

	/*
	 * Outside a query a cancel request has nothing to cancel; an error raised
	 * here is logged and the worker goes on, instead of unwinding to the
	 * bgworker's error handler.
	 */
	PG_TRY();
	{
		CHECK_FOR_INTERRUPTS();
	}
	PG_CATCH();
	{
		tsw_host_log_caught("ignored interrupt outside a query", oldcontext);
	}
	PG_END_TRY();
}

int
tsw_host_terminate_grace(void)
{
	return tsw_terminate_grace;
}

int
tsw_host_shutdown_requested(void)
{
	return ShutdownRequestPending ? 1 : 0;
}

int
tsw_host_reload_if_pending(void)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	if (!ConfigReloadPending)
		return 0;
	ConfigReloadPending = false;
	PG_TRY();
	{
		ProcessConfigFile(PGC_SIGHUP);
		/* a launched worker's own settings: a bad value would be said at DEBUG2 only */
		tsw_recheck_file_settings();
	}
	PG_CATCH();
	{
		tsw_host_log_caught("could not reload configuration", oldcontext);
	}
	PG_END_TRY();
	return 1;
}

void
tsw_host_log(int level, const char *msg)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	int			elevel = TSW_ELEVEL(level);

	PG_TRY();
	{
		ereport(elevel,
				(errmsg_internal("tsworker \"%s\": %s", tsw_host_name, msg)));
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}


StaticAssertDecl(TSW_HOST_IDLE == TSW_ACTIVITY_IDLE && TSW_HOST_JAVASCRIPT == TSW_ACTIVITY_JAVASCRIPT,
				 "host activities are the slot's");

void
tsw_host_report_activity(int activity)
{
	tsw_slot_set_activity((TswActivity) activity);
}

void
tsw_host_report_memory(int64_t rss_bytes, int64_t heap_used_bytes, int64_t heap_limit_bytes)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	PG_TRY();
	{
		tsw_slot_set_memory(rss_bytes, heap_used_bytes, heap_limit_bytes);
	}
	PG_CATCH();
	{
		tsw_host_log_caught("could not report memory", oldcontext);
	}
	PG_END_TRY();
}

/* Set the latch from any thread (SetLatch is signal-handler safe). */
void
tsw_host_wake(void)
{
	SetLatch(MyLatch);
}

/* The postmaster's pid, for the watchdog thread. */
int
tsw_host_postmaster_pid(void)
{
	return (int) PostmasterPid;
}
