/*-------------------------------------------------------------------------
 *
 * pg_cursor.c
 *		Cursors of the addon: portals opened from a plan, fetched, moved
 *		and closed by name, until the end of their transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/memutils.h"
#include "utils/portal.h"

#include "pg_internal.h"

static Portal tsw_find_cursor(const char *name, TswError **err);

int
tsw_cursor_open(TswPlan *plan, const char *sql, const TswParamValue *params,
				char **name, TswError **err)
{
	volatile int rc = 0;
	volatile MemoryContext qcxt = NULL;

	*name = NULL;
	if (!plan->open_subxact && tsw_cannot_run(err))
		return -1;

	PG_TRY();
	{
		ParamListInfo paramli;
		Portal		portal;

		if (!plan->open_subxact)
			tsw_stmt_start(sql, -1);
		plan->open_subxact = 0;
		qcxt = tsw_make_params(plan, params, &paramli);
		portal = SPI_cursor_open_with_paramlist(NULL, (SPIPlanPtr) plan->spi_plan, paramli, false);
		if (portal == NULL)
			elog(ERROR, "SPI_cursor_open failed: %s", SPI_result_code_string(SPI_result));
		*name = tsw_strdup(portal->name);
		tsw_stmt_finish();
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		rc = -1;
	}
	PG_END_TRY();

	tsw_release_params(qcxt);
	if (!plan->kept)
		tsw_plan_discard(plan);
	return rc;
}

/* The open cursor called name, or NULL with *err set. */
static Portal
tsw_find_cursor(const char *name, TswError **err)
{
	Portal		portal;

	if (tsw_cannot_run(err))
		return NULL;
	portal = SPI_cursor_find(name);
	if (portal == NULL)
		*err = tsw_make_error("34000", "the cursor is closed (a cursor lasts until the end of the transaction that opened it)");
	return portal;
}

int
tsw_cursor_fetch(const char *name, int forward, int64_t count, int flags,
				 TswResult **result, TswError **err)
{
	volatile int rc = 0;
	Portal		portal;

	*result = NULL;
	if ((portal = tsw_find_cursor(name, err)) == NULL)
		return -1;
	PG_TRY();
	{
		tsw_stmt_start_server(portal->sourceText, -1);
		SPI_cursor_fetch(portal, forward != 0, (long) count);
		tsw_build_result("FETCH", flags, result);
		tsw_stmt_finish();
	}
	PG_CATCH();
	{
		tsw_free_result(*result);
		*result = NULL;
		*err = tsw_stmt_error();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

int
tsw_cursor_move(const char *name, int forward, int64_t count,
				uint64_t *moved, TswError **err)
{
	volatile int rc = 0;
	Portal		portal;

	*moved = 0;
	if ((portal = tsw_find_cursor(name, err)) == NULL)
		return -1;
	PG_TRY();
	{
		tsw_stmt_start_server(portal->sourceText, -1);
		SPI_cursor_move(portal, forward != 0, (long) count);
		*moved = SPI_processed;
		tsw_stmt_finish();
	}
	PG_CATCH();
	{
		*err = tsw_stmt_error();
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}

int
tsw_cursor_close(const char *name, TswError **err)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	volatile int rc = 0;

	/* after the transaction the portal is gone already */
	if (!tsw_xact_open || tsw_xact_failed)
		return 0;
	PG_TRY();
	{
		Portal		portal = SPI_cursor_find(name);

		if (portal != NULL)
			SPI_cursor_close(portal);
	}
	PG_CATCH();
	{
		*err = tsw_capture_error(oldcontext);
		rc = -1;
	}
	PG_END_TRY();
	return rc;
}
