/*-------------------------------------------------------------------------
 *
 * pg_jsonb.c
 *		jsonb values as a tree of cells, read with a JsonbIterator (plv8's
 *		way): js_values.cc builds the JavaScript value from it directly,
 *		without printing jsonb as text for JSON.parse.
 *
 * Strings and keys point into the jsonb value; numbers are numeric's text
 * (read as a Number, as JSON.parse would).  A document nested deeper than
 * TSW_JSONB_MAX_DEPTH is left to its text form.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "pg_values.h"

/* Deeper jsonb documents go as text to JSON.parse (no deep recursion here or in C++). */
#define TSW_JSONB_MAX_DEPTH 200

static bool tsw_jsonb_tree(JsonbIterator **it, JsonbValue *v, JsonbIteratorToken tok,
						   TswJson *out, int depth);

static void
tsw_jsonb_scalar(const JsonbValue *v, TswJson *out)
{
	switch (v->type)
	{
		case jbvNull:
			out->type = TSW_JSON_NULL;
			break;
		case jbvBool:
			out->type = TSW_JSON_BOOL;
			out->b = v->val.boolean;
			break;
		case jbvString:
			out->type = TSW_JSON_STRING;
			out->len = v->val.string.len;
			out->str = tsw_server_to_utf8(v->val.string.val, &out->len);
			break;
		case jbvNumeric:
			out->type = TSW_JSON_NUMBER;
			out->str = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
			out->len = strlen(out->str);
			break;
		default:
			elog(ERROR, "unexpected jsonb scalar type %d", (int) v->type);
	}
}

/*
 * The jsonb value that starts with token `tok` as a tree; false when it is
 * nested deeper than TSW_JSONB_MAX_DEPTH.
 */
static bool
tsw_jsonb_tree(JsonbIterator **it, JsonbValue *v, JsonbIteratorToken tok, TswJson *out, int depth)
{
	int			i;

	check_stack_depth();
	if (depth > TSW_JSONB_MAX_DEPTH)
		return false;
	memset(out, 0, sizeof(*out));
	if (tok == WJB_BEGIN_ARRAY && v->val.array.rawScalar)
	{
		/* a scalar document: [ scalar ] */
		tok = JsonbIteratorNext(it, v, false);
		tsw_jsonb_scalar(v, out);
		(void) JsonbIteratorNext(it, v, false);
		return true;
	}
	if (tok == WJB_BEGIN_ARRAY)
	{
		out->type = TSW_JSON_ARRAY;
		out->n = v->val.array.nElems;
		out->elems = palloc(sizeof(TswJson) * Max(out->n, 1));
		for (i = 0; i < out->n; i++)
		{
			tok = JsonbIteratorNext(it, v, false);
			if (!tsw_jsonb_tree(it, v, tok, &out->elems[i], depth + 1))
				return false;
		}
		(void) JsonbIteratorNext(it, v, false); /* WJB_END_ARRAY */
		return true;
	}
	if (tok == WJB_BEGIN_OBJECT)
	{
		out->type = TSW_JSON_OBJECT;
		out->n = v->val.object.nPairs;
		out->elems = palloc(sizeof(TswJson) * Max(out->n, 1));
		out->keys = palloc(sizeof(char *) * Max(out->n, 1));
		out->keylens = palloc(sizeof(int) * Max(out->n, 1));
		for (i = 0; i < out->n; i++)
		{
			(void) JsonbIteratorNext(it, v, false); /* WJB_KEY */
			out->keylens[i] = v->val.string.len;
			out->keys[i] = tsw_server_to_utf8(v->val.string.val, &out->keylens[i]);
			tok = JsonbIteratorNext(it, v, false);
			if (!tsw_jsonb_tree(it, v, tok, &out->elems[i], depth + 1))
				return false;
		}
		(void) JsonbIteratorNext(it, v, false); /* WJB_END_OBJECT */
		return true;
	}
	tsw_jsonb_scalar(v, out);	/* WJB_ELEM, WJB_VALUE */
	return true;
}

bool
tsw_jsonb_to_tree(Datum value, TswJson **out)
{
	Jsonb	   *jb = DatumGetJsonbP(value);
	JsonbIterator *it = JsonbIteratorInit(&jb->root);
	JsonbValue	v;
	JsonbIteratorToken tok = JsonbIteratorNext(&it, &v, false);

	*out = palloc(sizeof(TswJson));
	return tsw_jsonb_tree(&it, &v, tok, *out, 0);
}

