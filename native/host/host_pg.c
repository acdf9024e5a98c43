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
 * the shared event loop instead of a FATAL under JavaScript frames.  A
 * SIGTERM that finds the main thread inside a PostgreSQL call also cancels
 * what that call waits for (a statement, a lock, COMMIT waiting for a
 * synchronous standby), as a regular backend's would.  How the process
 * ends is host_exit.c's business.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sys/socket.h>

#include "access/xact.h"
#include "commands/dbcommands.h"

/*
 * Port's GSSAPI and OpenSSL members need those libraries' headers, which a
 * machine building pg_tsworker may lack; the worker's Port never uses them.
 * Without them the struct keeps the same offsets (libpq-be.h keeps a `void
 * *gss` and puts the OpenSSL members last for that), and the Port is
 * allocated with room to spare for the members left out.
 */
#undef ENABLE_GSS
#undef USE_OPENSSL
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "../shim/compat.h"
#include "../shim/pg_tsworker.h"
#include "host_exit.h"
#include "host_pg.h"

TSW_MODULE_MAGIC("pg_tsworker_host");

PGDLLEXPORT void pg_tsworker_host_main(Datum main_arg);

static char tsw_host_name[TSW_NAME_MAXLEN + 1] = "?";
static WaitEventSet *tsw_wait_set = NULL;
static uint32 tsw_wait_event_info = PG_WAIT_EXTENSION;
static int	tsw_wait_set_fd = -1;
static pthread_t tsw_main_thread;

/* set by the watchdog: the next SIGTERM inside a PostgreSQL call is a die */
static volatile sig_atomic_t tsw_die_asked = 0;

static void tsw_host_sigterm(SIGNAL_ARGS);
static void tsw_host_fill_info(TswHostInfo *info);
static void tsw_host_log_caught(const char *what, MemoryContext oldcontext);
static void tsw_host_limit_memory(void);
static void tsw_host_session_port(void);
static void tsw_host_set_wait_event(void);

void
pg_tsworker_host_main(Datum main_arg)
{
	TswHostInfo info;
	TswSlot		slot;
	int			code;
	char	   *why;

	tsw_main_thread = pthread_self();
	pqsignal(SIGTERM, tsw_host_sigterm);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	tsw_host_install_proc_exit();

	if (!tsw_slot_claim(DatumGetInt32(main_arg), &slot, &why))
	{
		ereport(LOG,
				(errmsg("tsworker \"%s\": not starting: %s",
						MyBgworkerEntry->bgw_type, why)));
		tsw_host_exit(0);
	}
	strlcpy(tsw_host_name, slot.name, sizeof(tsw_host_name));

	why = tsw_check_module_file(slot.module);
	if (why != NULL)
	{
		tsw_slot_set_error(why);
		ereport(WARNING,
				(errmsg("tsworker \"%s\": %s", tsw_host_name, why),
				 errhint("A module must be a regular file that only root or the server's OS user can write, in a directory no one else can write.")));
		tsw_host_exit(1);
	}

	tsw_host_fill_info(&info);
	tsw_host_limit_memory();
	if (tsw_node_start(&info) != 0)
		tsw_host_exit(1);	/* tsw_node_start logged why */
	tsw_host_install_exit_guards();

	BackgroundWorkerUnblockSignals();
	if (OidIsValid(slot.dboid))
		BackgroundWorkerInitializeConnectionByOid(slot.dboid, slot.roleid, 0);
	else
		BackgroundWorkerInitializeConnection(slot.database,
											 slot.rolename[0] != '\0' ? slot.rolename : NULL,
											 0);
	SetConfigOption("application_name", tsw_host_name, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname(tsw_host_name);
	tsw_host_session_port();
	pgstat_report_activity(STATE_IDLE, NULL);
	tsw_host_set_wait_event();

	/*
	 * Start with a clear latch: PostgreSQL sets it while the process starts,
	 * which would make the worker's first w.wait() return at once.  Wakes
	 * asked with tsworker.wake() since the slot was claimed are not lost:
	 * the runtime compares the slot's wake count with the one it started
	 * with.
	 */
	ResetLatch(MyLatch);

	/* a fatal signal while JavaScript runs lands here: see host_exit.c */
	tsw_fatal_saved_exception_stack = PG_exception_stack;
	if (sigsetjmp(tsw_fatal_signal_jmp, 1) != 0)
		tsw_host_fatal_signal_exit();
	tsw_fatal_signal_jmp_ready = 1;

	code = tsw_node_run();
	tsw_fatal_signal_jmp_ready = 0;
	tsw_host_exit(code);
}

/*
 * SIGTERM: shutdown arrives as a flag and a latch event
 * (SignalHandlerForShutdownRequest), never as a FATAL under JavaScript
 * frames.  If the main thread is inside a PostgreSQL call, what it waits
 * for is cancelled too, so that nothing holds the shutdown up: a statement
 * fails with SQLSTATE 57014 (JavaScript sees a PgError), a COMMIT stops
 * waiting for synchronous replication (committed locally, as in any
 * backend).  When the watchdog finds the worker still inside PostgreSQL
 * after terminate_grace, it asks for a die instead: FATAL at the next
 * interrupt check, then proc_exit.
 */
static void
tsw_host_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	ShutdownRequestPending = true;
	if (tsw_shutdown_at_ms == 0)
		tsw_shutdown_at_ms = tsw_monotonic_ms();
	if (tsw_query_depth > 0)
	{
		if (tsw_die_asked)
			ProcDiePending = true;
		else
		{
			tsw_cancel_for_shutdown = true;
			QueryCancelPending = true;
		}
		InterruptPending = true;
	}
	SetLatch(MyLatch);
	errno = save_errno;
}

