/*-------------------------------------------------------------------------
 *
 * worker_settings.c
 *		Turn the settings that configured worker modules declare into real
 *		configuration parameters, tsworker_<worker>.<setting>.
 *
 * The postmaster must not run JavaScript (no V8 threads may exist before
 * fork), so it runs pg_tsworker_node, a Node.js executable built from the
 * workers' libnode, as a child process with a time limit: the child loads
 * each module and prints its declarations (src/runtime/manifest.ts).  Each
 * becomes a PGC_SIGHUP parameter with its type, bounds, unit and
 * description, so pg_settings lists it and PostgreSQL itself refuses a bad
 * value in postgresql.conf.  A module that cannot be read is reported with
 * a WARNING and its worker falls back to reading placeholders.
 *
 * tsworker.launch() runs the same child for the one module it is asked to
 * start (tsw_check_launch): a module that does not load, or settings its
 * declarations refuse, are reported to the caller before anything starts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pg_tsworker.h"

#define TSW_MANIFEST_TIMEOUT_MS 30000

static char *tsw_run_manifest(char **args, int nargs, bool in_backend);
static char *tsw_manifest_wait(pid_t pid, int fd, bool in_backend, int timeout_ms, const char *what);
static int	tsw_manifest_line(char **cursor, char **f, int max);
static void tsw_define_setting(char **f);
static int	tsw_unit_flag(const char *unit);

static int
tsw_unit_flag(const char *unit)
{
	if (strcmp(unit, "ms") == 0)
		return GUC_UNIT_MS;
	if (strcmp(unit, "s") == 0)
		return GUC_UNIT_S;
	if (strcmp(unit, "min") == 0)
		return GUC_UNIT_MIN;
	if (strcmp(unit, "B") == 0)
		return GUC_UNIT_BYTE;
	if (strcmp(unit, "kB") == 0)
		return GUC_UNIT_KB;
	if (strcmp(unit, "MB") == 0)
		return GUC_UNIT_MB;
	return 0;
}

/* Run the manifest child (manifest.js with `args`), as tsw_run_node_script. */
static char *
tsw_run_manifest(char **args, int nargs, bool in_backend)
{
	return tsw_run_node_script("dist/runtime/manifest.js", args, nargs, in_backend,
							   TSW_MANIFEST_TIMEOUT_MS, "loading worker modules");
}

/*
 * Run a script of the installed runtime (`script`, relative to it) in a
 * pg_tsworker_node child with `args`; return its output, or NULL when it
 * failed or took more than timeout_ms (a WARNING about `what` says why).
 * In a backend the wait can be cancelled, and the child is killed then.
 */
char *
tsw_run_node_script(const char *script_rel, char **args, int nargs, bool in_backend,
					int timeout_ms, const char *what)
{
	char		exe[MAXPGPATH];
	char		script[MAXPGPATH];
	char		runtime[MAXPGPATH];
	char		native[MAXPGPATH];
	char	  **argv;
	int			pipefd[2];
	pid_t		pid;
	int			i;

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
	return tsw_manifest_wait(pid, pipefd[0], in_backend, timeout_ms, what);
}

/* Read the child's output until it exits or timeout_ms passes. */
static char *
tsw_manifest_wait(pid_t pid, int fd, bool in_backend, int timeout_ms, const char *what)
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
		}
	}
	PG_CATCH();
	{
		/* cancelled: leave no child behind */
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		close(fd);
		PG_RE_THROW();
	}
	PG_END_TRY();
	close(fd);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timed_out)
	{
		ereport(WARNING,
				(errmsg("pg_tsworker: %s took more than %d s; gave up",
						what, timeout_ms / 1000)));
		return NULL;
	}
	if (WIFSIGNALED(status))
	{
		ereport(WARNING,
				(errmsg("pg_tsworker: %s was ended by signal %d (%s)",
						what, WTERMSIG(status), pg_strsignal(WTERMSIG(status))),
				 errdetail("A module that allocates more than 256 MB of heap while it loads, or crashes Node.js, ends the loader this way.")));
		return NULL;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
	{
		ereport(WARNING,
				(errmsg("pg_tsworker: %s failed (pg_tsworker_node exited with status %d)",
						what, WIFEXITED(status) ? WEXITSTATUS(status) : -1),
				 WEXITSTATUS(status) == 127 ?
				 errhint("Is pg_tsworker installed completely?") :
				 errdetail("Its own message is on the lines just above in the server log.")));
		return NULL;
	}
	return out.data;
}

