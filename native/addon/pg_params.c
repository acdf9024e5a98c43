/*-------------------------------------------------------------------------
 *
 * pg_params.c
 *		Parameter values of the addon's statements, as Datums.
 *
 * Values in text form go through the types' input functions, which
 * pg_plan.c looked up once per plan; values of the common scalar types
 * (TswDirect) are taken as they are.  One statement's parameters are alive
 * at a time, in a memory context kept and reset between statements.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "nodes/params.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "pg_internal.h"
#include "pg_values.h"

static Datum tsw_param_datum(TswPlan *plan, int i, const TswParamValue *value);

/* The Datum of parameter i of plan, in CurrentMemoryContext. */
static Datum
tsw_param_datum(TswPlan *plan, int i, const TswParamValue *value)
{
	TswDirect	direct = plan->params[i].direct;
	TswParamInput *input = &((TswParamInput *) plan->inputs)[i];

	switch (value->form)
	{
		case TSW_VALUE_TEXT:
			{
				size_t		len = value->len;
				const char *text = tsw_utf8_to_server(value->v.text, &len);

				if (direct == TSW_DIRECT_TEXT)
					return PointerGetDatum(cstring_to_text_with_len(text, (int) len));
				return InputFunctionCall(&input->flinfo, (char *) text, input->typioparam, -1);
			}
		case TSW_VALUE_INT:
			if (direct == TSW_DIRECT_INT2)
				return Int16GetDatum((int16) value->v.i);
			if (direct == TSW_DIRECT_INT4)
				return Int32GetDatum((int32) value->v.i);
			if (direct == TSW_DIRECT_INT8)
				return Int64GetDatum(value->v.i);
			break;
		case TSW_VALUE_FLOAT:
			if (direct == TSW_DIRECT_FLOAT8)
				return Float8GetDatum(value->v.f);
			break;
		case TSW_VALUE_BOOL:
			if (direct == TSW_DIRECT_BOOL)
				return BoolGetDatum(value->v.b != 0);
			break;
		case TSW_VALUE_NULL:
			break;
	}
	elog(ERROR, "parameter $%d: value form %d does not fit type %u",
		 i + 1, (int) value->form, plan->params[i].type_oid);
	return (Datum) 0;			/* keep compiler quiet */
}

/*
 * The memory of parameters.  Parameters live from their statement's start
 * to its end, so one set is alive at a time: its context is kept and reset
 * for the next statement (as results' are, pg_result.c) instead of created
 * and deleted per call.  A second set alive at once gets a context of its
 * own.  It hangs off TopMemoryContext: a failed statement may abort the
 * transaction first.
 */
static MemoryContext tsw_params_context = NULL;
static bool tsw_params_context_busy = false;

/*
 * Parameters of plan as Datums, in a context returned for the caller to
 * hand to tsw_release_params when the statement ends.
 */
MemoryContext
tsw_make_params(TswPlan *plan, const TswParamValue *params, ParamListInfo *out)
{
	MemoryContext cxt;
	MemoryContext old;
	ParamListInfo paramli;
	int			i;

	if (tsw_params_context == NULL)
		tsw_params_context = AllocSetContextCreate(TopMemoryContext, "pg_tsworker params",
												   ALLOCSET_SMALL_SIZES);
	if (!tsw_params_context_busy)
	{
		cxt = tsw_params_context;
		tsw_params_context_busy = true;
	}
	else
		cxt = AllocSetContextCreate(TopMemoryContext, "pg_tsworker params",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	/* a value its input function refuses must not keep the context busy */
	PG_TRY();
	{
		paramli = makeParamList(plan->nparams);
		for (i = 0; i < plan->nparams; i++)
		{
			ParamExternData *prm = &paramli->params[i];

			prm->ptype = plan->params[i].type_oid;
			prm->pflags = PARAM_FLAG_CONST;
			prm->isnull = params == NULL || params[i].form == TSW_VALUE_NULL;
			prm->value = prm->isnull ? (Datum) 0 : tsw_param_datum(plan, i, &params[i]);
		}
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		tsw_release_params(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	*out = paramli;
	return cxt;
}

/* Free what tsw_make_params returned (NULL: nothing). */
void
tsw_release_params(MemoryContext cxt)
{
	if (cxt == NULL)
		return;
	if (cxt == tsw_params_context)
	{
		MemoryContextReset(cxt);
		tsw_params_context_busy = false;
	}
	else
		MemoryContextDelete(cxt);
}
