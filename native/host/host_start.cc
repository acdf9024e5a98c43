/*
 * host_start.cc
 *		Starting Node.js in a worker process (tsw_node_start) and stopping
 *		it before the process exits (Teardown): process-wide initialisation
 *		that leaves PostgreSQL's signals and stdio alone, the platform, the
 *		environment, libuv's threadpool started with every signal blocked,
 *		and the guards.  The loop that runs it is in host.cc.
 */
#include "host_node.h"

#include <uv.h>

#include <vector>

#include "host_pg.h"

using namespace tsw;
using v8::Isolate;
using v8::Locker;

namespace tsw
{

void
LogString(int level, const std::string &msg)
{
	tsw_host_log(level, msg.c_str());
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

}								/* namespace tsw */

extern "C" int
tsw_node_start(const TswHostInfo *info)
{
	std::vector<std::string> args = {"postgres"};
	std::vector<std::string> errors;

	g_host = new HostState();
	g_host->runtime_dir = info->runtime_dir;
	g_host->native_dir = info->native_dir;
	g_host->max_memory_mb = info->max_memory_mb;

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
		node::SetProcessExitHandler(g_host->setup->env(),
									[](node::Environment *env, int code) {
			/*
			 * The runtime's process.exit() reports itself first; this is
			 * Node.js exiting on its own, or process.reallyExit().
			 */
			if (!g_host->exit_requested)
			{
				std::string msg = "Node.js exited the process with code " + std::to_string(code);

				if (code != 0)
					tsw_host_fail(msg.c_str());
				else
					LogString(TSW_LOG_LOG, msg);
			}
			RequestExit(code);
			StopJavaScript();
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

	/* the watchdog thread is created while every signal is blocked too */
	InstallGuards(g_host->setup->isolate());
	return 0;
}

