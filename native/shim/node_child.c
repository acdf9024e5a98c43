/*-------------------------------------------------------------------------
 *
 * node_child.c
 *		Run a script of the runtime in a pg_tsworker_node child process.
 *
 * The postmaster must not run JavaScript (no V8 threads may exist before
 * fork), so what it needs from JavaScript (what modules declare: manifest.c;
 * cluster mode's question to etcd: cluster_boot.c) runs in a child, a
 * Node.js executable built from the workers' libnode, with plain signals, a
 * heap limit and a time limit.  Its standard output is the answer; its
 * standard error goes to the server log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"

#include "pg_tsworker.h"

/* How long a cancelled call's child gets to exit after SIGTERM, before SIGKILL. */
#define TSW_CHILD_TERM_MS 1500

static char *tsw_child_start_wait(const char *script_rel, char **args, int nargs, bool in_backend,
								  int timeout_ms, bool per_line, TswChildEnd *end);
static char *tsw_child_wait(pid_t pid, int fd, bool in_backend, int timeout_ms, bool per_line,
							TswChildEnd *end);

/*
 * Run a script of the installed runtime (`script_rel`, relative to it) in a
 * pg_tsworker_node child with `args`; return its standard output, or NULL
 * when it failed or took more than timeout_ms (a WARNING about `what` says
 * why).  In a backend the wait can be cancelled, and the child is killed
 * then.
 */
char *
tsw_run_node_script(const char *script_rel, char **args, int nargs, bool in_backend,
					int timeout_ms, const char *what)
{
	TswChildEnd end;
	char	   *out = tsw_child_start_wait(script_rel, args, nargs, in_backend, timeout_ms, false, &end);

	switch (end.kind)
	{
		case TSW_CHILD_EXITED:
			if (end.code == 0)
				return out;
			ereport(WARNING,
					(errmsg("pg_tsworker: %s failed (pg_tsworker_node exited with status %d)",
							what, end.code),
					 end.code == 127 ?
					 errhint("Is pg_tsworker installed completely?") :
					 errdetail("Its own message is on the lines just above in the server log.")));
			break;
		case TSW_CHILD_TIMED_OUT:
			ereport(WARNING,
					(errmsg("pg_tsworker: %s took more than %d s; gave up",
							what, timeout_ms / 1000)));
			break;
		case TSW_CHILD_SIGNALED:
			ereport(WARNING,
					(errmsg("pg_tsworker: %s was ended by signal %d (%s)",
							what, end.code, pg_strsignal(end.code)),
					 errdetail("A script or module that allocates more than 256 MB of heap, or crashes Node.js, ends the child this way.")));
			break;
		case TSW_CHILD_NOT_RUN:
			break;
	}
	return NULL;
}

char *
tsw_run_node_script_lines(const char *script_rel, char **args, int nargs, bool in_backend,
						  int line_timeout_ms, TswChildEnd *end)
{
	return tsw_child_start_wait(script_rel, args, nargs, in_backend, line_timeout_ms, true, end);
}

/* Start the child and wait for it; its output, even when it failed (NULL: not started). */
static char *
tsw_child_start_wait(const char *script_rel, char **args, int nargs, bool in_backend,
					 int timeout_ms, bool per_line, TswChildEnd *end)
{
	char		exe[MAXPGPATH];
	char		script[MAXPGPATH];
	char		runtime[MAXPGPATH];
	char		native[MAXPGPATH];
	char	  **argv;
	int			pipefd[2];
	pid_t		pid;
	int			i;

	end->kind = TSW_CHILD_NOT_RUN;
	end->code = 0;
	tsw_native_dir(native, sizeof(native));
	tsw_runtime_dir(runtime, sizeof(runtime));
	snprintf(exe, sizeof(exe), "%s/pg_tsworker_node", native);
	snprintf(script, sizeof(script), "%s/%s", runtime, script_rel);

	argv = palloc0(sizeof(char *) * (nargs + 4));
	argv[0] = exe;
	argv[1] = "--max-old-space-size=256";
	argv[2] = script;
	for (i = 0; i < nargs; i++)
		argv[3 + i] = args[i];

	if (pipe(pipefd) != 0)
	{
		ereport(WARNING, (errmsg("pg_tsworker: could not create a pipe: %m")));
		return NULL;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0)
	{
		ereport(WARNING, (errmsg("pg_tsworker: could not fork: %m")));
		close(pipefd[0]);
		close(pipefd[1]);
		return NULL;
	}
	if (pid == 0)
	{
		char	   *envp[] = {"LC_ALL=C", "ESBUILD_WORKER_THREADS=0", NULL};
		sigset_t	all;

		/* a plain child: default signals, nothing blocked */
		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		for (i = 1; i < NSIG; i++)
			if (i != SIGKILL && i != SIGSTOP)
				signal(i, SIG_DFL);
		dup2(pipefd[1], STDOUT_FILENO);
		close(pipefd[0]);
		close(pipefd[1]);
		execve(exe, argv, envp);
		fprintf(stderr, "pg_tsworker: could not run %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	close(pipefd[1]);
	return tsw_child_wait(pid, pipefd[0], in_backend, timeout_ms, per_line, end);
}

/*
 * Read the child's output until it exits or timeout_ms passes (per_line:
 * since the last newline it printed, or since it started).
 */
static char *
tsw_child_wait(pid_t pid, int fd, bool in_backend, int timeout_ms, bool per_line,
			   TswChildEnd *end)
{
	StringInfoData out;
	int			status = 0;
	int			waited = 0;
	bool		timed_out = false;

	initStringInfo(&out);
	PG_TRY();
	{
		for (;;)
		{
			struct pollfd pfd = {fd, POLLIN, 0};
			int			rc = poll(&pfd, 1, 100);
			char		buf[4096];
			ssize_t		got;

			if (in_backend)
				CHECK_FOR_INTERRUPTS();
			if (rc < 0 && errno != EINTR)
				break;
			if (rc <= 0)
			{
				waited += 100;
				if (waited >= timeout_ms)
				{
					timed_out = true;
					kill(pid, SIGKILL);
					break;
				}
				continue;
			}
			got = read(fd, buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0)
				break;
			appendBinaryStringInfo(&out, buf, got);
			if (per_line && memchr(buf, '\n', got) != NULL)
				waited = 0;
		}
	}
	PG_CATCH();
	{
		/*
		 * Cancelled: leave no child behind.  SIGTERM first, and up to
		 * TSW_CHILD_TERM_MS for it to exit: a child may have something to
		 * undo (cluster_ctl's child withdraws the request it posted in
		 * etcd); then SIGKILL.
		 */
		int			left = TSW_CHILD_TERM_MS;
		bool		reaped = false;

		kill(pid, SIGTERM);
		while (left > 0 && !reaped)
		{
			pid_t		r = waitpid(pid, &status, WNOHANG);

			if (r == pid || (r < 0 && errno != EINTR))
				reaped = true;
			else
			{
				pg_usleep(10 * 1000L);
				left -= 10;
			}
		}
		if (!reaped)
		{
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		close(fd);
		PG_RE_THROW();
	}
	PG_END_TRY();
	close(fd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
		end->kind = TSW_CHILD_TIMED_OUT;
	else if (WIFSIGNALED(status))
	{
		end->kind = TSW_CHILD_SIGNALED;
		end->code = WTERMSIG(status);
	}
	else
	{
		end->kind = TSW_CHILD_EXITED;
		end->code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	}
	return out.data;
}
