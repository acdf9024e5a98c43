/*-------------------------------------------------------------------------
 *
 * pg_values.c
 *		PostgreSQL values to the plain cells that js_values.cc turns into
 *		JavaScript values, following docs/types.md.
 *
 * A TswTypeInfo says, once per column, how its values convert: natively
 * for the types JavaScript has a counterpart for (numbers, booleans, bytes,
 * dates, JSON, arrays, rows), through the type's output function for the
 * rest.  Domains convert as their base type.  Text and bytes are not
 * copied: a cell points into the tuple (or a detoasted copy), so that they
 * are copied once, into JavaScript.  jsonb becomes a tree of cells read with
 * a JsonbIterator (plv8's way), not text for JSON.parse.  Everything here
 * may raise a PostgreSQL error and runs under the caller's PG_TRY.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "access/transam.h"
#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "pg_values.h"

/* How a TEXT value is obtained. */
typedef enum TswTextVia
{
	TSW_VIA_OUTPUT = 0,			/* the type's output function */
	TSW_VIA_VARLENA,			/* text, varchar, bpchar, json: the bytes themselves */
	TSW_VIA_NAME				/* name */
} TswTextVia;

struct TswTypeInfo
{
	Oid			typid;
	Oid			base;
	TswKind		kind;
	int			flags;
	MemoryContext mcxt;
	TswTextVia	via;
	FmgrInfo	out;			/* TSW_VIA_OUTPUT */

	/* arrays */
	TswTypeInfo *elem;
	Oid			elem_type;
	int16		elmlen;
	bool		elmbyval;
	char		elmalign;

	/* records: the row type seen last (anonymous records vary by typmod) */
	Oid			rec_typid;
	int32		rec_typmod;
	TupleDesc	rec_desc;
	int			rec_natts;		/* attributes not dropped */
	int		   *rec_attnums;
	const char **rec_names;
	TswTypeInfo **rec_atts;
};

/* Milliseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define TSW_EPOCH_DIFF_MS INT64CONST(946684800000)
/* The range of a JavaScript Date: +-8.64e15 ms. */
#define TSW_JS_DATE_MAX_MS 8.64e15

static void
tsw_set_output(TswTypeInfo *info, Oid type)
{
	Oid			typoutput;
	bool		typisvarlena;

	info->kind = TSW_KIND_TEXT;
	info->via = TSW_VIA_OUTPUT;
	getTypeOutputInfo(type, &typoutput, &typisvarlena);
	fmgr_info_cxt(typoutput, &info->out, info->mcxt);
}

TswTypeInfo *
tsw_type_info(Oid typid, int flags, MemoryContext mcxt)
{
	TswTypeInfo *info = MemoryContextAllocZero(mcxt, sizeof(TswTypeInfo));
	Oid			elem;

	info->typid = typid;
	/* the types of pg_type.dat (OIDs below FirstGenbkiObjectId) are no domains */
	info->base = typid < FirstGenbkiObjectId ? typid : getBaseType(typid);
	info->flags = flags;
	info->mcxt = mcxt;

	switch (info->base)
	{
		case BOOLOID:
			info->kind = TSW_KIND_BOOL;
			return info;
		case INT2OID:
		case INT4OID:
			info->kind = TSW_KIND_INT32;
			return info;
		case OIDOID:
		case XIDOID:
		case CIDOID:
			info->kind = TSW_KIND_UINT32;
			return info;
		case INT8OID:
			if (flags & TSW_RESULT_INT8_TEXT)
				tsw_set_output(info, info->base);
			else
				info->kind = TSW_KIND_INT64;
			return info;
		case FLOAT4OID:
		case FLOAT8OID:
			info->kind = TSW_KIND_FLOAT64;
			return info;
		case BYTEAOID:
			info->kind = TSW_KIND_BYTES;
			return info;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			if (flags & TSW_RESULT_TIME_TEXT)
				tsw_set_output(info, info->base);
			else
				info->kind = TSW_KIND_TIME;
			return info;
		case JSONOID:
			info->kind = TSW_KIND_JSON;
			info->via = TSW_VIA_VARLENA;
			return info;
		case JSONBOID:
			/* deep documents fall back to their text (tsw_jsonb_to_cell) */
			tsw_set_output(info, info->base);
			info->kind = TSW_KIND_JSONB;
			return info;
		case INTERVALOID:
			info->kind = TSW_KIND_INTERVAL;
			return info;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			info->kind = TSW_KIND_TEXT;
			info->via = TSW_VIA_VARLENA;
			return info;
		case NAMEOID:
			info->kind = TSW_KIND_TEXT;
			info->via = TSW_VIA_NAME;
			return info;
		default:
			break;
	}

	elem = get_element_type(info->base);
	if (OidIsValid(elem) && get_typlen(info->base) == -1)
	{
		info->kind = TSW_KIND_ARRAY;
		info->elem_type = elem;
		get_typlenbyvalalign(elem, &info->elmlen, &info->elmbyval, &info->elmalign);
		info->elem = tsw_type_info(elem, flags, mcxt);
		return info;
	}
	if (info->base == RECORDOID || get_typtype(info->base) == TYPTYPE_COMPOSITE)
	{
		info->kind = TSW_KIND_RECORD;
		info->rec_typid = InvalidOid;
		return info;
	}
	tsw_set_output(info, info->base);
	return info;
}

