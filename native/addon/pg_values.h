/*-------------------------------------------------------------------------
 *
 * pg_values.h
 *		PostgreSQL values to the plain cells of pg_api.h, and what a
 *		parameter type expects.  C only: includes PostgreSQL's headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_ADDON_VALUES_H
#define TSW_ADDON_VALUES_H

#include "postgres.h"

#include "pg_api.h"

typedef struct TswTypeInfo TswTypeInfo;

/*
 * How values of type typid become cells (flags: TSW_RESULT_*).  Allocated
 * in mcxt, which must outlive every tsw_datum_to_cell call with it.
 */
extern TswTypeInfo *tsw_type_info(Oid typid, int flags, MemoryContext mcxt);

/*
 * Fill cell from a non-null datum; allocates in CurrentMemoryContext.  Text
 * and bytes may point into the datum: keep it until the cell is read.
 */
extern void tsw_datum_to_cell(TswTypeInfo *info, Datum value, TswCell *cell);

/*
 * A jsonb value as a tree (pg_jsonb.c), in CurrentMemoryContext; false when
 * it is nested too deep for one.
 */
extern bool tsw_jsonb_to_tree(Datum value, TswJson **out);

/*
 * Text between JavaScript (UTF-8) and the database's encoding (pg_encoding.c):
 * s itself when the database is UTF8 or SQL_ASCII (whose bytes pass as they
 * are), else a palloc'd, NUL-terminated conversion (an error if a character
 * has no equivalent).  *len is updated.
 */
extern const char *tsw_utf8_to_server(const char *s, size_t *len);
extern const char *tsw_server_to_utf8(const char *s, int *len);

#endif							/* TSW_ADDON_VALUES_H */
