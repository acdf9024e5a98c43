/*
 * js_values.cc
 *		Results into JavaScript: each value from its cell once, rows built
 *		from a per-shape constructor, the rows gathered in a Rows.
 *
 * Setting a row's properties one by one made V8 look up or create a
 * property transition and internalise the column's name for every value.
 * Instead, each distinct set of columns (its shape) gets, once, a compiled
 * constructor `function (a0, a1, ...) { this["id"] = a0; ... }` and a
 * frozen `fields` array; every row is one call of that constructor, which
 * V8 optimises like any constructor, and rows share one hidden class.
 * Shapes are cached, up to kMaxShapes.
 *
 * Values: numbers, booleans, BigInts and Dates directly; text and bytes
 * copied once from PostgreSQL's memory; jsonb from its tree (pg_jsonb.c);
 * json by JSON.parse; intervals as `new Interval(months, days, us)`.
 */
#include "js_common.h"

#include <cmath>
#include <cstdlib>
#include <unordered_map>
#include <vector>

namespace tsw
{

namespace
{

/* What rows of one shape need. */
struct Shape
{
	napi_ref	ctor;			/* the row constructor */
	napi_ref	fields;			/* frozen [{ name, dataTypeID }] */
};

constexpr size_t kMaxShapes = 512;
std::unordered_map<std::string, Shape> g_shapes;

napi_value	CellValue(napi_env env, const TswCell &cell);

/* A JavaScript string literal of s (for the generated constructor's source). */
std::string
Quoted(const char *s)
{
	std::string out = "\"";

	for (const unsigned char *p = (const unsigned char *) s; *p; p++)
	{
		char		buf[8];

		if (*p == '"' || *p == '\\')
		{
			out += '\\';
			out += (char) *p;
		}
		else if (*p < 0x20)
		{
			snprintf(buf, sizeof(buf), "\\u%04x", *p);
			out += buf;
		}
		else
			out += (char) *p;	/* UTF-8 passes through */
	}
	return out + "\"";
}

/*
 * The constructor of rows with these columns.  A column named __proto__
 * becomes an own property, not the row's prototype.
 */
napi_value
CompileRowConstructor(napi_env env, const TswResult *res)
{
	std::vector<napi_value> argv;
	std::string body;
	napi_value	fn;

	for (int c = 0; c < res->ncolumns; c++)
	{
		std::string arg = "a" + std::to_string(c);
		std::string key = Quoted(res->columns[c].name);

		argv.push_back(String(env, arg.c_str()));
		if (std::string(res->columns[c].name) == "__proto__")
			body += "Object.defineProperty(this, " + key + ", {value: " + arg +
				", writable: true, enumerable: true, configurable: true});";
		else
			body += "this[" + key + "] = " + arg + ";";
	}
	argv.push_back(String(env, body.c_str(), body.size()));
	if (napi_call_function(env, Undefined(env), Ref(env, g_refs.function_ctor),
						   argv.size(), argv.data(), &fn) != napi_ok)
		return nullptr;
	return fn;
}

napi_value
FieldsArray(napi_env env, const TswResult *res)
{
	napi_value	fields;
	napi_value	object_ctor;
	napi_value	freeze;
	napi_value	global;

	napi_create_array_with_length(env, res->ncolumns, &fields);
	napi_get_global(env, &global);
	napi_get_named_property(env, global, "Object", &object_ctor);
	napi_get_named_property(env, object_ctor, "freeze", &freeze);
	for (int c = 0; c < res->ncolumns; c++)
	{
		napi_value	f;
		napi_value	oid;

		napi_create_object(env, &f);
		napi_create_uint32(env, res->columns[c].type_oid, &oid);
		napi_set_named_property(env, f, "name", String(env, res->columns[c].name));
		napi_set_named_property(env, f, "dataTypeID", oid);
		napi_call_function(env, object_ctor, freeze, 1, &f, &f);
		napi_set_element(env, fields, c, f);
	}
	napi_call_function(env, object_ctor, freeze, 1, &fields, &fields);
	return fields;
}

/* The shape of res's columns, compiled once. */
const Shape *
ShapeOf(napi_env env, const TswResult *res)
{
	std::string key;

	for (int c = 0; c < res->ncolumns; c++)
	{
		key += res->columns[c].name;
		key += '\0';
		key += std::to_string(res->columns[c].type_oid);
		key += '\0';
	}
	auto		it = g_shapes.find(key);

	if (it != g_shapes.end())
		return &it->second;
	if (g_shapes.size() >= kMaxShapes)
	{
		for (auto &entry : g_shapes)
		{
			napi_delete_reference(env, entry.second.ctor);
			napi_delete_reference(env, entry.second.fields);
		}
		g_shapes.clear();
	}

	napi_value	ctor = CompileRowConstructor(env, res);
	napi_value	fields = ctor ? FieldsArray(env, res) : nullptr;
	Shape		shape;

	if (ctor == nullptr || fields == nullptr || Pending(env))
		return nullptr;
	napi_create_reference(env, ctor, 1, &shape.ctor);
	napi_create_reference(env, fields, 1, &shape.fields);
	return &g_shapes.emplace(key, shape).first->second;
}

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

/* The rows of res into the Rows `out`; false with an exception pending. */
bool
FillRows(napi_env env, const TswResult *res, napi_value ctor, napi_value out)
{
	std::vector<napi_value> values(res->ncolumns > 0 ? res->ncolumns : 1);

	for (uint64_t r = 0; r < res->nrows; r++)
	{
		napi_handle_scope scope;
		napi_value	row;
		bool		ok = true;
		const TswCell *cells = &res->cells[r * res->ncolumns];

		napi_open_handle_scope(env, &scope);
		for (int c = 0; c < res->ncolumns && ok; c++)
		{
			values[c] = cells[c].isnull ? Null(env) : CellValue(env, cells[c]);
			ok = values[c] != nullptr;
		}
		ok = ok && napi_new_instance(env, ctor, res->ncolumns, values.data(), &row) == napi_ok &&
			napi_set_element(env, out, static_cast<uint32_t>(r), row) == napi_ok;
		napi_close_handle_scope(env, scope);
		if (!ok)
			return false;
	}
	return true;
}

}								/* namespace */

napi_value
ResultValue(napi_env env, TswResult *res)
{
	const Shape *shape = ShapeOf(env, res);
	napi_value	argv[3];
	napi_value	out = nullptr;

	if (shape == nullptr)
	{
		tsw_free_result(res);
		return nullptr;
	}
	argv[0] = String(env, res->command);
	napi_create_double(env, static_cast<double>(res->row_count), &argv[1]);
	argv[2] = Ref(env, shape->fields);
	if (napi_new_instance(env, Ref(env, g_refs.rows), 3, argv, &out) != napi_ok ||
		!FillRows(env, res, Ref(env, shape->ctor), out))
		out = nullptr;
	tsw_free_result(res);
	return out;
}

}								/* namespace tsw */
