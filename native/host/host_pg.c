/*-------------------------------------------------------------------------
 *
 * host_pg.c
 *		Entry point and PostgreSQL-facing half of the worker host.
 *
 * pg_tsworker_host_main() is each worker's bgw_function_name.  It runs the
 * PostgreSQL steps (signals, connection, exit) itself, in C, and hands the
 * Node.js part to host.cc.  Every function that host.cc calls while Node.js
 * runs catches its own errors, so no ereport(ERROR) longjmp crosses a C++
 * or V8 frame.
 *
 * Signal handling follows contrib/pg_prewarm/autoprewarm.c: SIGTERM and
 * SIGHUP only set flags and the latch (SignalHandlerForShutdownRequest,
 * SignalHandlerForConfigReload), so shutdown and reload arrive as events of
 * the shared event loop instead of a FATAL under JavaScript frames.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <unistd.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "../shim/pg_tsworker.h"
#include "host_pg.h"

PG_MODULE_MAGIC;

PGDLLEXPORT void pg_tsworker_host_main(Datum main_arg);

static char tsw_host_name[TSW_NAME_MAXLEN + 1] = "?";
static WaitEventSet *tsw_wait_set = NULL;
static int	tsw_wait_set_fd = -1;

static void tsw_host_on_proc_exit(int code, Datum arg);
static void tsw_host_sigterm(SIGNAL_ARGS);
static void tsw_host_fill_info(const TswSlotInfo *slot, TswHostInfo *info);
static bool tsw_host_on_main_thread(void);

static pthread_t tsw_main_thread;

static bool
tsw_host_on_main_thread(void)
{
	return pthread_equal(pthread_self(), tsw_main_thread) != 0;
}
static void tsw_host_log_caught(const char *what, MemoryContext oldcontext);

void
pg_tsworker_host_main(Datum main_arg)
{
	TswHostInfo info;
	TswSlotInfo slot;
	int			code;
	char	   *why;

	tsw_main_thread = pthread_self();
	pqsignal(SIGTERM, tsw_host_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	on_proc_exit(tsw_host_on_proc_exit, (Datum) 0);

	if (!tsw_slot_claim(DatumGetInt32(main_arg), &slot, &why))
	{
		ereport(LOG,
				(errmsg("tsworker \"%s\": not starting: %s",
						MyBgworkerEntry->bgw_type, why)));
		proc_exit(0);
	}
	strlcpy(tsw_host_name, slot.name, sizeof(tsw_host_name));

	why = tsw_check_module_file(slot.module);
	if (why != NULL)
	{
		tsw_slot_set_error(why);
		ereport(WARNING,
				(errmsg("tsworker \"%s\": %s", tsw_host_name, why),
				 errhint("A module must be a regular file that only root or the server's OS user can write, in a directory no one else can write.")));
		proc_exit(1);
	}

	tsw_host_fill_info(&slot, &info);
	if (tsw_node_start(&info) != 0)
		proc_exit(1);			/* tsw_node_start logged why */

	BackgroundWorkerUnblockSignals();
	if (OidIsValid(slot.dboid))
		BackgroundWorkerInitializeConnectionByOid(slot.dboid, slot.roleid, 0);
	else
		BackgroundWorkerInitializeConnection(slot.database,
											 slot.rolename[0] != '\0' ? slot.rolename : NULL,
											 0);
	SetConfigOption("application_name", tsw_host_name, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname(tsw_host_name);
	pgstat_report_activity(STATE_IDLE, NULL);

	/*
	 * Start with a clear latch: PostgreSQL sets it while the process starts,
	 * which would make the worker's first w.wait() return at once.  Wakes
	 * asked with tsworker.wake() since the slot was claimed are not lost:
	 * the runtime compares the slot's wake count with the one it started
	 * with.
	 */
	ResetLatch(MyLatch);

	code = tsw_node_run();
	ereport(LOG,
			(errmsg("tsworker \"%s\": exiting with code %d", tsw_host_name, code)));
	proc_exit(code);
}

/*
 * SIGTERM: shutdown arrives as a flag and a latch event
 * (SignalHandlerForShutdownRequest), never as a FATAL under JavaScript
 * frames.  A statement running at that moment is cancelled too, so that a
 * long query does not hold the shutdown up: it fails with SQLSTATE 57014
 * and JavaScript sees a PgError.
 */
