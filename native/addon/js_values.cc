/*
 * js_values.cc
 *		Results into JavaScript: each value from its cell once, into one
 *		flat array; the runtime builds the rows from it with its shape's
 *		build() (js_shapes.cc; src/runtime/results.ts, rowsOf).
 *
 * The addon returns the cells, row-major, and describes the result in the
 * runtime's Float64Array `info`: [command, rowCount, rows, shape, lone].
 * A lone value (one row of one column: a lookup, SELECT 1) is returned as
 * it is, lone = 1, and the runtime puts it in an array: JavaScript makes a
 * one-element array in a fraction of what V8's Array::New costs from C++.
 *
 * Values: numbers, booleans, BigInts and Dates directly; text and bytes
 * copied once from PostgreSQL's memory; jsonb from its tree (pg_jsonb.c);
 * json by V8's JSON parser; intervals as `new Interval(months, days, us)`.
 */
#include "js_common.h"

#include <v8.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <vector>

namespace tsw
{

namespace
{

napi_value	CellValue(napi_env env, const TswCell &cell);

/* Nested arrays for dimension dim of a, consuming elements from *next. */
napi_value
ArrayLevel(napi_env env, const TswArray *a, int dim, int *next)
{
	napi_value	out;
	int			n = a->dims[dim];

	napi_create_array_with_length(env, n, &out);
	for (int i = 0; i < n; i++)
	{
		napi_value	v;

		if (dim + 1 < a->ndims)
			v = ArrayLevel(env, a, dim + 1, next);
		else
		{
			const TswCell &cell = a->elems[(*next)++];

			v = cell.isnull ? Null(env) : CellValue(env, cell);
		}
		if (v == nullptr)
			return nullptr;
		napi_set_element(env, out, i, v);
	}
	return out;
}

napi_value
JsonValue(napi_env env, const TswJson &j)
{
	napi_value	v = nullptr;

	switch (j.type)
	{
		case TSW_JSON_NULL:
			return Null(env);
		case TSW_JSON_BOOL:
			napi_get_boolean(env, j.b != 0, &v);
			return v;
		case TSW_JSON_NUMBER:
			napi_create_double(env, std::strtod(j.str, nullptr), &v);
			return v;
		case TSW_JSON_STRING:
			return String(env, j.str, j.len);
		case TSW_JSON_ARRAY:
			napi_create_array_with_length(env, j.n, &v);
			for (int i = 0; i < j.n; i++)
			{
				napi_value	e = JsonValue(env, j.elems[i]);

				if (e == nullptr || napi_set_element(env, v, i, e) != napi_ok)
					return nullptr;
			}
			return v;
		case TSW_JSON_OBJECT:
			napi_create_object(env, &v);
			for (int i = 0; i < j.n; i++)
			{
				napi_value	e = JsonValue(env, j.elems[i]);
				napi_value	k = String(env, j.keys[i], j.keylens[i]);

				if (e == nullptr || k == nullptr || napi_set_property(env, v, k, e) != napi_ok)
					return nullptr;
			}
			return v;
	}
	return nullptr;
}

/* The JavaScript value of one non-null cell; nullptr with an exception pending. */
napi_value
CellValue(napi_env env, const TswCell &cell)
{
	napi_value	v = nullptr;

	switch (static_cast<TswKind>(cell.kind))
	{
		case TSW_KIND_BOOL:
			napi_get_boolean(env, cell.v.b != 0, &v);
			break;
		case TSW_KIND_INT32:
			napi_create_int32(env, cell.v.i32, &v);
			break;
		case TSW_KIND_UINT32:
			napi_create_uint32(env, cell.v.u32, &v);
			break;
		case TSW_KIND_INT64:
			napi_create_bigint_int64(env, cell.v.i64, &v);
			break;
		case TSW_KIND_FLOAT64:
			napi_create_double(env, cell.v.f64, &v);
			break;
		case TSW_KIND_TEXT:
			v = String(env, cell.v.text.ptr, cell.v.text.len);
			break;
		case TSW_KIND_BYTES:
			{
				void	   *data;

				napi_create_buffer_copy(env, cell.v.text.len, cell.v.text.ptr, &data, &v);
			}
			break;
		case TSW_KIND_TIME:
			if (std::isfinite(cell.v.f64))
				napi_create_date(env, cell.v.f64, &v);
			else
				napi_create_double(env, cell.v.f64, &v);
			break;
		case TSW_KIND_JSON:
			{
				napi_value	text = String(env, cell.v.text.ptr, cell.v.text.len);
				napi_value	parse = Ref(env, g_refs.json_parse);

				if (text == nullptr || napi_call_function(env, Undefined(env), parse, 1, &text, &v) != napi_ok)
					return nullptr;
			}
			break;
		case TSW_KIND_JSONB:
			v = JsonValue(env, *cell.v.json);
			break;
		case TSW_KIND_INTERVAL:
			{
				napi_value	argv[3];

				napi_create_int32(env, cell.v.interval.months, &argv[0]);
				napi_create_int32(env, cell.v.interval.days, &argv[1]);
				napi_create_bigint_int64(env, cell.v.interval.micros, &argv[2]);
				if (napi_new_instance(env, Ref(env, g_refs.interval), 3, argv, &v) != napi_ok)
					return nullptr;
			}
			break;
		case TSW_KIND_ARRAY:
			{
				int			next = 0;

				if (cell.v.array->ndims == 0)
					napi_create_array(env, &v);
				else
					v = ArrayLevel(env, cell.v.array, 0, &next);
			}
			break;
		case TSW_KIND_RECORD:
			{
				const TswRecord *r = cell.v.record;

				napi_create_object(env, &v);
				for (int i = 0; i < r->natts; i++)
				{
					napi_value	field = r->values[i].isnull ? Null(env) : CellValue(env, r->values[i]);

					if (field == nullptr)
						return nullptr;
					napi_set_named_property(env, v, r->names[i], field);
				}
			}
			break;
	}
	return v;
}

/* The cells of res, row-major, into `out`; false with an exception pending. */
/*
 * The JavaScript value of one non-null cell, for the kinds that are most of
 * any result, straight from V8's API; the rest through CellValue.  An empty
 * handle: an exception is pending.
 */
v8::Local<v8::Value>
FastCellValue(napi_env env, v8::Isolate *isolate, v8::Local<v8::Context> context, const TswCell &cell)
{
	switch (static_cast<TswKind>(cell.kind))
	{
		case TSW_KIND_BOOL:
			return v8::Boolean::New(isolate, cell.v.b != 0);
		case TSW_KIND_INT32:
			return v8::Integer::New(isolate, cell.v.i32);
		case TSW_KIND_UINT32:
			return v8::Integer::NewFromUnsigned(isolate, cell.v.u32);
		case TSW_KIND_INT64:
			return v8::BigInt::New(isolate, cell.v.i64);
		case TSW_KIND_FLOAT64:
			return v8::Number::New(isolate, cell.v.f64);
		case TSW_KIND_TEXT:
			{
				v8::Local<v8::String> str;

				if (!v8::String::NewFromUtf8(isolate, cell.v.text.ptr, v8::NewStringType::kNormal,
											 static_cast<int>(cell.v.text.len)).ToLocal(&str))
				{
					ThrowRange(env, "a text value is longer than a JavaScript string can be");
					return {};
				}
				return str;
			}
		case TSW_KIND_TIME:
			if (std::isfinite(cell.v.f64))
			{
				v8::Local<v8::Value> date;

				return v8::Date::New(context, cell.v.f64).ToLocal(&date) ? date : v8::Local<v8::Value>();
			}
			return v8::Number::New(isolate, cell.v.f64);
		case TSW_KIND_JSON:
			{
				v8::Local<v8::String> text;
				v8::Local<v8::Value> parsed;

				if (!v8::String::NewFromUtf8(isolate, cell.v.text.ptr, v8::NewStringType::kNormal,
											 static_cast<int>(cell.v.text.len)).ToLocal(&text))
				{
					ThrowRange(env, "a json value is longer than a JavaScript string can be");
					return {};
				}
				return v8::JSON::Parse(context, text).ToLocal(&parsed) ? parsed : v8::Local<v8::Value>();
			}
		default:
			return ToV8(CellValue(env, cell));
	}
}

/*
 * The result's cells, row-major, as one packed array.  N-API sets an
 * array's elements one by one through a generic property store (a lookup
 * per element, the backing store grown as it goes: a fifth of the time of
 * a large read); V8's Array::New takes them all at once.
 */
napi_value
CellsArray(napi_env env, const TswResult *res)
{
	v8::Isolate *isolate = v8::Isolate::GetCurrent();
	v8::Local<v8::Context> context = isolate->GetCurrentContext();
	v8::Local<v8::Value> null_value = v8::Null(isolate);
	size_t		n = static_cast<size_t>(res->nrows) * static_cast<size_t>(res->ncolumns);
	std::vector<v8::Local<v8::Value>> values;

	values.reserve(n);
	for (size_t k = 0; k < n; k++)
	{
		const TswCell &cell = res->cells[k];
		v8::Local<v8::Value> v = cell.isnull ? null_value : FastCellValue(env, isolate, context, cell);

		if (v.IsEmpty())
			return nullptr;
		values.push_back(v);
	}
	return FromV8(v8::Array::New(isolate, values.data(), n));
}

/* The value of a result's only cell (one row, one column); nullptr with an exception pending. */
napi_value
LoneValue(napi_env env, const TswResult *res)
{
	v8::Isolate *isolate = v8::Isolate::GetCurrent();
	const TswCell &cell = res->cells[0];
	v8::Local<v8::Value> v;

	if (cell.isnull)
		return Null(env);
	v = FastCellValue(env, isolate, isolate->GetCurrentContext(), cell);
	return v.IsEmpty() ? nullptr : FromV8(v);
}

}								/* namespace */

napi_value
ResultValue(napi_env env, TswResult *res)
{
	napi_value	out = nullptr;
	int			shape = -1;
	int			command = CommandIndex(env, res->command);
	bool		ok = true;
	bool		lone = false;

	if (res->tuptable != nullptr)
	{
		shape = ShapeOf(env, res);
		lone = res->nrows == 1 && res->ncolumns == 1;
		ok = shape >= 0 && (out = lone ? LoneValue(env, res) : CellsArray(env, res)) != nullptr;
	}
	else
		out = Undefined(env);
	if (ok)
	{
		g_refs.info_data[0] = command;
		g_refs.info_data[1] = static_cast<double>(res->row_count);
		g_refs.info_data[2] = static_cast<double>(res->nrows);
		g_refs.info_data[3] = shape;
		g_refs.info_data[4] = lone ? 1 : 0;
	}
	tsw_free_result(res);
	return ok ? out : nullptr;
}

}								/* namespace tsw */
