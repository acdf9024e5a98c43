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
 * The values are checked by PostgreSQL, not by the runtime
 * (tsw_check_settings): the calling backend puts each value through
 * PostgreSQL's parsers against the module's declarations of now
 * (settings_check.c), and the worker defines its declared settings as
 * parameters of its own process and applies the values with
 * set_config_option() (src/runtime/worker.ts), so one set of rules
 * (PostgreSQL's: syntax, units, rounding, bounds) holds for
 * postgresql.conf, placeholders and launch settings alike.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <limits.h>

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "manifest.h"
#include "pg_tsworker.h"

static bool tsw_define_setting(const char *worker, const TswSettingDecl *s);
static int	tsw_unit_flag(const char *unit);
static char *tsw_check_value(const char *worker, const TswSettingDecl *s,
							 const char *value, bool apply);
static struct config_generic *tsw_find_defined(const char *gucname);

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
 * tsworker.launch() and tsworker.restart(): load `module` as worker `name`
 * would (reading its settings as tsworker_<config_name>.*) and check the
 * settings given (a JSON object).  Returns NULL when the worker can start;
 * else the reason, and in *detail every bad setting (or NULL).
 */
char *
tsw_check_launch(const char *name, const char *config_name, const char *module,
				 const char *settings, char **detail)
{
	char	   *entry = psprintf("%s=%s", name, module);
	TswWorkerDecl *decls;

	*detail = NULL;
	if (tsw_read_manifest(&entry, 1, true, &decls) != 1)
		return psprintf("could not load module \"%s\" (the WARNING above says why)", module);
	if (decls[0].error != NULL)
		return psprintf("could not load module \"%s\": %s", module, decls[0].error);
	*detail = tsw_check_settings(name, config_name, decls[0].settings, decls[0].nsettings,
								 settings, false);
	if (*detail == NULL)
		return NULL;
	return psprintf("invalid settings for worker \"%s\"", name);
}

/*
 * The settings given to tsworker.launch() for `worker`, whose declarations
 * are `decls` and whose parameters are tsworker_<config_name>.*.  Every key
 * must be a declared setting, or `index` (an integer >= 0); every value a
 * string, number or boolean that PostgreSQL accepts for the parameter.
 * With `apply` (in the worker), declared settings that are not parameters
 * in this process yet are defined first (a placeholder's value, from
 * postgresql.conf, is then checked by PostgreSQL, which reports a bad one
 * with a WARNING and keeps the default), and good values are set with
 * source PGC_S_OVERRIDE, which a reload of postgresql.conf does not
 * replace.  Without (in the session calling launch()), nothing is defined.
 * Returns NULL when all are good, else one message per bad setting joined
 * by "; ".
 */
char *
tsw_check_settings(const char *worker, const char *config_name,
				   const TswSettingDecl *decls, int n, const char *settings, bool apply)
{
	Jsonb	   *given;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	StringInfoData bad;
	StringInfoData known;		/* the declared names, for an undeclared key */
	char	   *key = NULL;
	int			i;

	/* only the worker defines them: a definition lasts as long as the session (settings_check.c) */
	for (i = 0; apply && i < n; i++)
		if (tsw_define_setting(config_name, &decls[i]))
			tsw_note_defined_here(psprintf("tsworker_%s.%s", config_name, decls[i].name));
	/* a line for an undeclared setting (a typo) is said, as for a configured worker's at server start */
	if (apply)
		MarkGUCPrefixReserved(psprintf("tsworker_%s", config_name));

	given = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											   CStringGetDatum(settings && settings[0] ? settings : "{}")));
	initStringInfo(&bad);
	if (!JB_ROOT_IS_OBJECT(given))
		return pstrdup("settings must be a JSON object");
	initStringInfo(&known);
	for (i = 0; i < n; i++)
		appendStringInfo(&known, "%s%s", i > 0 ? ", " : "", decls[i].name);

	it = JsonbIteratorInit(&given->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const TswSettingDecl *s = NULL;
		bool		scalar;
		char	   *text;
		char	   *why = NULL;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		/* a string as it is, a number in numeric's text, a boolean as on/off */
		scalar = v.type != jbvNull && v.type != jbvBinary;
		text = !scalar ? (v.type == jbvNull ? pstrdup("null") :
						  JsonbToCString(NULL, v.val.binary.data, v.val.binary.len)) :
			tsw_json_text(&v);
		for (i = 0; i < n && s == NULL; i++)
			if (strcmp(decls[i].name, key) == 0)
				s = &decls[i];
		if (strcmp(key, "index") == 0)
		{
			if (v.type != jbvNumeric || strspn(text, "0123456789") != strlen(text) ||
				strlen(text) > 9)
				why = psprintf("setting \"index\" must be an integer >= 0, not %s", text);
		}
		else if (s == NULL)
			why = psprintf("setting \"%s\" is not declared by worker \"%s\" (%s%s)", key, worker,
						   n > 0 ? "it declares: " : "it declares none", known.data);
		else if (!scalar)
			why = psprintf("setting \"%s\" must be a string, number or boolean, not %s", key, text);
		else
			why = tsw_check_value(config_name, s, text, apply);
		if (why != NULL)
			appendStringInfo(&bad, "%s%s", bad.len > 0 ? "; " : "", why);
	}
	return bad.len > 0 ? bad.data : NULL;
}

