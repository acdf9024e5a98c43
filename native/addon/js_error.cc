/*
 * js_error.cc
 *		Errors thrown into JavaScript: PostgreSQL's as PgError (the shape of
 *		node-postgres's DatabaseError), the addon's own as TypeError and
 *		RangeError; and the small argument helpers every call uses.
 *
 * Throwing can fail when JavaScript cannot run any more (the worker is
 * being stopped): that is ignored, never fatal.
 */
#include "js_common.h"

#include <cstring>

namespace tsw
{

Refs		g_refs;

napi_value
Ref(napi_env env, napi_ref ref)
{
	napi_value	v = nullptr;

	if (ref != nullptr)
		napi_get_reference_value(env, ref, &v);
	return v;
}

bool
Pending(napi_env env)
{
	bool		pending = false;

	napi_is_exception_pending(env, &pending);
	return pending;
}

napi_value
Undefined(napi_env env)
{
	napi_value	v;

	napi_get_undefined(env, &v);
	return v;
}

napi_value
Null(napi_env env)
{
	napi_value	v;

	napi_get_null(env, &v);
	return v;
}

napi_value
String(napi_env env, const char *s, size_t len)
{
	napi_value	v = nullptr;

	napi_create_string_utf8(env, s, len, &v);
	return v;
}

napi_valuetype
TypeOf(napi_env env, napi_value v)
{
	napi_valuetype t = napi_undefined;

	napi_typeof(env, v, &t);
	return t;
}

bool
GetString(napi_env env, napi_value v, const char *what, std::string *out)
{
	size_t		len = 0;

	if (TypeOf(env, v) != napi_string)
	{
		ThrowType(env, std::string(what) + " must be a string");
		return false;
	}

	/*
	 * One UTF-8 conversion for the usual short string: into a buffer on the
	 * stack, complete when it stopped short of the end by more than a
	 * character's 4 bytes.  Longer ones are measured first.
	 */
	char		buf[512];

	napi_get_value_string_utf8(env, v, buf, sizeof(buf), &len);
	if (len + 4 < sizeof(buf) - 1)
		out->assign(buf, len);
	else
	{
		napi_get_value_string_utf8(env, v, nullptr, 0, &len);
		out->resize(len);
		napi_get_value_string_utf8(env, v, &(*out)[0], len + 1, &len);
	}
	if (std::memchr(out->data(), '\0', len) != nullptr)
	{
		ThrowType(env, std::string(what) + " contains a NUL character");
		return false;
	}
	return true;
}

bool
GetBool(napi_env env, napi_value v, bool dflt)
{
	bool		b = dflt;

	if (TypeOf(env, v) == napi_boolean)
		napi_get_value_bool(env, v, &b);
	return b;
}

int32_t
GetInt(napi_env env, napi_value v, int32_t dflt)
{
	int32_t		n = dflt;
	v8::Local<v8::Value> local = ToV8(v);

	if (local->IsInt32())
		return local.As<v8::Int32>()->Value();
	if (TypeOf(env, v) == napi_number)
		napi_get_value_int32(env, v, &n);
	return n;
}

static napi_value
Throw(napi_env env, napi_status (*make) (napi_env, napi_value, napi_value, napi_value *),
	  const std::string &msg)
{
	napi_value	error;

	if (make(env, nullptr, String(env, msg.c_str(), msg.size()), &error) == napi_ok)
		napi_throw(env, error);
	return nullptr;
}

napi_value
ThrowType(napi_env env, const std::string &msg)
{
	return Throw(env, napi_create_type_error, msg);
}

napi_value
ThrowRange(napi_env env, const std::string &msg)
{
	return Throw(env, napi_create_range_error, msg);
}

napi_value
ThrowError(napi_env env, const std::string &msg)
{
	return Throw(env, napi_create_error, msg);
}

static void
SetString(napi_env env, napi_value obj, const char *key, const char *value)
{
	if (value != nullptr)
		napi_set_named_property(env, obj, key, String(env, value));
}

/*
 * The fields of node-postgres's DatabaseError, as strings (position, line
 * included, as pg gives them).
 */
static napi_value
ErrorFields(napi_env env, const TswError *err)
{
	napi_value	fields;

	napi_create_object(env, &fields);
	napi_set_named_property(env, fields, "code", String(env, err->sqlstate, 5));
	SetString(env, fields, "severity", err->severity);
	SetString(env, fields, "detail", err->detail);
	SetString(env, fields, "hint", err->hint);
	SetString(env, fields, "where", err->context);
	SetString(env, fields, "schema", err->schema);
	SetString(env, fields, "table", err->table);
	SetString(env, fields, "column", err->column);
	SetString(env, fields, "dataType", err->datatype);
	SetString(env, fields, "constraint", err->constraint);
	SetString(env, fields, "internalQuery", err->internal_query);
	SetString(env, fields, "file", err->file);
	SetString(env, fields, "routine", err->routine);
	if (err->line > 0)
		SetString(env, fields, "line", std::to_string(err->line).c_str());
	if (err->position > 0)
		SetString(env, fields, "position", std::to_string(err->position).c_str());
	if (err->internal_position > 0)
		SetString(env, fields, "internalPosition", std::to_string(err->internal_position).c_str());
	return fields;
}

napi_value
ThrowPgError(napi_env env, TswError *err)
{
	napi_value	cls = Ref(env, g_refs.pg_error);
	napi_value	message = String(env, err->message ? err->message : "unknown error");
	napi_value	fields = ErrorFields(env, err);
	napi_value	error = nullptr;

	tsw_free_error(err);
	if (message == nullptr || fields == nullptr)
		return nullptr;			/* JavaScript cannot run: nothing to throw into */
	if (cls != nullptr)
	{
		napi_value	argv[2] = {message, fields};

		if (napi_new_instance(env, cls, 2, argv, &error) != napi_ok)
			return nullptr;
	}
	else if (napi_create_error(env, nullptr, message, &error) != napi_ok)
		return nullptr;
	napi_throw(env, error);
	return nullptr;
}

}								/* namespace tsw */
