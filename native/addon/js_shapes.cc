/*
 * js_shapes.cc
 *		The shapes of results: for each distinct set of columns, once, a
 *		frozen `fields` array and a compiled `build(rows, values, n)`.
 *
 * Setting a row's properties one by one from C++ made V8 look up or create
 * a property transition and internalise the column's name for every value,
 * and every call from C++ into JavaScript (a constructor per row) costs an
 * entry into the engine.  A shape's build() is an object literal
 * `{"id": v[k], ...}` that V8 creates from one boilerplate, so rows share
 * one hidden class; the runtime calls it (src/runtime/results.ts, rowsOf).
 * Shapes and command tags live in the runtime's `shapes` and `commands`
 * arrays, at the index the addon reports; shapes are cached up to
 * kMaxShapes.
 */
#include "js_common.h"

#include <string>
#include <unordered_map>
#include <vector>

namespace tsw
{

namespace
{

constexpr size_t kMaxShapes = 512;

/* Shapes by their columns' names and types: the index in the runtime's `shapes`. */
std::unordered_map<std::string, int> g_shapes;

/*
 * The columns of the shape found last, and its index: a statement run in a
 * loop finds its shape without building the key.
 */
struct LastShape
{
	std::vector<std::string> names;
	std::vector<uint32_t> oids;
	int			index = -1;

	bool		Matches(const TswResult *res) const
	{
		if (index < 0 || oids.size() != static_cast<size_t>(res->ncolumns))
			return false;
		for (int c = 0; c < res->ncolumns; c++)
			if (oids[c] != res->columns[c].type_oid || names[c] != res->columns[c].name)
				return false;
		return true;
	}
	void		Remember(const TswResult *res, int i)
	{
		names.clear();
		oids.clear();
		for (int c = 0; c < res->ncolumns; c++)
		{
			names.emplace_back(res->columns[c].name);
			oids.push_back(res->columns[c].type_oid);
		}
		index = i;
	}
};

LastShape	g_last;

/* Command tags seen so far, at their index in the runtime's `commands`. */
std::vector<std::string> g_commands;

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
 * build(rows, v, n) for rows with these columns: stores n rows made from
 * v, ncolumns values each, at rows[0..n-1] (rows is empty; push() on the
 * Array subclass Rows takes V8's slow C++ builtin, four times slower).  A column named __proto__ becomes an own
 * property (a computed key), not the row's prototype; of two columns with
 * one name, the last one's value is kept, at the first one's place.
 */
napi_value
CompileBuild(napi_env env, const TswResult *res)
{
	std::string body = "for (let i = 0, k = 0; i < n; i++, k += " + std::to_string(res->ncolumns) +
		") rows[i] = {";
	napi_value	argv[4];
	napi_value	fn;

	for (int c = 0; c < res->ncolumns; c++)
	{
		std::string key = Quoted(res->columns[c].name);

		if (std::string(res->columns[c].name) == "__proto__")
			key = "[" + key + "]";
		body += (c > 0 ? ", " : "") + key + ": v[k + " + std::to_string(c) + "]";
	}
	body += "};";
	argv[0] = String(env, "rows");
	argv[1] = String(env, "v");
	argv[2] = String(env, "n");
	argv[3] = String(env, body.c_str(), body.size());
	if (napi_call_function(env, Undefined(env), Ref(env, g_refs.function_ctor), 4, argv, &fn) != napi_ok)
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

}								/* namespace */

/*
 * The index of res's shape in the runtime's `shapes`, compiled the first
 * time; -1 with an exception pending.
 */
int
ShapeOf(napi_env env, const TswResult *res)
{
	std::string key;

	if (g_last.Matches(res))
		return g_last.index;
	for (int c = 0; c < res->ncolumns; c++)
	{
		key += res->columns[c].name;
		key += '\0';
		key += std::to_string(res->columns[c].type_oid);
		key += '\0';
	}
	auto		it = g_shapes.find(key);

	if (it != g_shapes.end())
	{
		g_last.Remember(res, it->second);
		return it->second;
	}

	napi_value	shapes = Ref(env, g_refs.shapes);
	napi_value	build = CompileBuild(env, res);
	napi_value	fields = build ? FieldsArray(env, res) : nullptr;
	napi_value	shape;

	if (build == nullptr || fields == nullptr || Pending(env))
		return -1;
	if (g_shapes.size() >= kMaxShapes)
	{
		napi_value	zero;

		g_shapes.clear();
		g_last.index = -1;
		napi_create_uint32(env, 0, &zero);
		napi_set_named_property(env, shapes, "length", zero);
	}
	napi_create_object(env, &shape);
	napi_set_named_property(env, shape, "fields", fields);
	napi_set_named_property(env, shape, "build", build);

	int			index = static_cast<int>(g_shapes.size());

	if (napi_set_element(env, shapes, index, shape) != napi_ok)
		return -1;
	g_shapes.emplace(key, index);
	g_last.Remember(res, index);
	return index;
}

/* The index of a command tag in the runtime's `commands`. */
int
CommandIndex(napi_env env, const char *command)
{
	for (size_t i = 0; i < g_commands.size(); i++)
		if (g_commands[i] == command)
			return static_cast<int>(i);
	g_commands.emplace_back(command);
	napi_set_element(env, Ref(env, g_refs.commands), static_cast<uint32_t>(g_commands.size() - 1),
					 String(env, command));
	return static_cast<int>(g_commands.size() - 1);
}

}								/* namespace tsw */
