/*
 * host.cc
 *		Node.js half of the worker host: embeds libnode 18 in a background
 *		worker and runs the event loop that PostgreSQL and libuv share.
 *
 * One loop serves everything: tsw_host_wait() waits in a WaitEventSet on
 * the process latch, postmaster death and libuv's backend fd, with libuv's
 * next timer as the timeout; then libuv runs once without blocking and the
 * V8 platform's tasks are drained.  Latch, reload and shutdown events are
 * handed to the runtime's dispatch function through node::MakeCallback, so
 * promises settle before control returns here (libuv's test/test-embed.c
 * pattern; node::SpinEventLoop would block).
 *
 * Every way JavaScript can end the worker (the runtime's finish(),
 * process.exit(), an exhausted heap, a failed bootstrap) sets an exit
 * request; the loop then tears Node.js down completely and returns the
 * code, 0 or 1, for proc_exit().  Nothing here calls into PostgreSQL except
 * through host_pg.h.
 */
#include <node.h>
#include <uv.h>
#include <v8.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "host_pg.h"

namespace {

using v8::Context;
using v8::Function;
using v8::FunctionCallbackInfo;
using v8::FunctionTemplate;
using v8::Global;
using v8::HandleScope;
using v8::Integer;
using v8::Isolate;
using v8::Local;
using v8::Locker;
using v8::MaybeLocal;
using v8::Object;
using v8::String;
using v8::Value;

/* Loads the compiled runtime from the installed runtime directory. */
const char kBootstrap[] =
	"const host = globalThis.__pgTsworkerHost;\n"
	"delete globalThis.__pgTsworkerHost;\n"
	"const { createRequire } = require('module');\n"
	"const runtimeRequire = createRequire(host.runtimeDir + '/');\n"
	"return runtimeRequire(host.runtimeDir + '/dist/runtime/host-entry.js').start(host);\n";

struct HostState
{
	std::string name;
	std::string module;
	std::string runtime_dir;
	std::string native_dir;
	std::string settings;
	std::string config_name;
	bool		dynamic = false;
	int			recent_failures = 0;
	double		wakes = 0;

	std::unique_ptr<node::InitializationResult> init;
	std::unique_ptr<node::MultiIsolatePlatform> platform;
	std::unique_ptr<node::CommonEnvironmentSetup> setup;
	Global<Function> dispatch;
	std::thread watchdog;
	std::atomic<int> watchdog_fired{0};	/* a WatchdogReason */

