/*-------------------------------------------------------------------------
 *
 * pg_plan.c
 *		Plans of the addon's statements, and their parameters.
 *
 * A one-shot statement with parameters is planned first, so that the
 * caller knows each parameter's type and can put a JavaScript value in its
 * text form (js_params.cc); a prepared statement's plan is kept
 * (SPI_keepplan) across transactions until freed.  Parameter types are
 * given or inferred from the query (setup_parse_variable_parameters, as
 * the extended query protocol does); their input functions are looked up
 * once per plan, for pg_params.c.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "parser/parse_param.h"
#include "parser/parse_type.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

#include "pg_internal.h"
#include "pg_values.h"

typedef struct TswParamState
{
	Oid		   *types;
	int			ntypes;
} TswParamState;

static void tsw_param_setup(ParseState *pstate, void *arg);
static TswPlan *tsw_plan_new(int kept);
static void tsw_plan_release(TswPlan *plan);
static void tsw_plan_into(TswPlan *plan, const char *sql, int ntypes, const Oid *types,
						  int expect_params, int cursor_options);
static TswParamClass tsw_param_class(Oid base);
static void tsw_param_names(Oid base, TswParamType *out);
static void tsw_describe_param(Oid typid, TswParamType *out);
static TswDirect tsw_param_direct(Oid typid);

static void
tsw_param_setup(ParseState *pstate, void *arg)
{
	TswParamState *state = (TswParamState *) arg;

	setup_parse_variable_parameters(pstate, &state->types, &state->ntypes);
}

static TswPlan *
tsw_plan_new(int kept)
{
	MemoryContext mcxt = AllocSetContextCreate(TopMemoryContext, "pg_tsworker plan",
											   ALLOCSET_SMALL_SIZES);
	TswPlan    *plan = MemoryContextAllocZero(mcxt, sizeof(TswPlan));

	plan->memory = mcxt;
	plan->kept = kept;
	return plan;
}

static void
tsw_plan_release(TswPlan *plan)
{
	if (plan == NULL)
		return;

	/*
	 * A one-shot plan lives in SPI's transaction memory: a transaction that
	 * a failed statement aborted has freed it already.
	 */
	if (plan->spi_plan != NULL && (plan->kept || (tsw_xact_open && !tsw_xact_failed)))
		SPI_freeplan((SPIPlanPtr) plan->spi_plan);
	MemoryContextDelete((MemoryContext) plan->memory);
}

/*
 * Plan sql with variable parameters (types preset in types[0..ntypes-1],
 * 0 for inferred), then describe them.  expect_params >= 0 requires that
 * many parameters, all used.
 */
static void
tsw_plan_into(TswPlan *plan, const char *sql, int ntypes, const Oid *types,
			  int expect_params, int cursor_options)
{
	MemoryContext old;
	TswParamState state;
	SPIPlanPtr	spi_plan;
	int			i;

	old = MemoryContextSwitchTo((MemoryContext) plan->memory);
	state.ntypes = Max(ntypes, expect_params);
	state.types = palloc0(sizeof(Oid) * Max(state.ntypes, 1));
	for (i = 0; i < ntypes; i++)
		state.types[i] = types[i];
	MemoryContextSwitchTo(old);

	spi_plan = SPI_prepare_params(sql, tsw_param_setup, &state, cursor_options);
	if (spi_plan == NULL)
		elog(ERROR, "SPI_prepare_params failed: %s", SPI_result_code_string(SPI_result));
	plan->spi_plan = spi_plan;
	plan->cursor_options = cursor_options;
	if (expect_params >= 0 && state.ntypes > expect_params)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_PARAMETER),
				 errmsg("query uses parameter $%d but %d parameters were given",
						state.ntypes, expect_params)));

	old = MemoryContextSwitchTo((MemoryContext) plan->memory);
	plan->nparams = state.ntypes;
	plan->params = palloc0(sizeof(TswParamType) * Max(state.ntypes, 1));
	plan->inputs = palloc0(sizeof(TswParamInput) * Max(state.ntypes, 1));
	for (i = 0; i < state.ntypes; i++)
	{
		TswParamInput *input = &((TswParamInput *) plan->inputs)[i];
		Oid			typinput;

		if (state.types[i] == InvalidOid)
			ereport(ERROR,
					(errcode(ERRCODE_INDETERMINATE_DATATYPE),
					 expect_params >= 0 ?
					 errmsg("%d parameters were given but the query does not use $%d",
							expect_params, i + 1) :
					 errmsg("the statement does not use parameter $%d", i + 1)));
		tsw_describe_param(state.types[i], &plan->params[i]);
		getTypeInputInfo(state.types[i], &typinput, &input->typioparam);
		fmgr_info_cxt(typinput, &input->flinfo, (MemoryContext) plan->memory);
	}
	MemoryContextSwitchTo(old);
}

