/*-------------------------------------------------------------------------
 *
 * pg_error.c
 *		PostgreSQL errors, copied out of ErrorData for JavaScript.
 *
 * A caught error (PG_CATCH) is copied into malloc'd memory, so that it
 * outlives the transaction that raised it, and PostgreSQL's error state is
 * cleared.  It carries what node-postgres's DatabaseError carries, file,
 * line and routine included; its texts are converted to UTF-8.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "pg_internal.h"
#include "pg_values.h"

char *
tsw_strdup(const char *s)
{
	char	   *copy;

	if (s == NULL)
		return NULL;
	copy = strdup(s);
	if (copy == NULL)
		abort();
	return copy;
}

/*
 * A copy of a message in UTF-8.  Messages are in the database's encoding;
 * one that does not convert (it should not happen) is copied as it is.
 */
static char *
tsw_strdup_utf8(const char *s)
{
	MemoryContext old = CurrentMemoryContext;
	const char *volatile converted = s;
	int			len;

	if (s == NULL)
		return NULL;
	len = (int) strlen(s);
	PG_TRY();
	{
		converted = tsw_server_to_utf8(s, &len);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(old);
		FlushErrorState();
		converted = s;
	}
	PG_END_TRY();
	return tsw_strdup(converted);
}

TswError *
tsw_make_error(const char *sqlstate, const char *message)
{
	TswError   *e = calloc(1, sizeof(TswError));

	if (e == NULL)
		abort();
	memcpy(e->sqlstate, sqlstate, 5);
	e->severity = "ERROR";
	e->message = tsw_strdup(message);
	return e;
}

static const char *
tsw_severity(int elevel)
{
	switch (elevel)
	{
		case FATAL:
			return "FATAL";
		case PANIC:
			return "PANIC";
		default:
			return "ERROR";
	}
}

TswError *
tsw_capture_error(MemoryContext oldcontext)
{
	ErrorData  *edata;
	TswError   *e;

	MemoryContextSwitchTo(oldcontext);
	edata = CopyErrorData();
	FlushErrorState();

	e = calloc(1, sizeof(TswError));
	if (e == NULL)
		abort();
	memcpy(e->sqlstate, unpack_sql_state(edata->sqlerrcode), 5);
	e->severity = tsw_severity(edata->elevel);
	e->message = tsw_strdup_utf8(edata->message);
	e->detail = tsw_strdup_utf8(edata->detail);
	e->hint = tsw_strdup_utf8(edata->hint);
	e->context = tsw_strdup_utf8(edata->context);
	e->schema = tsw_strdup_utf8(edata->schema_name);
	e->table = tsw_strdup_utf8(edata->table_name);
	e->column = tsw_strdup_utf8(edata->column_name);
	e->datatype = tsw_strdup_utf8(edata->datatype_name);
	e->constraint = tsw_strdup_utf8(edata->constraint_name);
	e->internal_query = tsw_strdup_utf8(edata->internalquery);
	e->file = tsw_strdup(edata->filename);
	e->routine = tsw_strdup(edata->funcname);
	e->line = edata->lineno;
	e->position = edata->cursorpos;
	e->internal_position = edata->internalpos;
	FreeErrorData(edata);
	return e;
}

void
tsw_free_error(TswError *e)
{
	if (e == NULL)
		return;
	free(e->message);
	free(e->detail);
	free(e->hint);
	free(e->context);
	free(e->schema);
	free(e->table);
	free(e->column);
	free(e->datatype);
	free(e->constraint);
	free(e->internal_query);
	free(e->file);
	free(e->routine);
	free(e);
}

void
tsw_free_string(char *s)
{
	free(s);
}