	bool		exit_requested = false;
	int			exit_code = 0;
	bool		heap_limit_reached = false;
	size_t		heap_limit = 0;
};

HostState *g_host = nullptr;

enum WatchdogReason
{
	kWatchdogIdle = 0,
	kWatchdogGrace = 1,			/* no exit within terminate_grace of SIGTERM */
	kWatchdogOrphan = 2			/* the postmaster is gone */
};

/*
 * The watchdog thread (created with every signal blocked) stops JavaScript
 * that does not give control back: a busy loop never reaches the event
 * loop, so it can see neither SIGTERM nor postmaster death.  Once SIGTERM
 * has been pending for tsworker.terminate_grace, or the postmaster is gone,
 * it calls TerminateExecution() (V8 allows that from any thread) and sets
 * the latch; the loop then logs why and exits with code 1.
 */
void
WatchdogMain(Isolate *isolate)
{
	using Clock = std::chrono::steady_clock;
	bool		shutdown_seen = false;
	Clock::time_point shutdown_at;
	int			postmaster = tsw_host_postmaster_pid();

	for (;;)
	{
		int			reason = kWatchdogIdle;

		std::this_thread::sleep_for(std::chrono::milliseconds(100));
		if (g_host->watchdog_fired.load() != kWatchdogIdle)
			continue;
		if (getppid() != postmaster)
			reason = kWatchdogOrphan;
		else if (tsw_host_shutdown_requested())
		{
			if (!shutdown_seen)
			{
				shutdown_seen = true;
				shutdown_at = Clock::now();
			}
			if (Clock::now() - shutdown_at >= std::chrono::seconds(tsw_host_terminate_grace()))
				reason = kWatchdogGrace;
		}
		if (reason != kWatchdogIdle)
		{
			g_host->watchdog_fired.store(reason);
			isolate->TerminateExecution();
			tsw_host_wake();
		}
	}
}

/* If the watchdog fired, log why and ask the loop to exit; true if so. */
bool
CheckWatchdog()
{
	int			reason = g_host->watchdog_fired.load();

	if (reason == kWatchdogIdle || g_host->exit_requested)
		return reason != kWatchdogIdle;
	if (reason == kWatchdogGrace)
		tsw_host_log(TSW_LOG_WARNING,
					 ("did not stop within tsworker.terminate_grace (" +
					  std::to_string(tsw_host_terminate_grace()) +
					  " s) after SIGTERM; JavaScript terminated").c_str());
	else
		tsw_host_log(TSW_LOG_LOG, "postmaster died; JavaScript terminated");
	g_host->exit_requested = true;
	g_host->exit_code = 1;
	return true;
}

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
LogString(int level, const std::string &msg)
{
	tsw_host_log(level, msg.c_str());
}

/* host.finish(code): the runtime is done; leave the loop with this code. */
void
HostFinish(const FunctionCallbackInfo<Value> &info)
{
	Isolate    *isolate = info.GetIsolate();
	int			code = 1;

	if (info.Length() > 0 && info[0]->IsInt32())
		code = info[0].As<Integer>()->Value();
	RequestExit(code);
	(void) isolate;
}

size_t
NearHeapLimit(void *data, size_t current_heap_limit, size_t initial_heap_limit)
{
	Isolate    *isolate = static_cast<Isolate *>(data);

	g_host->heap_limit_reached = true;
	g_host->heap_limit = initial_heap_limit;
	RequestExit(1);
	isolate->TerminateExecution();
	/* Give V8 room to unwind instead of aborting the process. */
	return current_heap_limit + 64 * 1024 * 1024;
}

/* Run libuv once without blocking and drain V8's pending platform tasks. */
void
RunPending()
{
	uv_loop_t  *loop = g_host->setup->event_loop();
	Isolate    *isolate = g_host->setup->isolate();

	uv_run(loop, UV_RUN_NOWAIT);
	g_host->platform->DrainTasks(isolate);
}

/* Call the runtime's dispatch(event); microtasks run before it returns. */
void
Dispatch(const char *event)
{
	Isolate    *isolate = g_host->setup->isolate();
	HandleScope handle_scope(isolate);
	Local<Context> context = g_host->setup->context();
	Context::Scope context_scope(context);
	Local<Value> argv[] = {
		String::NewFromUtf8(isolate, event).ToLocalChecked()
	};

	if (g_host->dispatch.IsEmpty() || g_host->exit_requested)
		return;
	(void) node::MakeCallback(isolate, context->Global(),
							  g_host->dispatch.Get(isolate), 1, argv, {0, 0});
}

/* Create the host object the bootstrap script reads. */
Local<Object>
MakeHostObject(Isolate *isolate, Local<Context> context)
{
	Local<Object> host = Object::New(isolate);
	auto set = [&](const char *key, Local<Value> value) {
		host->Set(context, String::NewFromUtf8(isolate, key).ToLocalChecked(), value).Check();
	};
	auto str = [&](const std::string &s) -> Local<Value> {
		return String::NewFromUtf8(isolate, s.c_str()).ToLocalChecked();
	};

	set("name", str(g_host->name));
	set("module", str(g_host->module));
	set("runtimeDir", str(g_host->runtime_dir));
	set("nativeDir", str(g_host->native_dir));
	set("launchSettings", str(g_host->settings));
	set("configName", str(g_host->config_name));
	set("dynamic", v8::Boolean::New(isolate, g_host->dynamic));
	set("recentFailures", Integer::New(isolate, g_host->recent_failures));
	set("wakesAtStart", v8::Number::New(isolate, g_host->wakes));
	set("finish", FunctionTemplate::New(isolate, HostFinish)->GetFunction(context).ToLocalChecked());
	return host;
}

int
RunLoop()
{
	node::CommonEnvironmentSetup *setup = g_host->setup.get();
	Isolate    *isolate = setup->isolate();
	node::Environment *env = setup->env();
	uv_loop_t  *loop = setup->event_loop();
	bool		shutdown_sent = false;

	{
		HandleScope handle_scope(isolate);
		Local<Context> context = setup->context();
		Context::Scope context_scope(context);

		context->Global()->Set(context,
							   String::NewFromUtf8Literal(isolate, "__pgTsworkerHost"),
							   MakeHostObject(isolate, context)).Check();

		MaybeLocal<Value> ret = node::LoadEnvironment(env, kBootstrap);
		Local<Value> fn;

		if (CheckWatchdog() || g_host->exit_requested)
			return g_host->exit_code;
		if (!ret.ToLocal(&fn) || !fn->IsFunction())
		{
			LogString(TSW_LOG_WARNING,
					  "could not start the runtime in " + g_host->runtime_dir +
					  " (is pg_tsworker installed? run scripts/setup)");
			return 1;
		}
		g_host->dispatch.Reset(isolate, fn.As<Function>());
	}

	for (;;)
	{
		int			events;

		RunPending();
		if (CheckWatchdog() || g_host->exit_requested)
			break;

		/*
		 * uv_backend_timeout() is 0 when nothing keeps the loop alive (a
		 * worker in w.wait() without a timeout): wait for the latch alone
		 * then, instead of spinning.  The loop's clock is stale after
		 * JavaScript ran; refresh it so timers are not late.
		 */
		uv_update_time(loop);
		events = tsw_host_wait(uv_backend_fd(loop),
							   uv_loop_alive(loop) ? uv_backend_timeout(loop) : -1);
		if (events & TSW_EV_PM_DEATH)
		{
			LogString(TSW_LOG_LOG, "postmaster died; exiting");
			RequestExit(1);
			break;
		}
		if (events & TSW_EV_ERROR)
		{
			RequestExit(1);
			break;
		}

		tsw_host_check_interrupts();
		if (tsw_host_reload_if_pending())
			Dispatch("reload");
		if (tsw_host_shutdown_requested() && !shutdown_sent)
		{
			shutdown_sent = true;
			Dispatch("shutdown");
		}
		if (events & TSW_EV_LATCH)
			Dispatch("latch");
		if (CheckWatchdog())
			break;
	}
	return g_host->exit_code;
}

/*
 * Stop JavaScript before the process exits.  The rest of Node's teardown
 * (FreeEnvironment, disposing V8) is skipped on purpose: the process leaves
 * through _exit() at the end of proc_exit() anyway (see host_pg.c), and a
 * CHECK failing in that teardown would abort, which the postmaster treats
 * as a crash of the whole cluster.
 */
void
Teardown()
{
	if (g_host->setup)
	{
		Isolate    *isolate = g_host->setup->isolate();
		Locker		locker(isolate);
		Isolate::Scope isolate_scope(isolate);

		g_host->dispatch.Reset();
		node::Stop(g_host->setup->env());
	}
}

/*
 * V8's fatal and out-of-memory errors would otherwise abort() the process.
 * Log, then leave through proc_exit(1) so that PostgreSQL's own cleanup
 * runs and the postmaster sees an ordinary failure.
 */
void
OnFatalError(const char *location, const char *message)
{
	tsw_host_fatal((std::string("V8 fatal error in ") + (location ? location : "?") +
					": " + (message ? message : "")).c_str());
}

void
OnOOMError(const char *location, bool is_heap_oom)
{
	tsw_host_fatal((std::string("JavaScript out of memory") +
					(is_heap_oom ? " (heap)" : " (process)") + " in " +
					(location ? location : "?")).c_str());
}

}								/* namespace */

