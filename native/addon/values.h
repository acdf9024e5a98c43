/*-------------------------------------------------------------------------
 *
 * values.h
 *		PostgreSQL values to the plain cells of spi.h, and what a parameter
 *		type expects.  C only: includes PostgreSQL's headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_ADDON_VALUES_H
#define TSW_ADDON_VALUES_H

#include "postgres.h"

#include "spi.h"

typedef struct TswTypeInfo TswTypeInfo;

/*
 * How values of type typid become cells (flags: TSW_RESULT_*).  Allocated
 * in mcxt, which must outlive every tsw_datum_to_cell call with it.
 */
extern TswTypeInfo *tsw_type_info(Oid typid, int flags, MemoryContext mcxt);

/* Fill cell from a non-null datum; allocates in CurrentMemoryContext. */
extern void tsw_datum_to_cell(TswTypeInfo *info, Datum value, TswCell *cell);

/* Describe parameter type typid; allocates in CurrentMemoryContext. */
extern void tsw_describe_param(Oid typid, TswParamType *out);

#endif							/* TSW_ADDON_VALUES_H */