/* Remember the attributes of row type (typid, typmod) in info. */
static void
tsw_record_layout(TswTypeInfo *info, Oid typid, int32 typmod)
{
	TupleDesc	desc = lookup_rowtype_tupdesc(typid, typmod);
	MemoryContext old = MemoryContextSwitchTo(info->mcxt);
	int			i;
	int			n = 0;

	info->rec_desc = CreateTupleDescCopy(desc);
	ReleaseTupleDesc(desc);
	info->rec_attnums = palloc(sizeof(int) * Max(info->rec_desc->natts, 1));
	info->rec_names = palloc(sizeof(char *) * Max(info->rec_desc->natts, 1));
	info->rec_atts = palloc(sizeof(TswTypeInfo *) * Max(info->rec_desc->natts, 1));
	for (i = 0; i < info->rec_desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(info->rec_desc, i);
		int			len = strlen(NameStr(att->attname));

		if (att->attisdropped)
			continue;
		info->rec_attnums[n] = i + 1;
		info->rec_names[n] = pstrdup(tsw_server_to_utf8(NameStr(att->attname), &len));
		info->rec_atts[n] = tsw_type_info(att->atttypid, info->flags, info->mcxt);
		n++;
	}
	info->rec_natts = n;
	info->rec_typid = typid;
	info->rec_typmod = typmod;
	MemoryContextSwitchTo(old);
}

static double
tsw_time_ms(TswTypeInfo *info, Datum value)
{
	int64		ms;

	if (info->base == DATEOID)
	{
		DateADT		d = DatumGetDateADT(value);

		if (DATE_IS_NOBEGIN(d))
			return -INFINITY;
		if (DATE_IS_NOEND(d))
			return INFINITY;
		ms = (int64) d * INT64CONST(86400000) + TSW_EPOCH_DIFF_MS;
	}
	else
	{
		Timestamp	ts = DatumGetTimestamp(value);

		if (TIMESTAMP_IS_NOBEGIN(ts))
			return -INFINITY;
		if (TIMESTAMP_IS_NOEND(ts))
			return INFINITY;
		/* floor, so that times before 1970 keep their millisecond */
		ms = ts >= 0 ? ts / 1000 : -((-ts + 999) / 1000);
		ms += TSW_EPOCH_DIFF_MS;
	}
	if ((double) ms > TSW_JS_DATE_MAX_MS || (double) ms < -TSW_JS_DATE_MAX_MS)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s value is outside the range of a JavaScript Date",
						format_type_be(info->base)),
				 errhint("Ask for dates as text with the query option { dates: 'text' }.")));
	return (double) ms;
}

/*
 * Point the cell at a varlena's bytes: in the tuple itself, or in a
 * detoasted copy (kept in the result's memory until it is freed).
 */
static void
tsw_point_varlena(Datum value, TswCell *cell)
{
	struct varlena *v = PG_DETOAST_DATUM_PACKED(value);

	cell->v.text.ptr = VARDATA_ANY(v);
	cell->v.text.len = VARSIZE_ANY_EXHDR(v);
}