extern "C" int
tsw_node_start(const TswHostInfo *info)
{
	std::vector<std::string> args = {"postgres"};
	std::vector<std::string> errors;

	g_host = new HostState();
	g_host->name = info->name;
	g_host->module = info->module;
	g_host->runtime_dir = info->runtime_dir;
	g_host->native_dir = info->native_dir;
	g_host->settings = info->settings;
	g_host->config_name = info->config_name;
	g_host->dynamic = info->dynamic != 0;
	g_host->recent_failures = info->recent_failures;
	g_host->wakes = info->wakes;

	if (info->max_old_space_mb > 0)
		args.push_back("--max-old-space-size=" + std::to_string(info->max_old_space_mb));

	/*
	 * Leave PostgreSQL's signal handlers, signal mask and stdio alone, and
	 * let nothing in the environment change how Node.js behaves.
	 */
	g_host->init = node::InitializeOncePerProcess(
		args,
		static_cast<node::ProcessInitializationFlags::Flags>(
			node::ProcessInitializationFlags::kNoInitializeV8 |
			node::ProcessInitializationFlags::kNoInitializeNodeV8Platform |
			node::ProcessInitializationFlags::kNoDefaultSignalHandling |
			node::ProcessInitializationFlags::kNoStdioInitialization |
			node::ProcessInitializationFlags::kNoAdjustResourceLimits |
			node::ProcessInitializationFlags::kNoUseLargePages |
			node::ProcessInitializationFlags::kDisableNodeOptionsEnv |
			node::ProcessInitializationFlags::kNoPrintHelpOrVersionOutput));
	for (const std::string &err : g_host->init->errors())
		LogString(TSW_LOG_WARNING, "node initialisation: " + err);
	if (g_host->init->early_return())
		return 1;

	g_host->platform = node::MultiIsolatePlatform::Create(2);
	v8::V8::InitializePlatform(g_host->platform.get());
	v8::V8::Initialize();

	g_host->setup = node::CommonEnvironmentSetup::Create(
		g_host->platform.get(), &errors,
		g_host->init->args(), g_host->init->exec_args(),
		static_cast<node::EnvironmentFlags::Flags>(
			node::EnvironmentFlags::kOwnsProcessState |
			node::EnvironmentFlags::kNoCreateInspector |
			node::EnvironmentFlags::kNoGlobalSearchPaths |
			node::EnvironmentFlags::kTrackUnmanagedFds));
	if (!g_host->setup)
	{
		for (const std::string &err : errors)
			LogString(TSW_LOG_WARNING, "could not create the Node.js environment: " + err);
		Teardown();
		return 1;
	}

	{
		Isolate    *isolate = g_host->setup->isolate();

		isolate->AddNearHeapLimitCallback(NearHeapLimit, isolate);
		isolate->SetFatalErrorHandler(OnFatalError);
		isolate->SetOOMErrorHandler(OnOOMError);
		node::SetProcessExitHandler(g_host->setup->env(),
									[](node::Environment *env, int code) {
			if (!g_host->exit_requested)
				LogString(TSW_LOG_LOG, "process.exit(" + std::to_string(code) + ") called");
			RequestExit(code);
			node::Stop(env);
		});
	}

	/*
	 * Start libuv's threadpool now, while every signal is blocked: threads
	 * inherit the creating thread's mask, and a signal (SIGURG above all,
	 * which wakes latches through a signalfd) delivered to one of them
	 * would be lost.
	 */
	{
		uv_loop_t  *loop = g_host->setup->event_loop();
		uv_work_t	req;
		bool		done = false;

		req.data = &done;
		uv_queue_work(loop, &req,
					  [](uv_work_t *) {},
					  [](uv_work_t *r, int) { *static_cast<bool *>(r->data) = true; });
		while (!done)
			uv_run(loop, UV_RUN_ONCE);
	}

	/* also created while every signal is blocked */
	g_host->watchdog = std::thread(WatchdogMain, g_host->setup->isolate());
	return 0;
}

extern "C" int
tsw_node_run(void)
{
	int			code;
	Isolate    *isolate = g_host->setup->isolate();

	{
		Locker		locker(isolate);
		Isolate::Scope isolate_scope(isolate);

		code = RunLoop();
	}
	if (g_host->heap_limit_reached)
		LogString(TSW_LOG_WARNING,
				  "JavaScript heap limit reached (" +
				  std::to_string(g_host->heap_limit / (1024 * 1024)) +
				  " MB, tsworker.max_old_space_mb); worker stopped");
	Teardown();
	return code;
}