int
tsw_plan_statement(const char *sql, int nparams, int cursor_options, int timeout_ms,
				   TswPlan **out, TswError **err)
{
	TswPlan    *volatile plan = NULL;
	volatile int rc = 0;

	*out = NULL;
	if (tsw_cannot_run(err))
		return -1;
	PG_TRY();
	{
		const char *server_sql = tsw_stmt_start(sql, timeout_ms);

		plan = tsw_plan_new(0);
		tsw_plan_into(plan, server_sql, 0, NULL, nparams, cursor_options);
		plan->open_subxact = 1;
		*out = plan;
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		tsw_plan_release(plan);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

void
tsw_plan_discard(TswPlan *plan)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	if (plan == NULL)
		return;
	PG_TRY();
	{
		if (plan->open_subxact && tsw_stmt_active())
			tsw_stmt_abandon();
		plan->open_subxact = 0;
		tsw_plan_release(plan);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}

int
tsw_prepare(const char *sql, int ntypes, const char *const *typenames,
			TswPlan **out, TswError **err)
{
	TswPlan    *volatile plan = NULL;
	volatile int rc = 0;

	*out = NULL;
	if (tsw_cannot_run(err))
		return -1;
	PG_TRY();
	{
		Oid		   *types = NULL;
		const char *server_sql;
		int			i;

		server_sql = tsw_stmt_start(sql, -1);
		plan = tsw_plan_new(1);
		if (ntypes > 0)
		{
			types = palloc0(sizeof(Oid) * ntypes);
			for (i = 0; i < ntypes; i++)
			{
				int32		typmod;

				if (typenames[i] != NULL)
					parseTypeString(typenames[i], &types[i], &typmod, false);
			}
		}
		tsw_plan_into(plan, server_sql, ntypes, types, -1, 0);
		if (SPI_keepplan((SPIPlanPtr) plan->spi_plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		tsw_stmt_finish();
		*out = plan;
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		tsw_plan_release(plan);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

void
tsw_plan_free(TswPlan *plan)
{
	tsw_plan_discard(plan);
}

/* What a parameter of type typid takes as it is (see TswDirect). */
static TswDirect
tsw_param_direct(Oid typid)
{
	switch (typid)
	{
		case INT2OID:
			return TSW_DIRECT_INT2;
		case INT4OID:
			return TSW_DIRECT_INT4;
		case INT8OID:
			return TSW_DIRECT_INT8;
		case FLOAT8OID:
			return TSW_DIRECT_FLOAT8;
		case BOOLOID:
			return TSW_DIRECT_BOOL;
		case TEXTOID:
			return TSW_DIRECT_TEXT;
		default:
			return TSW_DIRECT_NONE;
	}
}

static TswParamClass
tsw_param_class(Oid base)
{
	if (base == JSONOID || base == JSONBOID)
		return TSW_PARAM_JSON;
	if (base == RECORDOID || get_typtype(base) == TYPTYPE_COMPOSITE)
		return TSW_PARAM_COMPOSITE;
	if (OidIsValid(get_element_type(base)) && get_typlen(base) == -1)
		return TSW_PARAM_ARRAY;
	return TSW_PARAM_SCALAR;
}

/* Attribute names of a named composite type, for objects given as parameters. */
static void
tsw_param_names(Oid base, TswParamType *out)
{
	TupleDesc	desc;
	const char **names;
	int			i;
	int			n = 0;

	if (base == RECORDOID)
		return;
	desc = lookup_rowtype_tupdesc(base, -1);
	names = palloc(sizeof(char *) * Max(desc->natts, 1));
	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped)
			names[n++] = pstrdup(NameStr(att->attname));
	}
	ReleaseTupleDesc(desc);
	out->names = names;
	out->nnames = n;
}

/* What parameter type typid expects; allocates in CurrentMemoryContext. */
static void
tsw_describe_param(Oid typid, TswParamType *out)
{
	memset(out, 0, sizeof(*out));
	out->type_oid = typid;
	out->direct = tsw_param_direct(typid);
	out->base_oid = getBaseType(typid);
	out->klass = tsw_param_class(out->base_oid);
	if (out->klass == TSW_PARAM_ARRAY)
	{
		out->elem_oid = getBaseType(get_element_type(out->base_oid));
		out->elem_class = tsw_param_class(out->elem_oid);
		if (out->elem_class == TSW_PARAM_COMPOSITE)
			tsw_param_names(out->elem_oid, out);
	}
	else if (out->klass == TSW_PARAM_COMPOSITE)
		tsw_param_names(out->base_oid, out);
}
