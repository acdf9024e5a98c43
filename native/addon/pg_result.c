/*-------------------------------------------------------------------------
 *
 * pg_result.c
 *		Results of the addon's statements and cursor fetches: SPI's tuples
 *		as a TswResult of plain cells (pg_values.c converts each value),
 *		for js_values.cc to turn into JavaScript.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "utils/memutils.h"

#include "pg_internal.h"
#include "pg_values.h"

/*
 * The memory of results.  A result lives from its statement to its
 * conversion into JavaScript, so one is alive at a time: its context is
 * kept and reset for the next one (creating and deleting a context per
 * statement, and touching a new block, cost about 0.2 us of a 6 us
 * lookup).  A second result alive at once gets a context of its own.
 */
static MemoryContext tsw_result_context = NULL;
static bool tsw_result_context_busy = false;

static MemoryContext
tsw_result_memory(void)
{
	if (tsw_result_context == NULL)
		tsw_result_context = AllocSetContextCreate(TopMemoryContext, "pg_tsworker result",
												   ALLOCSET_DEFAULT_SIZES);
	else if (tsw_result_context_busy)
		return AllocSetContextCreate(TopMemoryContext, "pg_tsworker result",
									 ALLOCSET_DEFAULT_SIZES);
	tsw_result_context_busy = true;
	return tsw_result_context;
}

/*
 * The rows of SPI_tuptable as a TswResult, in memory of its own (not the
 * statement's) so that js_values.cc can read it after the statement's
 * subtransaction has ended.  pg_values.c decides how each column converts;
 * text and bytes point into the tuples, which the result keeps until
 * tsw_free_result.
 */
void
tsw_build_result(const char *command, int flags, TswResult **out)
{
	SPITupleTable *tuptable = SPI_tuptable;
	MemoryContext mcxt;
	MemoryContext old;
	TswResult  *res;
	TupleDesc	tupdesc;
	TswTypeInfo **infos;
	Datum	   *values;
	bool	   *nulls;
	uint64		r;
	int			c;

	mcxt = tsw_result_memory();
	old = MemoryContextSwitchTo(mcxt);

	/*
	 * Hand the context to the caller at once, so that an error while
	 * converting (an output function, a huge result) still frees it.
	 */
	res = palloc0(sizeof(TswResult));
	res->memory = mcxt;
	res->tuptable = tuptable;
	*out = res;
	res->command = command;
	res->row_count = SPI_processed;

	if (tuptable == NULL)
	{
		MemoryContextSwitchTo(old);
		return;
	}

	tupdesc = tuptable->tupdesc;
	res->ncolumns = tupdesc->natts;
	res->columns = palloc0(sizeof(TswColumn) * Max(tupdesc->natts, 1));
	infos = palloc0(sizeof(TswTypeInfo *) * Max(tupdesc->natts, 1));

	for (c = 0; c < tupdesc->natts; c++)
	{
		Form_pg_attribute attr = TupleDescAttr(tupdesc, c);
		int			len = strlen(NameStr(attr->attname));

		res->columns[c].name = tsw_server_to_utf8(NameStr(attr->attname), &len);
		res->columns[c].type_oid = attr->atttypid;
		infos[c] = tsw_type_info(attr->atttypid, flags, mcxt);
	}

	res->nrows = tuptable->numvals;
	res->cells = palloc(sizeof(TswCell) * Max(res->nrows * tupdesc->natts, 1));

	/* each row deformed once (heap_getattr would walk it again per column) */
	values = palloc(sizeof(Datum) * Max(tupdesc->natts, 1));
	nulls = palloc(sizeof(bool) * Max(tupdesc->natts, 1));
	for (r = 0; r < res->nrows; r++)
	{
		TswCell    *row = &res->cells[r * tupdesc->natts];

		heap_deform_tuple(tuptable->vals[r], tupdesc, values, nulls);
		for (c = 0; c < tupdesc->natts; c++)
		{
			row[c].isnull = nulls[c];
			if (!nulls[c])
				tsw_datum_to_cell(infos[c], values[c], &row[c]);
		}
	}

	MemoryContextSwitchTo(old);
}

void
tsw_free_result(TswResult *result)
{
	MemoryContext oldcontext = CurrentMemoryContext;

	if (result == NULL)
		return;
	PG_TRY();
	{
		MemoryContext mcxt = (MemoryContext) result->memory;

		if (result->tuptable != NULL)
			SPI_freetuptable((SPITupleTable *) result->tuptable);
		if (mcxt == tsw_result_context)
		{
			/* result itself is in it: not read after this */
			tsw_result_context_busy = false;
			MemoryContextReset(mcxt);
		}
		else
			MemoryContextDelete(mcxt);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(oldcontext);
		FlushErrorState();
	}
	PG_END_TRY();
}
