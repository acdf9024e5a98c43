/*-------------------------------------------------------------------------
 *
 * manifest.c
 *		Run the manifest child and read what worker modules declare.
 *
 * The postmaster must not run JavaScript (no V8 threads may exist before
 * fork), so it runs pg_tsworker_node, a Node.js executable built from the
 * workers' libnode, as a child process with a time limit: the child loads
 * each module and prints one JSON line per module as soon as it is loaded
 * (src/runtime/manifest.ts defines its fields).  Each line is parsed here
 * as jsonb, under PG_TRY, so that malformed output is a WARNING and never
 * an error that would stop the server from starting.
 *
 * Each module is isolated from the others: one that makes the child exit
 * or crash, or that does not finish loading within
 * tsworker.module_load_timeout (its top level loops or waits), fails alone
 * with that reason; the answers printed before it are kept, and a new child
 * loads the modules after it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "manifest.h"
#include "pg_tsworker.h"

static int	tsw_parse_manifest_lines(const char *output, TswWorkerDecl *decls, int max, bool *ready);
static char *tsw_child_end_reason(const TswChildEnd *end);
static JsonbValue *tsw_json_get(JsonbContainer *object, const char *key);
static char *tsw_json_field(JsonbContainer *object, const char *key);
static JsonbContainer *tsw_json_array(JsonbContainer *object, const char *key, int *n);
static JsonbContainer *tsw_json_elem(JsonbContainer *array, int i);
static char **tsw_json_strings(JsonbContainer *object, const char *key, int *n);
static void tsw_read_setting(JsonbContainer *object, TswSettingDecl *s);
static void tsw_read_worker(JsonbContainer *object, TswWorkerDecl *w);

int
tsw_read_manifest(char **entries, int n, bool in_backend, TswWorkerDecl **decls)
{
	char		runtime[MAXPGPATH];
	int			done = 0;

	*decls = palloc0(sizeof(TswWorkerDecl) * Max(n, 1));
	tsw_runtime_dir(runtime, sizeof(runtime));
	while (done < n)
	{
		char	  **args = palloc(sizeof(char *) * (n - done + 4));
		int			nargs = 0;
		TswChildEnd end;
		char	   *output;
		int			got;
		bool		ready = false;
		int			i;

		args[nargs++] = "--lines";
		args[nargs++] = runtime;
		for (i = done; i < n; i++)
			args[nargs++] = entries[i];
		output = tsw_run_node_script_lines("dist/runtime/manifest.js", args, nargs, in_backend,
										   tsw_module_load_timeout * 1000, &end);
		if (output == NULL)
			return -1;
		got = tsw_parse_manifest_lines(output, &(*decls)[done], n - done, &ready);
		if (got < 0)
			return -1;
		done += got;
		if (end.kind == TSW_CHILD_EXITED && end.code == 0)
		{
			if (done < n)
			{
				ereport(WARNING,
						(errmsg("pg_tsworker: the module loader printed something that is not a manifest"),
						 errdetail("It answered for %d of %d modules.", done, n)));
				return -1;
			}
			break;
		}
		if (!ready)
		{
			/* before any module: the runtime itself, not a module */
			ereport(WARNING,
					(errmsg("pg_tsworker: loading worker modules failed: the module loader %s before loading any",
							tsw_child_end_reason(&end)),
					 end.kind == TSW_CHILD_EXITED && end.code == 127 ?
					 errhint("Is pg_tsworker installed completely?") :
					 errdetail("Its own message is on the lines just above in the server log.")));
			return -1;
		}
		if (done == n)
			break;
		/* the module it was loading ended or hung it: it fails alone */
		{
			TswWorkerDecl *bad = &(*decls)[done];
			const char *eq = strchr(entries[done], '=');

			bad->worker = eq ? pnstrdup(entries[done], eq - entries[done]) : pstrdup(entries[done]);
			bad->error = end.kind == TSW_CHILD_TIMED_OUT ?
				psprintf("loading it did not finish within %d s (tsworker.module_load_timeout): its top-level code loops or waits",
						 tsw_module_load_timeout) :
				psprintf("the module loader %s while loading it", tsw_child_end_reason(&end));
			done++;
		}
	}
	return n;
}

/* How the child ended, for a message: "exited with status 1" ... */
static char *
tsw_child_end_reason(const TswChildEnd *end)
{
	switch (end->kind)
	{
		case TSW_CHILD_EXITED:
			return psprintf("exited with status %d", end->code);
		case TSW_CHILD_SIGNALED:
			return psprintf("was ended by signal %d (%s: more than 256 MB of heap, or a crash of Node.js)",
							end->code, pg_strsignal(end->code));
		case TSW_CHILD_TIMED_OUT:
			return psprintf("printed nothing for %d s (tsworker.module_load_timeout)", tsw_module_load_timeout);
		case TSW_CHILD_NOT_RUN:
			break;
	}
	return pstrdup("could not be started");
}

/*
 * Parse the complete lines of the child's output: {"ready": true} sets
 * *ready, every other line is one worker, stored in decls[0 .. max).
 * Returns how many workers; -1 and a WARNING if a line is not one.
 * jsonb_in reports malformed JSON with ereport(ERROR): caught here, as the
 * postmaster must not fail to start over it.
 */
