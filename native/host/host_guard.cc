/*
 * host_guard.cc
 *		What stops JavaScript when it cannot stop itself: the watchdog
 *		thread, the heap limit, and the engine's fatal errors.
 *
 * Whatever the cause, JavaScript is stopped the same way, with
 * node::Stop() (StopJavaScript), never a bare TerminateExecution(): Node.js
 * then refuses every later call into JavaScript, where its timer loop
 * would otherwise call straight back into a terminated callback (a spin no
 * signal ends) or find its async-hook stack corrupted (and exit()).
 *
 *	- The watchdog thread (created with every signal blocked) stops
 *	  JavaScript that does not give control back: once SIGTERM has been
 *	  pending for tsworker.terminate_grace, or the postmaster has been gone
 *	  for kPostmasterDeathGraceMs.  If the main thread is then inside a
 *	  PostgreSQL call, it cancels that call, and after another half second
 *	  makes it exit (host_pg.c, tsw_host_interrupt_postgres).
 *	- Near the heap limit V8 calls NearHeapLimit: JavaScript is stopped and
 *	  the limit raised a little, so that V8 can unwind instead of aborting.
 *	- V8's fatal errors (V8_Fatal, which the heap's "invalid size error"
 *	  and every failed CHECK call; the isolate's fatal-error and OOM
 *	  handlers) end in tsw_host_fatal(): logged, kept as last_error, exit 1.
 *	  V8_Fatal is replaced by symbol interposition: this library is loaded
 *	  before libnode, with RTLD_GLOBAL, and libnode calls V8_Fatal through
 *	  its PLT.  Should that ever not hold, V8_Fatal traps, and host_exit.c's
 *	  SIGTRAP handler ends the worker instead, without V8's message.
 *	- A fatal error on another thread cannot run PostgreSQL code: it stops
 *	  JavaScript and lets the main thread exit with the message; if the main
 *	  thread has not exited two seconds later, the process leaves with
 *	  _exit(1) (the postmaster then restarts the cluster, as it would have
 *	  for the abort this replaces).
 */
#include "host_node.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include <chrono>

#include "host_pg.h"