static void
tsw_host_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (tsw_query_depth > 0)
	{
		tsw_cancel_for_shutdown = true;
		QueryCancelPending = true;
		InterruptPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * Registered before anything else of ours, so it runs after the cleanup
 * callbacks PostgreSQL registers while connecting (on_shmem_exit callbacks,
 * which release shared resources, have all run before any on_proc_exit one).
 * Once Node.js has been loaded, exit() is not safe: libnode's static
 * destructors crash after V8 has been disposed (seen as SIGSEGV at exit),
 * and if Node.js still runs (a FATAL raised inside a call from JavaScript)
 * they would race V8's threads.  Either way the postmaster would treat the
 * signal as a crash of the whole cluster, so leave with _exit(), with the
 * code the slot decided (0 instead of 1 when the worker was stopped or is
 * disabled after a crash loop: see slots.c).
 */
static void
tsw_host_on_proc_exit(int code, Datum arg)
{
	_exit(tsw_slot_final_exit_code(code));
}

static void
tsw_host_fill_info(const TswSlotInfo *slot, TswHostInfo *info)
{
	char		dir[MAXPGPATH];

	info->name = MemoryContextStrdup(TopMemoryContext, slot->name);
	info->config_name = MemoryContextStrdup(TopMemoryContext, slot->config_name);
	info->module = MemoryContextStrdup(TopMemoryContext, slot->module);
	tsw_runtime_dir(dir, sizeof(dir));
	info->runtime_dir = MemoryContextStrdup(TopMemoryContext, dir);
	tsw_native_dir(dir, sizeof(dir));
	info->native_dir = MemoryContextStrdup(TopMemoryContext, dir);
	info->database = MemoryContextStrdup(TopMemoryContext, slot->database);
	info->settings = MemoryContextStrdup(TopMemoryContext, slot->settings);
	info->dynamic = slot->dynamic;
	info->recent_failures = slot->recent_failures;
	info->wakes = (double) slot->wakes;
	info->max_old_space_mb = tsw_max_old_space_mb;
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
			tsw_wait_set = CreateWaitEventSet(TopMemoryContext, 3);
			AddWaitEventToSet(tsw_wait_set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(tsw_wait_set, WL_POSTMASTER_DEATH, PGINVALID_SOCKET, NULL, NULL);
			AddWaitEventToSet(tsw_wait_set, WL_SOCKET_READABLE, uv_fd, NULL, NULL);
			tsw_wait_set_fd = uv_fd;
		}

		n = WaitEventSetWait(tsw_wait_set, timeout_ms, events, lengthof(events),
							 PG_WAIT_EXTENSION);
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
	int			elevel = level == TSW_LOG_WARNING ? WARNING :
		level == TSW_LOG_DEBUG ? DEBUG1 : LOG;

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


/*
 * Called by V8's fatal-error and out-of-memory handlers instead of abort().
 * On the main thread: log and proc_exit(1), which runs PostgreSQL's cleanup
 * (so the postmaster sees an ordinary exit 1) and ends in _exit().  On
 * another thread nothing of PostgreSQL's may run: write the message and
 * _exit(1) (the postmaster then restarts the cluster, but that is no worse
 * than the abort it replaces).
 */
void
tsw_host_fatal(const char *msg)
{
	if (getpid() != MyProcPid || !tsw_host_on_main_thread())
	{
		char		buf[512];
		int			n = snprintf(buf, sizeof(buf), "tsworker \"%s\": %s\n", tsw_host_name, msg);

		if (write(STDERR_FILENO, buf, Min(n, (int) sizeof(buf) - 1)) < 0)
			_exit(1);
		_exit(1);
	}
	PG_TRY();
	{
		ereport(LOG,
				(errmsg("tsworker \"%s\": %s; worker stopped", tsw_host_name, msg)));
	}
	PG_CATCH();
	{
		FlushErrorState();
	}
	PG_END_TRY();
	proc_exit(1);
}

/* Set the latch from the watchdog thread (SetLatch is signal-handler safe). */
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
