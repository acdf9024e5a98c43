/*-------------------------------------------------------------------------
 *
 * manifest.c
 *		Run the manifest child and read what worker modules declare.
 *
 * The postmaster must not run JavaScript (no V8 threads may exist before
 * fork), so it runs pg_tsworker_node, a Node.js executable built from the
 * workers' libnode, as a child process with a time limit: the child loads
 * each module and prints one JSON document, {"workers": [...]}
 * (src/runtime/manifest.ts defines its fields).  It is parsed here as
 * jsonb, under PG_TRY, so that malformed output is a WARNING and never an
 * error that would stop the server from starting.
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

#define TSW_MANIFEST_TIMEOUT_MS 30000

static char *tsw_run_manifest(char **args, int nargs, bool in_backend);
static int	tsw_parse_manifest(const char *json, TswWorkerDecl **decls);
static JsonbValue *tsw_json_get(JsonbContainer *object, const char *key);
static char *tsw_json_text(JsonbValue *v);
static char *tsw_json_field(JsonbContainer *object, const char *key);
static JsonbContainer *tsw_json_array(JsonbContainer *object, const char *key, int *n);
static JsonbContainer *tsw_json_elem(JsonbContainer *array, int i);
static char **tsw_json_strings(JsonbContainer *object, const char *key, int *n);
static void tsw_read_setting(JsonbContainer *object, TswSettingDecl *s);
static void tsw_read_worker(JsonbContainer *object, TswWorkerDecl *w);

int
tsw_read_manifest(char **args, int nargs, bool in_backend, TswWorkerDecl **decls)
{
	char	   *output = tsw_run_manifest(args, nargs, in_backend);

	if (output == NULL)
		return -1;
	return tsw_parse_manifest(output, decls);
}

/* Run the manifest child (manifest.js with `args`): its output, or NULL. */
static char *
tsw_run_manifest(char **args, int nargs, bool in_backend)
{
	return tsw_run_node_script("dist/runtime/manifest.js", args, nargs, in_backend,
							   TSW_MANIFEST_TIMEOUT_MS, "loading worker modules");
}

/*
 * Parse the child's document into *decls; -1 and a WARNING if it is not
 * one.  jsonb_in reports malformed JSON with ereport(ERROR): caught here,
 * as the postmaster must not fail to start over it.
 */
static int
tsw_parse_manifest(const char *json, TswWorkerDecl **decls)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int n = -1;

	PG_TRY();
	{
		Jsonb	   *doc = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
		JsonbContainer *workers = NULL;
		int			count = 0;
		int			i;

		if (JB_ROOT_IS_OBJECT(doc))
			workers = tsw_json_array(&doc->root, "workers", &count);
		if (workers != NULL)
		{
			*decls = palloc0(sizeof(TswWorkerDecl) * Max(count, 1));
			for (i = 0; i < count; i++)
			{
				JsonbContainer *w = tsw_json_elem(workers, i);

				if (w == NULL)
					elog(ERROR, "entry %d of \"workers\" is not an object", i + 1);
				tsw_read_worker(w, &(*decls)[i]);
			}
			n = count;
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
	if (n < 0)
		ereport(WARNING,
				(errmsg("pg_tsworker: the module loader printed something that is not a manifest"),
				 errdetail("The document has no \"workers\" array.")));
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
	w->launch_errors = tsw_json_strings(object, "launch_errors", &w->nlaunch_errors);
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

/* The value of `key` in `object`, or NULL when absent. */
static JsonbValue *
tsw_json_get(JsonbContainer *object, const char *key)
{
	return getKeyJsonValueFromContainer(object, key, strlen(key), NULL);
}

/* A scalar as text: strings as they are, numbers in numeric's text, booleans as on/off. */
static char *
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
