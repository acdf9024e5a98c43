/*
 * js_cursors.cc
 *		The calls on an open cursor (a portal): fetchCursor, moveCursor and
 *		closeCursor.  Cursors are opened in js_statements.cc (openCursor),
 *		which plans them; pg_cursor.c makes the PostgreSQL calls.
 */
#include "js_common.h"

#include <string>

namespace tsw
{

namespace
{

/* The cursor name and count of fetchCursor/moveCursor; false with a TypeError. */
bool
CursorArgs(napi_env env, const Args<4> &args, const char *what, std::string *name, int64_t *count)
{
	if (TypeOf(env, args[0]) != napi_string || TypeOf(env, args[2]) != napi_number)
	{
		ThrowType(env, std::string(what) + "(name, forward, count) expects a string, a boolean and a number");
		return false;
	}
	napi_get_value_int64(env, args[2], count);
	return GetString(env, args[0], "cursor name", name);
}

/* fetchCursor(name, forward, count, flags = 0) -> Rows */
napi_value
FetchCursor(napi_env env, napi_callback_info info)
{
	Args<4>		args(env, info);
	std::string name;
	int64_t		count;
	TswResult  *res = nullptr;
	TswError   *err = nullptr;

	if (!CursorArgs(env, args, "fetchCursor", &name, &count))
		return nullptr;
	if (tsw_cursor_fetch(name.c_str(), GetBool(env, args[1], true) ? 1 : 0, count,
						 GetInt(env, args[3], 0), &res, &err) != 0)
		return ThrowPgError(env, err);
	return ResultValue(env, res);
}

/* moveCursor(name, forward, count) -> rows moved */
napi_value
MoveCursor(napi_env env, napi_callback_info info)
{
	Args<4>		args(env, info);
	std::string name;
	int64_t		count;
	uint64_t	moved = 0;
	TswError   *err = nullptr;
	napi_value	v;

	if (!CursorArgs(env, args, "moveCursor", &name, &count))
		return nullptr;
	if (tsw_cursor_move(name.c_str(), GetBool(env, args[1], true) ? 1 : 0, count, &moved, &err) != 0)
		return ThrowPgError(env, err);
	napi_create_double(env, static_cast<double>(moved), &v);
	return v;
}

/* closeCursor(name) */
napi_value
CloseCursor(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);
	std::string name;

	if (!GetString(env, args[0], "closeCursor(name): name", &name))
		return nullptr;
	return Done(env, [&](TswError **err) { return tsw_cursor_close(name.c_str(), err); });
}

}								/* namespace */

/* The calls of this file, for js_addon.cc. */
void
DefineCursorCalls(napi_env env, napi_value exports)
{
	napi_property_descriptor calls[] = {
		{"fetchCursor", nullptr, FetchCursor, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"moveCursor", nullptr, MoveCursor, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"closeCursor", nullptr, CloseCursor, nullptr, nullptr, nullptr, napi_default, nullptr},
	};

	napi_define_properties(env, exports, sizeof(calls) / sizeof(calls[0]), calls);
}

}								/* namespace tsw */
