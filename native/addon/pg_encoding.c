/*-------------------------------------------------------------------------
 *
 * pg_encoding.c
 *		Text between JavaScript (UTF-8) and the database's encoding, for
 *		SQL text, parameters, result values, column names and error
 *		messages.
 *
 * Nothing is converted when the database is UTF8 or SQL_ASCII (whose bytes
 * pass as they are).  A conversion may raise a PostgreSQL error (a
 * character with no equivalent) and runs under the caller's PG_TRY.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"

#include "pg_values.h"

/* Is the database's text converted to and from UTF-8? */
static inline bool
tsw_converts_text(void)
{
	int			encoding = GetDatabaseEncoding();

	return encoding != PG_UTF8 && encoding != PG_SQL_ASCII;
}

const char *
tsw_utf8_to_server(const char *s, size_t *len)
{
	char	   *converted;

	if (!tsw_converts_text())
		return s;
	converted = pg_any_to_server(s, (int) *len, PG_UTF8);
	if (converted != s)
		*len = strlen(converted);
	return converted;
}

const char *
tsw_server_to_utf8(const char *s, int *len)
{
	char	   *converted;

	if (!tsw_converts_text())
		return s;
	converted = pg_server_to_any(s, *len, PG_UTF8);
	if (converted != s)
		*len = strlen(converted);
	return converted;
}
