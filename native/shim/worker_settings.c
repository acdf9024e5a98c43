/*-------------------------------------------------------------------------
 *
 * worker_settings.c
 *		Turn the settings that configured worker modules declare into real
 *		configuration parameters, tsworker_<worker>.<setting>.
 *
 * What each module declares is read from the manifest child (manifest.c).
 * Each setting becomes a PGC_SIGHUP (or PGC_POSTMASTER) parameter with its
 * type, bounds, unit and description, so pg_settings lists it and
 * PostgreSQL itself refuses a bad value in postgresql.conf.  A module that
 * cannot be read is reported with a WARNING and its worker falls back to
 * reading placeholders.
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

#include "lib/stringinfo.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "manifest.h"
#include "pg_tsworker.h"

static void tsw_define_setting(const char *worker, const TswSettingDecl *s);
static int	tsw_unit_flag(const char *unit);

static int
tsw_unit_flag(const char *unit)
{
	if (unit == NULL)
		return 0;
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

/*
 * tsworker.launch(): load `module` as worker `name` would and check the
 * settings given (a JSON object).  Returns NULL when the worker can start;
 * else the reason, and in *detail every bad setting (or NULL).
 */
char *
tsw_check_launch(const char *name, const char *module, const char *settings, char **detail)
{
	char	   *entry = psprintf("%s=%s", name, module);
	TswWorkerDecl *decls;
	StringInfoData bad;
	int			i;

	*detail = NULL;
	if (tsw_read_manifest(&entry, 1, settings, true, &decls) != 1)
		return psprintf("could not load module \"%s\" (the WARNING above says why)", module);
	if (decls[0].error != NULL)
		return psprintf("could not load module \"%s\": %s", module, decls[0].error);

	initStringInfo(&bad);
	for (i = 0; i < decls[0].nlaunch_errors; i++)
		appendStringInfo(&bad, "%s%s", bad.len > 0 ? "; " : "", decls[0].launch_errors[i]);
	if (bad.len == 0)
		return NULL;
	*detail = bad.data;
	return psprintf("invalid settings for worker \"%s\"", name);
}

static void
tsw_define_setting(const char *worker, const TswSettingDecl *s)
{
	GucContext	context = s->postmaster ? PGC_POSTMASTER : PGC_SIGHUP;
	char	   *gucname = MemoryContextStrdup(TopMemoryContext,
											  psprintf("tsworker_%s.%s", worker, s->name));
	char	   *desc = MemoryContextStrdup(TopMemoryContext, s->description);
	int			unit = tsw_unit_flag(s->unit);
	int			flags = s->superuser_only ? GUC_SUPERUSER_ONLY : 0;

	if (strcmp(s->type, "int") == 0)
	{
		int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));
		long		def = strtol(s->default_value, NULL, 10);
		long		min = s->min ? strtol(s->min, NULL, 10) : INT_MIN;
		long		max = s->max ? strtol(s->max, NULL, 10) : INT_MAX;

		if (min < INT_MIN || max > INT_MAX || def < min || def > max)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: setting \"%s\" has a default or bounds outside the integer range or each other; not defined", gucname)));
			return;
		}
		DefineCustomIntVariable(gucname, desc, NULL, var, (int) def, (int) min, (int) max,
								context, unit | flags, NULL, NULL, NULL);
	}
	else if (strcmp(s->type, "real") == 0)
	{
		double	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(double));
		double		def = strtod(s->default_value, NULL);
		double		min = s->min ? strtod(s->min, NULL) : -DBL_MAX;
		double		max = s->max ? strtod(s->max, NULL) : DBL_MAX;

		if (def < min || def > max)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: setting \"%s\" has a default outside its bounds; not defined", gucname)));
			return;
		}
		DefineCustomRealVariable(gucname, desc, NULL, var, def, min, max,
								 context, unit | flags, NULL, NULL, NULL);
	}
	else if (strcmp(s->type, "bool") == 0)
	{
		bool	   *var = MemoryContextAlloc(TopMemoryContext, sizeof(bool));

		DefineCustomBoolVariable(gucname, desc, NULL, var, strcmp(s->default_value, "on") == 0,
								 context, flags, NULL, NULL, NULL);
	}
	else if (strcmp(s->type, "string") == 0)
	{
		char	  **var = MemoryContextAlloc(TopMemoryContext, sizeof(char *));

		DefineCustomStringVariable(gucname, desc, NULL, var,
								   MemoryContextStrdup(TopMemoryContext, s->default_value),
								   context, flags, NULL, NULL, NULL);
	}
	else if (strcmp(s->type, "enum") == 0)
	{
		int		   *var = MemoryContextAlloc(TopMemoryContext, sizeof(int));
		struct config_enum_entry *entries;
		int			def = -1;
		int			i;

		entries = MemoryContextAllocZero(TopMemoryContext,
										 sizeof(struct config_enum_entry) * (s->nvalues + 1));
		for (i = 0; i < s->nvalues; i++)
		{
			entries[i].name = MemoryContextStrdup(TopMemoryContext, s->values[i]);
			entries[i].val = i;
			entries[i].hidden = false;
			if (strcmp(s->values[i], s->default_value) == 0)
				def = i;
		}
		if (def < 0)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: setting \"%s\" has a default that is not one of its values; not defined", gucname)));
			return;
		}
		DefineCustomEnumVariable(gucname, desc, NULL, var, def, entries,
								 context, flags, NULL, NULL, NULL);
	}
	else
		ereport(WARNING,
				(errmsg("pg_tsworker: setting \"%s\" has an unknown type \"%s\"; not defined",
						gucname, s->type)));
}

void
tsw_define_worker_settings(TswWorkerSpec *specs, int n)
{
	char	  **entries;
	TswWorkerDecl *decls;
	int			ndecls;
	bool	   *ok;
	int			i;
	int			d;

	if (n == 0)
		return;
	entries = palloc(sizeof(char *) * n);
	for (i = 0; i < n; i++)
		entries[i] = psprintf("%s=%s", specs[i].name, specs[i].module);
	ndecls = tsw_read_manifest(entries, n, NULL, false, &decls);
	if (ndecls < 0)
	{
		ereport(WARNING,
				(errmsg("pg_tsworker: could not read the settings of the configured workers"),
				 errhint("Worker settings are read from placeholders until the next server start.")));
		return;
	}

	ok = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
		ok[i] = true;

	for (d = 0; d < ndecls; d++)
	{
		TswWorkerDecl *w = &decls[d];

		for (i = 0; i < n; i++)
		{
			if (strcmp(specs[i].name, w->worker) != 0)
				continue;
			if (w->error != NULL)
			{
				ok[i] = false;
				continue;
			}
			specs[i].start_time = w->standby ?
				BgWorkerStart_ConsistentState : BgWorkerStart_RecoveryFinished;
			specs[i].instances = w->instances;
		}
		if (w->error != NULL)
		{
			ereport(WARNING,
					(errmsg("pg_tsworker: could not read the settings of worker \"%s\": %s",
							w->worker, w->error),
					 errdetail("The worker will report the same error when it starts.")));
			continue;
		}
		for (i = 0; i < w->nsettings; i++)
			tsw_define_setting(w->worker, &w->settings[i]);
	}

	/* typos in a worker's own settings are reported, as for tsworker.* */
	for (i = 0; i < n; i++)
		if (ok[i])
			MarkGUCPrefixReserved(psprintf("tsworker_%s", specs[i].name));
}
