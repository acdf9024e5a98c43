/*-------------------------------------------------------------------------
 *
 * host_exit.h
 *		Exit guards of the worker host (host_exit.c), for host_pg.c.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_HOST_EXIT_H
#define TSW_HOST_EXIT_H

#include <setjmp.h>
#include <signal.h>

#include "../shim/compat.h"

/*
 * Where a fatal signal raised while JavaScript runs lands: set with
 * sigsetjmp() in pg_tsworker_host_main(), armed by the ready flag, with
 * PostgreSQL's error stack as it was at that point.
 */
extern sigjmp_buf tsw_fatal_signal_jmp;
extern volatile sig_atomic_t tsw_fatal_signal_jmp_ready;
extern sigjmp_buf *tsw_fatal_saved_exception_stack;

/* on_proc_exit's final _exit() and the emit_log_hook; first thing at start. */
extern void tsw_host_install_proc_exit(void);

/* Log "exiting with code N" and proc_exit(code). */
extern pg_noreturn void tsw_host_exit(int code);

/* After the jump: log, keep last_error, proc_exit(1). */
extern pg_noreturn void tsw_host_fatal_signal_exit(void);

#endif							/* TSW_HOST_EXIT_H */
