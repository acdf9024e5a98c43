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
 * process.exit(), an exhausted heap, a failed bootstrap, the watchdog) sets
 * an exit request; the loop then stops Node.js and returns the code, 0 or
 * 1, for proc_exit().  When the postmaster dies, the runtime is told
 * ("postmaster_death") and the loop keeps serving timers and sockets, with
 * no PostgreSQL wait, for kPostmasterDeathGraceMs at most.  What stops
 * JavaScript that does not stop itself is in host_guard.cc.  Nothing here
 * calls into PostgreSQL except through host_pg.h.
 */
#include "host_node.h"

#include <poll.h>
#include <uv.h>

#include <chrono>

#include "host_pg.h"

using namespace tsw;

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

/*
 * Marks the main thread as running JavaScript while it lives (host_exit.c),
 * and the worker as running (the view's state) until it waits again.
 */
class InJavaScript
{
  public:
	InJavaScript()
	{
		tsw_host_set_in_javascript(1);
		tsw_host_report_activity(TSW_HOST_JAVASCRIPT);
	}
	~InJavaScript() { tsw_host_set_in_javascript(0); }
};


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

/*
 * A handle that keeps the loop alive only while DrainIdleLoop() runs it:
 * libuv's uv_run() returns at once, without polling, when no handle keeps
 * the loop alive, even though its backend fd is readable (an unreferenced
 * handle's socket, or one node-postgres left behind once loaded); the
 * wait would then return at once, over and over.
 */
uv_async_t	g_poll_once;

void
NoOp(uv_async_t *)
{
}

/* Run libuv once without blocking and drain V8's pending platform tasks. */
void
RunPending()
{
	uv_loop_t  *loop = g_host->setup->event_loop();
	Isolate    *isolate = g_host->setup->isolate();
	InJavaScript in_js;

	if (g_host->js_stopped.load())
		return;

	/*
	 * Callbacks that libuv runs may call into JavaScript through N-API
	 * (an addon's asynchronous work completing): Node.js checks that the
	 * environment's context is entered, and aborts otherwise.
	 */
	HandleScope handle_scope(isolate);
	Context::Scope context_scope(g_host->setup->context());

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

	InJavaScript in_js;

	if (g_host->dispatch.IsEmpty() || g_host->exit_requested || g_host->js_stopped.load())
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

	set("runtimeDir", str(g_host->runtime_dir));
	set("nativeDir", str(g_host->native_dir));
	set("finish", FunctionTemplate::New(isolate, HostFinish)->GetFunction(context).ToLocalChecked());
	return host;
}

/*
 * The postmaster is gone: tell the runtime, then keep serving libuv (timers,
 * sockets; no PostgreSQL wait, which would return at once) until the
 * runtime finishes or kPostmasterDeathGraceMs passes.
 */
void
AfterPostmasterDeath()
{
	uv_loop_t  *loop = g_host->setup->event_loop();
	auto		deadline = std::chrono::steady_clock::now() +
		std::chrono::milliseconds(kPostmasterDeathGraceMs);

	LogString(TSW_LOG_LOG, "postmaster died; exiting within " +
			  std::to_string(kPostmasterDeathGraceMs) + " ms");
	g_host->postmaster_dead.store(true);
	Dispatch("postmaster_death");
	for (;;)
	{
		long		left;
		int			timeout;
		struct pollfd pfd = {uv_backend_fd(loop), POLLIN, 0};

		RunPending();
		if (CheckGuards() || g_host->exit_requested)
			break;
		left = std::chrono::duration_cast<std::chrono::milliseconds>(
			deadline - std::chrono::steady_clock::now()).count();
		if (left <= 0)
			break;
		uv_update_time(loop);
		timeout = uv_loop_alive(loop) ? uv_backend_timeout(loop) : -1;
		if (timeout < 0 || timeout > left)
			timeout = (int) left;
		(void) poll(&pfd, 1, timeout);
	}
	RequestExit(1);
}

/*
 * At most once a second, at a loop turn: the process's resident set and
 * the V8 heap, for the view.  Returns -1 when it reported, else in how many
 * ms a report is due: the loop waits no longer than that, so that what ran
 * since the last report is reported within a second even if the worker
 * then waits for long.  A worker busy in JavaScript reports at its next
 * turn.
 */
