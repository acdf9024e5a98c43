/*-------------------------------------------------------------------------
 *
 * sql_status.c
 *		tsworker.worker_status(): one row per worker slot in use, read from
 *		a copy of the slots; the view tsworker.stat_workers (and its
 *		deprecated name tsworker.workers) selects from it.
 *
 * EXECUTE is revoked from PUBLIC by the extension script and granted to
 * tsworker_admin.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "pg_tsworker.h"
#include "slot_control.h"

PG_FUNCTION_INFO_V1(tsworker_worker_status);

/* Columns of tsworker.worker_status() at version 0.2 (0.1 had the first 14). */
#define TSW_STATUS_COLUMNS 17

/* tsworker.worker_status(): one row per slot in use. */
Datum
tsworker_worker_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TswSlot    *copy;
	int			n;
	int			i;

	tsw_require_shared();
	InitMaterializedSRF(fcinfo, 0);
	n = tsw_slots_copy(&copy);
	for (i = 0; i < n; i++)
	{
		TswSlot    *s = &copy[i];
		Datum		values[TSW_STATUS_COLUMNS];
		bool		nulls[TSW_STATUS_COLUMNS];
		const char *state = tsw_slot_view_state(s);
		bool		memory = s->pid != 0 && s->memory_at != 0;

		memset(nulls, 0, sizeof(nulls));
		values[0] = CStringGetTextDatum(s->name);
		values[1] = s->pid != 0 ? Int32GetDatum(s->pid) : (nulls[1] = true, (Datum) 0);
		values[2] = CStringGetTextDatum(s->module);
		values[3] = CStringGetTextDatum(s->database);
		values[4] = CStringGetTextDatum(state);
		values[5] = s->started_at != 0 ? TimestampTzGetDatum(s->started_at) : (nulls[5] = true, (Datum) 0);
		values[6] = s->last_activity != 0 ? TimestampTzGetDatum(s->last_activity) : (nulls[6] = true, (Datum) 0);
		values[7] = Int64GetDatum(s->loops);
		values[8] = Int32GetDatum(s->restarts);
		values[9] = s->last_error[0] != '\0' ? CStringGetTextDatum(s->last_error) : (nulls[9] = true, (Datum) 0);
		values[10] = s->last_error_at != 0 ? TimestampTzGetDatum(s->last_error_at) : (nulls[10] = true, (Datum) 0);
		values[11] = DirectFunctionCall1(jsonb_in, CStringGetDatum(s->status[0] ? s->status : "{}"));
		values[12] = BoolGetDatum(s->dynamic);
		values[13] = BoolGetDatum(s->disabled);
		/* version 0.2's columns: a database still at 0.1 asks for 14 */
		values[14] = memory ? Int64GetDatum(s->rss_bytes) : (nulls[14] = true, (Datum) 0);
		values[15] = memory ? Int64GetDatum(s->heap_used_bytes) : (nulls[15] = true, (Datum) 0);
		values[16] = memory ? Int64GetDatum(s->heap_limit_bytes) : (nulls[16] = true, (Datum) 0);
		if (rsinfo->setDesc->natts != 14 && rsinfo->setDesc->natts != TSW_STATUS_COLUMNS)
			elog(ERROR, "tsworker.worker_status() returns %d columns, not %d: update the extension",
				 rsinfo->setDesc->natts, TSW_STATUS_COLUMNS);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
