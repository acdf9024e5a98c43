/*-------------------------------------------------------------------------
 *
 * host_pg.c
 *		Entry point of the worker host: signals, the worker's slot and
 *		session, then Node.js.
 *
 * pg_tsworker_host_main() is each worker's bgw_function_name.  It runs the
 * PostgreSQL steps (signals, connection, exit) itself, in C, and hands the
 * Node.js part to host.cc.  What host.cc's loop calls while Node.js runs is
 * in host_pg_loop.c, where every function catches its own errors, so no
 * ereport(ERROR) longjmp crosses a C++ or V8 frame; the three calls the
 * watchdog makes (interrupting PostgreSQL, asking whether it runs on the
 * main thread, signalling it) stay here, beside the signal state they read.
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
#include "host_pg_loop.h"

TSW_MODULE_MAGIC("pg_tsworker_host");

PGDLLEXPORT void pg_tsworker_host_main(Datum main_arg);

char		tsw_host_name[TSW_NAME_MAXLEN + 1] = "?";
static pthread_t tsw_main_thread;

/* set by the watchdog: the next SIGTERM inside a PostgreSQL call is a die */
static volatile sig_atomic_t tsw_die_asked = 0;

static void tsw_host_sigterm(SIGNAL_ARGS);
static void tsw_host_fill_info(TswHostInfo *info);
static void tsw_host_limit_memory(void);
static void tsw_host_session_port(void);

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