namespace tsw
{

HostState  *g_host = nullptr;

namespace
{

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_thread_fatal_taken{false};
Clock::time_point g_fired_at;	/* watchdog thread only */

long
MillisSince(Clock::time_point t)
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

/* Stop JavaScript for `reason` and wake the main thread. */
void
Fire(int reason)
{
	int			idle = kWatchdogIdle;

	if (!g_host->watchdog_fired.compare_exchange_strong(idle, reason))
		return;
	StopJavaScript();
	tsw_host_wake();
}

void
WatchdogMain()
{
	bool		shutdown_seen = false;
	bool		orphan_seen = false;
	bool		fired_seen = false;
	Clock::time_point shutdown_at;
	Clock::time_point orphan_at;
	int			postmaster = tsw_host_postmaster_pid();

	for (;;)
	{
		int			fired;

		std::this_thread::sleep_for(std::chrono::milliseconds(100));
		fired = g_host->watchdog_fired.load();
		if (fired != kWatchdogIdle)
		{
			long		ms;

			if (!fired_seen)
			{
				fired_seen = true;
				g_fired_at = Clock::now();
			}
			ms = MillisSince(g_fired_at);
			if (fired == kWatchdogThreadFatal)
			{
				if (ms >= 2000)
				{
					static const char msg[] = "pg_tsworker: the main thread did not exit within 2 s of a fatal error on another thread; leaving with _exit(1)\n";

					if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
						_exit(1);
					_exit(1);
				}
			}
			else
			{
				/* JavaScript is stopped; PostgreSQL must not hold the main thread */
				tsw_host_interrupt_postgres(ms >= 500 ? 1 : 0);
			}
			continue;
		}

		if (getppid() != postmaster)
		{
			if (!orphan_seen)
			{
				orphan_seen = true;
				orphan_at = Clock::now();
			}
			if (MillisSince(orphan_at) >= kPostmasterDeathGraceMs)
				Fire(kWatchdogOrphan);
		}
		else if (tsw_host_shutdown_requested())
		{
			if (!shutdown_seen)
			{
				shutdown_seen = true;
				shutdown_at = Clock::now();
			}
			if (MillisSince(shutdown_at) >= tsw_host_terminate_grace() * 1000L)
				Fire(kWatchdogGrace);
		}
	}
}

size_t
NearHeapLimit(void *data, size_t current_heap_limit, size_t initial_heap_limit)
{
	g_host->heap_limit_reached = true;
	g_host->heap_limit = initial_heap_limit;
	RequestExit(1);
	StopJavaScript();
	/* room to unwind instead of aborting the process */
	return current_heap_limit + 64 * 1024 * 1024;
}

/* A fatal error of the engine: the main thread exits; another one waits for it. */
[[noreturn]] void
HostFatal(const std::string &msg)
{
	if (tsw_host_on_main_thread())
		tsw_host_fatal(msg.c_str());
	tsw_node_thread_fatal(msg.c_str());
}

void
OnFatalError(const char *location, const char *message)
{
	HostFatal(std::string("V8 fatal error in ") + (location ? location : "?") +
			  ": " + (message ? message : ""));
}

void
OnOOMError(const char *location, bool is_heap_oom)
{
	HostFatal(std::string("JavaScript out of memory") +
			  (is_heap_oom ? " (heap)" : " (process)") + " in " +
			  (location ? location : "?"));
}

}								/* namespace */

void
RequestExit(int code)
{
	if (!g_host->exit_requested)
	{
		g_host->exit_requested = true;
		g_host->exit_code = code == 0 ? 0 : 1;
	}
}

void
StopJavaScript()
{
	g_host->js_stopped.store(true);
	node::Stop(g_host->setup->env());
}

void
InstallGuards(v8::Isolate *isolate)
{
	isolate->AddNearHeapLimitCallback(NearHeapLimit, nullptr);
	isolate->SetFatalErrorHandler(OnFatalError);
	isolate->SetOOMErrorHandler(OnOOMError);
	/* created while every signal is blocked: it inherits that mask */
	g_host->watchdog = std::thread(WatchdogMain);
}

bool
CheckGuards()
{
	static bool reported = false;
	int			reason = g_host->watchdog_fired.load();

	if (reason == kWatchdogIdle)
		return false;
	if (!reported)
	{
		reported = true;
		if (reason == kWatchdogGrace)
			tsw_host_fail(("did not stop within tsworker.terminate_grace (" +
						   std::to_string(tsw_host_terminate_grace()) +
						   " s) after SIGTERM; JavaScript terminated").c_str());
		else if (reason == kWatchdogOrphan)
			tsw_host_log(TSW_LOG_LOG, "postmaster died; JavaScript terminated");
		else
			tsw_host_fail((g_host->thread_fatal + "; worker stopped").c_str());
	}
	RequestExit(1);
	return true;
}

}								/* namespace tsw */

extern "C" void
tsw_node_thread_fatal(const char *msg)
{
	using namespace tsw;

	if (!g_thread_fatal_taken.exchange(true))
	{
		std::string line = std::string("pg_tsworker: ") + msg + "\n";

		g_host->thread_fatal = msg;
		if (write(STDERR_FILENO, line.data(), line.size()) < 0)
		{
			/* nothing more to do about it */
		}
		g_host->watchdog_fired.store(kWatchdogThreadFatal);
		StopJavaScript();
		tsw_host_wake();
	}
	for (;;)
		pause();
}

/*
 * Replaces libnode's V8_Fatal (see the header comment): V8 calls it for
 * every failed CHECK and for "Fatal JavaScript invalid size error", which
 * an array that grows without end reaches before a large heap limit.
 */
[[noreturn]] __attribute__((visibility("default"))) void
V8_Fatal(const char *format, ...)
{
	char		buf[1024];
	va_list		args;

	va_start(args, format);
	vsnprintf(buf, sizeof(buf), format, args);
	va_end(args);
	tsw::HostFatal(std::string("V8 fatal error: ") + buf);
}
