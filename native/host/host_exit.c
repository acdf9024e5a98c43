/*-------------------------------------------------------------------------
 *
 * host_exit.c
 *		Every way a worker process ends, so that each one is a logged exit
 *		with code 0 or 1 and never a signal or a skipped cleanup.
 *
 * The postmaster treats a background worker that dies by a signal, exits
 * with a code other than 0 or 1, or exits without running PostgreSQL's
 * shared-memory cleanup (ProcKill marks its child slot inactive) as a crash,
 * and restarts every backend of the cluster.  Node.js and V8 end a process
 * in several ways PostgreSQL does not expect; each one is turned here into
 * proc_exit(1), with the reason in the log and in the slot's last_error:
 *
 *	- exit() called by Node.js itself (a corrupted async-hook stack, for
 *	  instance): an on_exit() handler notices that PostgreSQL's own exit
 *	  path is not in progress;
 *	- SIGTRAP, SIGILL or SIGABRT raised on the main thread while JavaScript
 *	  runs (V8's fatal errors trap, Node.js's assertions abort): the handler
 *	  jumps back to pg_tsworker_host_main() (host_pg.c), leaving the V8
 *	  frames behind (V8 is never called again), which logs and exits.  The
 *	  same signal raised inside a PostgreSQL call, or on another thread, is
 *	  left to its default action: memory may be corrupt, and a restart of
 *	  the cluster is PostgreSQL's answer to that;
 *	- errors PostgreSQL reports itself (a FATAL while connecting, such as a
 *	  missing database) are kept as last_error by an emit_log_hook.
 *
 * The last on_proc_exit callback leaves through _exit(): libnode's static
 * destructors crash in exit() once Node.js has run.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/pmsignal.h"
#include "utils/elog.h"

#include "../shim/pg_tsworker.h"
#include "host_exit.h"
#include "host_pg.h"

sigjmp_buf	tsw_fatal_signal_jmp;
volatile sig_atomic_t tsw_fatal_signal_jmp_ready = 0;
sigjmp_buf *tsw_fatal_saved_exception_stack = NULL;

static volatile sig_atomic_t tsw_fatal_signal = 0;
static volatile sig_atomic_t tsw_in_javascript = 0;
static emit_log_hook_type tsw_prev_emit_log_hook = NULL;
static bool tsw_in_emit_log = false;
static bool tsw_exit_logged = false;

static void tsw_host_on_proc_exit(int code, Datum arg);
static void tsw_host_fatal_signal(SIGNAL_ARGS);
static void tsw_host_on_libc_exit(int status, void *arg);
static void tsw_host_emit_log(ErrorData *edata);
static const char *tsw_signal_name(int signo);

/*
 * Registered first (before the slot is claimed and the connection made),
 * so it runs last: every on_shmem_exit callback, which releases shared
 * resources, has run by then.  Every exit gets a line naming the worker:
 * one that did not go through tsw_host_exit() (a FATAL, a PostgreSQL wait
 * that saw the postmaster die) is logged here.  Then leave with the code
 * the slot decided (0 when the worker was stopped or is disabled after a
 * crash loop).
 */
static void
tsw_host_on_proc_exit(int code, Datum arg)
{
	if (!tsw_exit_logged)
	{
		char		msg[96];

		snprintf(msg, sizeof(msg), "exiting with code %d%s", code,
				 PostmasterIsAlive() ? "" : " (the postmaster died)");
		tsw_host_log(TSW_LOG_LOG, msg);
	}
	_exit(tsw_slot_final_exit_code(code));
}

/* The ordinary end of a worker: log the code and proc_exit(). */
void
tsw_host_exit(int code)
{
	char		msg[64];

	snprintf(msg, sizeof(msg), "exiting with code %d", code);
	tsw_host_log(TSW_LOG_LOG, msg);
	tsw_exit_logged = true;
	proc_exit(code);
}

/* The first guards: before anything can fail. */
void
tsw_host_install_proc_exit(void)
{
	on_proc_exit(tsw_host_on_proc_exit, (Datum) 0);
	tsw_prev_emit_log_hook = emit_log_hook;
	emit_log_hook = tsw_host_emit_log;
}

/*
 * Once Node.js is initialised: its own atexit handlers, registered during
 * initialisation, then run after ours (exit handlers run in reverse order).
 */