static void
tsw_array_to_cell(TswTypeInfo *info, Datum value, TswCell *cell)
{
	ArrayType  *arr = DatumGetArrayTypeP(value);
	TswArray   *out = palloc0(sizeof(TswArray));
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	int			i;

	out->ndims = ARR_NDIM(arr);
	if (out->ndims > TSW_MAX_DIMS)
		elog(ERROR, "array has %d dimensions; at most %d are supported", out->ndims, TSW_MAX_DIMS);
	for (i = 0; i < out->ndims; i++)
		out->dims[i] = ARR_DIMS(arr)[i];
	deconstruct_array(arr, info->elem_type, info->elmlen, info->elmbyval, info->elmalign,
					  &elems, &nulls, &n);
	out->nelems = n;
	out->elems = palloc0(sizeof(TswCell) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		out->elems[i].isnull = nulls[i];
		if (!nulls[i])
			tsw_datum_to_cell(info->elem, elems[i], &out->elems[i]);
	}
	cell->v.array = out;
}

static void
tsw_record_to_cell(TswTypeInfo *info, Datum value, TswCell *cell)
{
	HeapTupleHeader td = DatumGetHeapTupleHeader(value);
	Oid			typid = HeapTupleHeaderGetTypeId(td);
	int32		typmod = HeapTupleHeaderGetTypMod(td);
	HeapTupleData tuple;
	TswRecord  *out = palloc0(sizeof(TswRecord));
	int			i;

	if (typid != info->rec_typid || typmod != info->rec_typmod)
		tsw_record_layout(info, typid, typmod);

	tuple.t_len = HeapTupleHeaderGetDatumLength(td);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = td;

	out->natts = info->rec_natts;
	out->names = info->rec_names;
	out->values = palloc0(sizeof(TswCell) * Max(info->rec_natts, 1));
	for (i = 0; i < info->rec_natts; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(&tuple, info->rec_attnums[i], info->rec_desc, &isnull);

		out->values[i].isnull = isnull;
		if (!isnull)
			tsw_datum_to_cell(info->rec_atts[i], d, &out->values[i]);
	}
	cell->v.record = out;
}

void
tsw_datum_to_cell(TswTypeInfo *info, Datum value, TswCell *cell)
{
	cell->isnull = 0;
	cell->kind = info->kind;
	switch (info->kind)
	{
		case TSW_KIND_BOOL:
			cell->v.b = DatumGetBool(value);
			break;
		case TSW_KIND_INT32:
			cell->v.i32 = info->base == INT2OID ? DatumGetInt16(value) : DatumGetInt32(value);
			break;
		case TSW_KIND_UINT32:
			cell->v.u32 = DatumGetObjectId(value);
			break;
		case TSW_KIND_INT64:
			cell->v.i64 = DatumGetInt64(value);
			break;
		case TSW_KIND_FLOAT64:
			cell->v.f64 = info->base == FLOAT4OID ? DatumGetFloat4(value) : DatumGetFloat8(value);
			break;
		case TSW_KIND_BYTES:
			tsw_point_varlena(value, cell);
			break;
		case TSW_KIND_JSONB:
			if (!tsw_jsonb_to_tree(value, &cell->v.json))
			{
				/* too deep for a tree: its text, for JSON.parse */
				cell->kind = TSW_KIND_JSON;
				cell->v.text.ptr = OutputFunctionCall(&info->out, value);
				cell->v.text.len = strlen(cell->v.text.ptr);
				cell->v.text.ptr = tsw_server_to_utf8(cell->v.text.ptr, &cell->v.text.len);
			}
			break;
		case TSW_KIND_TIME:
			cell->v.f64 = tsw_time_ms(info, value);
			break;
		case TSW_KIND_INTERVAL:
			{
				Interval   *iv = DatumGetIntervalP(value);

				cell->v.interval.months = iv->month;
				cell->v.interval.days = iv->day;
				cell->v.interval.micros = iv->time;
			}
			break;
		case TSW_KIND_ARRAY:
			tsw_array_to_cell(info, value, cell);
			break;
		case TSW_KIND_RECORD:
			tsw_record_to_cell(info, value, cell);
			break;
		case TSW_KIND_TEXT:
		case TSW_KIND_JSON:
		default:
			switch (info->via)
			{
				case TSW_VIA_VARLENA:
					tsw_point_varlena(value, cell);
					break;
				case TSW_VIA_NAME:
					cell->v.text.ptr = NameStr(*DatumGetName(value));
					cell->v.text.len = strlen(cell->v.text.ptr);
					break;
				case TSW_VIA_OUTPUT:
					{
						char	   *s = OutputFunctionCall(&info->out, value);

						cell->v.text.ptr = s;
						cell->v.text.len = strlen(s);
					}
					break;
			}
			cell->v.text.ptr = tsw_server_to_utf8(cell->v.text.ptr, &cell->v.text.len);
			break;
	}
}

