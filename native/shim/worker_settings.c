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

static char *tsw_run_manifest(TswWorkerSpec *specs, int n);
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

/* Run the manifest child; return its output, or NULL (a WARNING says why). */
static char *
tsw_run_manifest(TswWorkerSpec *specs, int n)
{
	char		exe[MAXPGPATH];
	char		script[MAXPGPATH];
	char		runtime[MAXPGPATH];
	char		native[MAXPGPATH];
	char	  **argv;
	int			pipefd[2];
	pid_t		pid;
	StringInfoData out;
	int			status;
	int			waited = 0;
	int			i;

	tsw_native_dir(native, sizeof(native));
	tsw_runtime_dir(runtime, sizeof(runtime));
	snprintf(exe, sizeof(exe), "%s/pg_tsworker_node", native);
	snprintf(script, sizeof(script), "%s/dist/runtime/manifest.js", runtime);

	argv = palloc0(sizeof(char *) * (n + 5));
	argv[0] = exe;
	argv[1] = "--max-old-space-size=256";
	argv[2] = script;
	argv[3] = runtime;
	for (i = 0; i < n; i++)
		argv[4 + i] = psprintf("%s=%s", specs[i].name, specs[i].module);

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

	initStringInfo(&out);
	for (;;)
	{
		struct pollfd pfd = {pipefd[0], POLLIN, 0};
		int			rc = poll(&pfd, 1, 100);
		char		buf[4096];
		ssize_t		got;

		if (rc < 0 && errno != EINTR)
			break;
		if (rc == 0)
		{
			waited += 100;
			if (waited >= TSW_MANIFEST_TIMEOUT_MS)
			{
				kill(pid, SIGKILL);
				ereport(WARNING,
						(errmsg("pg_tsworker: reading the settings of the configured workers took more than %d s; gave up",
								TSW_MANIFEST_TIMEOUT_MS / 1000)));
				break;
			}
			continue;
		}
		got = read(pipefd[0], buf, sizeof(buf));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		appendBinaryStringInfo(&out, buf, got);
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
	{
		ereport(WARNING,
				(errmsg("pg_tsworker: could not read the settings of the configured workers (%s exited with status %d)",
						exe, WIFEXITED(status) ? WEXITSTATUS(status) : -1),
				 errhint("Worker settings are read from placeholders; is pg_tsworker installed completely?")));
		return NULL;
	}
	return out.data;
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
	char	   *output;
	char	   *line;
	char	   *next;
	bool	   *ok;
	int			i;

	if (n == 0)
		return;
	output = tsw_run_manifest(specs, n);
	if (output == NULL)
		return;

	ok = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
		ok[i] = true;

	for (line = output; line && *line; line = next)
	{
		char	   *f[11];
		int			nf = 0;
		char	   *p = line;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		while (nf < 11)
		{
			char	   *tab = strchr(p, '\t');

			f[nf++] = p;
			if (tab == NULL)
				break;
			*tab = '\0';
			p = tab + 1;
		}
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