void
tsw_host_install_exit_guards(void)
{
	on_exit(tsw_host_on_libc_exit, NULL);
	pqsignal(SIGTRAP, tsw_host_fatal_signal);
	pqsignal(SIGILL, tsw_host_fatal_signal);
	pqsignal(SIGABRT, tsw_host_fatal_signal);
}

void
tsw_host_set_in_javascript(int running)
{
	tsw_in_javascript = running;
}

/*
 * SIGTRAP, SIGILL, SIGABRT.  Only a fault of JavaScript's engine on the
 * main thread, outside any PostgreSQL call, is turned into an exit 1:
 * PostgreSQL's state is then intact, and proc_exit can clean up.
 */
static void
tsw_host_fatal_signal(SIGNAL_ARGS)
{
	if (tsw_fatal_signal_jmp_ready && tsw_in_javascript && tsw_query_depth == 0 &&
		!proc_exit_inprogress && tsw_host_on_main_thread())
	{
		tsw_fatal_signal_jmp_ready = 0;
		tsw_fatal_signal = postgres_signal_arg;
		siglongjmp(tsw_fatal_signal_jmp, 1);
	}
	pqsignal(postgres_signal_arg, SIG_DFL);
	raise(postgres_signal_arg);
}

static const char *
tsw_signal_name(int signo)
{
	switch (signo)
	{
		case SIGTRAP:
			return "SIGTRAP";
		case SIGILL:
			return "SIGILL";
		case SIGABRT:
			return "SIGABRT";
	}
	return "a signal";
}

/*
 * Called by pg_tsworker_host_main() after the jump out of the signal
 * handler.  The V8 frames that were running are abandoned; V8 is never
 * entered again.  V8 and Node.js wrote their own message to stderr, that
 * is to the server log, just before.
 */
void
tsw_host_fatal_signal_exit(void)
{
	int			signo = tsw_fatal_signal;

	PG_exception_stack = tsw_fatal_saved_exception_stack;
	error_context_stack = NULL;
	InterruptHoldoffCount = 0;
	QueryCancelHoldoffCount = 0;
	tsw_in_javascript = 0;
	tsw_host_fatal(psprintf("the JavaScript engine stopped the process with %s (signal %d); "
							"its own message is on the lines just above in the server log",
							tsw_signal_name(signo), signo));
}

/*
 * exit() called by anyone but PostgreSQL (whose proc_exit() never reaches
 * exit(): the last on_proc_exit callback calls _exit()).  Node.js calls
 * exit(1) after printing a fatal message, for instance when its
 * async-hook stack is corrupted.  On the main thread, go through
 * proc_exit() instead; on another thread, stop JavaScript and let the main
 * thread exit (this thread then never returns).
 */
static void
tsw_host_on_libc_exit(int status, void *arg)
{
	char		msg[160];

	if (proc_exit_inprogress)
		return;
	snprintf(msg, sizeof(msg),
			 "Node.js called exit(%d) outside PostgreSQL's exit path; its own message is on the lines just above in the server log",
			 status);
	if (!tsw_host_on_main_thread())
		tsw_node_thread_fatal(msg);
	tsw_host_fatal(msg);
}

/*
 * Errors PostgreSQL reports (an ERROR nobody caught, a FATAL such as
 * "database does not exist" while connecting, the FATAL of a worker made
 * to exit) are the reason the run ended: keep the first as last_error.
 */
static void
tsw_host_emit_log(ErrorData *edata)
{
	if (edata->elevel >= ERROR && edata->message != NULL && !tsw_in_emit_log)
	{
		tsw_in_emit_log = true;
		tsw_slot_set_error(edata->message);
		tsw_in_emit_log = false;
	}
	if (tsw_prev_emit_log_hook)
		tsw_prev_emit_log_hook(edata);
}

void
tsw_host_fail(const char *msg)
{
	tsw_slot_set_error(msg);
	tsw_host_log(TSW_LOG_WARNING, msg);
}

/*
 * A fatal error of the JavaScript engine, on the main thread: log it, keep
 * it as last_error and leave through proc_exit(1), which runs PostgreSQL's
 * cleanup (so the postmaster sees an ordinary exit 1) and ends in _exit().
 */
void
tsw_host_fatal(const char *msg)
{
	Assert(tsw_host_on_main_thread());
	tsw_host_fail(psprintf("%s; worker stopped", msg));
	tsw_host_exit(1);
}