static int
tsw_parse_manifest_lines(const char *output, TswWorkerDecl *decls, int max, bool *ready)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int n = 0;

	PG_TRY();
	{
		const char *line = output;
		const char *nl;

		while ((nl = strchr(line, '\n')) != NULL)
		{
			char	   *text = pnstrdup(line, nl - line);
			Jsonb	   *doc;

			line = nl + 1;
			if (text[0] == '\0')
				continue;
			doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
			if (!JB_ROOT_IS_OBJECT(doc))
				elog(ERROR, "a line is not a JSON object");
			if (tsw_json_get(&doc->root, "ready") != NULL)
			{
				*ready = true;
				continue;
			}
			if (n >= max)
				elog(ERROR, "more answers than modules");
			tsw_read_worker(&doc->root, &decls[n]);
			n++;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(WARNING,
				(errmsg("pg_tsworker: the module loader printed something that is not a manifest"),
				 errdetail("%s", edata->message)));
		return -1;
	}
	PG_END_TRY();
	return n;
}

static void
tsw_read_worker(JsonbContainer *object, TswWorkerDecl *w)
{
	JsonbContainer *settings;
	char	   *start;
	int			i;

	w->worker = tsw_json_field(object, "worker");
	if (w->worker == NULL)
		elog(ERROR, "a worker entry has no \"worker\"");
	w->error = tsw_json_field(object, "error");
	start = tsw_json_field(object, "start");
	w->standby = start != NULL && strcmp(start, "standby") == 0;
	w->instances = tsw_json_field(object, "instances");
	settings = tsw_json_array(object, "settings", &w->nsettings);
	w->settings = palloc0(sizeof(TswSettingDecl) * Max(w->nsettings, 1));
	for (i = 0; i < w->nsettings; i++)
	{
		JsonbContainer *s = tsw_json_elem(settings, i);

		if (s == NULL)
			elog(ERROR, "setting %d of worker \"%s\" is not an object", i + 1, w->worker);
		tsw_read_setting(s, &w->settings[i]);
	}
}

static void
tsw_read_setting(JsonbContainer *object, TswSettingDecl *s)
{
	char	   *context;
	char	   *superuser_only;

	s->name = tsw_json_field(object, "name");
	s->type = tsw_json_field(object, "type");
	s->default_value = tsw_json_field(object, "default");
	if (s->name == NULL || s->type == NULL || s->default_value == NULL)
		elog(ERROR, "a setting has no \"name\", \"type\" or \"default\"");
	s->min = tsw_json_field(object, "min");
	s->max = tsw_json_field(object, "max");
	s->unit = tsw_json_field(object, "unit");
	s->values = tsw_json_strings(object, "values", &s->nvalues);
	s->description = tsw_json_field(object, "description");
	if (s->description == NULL)
		s->description = "";
	context = tsw_json_field(object, "context");
	s->postmaster = context != NULL && strcmp(context, "postmaster") == 0;
	superuser_only = tsw_json_field(object, "superuser_only");
	s->superuser_only = superuser_only != NULL && strcmp(superuser_only, "on") == 0;
}

int
tsw_parse_setting_decls(const char *json, TswSettingDecl **decls)
{
	Jsonb	   *doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
	int			n;
	int			i;

	if (!JB_ROOT_IS_ARRAY(doc) || JB_ROOT_IS_SCALAR(doc))
		elog(ERROR, "setting declarations are not a JSON array");
	n = JsonContainerSize(&doc->root);
	*decls = palloc0(sizeof(TswSettingDecl) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		JsonbContainer *s = tsw_json_elem(&doc->root, i);

		if (s == NULL)
			elog(ERROR, "setting declaration %d is not an object", i + 1);
		tsw_read_setting(s, &(*decls)[i]);
	}
	return n;
}

/* The value of `key` in `object`, or NULL when absent. */
static JsonbValue *
tsw_json_get(JsonbContainer *object, const char *key)
{
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

/* A scalar as text: strings as they are, numbers in numeric's text, booleans as on/off. */
char *
tsw_json_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "on" : "off");
		case jbvNull:
			return NULL;
		default:
			elog(ERROR, "a value that should be a string, number or boolean is an array or object");
	}
	return NULL;					/* keep compiler quiet */
}

/* The text of scalar field `key`, or NULL when absent or null. */
static char *
tsw_json_field(JsonbContainer *object, const char *key)
{
	JsonbValue *v = tsw_json_get(object, key);

	return v == NULL ? NULL : tsw_json_text(v);
}

/* Array field `key` and its length in *n; NULL and 0 when absent. */
static JsonbContainer *
tsw_json_array(JsonbContainer *object, const char *key, int *n)
{
	JsonbValue *v = tsw_json_get(object, key);

	*n = 0;
	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
		elog(ERROR, "\"%s\" is not an array", key);
	*n = JsonContainerSize(v->val.binary.data);
	return v->val.binary.data;
}

/* Element i of `array` when it is an object, else NULL. */
static JsonbContainer *
tsw_json_elem(JsonbContainer *array, int i)
{
	JsonbValue *v = getIthJsonbValueFromContainer(array, i);

	if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		return NULL;
	return v->val.binary.data;
}

/* Array field `key` of scalars, as text (palloc'd array); NULL and 0 when absent. */
static char **
tsw_json_strings(JsonbContainer *object, const char *key, int *n)
{
	JsonbContainer *array = tsw_json_array(object, key, n);
	char	  **out;
	int			i;

	if (array == NULL)
		return NULL;
	out = palloc0(sizeof(char *) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		out[i] = tsw_json_text(getIthJsonbValueFromContainer(array, i));
		if (out[i] == NULL)
			elog(ERROR, "\"%s\" holds a null", key);
	}
	return out;
}
