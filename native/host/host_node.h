/*
 * host_node.h
 *		State of the Node.js half of the worker host, shared by
 *		host_start.cc (starting Node.js), host.cc (the event loop) and
 *		host_guard.cc (the watchdog and the engine's fatal paths).  C++ only;
 *		never includes PostgreSQL.
 */
#ifndef TSW_HOST_NODE_H
#define TSW_HOST_NODE_H

#include <node.h>
#include <v8.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

namespace tsw
{

/* Why the watchdog stopped JavaScript. */
enum WatchdogReason
{
	kWatchdogIdle = 0,
	kWatchdogGrace = 1,			/* no exit within terminate_grace of SIGTERM */
	kWatchdogOrphan = 2,		/* the postmaster has been gone for kPostmasterDeathGraceMs */
	kWatchdogThreadFatal = 3	/* a fatal error on another thread */
};

/*
 * After the postmaster dies, the worker keeps serving its event loop (no
 * SQL) for this long, so that w.on('postmasterDeath') listeners can finish
 * (give up a leader key, close sockets); then it exits.
 */
constexpr int kPostmasterDeathGraceMs = 1000;

struct HostState
{
	std::string runtime_dir;
	std::string native_dir;
	int			max_memory_mb = 0;

	std::unique_ptr<node::InitializationResult> init;
	std::unique_ptr<node::MultiIsolatePlatform> platform;
	std::unique_ptr<node::CommonEnvironmentSetup> setup;
	v8::Global<v8::Function> dispatch;
	std::thread watchdog;

	/* set by the watchdog or another thread; read by the main thread */
	std::atomic<int> watchdog_fired{kWatchdogIdle};
	std::atomic<bool> js_stopped{false};
	std::atomic<bool> postmaster_dead{false};
	std::string thread_fatal;	/* written once before watchdog_fired */

	/* main thread only */
	bool		exit_requested = false;
	int			exit_code = 0;
	bool		heap_limit_reached = false;
	size_t		heap_limit = 0;	/* bytes: tsworker.max_old_space_mb or V8's default */
	size_t		heap_size = 0;	/* bytes the heap held then */
};

extern HostState *g_host;

/* Leave the loop with this code (0 or 1) once control is back in C++. */
void		RequestExit(int code);

/*
 * Stop JavaScript for good, from any thread: node::Stop() terminates what
 * runs and makes Node.js refuse every later call into JavaScript (a bare
 * TerminateExecution() lets Node.js's timer loop call straight back in,
 * which spins, and corrupts its async-hook stack).
 */
void		StopJavaScript();

/* Start the watchdog thread and the engine's fatal-error handlers. */
void		InstallGuards(v8::Isolate *isolate);

/* If a guard stopped JavaScript, log why (once) and request exit 1; true if so. */
bool		CheckGuards();

/* Stop JavaScript before the process exits (host_start.cc). */
void		Teardown();

/* A line in the server log at a TSW_LOG_* level (host_pg.h). */
void		LogString(int level, const std::string &msg);

}								/* namespace tsw */

#endif							/* TSW_HOST_NODE_H */