/*
 * Take the next line of the manifest output at *cursor and split it into at
 * most `max` tab-separated fields; returns how many, or -1 at the end.
 */
static int
tsw_manifest_line(char **cursor, char **f, int max)
{
	char	   *line = *cursor;
	char	   *next;
	int			nf = 0;

	if (line == NULL || *line == '\0')
		return -1;
	next = strchr(line, '\n');
	if (next)
		*next++ = '\0';
	*cursor = next;
	while (nf < max)
	{
		char	   *tab = strchr(line, '\t');

		f[nf++] = line;
		if (tab == NULL)
			break;
		*tab = '\0';
		line = tab + 1;
	}
	return nf;
}

/*
 * tsworker.launch(): load `module` as worker `name` would and check the
 * settings given (a JSON object).  Returns NULL when the worker can start;
 * else the reason, and in *detail every bad setting (or NULL).
 */
char *
tsw_check_launch(const char *name, const char *module, const char *settings, char **detail)
{
	char	   *args[4];
	char	   *output;
	char	   *f[3];
	int			nf;
	StringInfoData bad;

	*detail = NULL;
	args[0] = "--launch";
	args[1] = palloc(MAXPGPATH);
	tsw_runtime_dir(args[1], MAXPGPATH);
	args[2] = psprintf("%s=%s", name, module);
	args[3] = pstrdup(settings);
	output = tsw_run_manifest(args, 4, true);
	if (output == NULL)
		return psprintf("could not load module \"%s\" (the WARNING above says why)", module);

	initStringInfo(&bad);
	while ((nf = tsw_manifest_line(&output, f, 3)) >= 0)
	{
		if (nf == 3 && strcmp(f[0], "error") == 0)
			return psprintf("could not load module \"%s\": %s", module, f[2]);
		if (nf == 3 && strcmp(f[0], "launch_error") == 0)
			appendStringInfo(&bad, "%s%s", bad.len > 0 ? "; " : "", f[2]);
	}
	if (bad.len == 0)
		return NULL;
	*detail = bad.data;
	return psprintf("invalid settings for worker \"%s\"", name);
}