int
ReportMemory()
{
	static std::chrono::steady_clock::time_point last;
	auto		now = std::chrono::steady_clock::now();
	size_t		rss = 0;
	v8::HeapStatistics heap;

	if (last.time_since_epoch().count() != 0 && now - last < std::chrono::seconds(1))
		return (int) std::chrono::duration_cast<std::chrono::milliseconds>(
			last + std::chrono::seconds(1) - now).count() + 1;
	last = now;
	if (uv_resident_set_memory(&rss) != 0)
		rss = 0;
	g_host->setup->isolate()->GetHeapStatistics(&heap);
	tsw_host_report_memory((int64_t) rss, (int64_t) heap.used_heap_size(),
						   (int64_t) heap.heap_size_limit());
	return -1;
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
		MaybeLocal<Value> ret;
		Local<Value> fn;

		context->Global()->Set(context,
							   String::NewFromUtf8Literal(isolate, "__pgTsworkerHost"),
							   MakeHostObject(isolate, context)).Check();
		{
			InJavaScript in_js;

			ret = node::LoadEnvironment(env, kBootstrap);
		}
		if (CheckGuards() || g_host->exit_requested)
			return g_host->exit_code;
		if (!ret.ToLocal(&fn) || !fn->IsFunction())
		{
			tsw_host_fail(("could not start the runtime in " + g_host->runtime_dir +
						   " (is pg_tsworker installed? run scripts/setup)").c_str());
			return 1;
		}
		g_host->dispatch.Reset(isolate, fn.As<Function>());
	}
	uv_async_init(loop, &g_poll_once, NoOp);
	uv_unref(reinterpret_cast<uv_handle_t *>(&g_poll_once));

	for (;;)
	{
		int			events;
		int			timeout;
		int			report_in;

		RunPending();
		if (CheckGuards() || g_host->exit_requested)
			break;

		/*
		 * uv_backend_timeout() is 0 when nothing keeps the loop alive (a
		 * worker in w.wait() without a timeout): wait for the latch alone
		 * then, instead of spinning.  The loop's clock is stale after
		 * JavaScript ran; refresh it so timers are not late.
		 */
		uv_update_time(loop);
		report_in = ReportMemory();
		timeout = uv_loop_alive(loop) ? uv_backend_timeout(loop) : -1;
		if (report_in >= 0 && (timeout < 0 || timeout > report_in))
			timeout = report_in;
		tsw_host_report_activity(TSW_HOST_IDLE);
		events = tsw_host_wait(uv_backend_fd(loop), timeout);
		if (events & TSW_EV_PM_DEATH)
		{
			AfterPostmasterDeath();
			break;
		}
		if (events & TSW_EV_ERROR)
		{
			RequestExit(1);
			break;
		}

		if ((events & TSW_EV_LOOP) && !uv_loop_alive(loop))
		{
			/* nothing keeps the loop alive, yet its fd is readable: poll it once */
			uv_ref(reinterpret_cast<uv_handle_t *>(&g_poll_once));
			RunPending();
			uv_unref(reinterpret_cast<uv_handle_t *>(&g_poll_once));
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
		if (CheckGuards())
			break;
	}
	return g_host->exit_code;
}

}								/* namespace */

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
	{
		const size_t mb = 1024 * 1024;

		/* a heap well below its limit could not grow: the process memory limit */
		if (g_host->max_memory_mb > 0 && g_host->heap_size < g_host->heap_limit / 10 * 9)
			tsw_host_fail(("out of memory: the process reached tsworker.max_memory_mb (" +
						   std::to_string(g_host->max_memory_mb) + " MB) with a JavaScript heap of " +
						   std::to_string(g_host->heap_size / mb) + " MB; worker stopped").c_str());
		else
			tsw_host_fail(("JavaScript heap limit reached (" +
						   std::to_string(g_host->heap_limit / mb) +
						   " MB, tsworker.max_old_space_mb); worker stopped").c_str());
	}
	Teardown();
	return code;
}