int
tsw_host_on_main_thread(void)
{
	return pthread_equal(pthread_self(), tsw_main_thread) != 0;
}

void
tsw_host_interrupt_postgres(int die)
{
	if (die)
		tsw_die_asked = 1;
	tsw_host_signal_main_thread(SIGTERM);
}

/* Signals are handled on the main thread, which alone has them unblocked. */
void
tsw_host_signal_main_thread(int signo)
{
	pthread_kill(tsw_main_thread, signo);
}

/*
 * log_line_prefix fills %u, %d and %a (and heeds %q) only in a process with
 * a client connection (MyProcPort), which a background worker lacks.  Give
 * the worker one that says who it is and where, as a local (Unix-socket)
 * session with no socket: the role and database of its session, so that its
 * log lines read like those of a backend with application_name = worker
 * name.  As a Unix-socket session it has no remote host (%h, %r and
 * inet_client_addr() stay empty) and PostgreSQL leaves its TCP keepalive
 * settings alone.  The session was set up already (pgstat_bestart ran), so
 * nothing else reads this Port.
 */
static void
tsw_host_session_port(void)
{
	Port	   *port = MemoryContextAllocZero(TopMemoryContext, sizeof(Port) + 256);

	port->sock = PGINVALID_SOCKET;
	port->laddr.addr.ss_family = AF_UNIX;
	port->raddr.addr.ss_family = AF_UNIX;
	StartTransactionCommand();
	port->user_name = MemoryContextStrdup(TopMemoryContext,
										  GetUserNameFromId(GetSessionUserId(), false));
	port->database_name = MemoryContextStrdup(TopMemoryContext,
											  get_database_name(MyDatabaseId));
	CommitTransactionCommand();
	MyProcPort = port;
}

/*
 * tsworker.max_memory_mb as RLIMIT_DATA: the private writable memory of the
 * process (V8's committed heap, Buffers and other native memory,
 * PostgreSQL's own), not its shared memory.  Beyond it an allocation fails
 * where it is made (a RangeError, "out of memory", V8's out-of-memory
 * handler: a logged exit 1), instead of the kernel's OOM killer sending
 * SIGKILL, which would make the postmaster restart the whole cluster.
 */
static void
tsw_host_limit_memory(void)
{
	struct rlimit rl;

	if (tsw_max_memory_mb <= 0)
		return;
	rl.rlim_cur = rl.rlim_max = (rlim_t) tsw_max_memory_mb * 1024 * 1024;
	if (setrlimit(RLIMIT_DATA, &rl) != 0)
		ereport(WARNING,
				(errmsg("tsworker \"%s\": could not limit memory to tsworker.max_memory_mb (%d MB): %m",
						tsw_host_name, tsw_max_memory_mb)));
}

static void
tsw_host_fill_info(TswHostInfo *info)
{
	char		dir[MAXPGPATH];

	tsw_runtime_dir(dir, sizeof(dir));
	info->runtime_dir = MemoryContextStrdup(TopMemoryContext, dir);
	tsw_native_dir(dir, sizeof(dir));
	info->native_dir = MemoryContextStrdup(TopMemoryContext, dir);
	info->max_old_space_mb = tsw_max_old_space_mb;
	info->max_memory_mb = tsw_max_memory_mb;
}

/*
 * The wait event of the event loop: the worker's own name where the server
 * has custom wait events (17+), else "Extension" (compat.h says when and
 * why).  A failure leaves "Extension" and is logged: it never stops the
 * worker.
 */
static void
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