/* f: setting worker name type default min max unit values description context */
static void
tsw_define_setting(char **f)
{
	GucContext	context = strcmp(f[10], "postmaster") == 0 ? PGC_POSTMASTER : PGC_SIGHUP;
	char	   *gucname = MemoryContextStrdup(TopMemoryContext,
											  psprintf("tsworker_%s.%s", f[1], f[2]));
	const char *type = f[3];
	char	   *desc = MemoryContextStrdup(TopMemoryContext, f[9]);
	int			unit = tsw_unit_flag(f[7]);

	if (strcmp(type, "int") == 0)
	{
		int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));
		long		def = strtol(f[4], NULL, 10);
		long		min = f[5][0] ? strtol(f[5], NULL, 10) : INT_MIN;
		long		max = f[6][0] ? strtol(f[6], NULL, 10) : INT_MAX;

		if (min < INT_MIN || max > INT_MAX || def < min || def > max)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: setting \"%s\" has a default or bounds outside the integer range or each other; not defined", gucname)));
			return;
		}
		DefineCustomIntVariable(gucname, desc, NULL, var, (int) def, (int) min, (int) max,
								context, unit, NULL, NULL, NULL);
	}
	else if (strcmp(type, "real") == 0)
	{
		double	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(double));
		double		def = strtod(f[4], NULL);
		double		min = f[5][0] ? strtod(f[5], NULL) : -DBL_MAX;
		double		max = f[6][0] ? strtod(f[6], NULL) : DBL_MAX;

		if (def < min || def > max)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: setting \"%s\" has a default outside its bounds; not defined", gucname)));
			return;
		}
		DefineCustomRealVariable(gucname, desc, NULL, var, def, min, max,
								 context, unit, NULL, NULL, NULL);
	}
	else if (strcmp(type, "bool") == 0)
	{
		bool	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(bool));

		DefineCustomBoolVariable(gucname, desc, NULL, var, strcmp(f[4], "on") == 0,
								 context, 0, NULL, NULL, NULL);
	}
	else if (strcmp(type, "string") == 0)
	{
		char	  **var = MemoryContextAlloc(TopMemoryContext, sizeof(char *));

		DefineCustomStringVariable(gucname, desc, NULL, var,
								   MemoryContextStrdup(TopMemoryContext, f[4]),
								   context, 0, NULL, NULL, NULL);
	}
	else if (strcmp(type, "enum") == 0)
	{
		int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));
		char	   *values = MemoryContextStrdup(TopMemoryContext, f[8]);
		struct config_enum_entry *entries;
		int			count = 1;
		int			def = -1;
		int			i = 0;
		char	   *p;
		char	   *tok;

		for (p = values; *p; p++)
			if (*p == ',')
				count++;
		entries = MemoryContextAllocZero(TopMemoryContext, sizeof(struct config_enum_entry) * (count + 1));
		for (tok = strtok(values, ","); tok != NULL; tok = strtok(NULL, ","))
		{
			entries[i].name = tok;
			entries[i].val = i;
			entries[i].hidden = false;
			if (strcmp(tok, f[4]) == 0)
				def = i;
			i++;
		}
		if (def < 0)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: setting \"%s\" has a default that is not one of its values; not defined", gucname)));
			return;
		}
		DefineCustomEnumVariable(gucname, desc, NULL, var, def, entries,
								 context, 0, NULL, NULL, NULL);
	}
}

void
tsw_define_worker_settings(TswWorkerSpec *specs, int n)
{
	char	  **args;
	char	   *output;
	char	   *f[11];
	int			nf;
	bool	   *ok;
	int			i;

	if (n == 0)
		return;
	args = palloc(sizeof(char *) * (n + 1));
	args[0] = palloc(MAXPGPATH);
	tsw_runtime_dir(args[0], MAXPGPATH);
	for (i = 0; i < n; i++)
		args[1 + i] = psprintf("%s=%s", specs[i].name, specs[i].module);
	output = tsw_run_manifest(args, n + 1, false);
	if (output == NULL)
	{
		ereport(WARNING,
				(errmsg("pg_tsworker: could not read the settings of the configured workers"),
				 errhint("Worker settings are read from placeholders until the next server start.")));
		return;
	}

	ok = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
		ok[i] = true;

	while ((nf = tsw_manifest_line(&output, f, 11)) >= 0)
	{
		if (strcmp(f[0], "setting") == 0 && nf == 11)
			tsw_define_setting(f);
		else if (strcmp(f[0], "worker") == 0 && nf >= 4)
		{
			for (i = 0; i < n; i++)
			{
				if (strcmp(specs[i].name, f[1]) != 0)
					continue;
				specs[i].start_time = strcmp(f[2], "standby") == 0 ?
					BgWorkerStart_ConsistentState : BgWorkerStart_RecoveryFinished;
				specs[i].instances = f[3][0] ? pstrdup(f[3]) : NULL;
			}
		}
		else if (strcmp(f[0], "error") == 0 && nf >= 3)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: could not read the settings of worker \"%s\": %s", f[1], f[2]),
					 errdetail("The worker will report the same error when it starts.")));
			for (i = 0; i < n; i++)
				if (strcmp(specs[i].name, f[1]) == 0)
					ok[i] = false;
		}
	}

	/* typos in a worker's own settings are reported, as for tsworker.* */
	for (i = 0; i < n; i++)
		if (ok[i])
			MarkGUCPrefixReserved(psprintf("tsworker_%s", specs[i].name));
}