/* The definition of parameter `gucname` in this process, or NULL (a placeholder too). */
static struct config_generic *
tsw_find_defined(const char *gucname)
{
	struct config_generic *gen = NULL;

#if PG_VERSION_NUM >= 160000
	gen = find_option(gucname, false, true, DEBUG1);
#else
	struct config_generic **vars = get_guc_variables();
	int			nvars = GetNumConfigOptions();

	for (int i = 0; i < nvars; i++)
	{
		if (pg_strcasecmp(vars[i]->name, gucname) == 0)
		{
			gen = vars[i];
			break;
		}
	}
#endif
	return gen != NULL && !(gen->flags & GUC_CUSTOM_PLACEHOLDER) ? gen : NULL;
}

/*
 * Let PostgreSQL check `value` for declared setting `s` of the worker whose
 * parameters are tsworker_<worker>.*: in the calling session with its
 * parsers (settings_check.c), in the worker with set_config_option(),
 * which also sets it.  Returns NULL, or why the value is refused
 * (PostgreSQL's message and hint).
 */
static char *
tsw_check_value(const char *worker, const TswSettingDecl *s, const char *value, bool apply)
{
	static const char *const types[] = {"bool", "int", "real", "string", "enum"};
	char	   *gucname = psprintf("tsworker_%s.%s", worker, s->name);
	struct config_generic *guc;
	MemoryContext oldcontext = CurrentMemoryContext;
	char	   *volatile why = NULL;

	if (!apply)
	{
		why = tsw_parse_setting_value(gucname, s, tsw_unit_flag(s->unit), value);
		return why ? psprintf("setting \"%s\": %s", s->name, why) : NULL;
	}
	guc = tsw_find_defined(gucname);
	if (guc == NULL)
		return psprintf("setting \"%s\": parameter \"%s\" could not be defined (the WARNING above says why)",
						s->name, gucname);
	if (strcmp(types[guc->vartype], s->type) != 0)
		return psprintf("setting \"%s\": parameter \"%s\" is already defined in this session with type %s, not %s",
						s->name, gucname, types[guc->vartype], s->type);
	PG_TRY();
	{
		/* PGC_POSTMASTER: allowed for parameters of either context */
		(void) set_config_option(gucname, value, PGC_POSTMASTER, PGC_S_OVERRIDE,
								 GUC_ACTION_SET, apply, ERROR, false);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		why = tsw_with_hint(psprintf("setting \"%s\": %s", s->name, edata->message), edata->hint);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return why;
}

/*
 * Define declared setting `s` of the worker whose parameters are
 * tsworker_<worker>.*, unless this process has it already (from the
 * postmaster, or an earlier launch in this session).  A postmaster setting
 * is PGC_POSTMASTER only when defined at server start (PostgreSQL allows it
 * at no other time); defined later, it is PGC_SIGHUP, as its placeholder
 * was.  True when this call defined it.
 */
static bool
tsw_define_setting(const char *worker, const TswSettingDecl *s)
{
	GucContext	context = s->postmaster && process_shared_preload_libraries_in_progress ?
		PGC_POSTMASTER : PGC_SIGHUP;
	char	   *gucname = psprintf("tsworker_%s.%s", worker, s->name);
	char	   *desc;
	int			unit = tsw_unit_flag(s->unit);
	int			flags = s->superuser_only ? GUC_SUPERUSER_ONLY : 0;

	if (tsw_find_defined(gucname) != NULL)
		return false;
	gucname = MemoryContextStrdup(TopMemoryContext, gucname);
	desc = MemoryContextStrdup(TopMemoryContext, s->description);

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
			return false;
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
			return false;
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
			return false;
		}
		DefineCustomEnumVariable(gucname, desc, NULL, var, def, entries,
								 context, flags, NULL, NULL, NULL);
	}
	else
		ereport(WARNING,
				(errmsg("pg_tsworker: setting \"%s\" has an unknown type \"%s\"; not defined",
						gucname, s->type)));
	return tsw_find_defined(gucname) != NULL;
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
	ndecls = tsw_read_manifest(entries, n, false, &decls);
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
