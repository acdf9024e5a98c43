/*-------------------------------------------------------------------------
 *
 * host_pg.h
 *		PostgreSQL-facing half of the worker host, callable from C++.
 *
 * host_pg.c (the start), host_pg_loop.c (while Node.js runs) and
 * host_exit.c (the end) hold every call into PostgreSQL that the host
 * makes, so that no ereport(ERROR) longjmp can ever cross a C++ or V8
 * frame: each function here either cannot fail or catches the error
 * itself.  host.cc includes only this header, never PostgreSQL's.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_HOST_PG_H
#define TSW_HOST_PG_H

#ifdef __cplusplus
extern "C" {
#endif

/*
 * What the Node.js half needs to start.  Who the worker is (its name,
 * module, settings) is in its slot: the runtime reads it through the addon.
 */
typedef struct TswHostInfo
{
	const char *runtime_dir;	/* <sharedir>/pg_tsworker */
	const char *native_dir;		/* <pkglibdir>/pg_tsworker */
	int			max_old_space_mb;	/* 0: V8 default */
	int			max_memory_mb;	/* RLIMIT_DATA applied; 0: none */
} TswHostInfo;

/* Events returned by tsw_host_wait() */
#define TSW_EV_LATCH		0x01
#define TSW_EV_PM_DEATH		0x02
#define TSW_EV_LOOP			0x04	/* libuv backend fd readable */
#define TSW_EV_TIMEOUT		0x08
#define TSW_EV_ERROR		0x10	/* the wait itself failed (logged) */

/* tsw_host_log() takes a TswLogLevel */
#include <stdint.h>

#include "../shim/log_level.h"

/*
 * Implemented in host.cc.  tsw_node_start() initialises Node.js while every
 * signal is still blocked, so that the threads it creates (V8 platform,
 * libuv threadpool) never receive one; it returns 0 on success.
 * tsw_node_run() loads the runtime, runs the shared event loop until the
 * worker finishes, tears Node.js down and returns the exit code (0 or 1).
 */
extern int	tsw_node_start(const TswHostInfo *info);
extern int	tsw_node_run(void);

/* Wait for the latch, postmaster death or the libuv fd, up to timeout_ms (-1: forever). */
extern int	tsw_host_wait(int uv_fd, int timeout_ms);

/* Process interrupts that are safe to handle between JavaScript calls. */
extern void tsw_host_check_interrupts(void);

/* Set the process latch; safe from any thread. */
extern void tsw_host_wake(void);

/* The postmaster's pid. */
extern int	tsw_host_postmaster_pid(void);

/* tsworker.terminate_grace, in seconds (read by the watchdog thread). */
extern int	tsw_host_terminate_grace(void);

/* True once SIGTERM asked the worker to stop (safe from any thread). */
extern int	tsw_host_shutdown_requested(void);

/* Log a message from the host, prefixed with the worker's name. */
extern void tsw_host_log(int level, const char *msg);

/* If SIGHUP arrived, reread the configuration files and return 1. */
extern int	tsw_host_reload_if_pending(void);

/*
 * The worker's run failed: log `msg` as a WARNING and keep its first line
 * as the slot's last_error (the first reason of a run is kept).
 */
extern void tsw_host_fail(const char *msg);

/* True on the worker's main thread (the one that runs PostgreSQL and V8). */
extern int	tsw_host_on_main_thread(void);

/* Send `signo` to the main thread (from any thread). */
extern void tsw_host_signal_main_thread(int signo);

/*
 * The host is about to run JavaScript (1) or is back from it (0).  A fatal
 * signal raised by V8 or Node.js on the main thread while JavaScript runs,
 * and not inside a PostgreSQL call, ends in a logged exit 1 (host_exit.c).
 */
extern void tsw_host_set_in_javascript(int running);

/*
 * From the watchdog thread: if the main thread is inside a PostgreSQL call,
 * cancel what it waits for (die = 0: the statement fails with 57014, a
 * COMMIT stops waiting for synchronous replication), or make it exit at the
 * next interrupt check (die = 1: FATAL, then proc_exit).  Nothing happens
 * while the main thread is elsewhere.
 */
extern void tsw_host_interrupt_postgres(int die);

/*
 * From the watchdog thread, once JavaScript was stopped and the main thread
 * still has not come back: if it is running native code called from
 * JavaScript (not inside PostgreSQL), make it leave that code and exit 1
 * (host_exit.c), logging `why` (why JavaScript was stopped) with the
 * reason.  Nothing happens while it is elsewhere.
 */
extern void tsw_host_force_exit(const char *why);

/*
 * A fatal error of the JavaScript engine on the main thread: log it, keep it
 * as last_error, proc_exit(1); never returns.
 */
extern void tsw_host_fatal(const char *msg) __attribute__((noreturn));

/*
 * What the process does now, for the view's state (tsw_slot_set_activity):
 * TSW_HOST_IDLE before waiting in the loop, TSW_HOST_JAVASCRIPT before
 * running JavaScript.  Lock-free; free when unchanged.
 */
#define TSW_HOST_IDLE		1
#define TSW_HOST_JAVASCRIPT	2
extern void tsw_host_report_activity(int activity);

/* The process's memory, for the view (tsw_slot_set_memory); never raises. */
extern void tsw_host_report_memory(int64_t rss_bytes, int64_t heap_used_bytes,
								   int64_t heap_limit_bytes);

/* Install the exit guards of host_exit.c (once Node.js is initialised). */
extern void tsw_host_install_exit_guards(void);

/*
 * Implemented in host_guard.cc: a fatal error raised on a thread other than
 * the main one (a V8 helper thread, or exit() called there).  JavaScript is
 * stopped and the main thread asked to exit with the message; this thread
 * never returns.
 */
extern void tsw_node_thread_fatal(const char *msg) __attribute__((noreturn));


#ifdef __cplusplus
}
#endif

#endif							/* TSW_HOST_PG_H */
