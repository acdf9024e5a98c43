/*
 * js_common.h
 *		What the addon's JavaScript files (js_*.cc) share: the values the
 *		runtime hands over at init(), and the shape of a call.
 *
 * The addon uses Node-API's C interface directly: it never aborts the
 * process when JavaScript cannot run (a terminated isolate), it only
 * returns an error status, which the calls here pass on as "an exception
 * is pending, return".
 */
#ifndef TSW_JS_COMMON_H
#define TSW_JS_COMMON_H

#include <node_api.h>
#include <v8.h>

#include <cstring>
#include <memory>
#include <string>

#include "pg_api.h"

namespace tsw
{

/* References the runtime hands over at init(), kept for the process. */
struct Refs
{
	napi_ref	pg_error = nullptr;	/* class PgError (message, fields) */
	napi_ref	interval = nullptr;	/* class Interval (months, days, microseconds) */
	napi_ref	shapes = nullptr;	/* the runtime's result shapes ({ fields, build }) */
	napi_ref	commands = nullptr;	/* the runtime's command tags */
	napi_ref	info = nullptr;	/* Float64Array(5) describing the last result */
	double	   *info_data = nullptr;	/* its elements */
	napi_ref	json_parse = nullptr;
	napi_ref	json_stringify = nullptr;
	napi_ref	function_ctor = nullptr;	/* Function, to compile row constructors */
};

extern Refs g_refs;

/*
 * A napi_value is a v8::Local's slot, as in Node's own
 * v8impl::V8LocalValueFromJsValue (js_native_api_v8.h): the two convert by
 * copy.  V8's API is used directly only where N-API's checks per call
 * showed in a profile: the result arrays (js_values.cc) and the checks of
 * a statement call's fixed arguments (js_error.cc, js_statements.cc).
 */
inline v8::Local<v8::Value>
ToV8(napi_value v)
{
	v8::Local<v8::Value> local;

	static_assert(sizeof(local) == sizeof(v), "a napi_value is a v8::Local");
	std::memcpy(static_cast<void *>(&local), &v, sizeof(v));
	return local;
}

inline napi_value
FromV8(v8::Local<v8::Value> local)
{
	napi_value	v;

	std::memcpy(static_cast<void *>(&v), &local, sizeof(local));
	return v;
}

/* The value a reference holds (nullptr if unset). */
napi_value	Ref(napi_env env, napi_ref ref);

/* ---- errors (js_error.cc) ---- */

/* Throw err as a PgError (a plain Error before init()), free it; returns nullptr. */
napi_value	ThrowPgError(napi_env env, TswError *err);
/* Throw a TypeError / RangeError / Error; returns nullptr. */
napi_value	ThrowType(napi_env env, const std::string &msg);
napi_value	ThrowRange(napi_env env, const std::string &msg);
napi_value	ThrowError(napi_env env, const std::string &msg);
/* True when a JavaScript exception is pending (a call failed). */
bool		Pending(napi_env env);

/* ---- arguments ---- */

/* The arguments of a call, at most N. */
template <size_t N>
struct Args
{
	napi_value	argv[N];
	size_t		argc = N;

	Args(napi_env env, napi_callback_info info)
	{
		napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
		for (size_t i = argc; i < N; i++)
			napi_get_undefined(env, &argv[i]);
	}
	napi_value operator[](size_t i) const { return argv[i]; }
};

/*
 * The arguments of a statement call whose parameters follow its fixed
 * arguments, one argument each (the runtime spreads them: reading a
 * call's arguments costs nothing, reading an array's elements through
 * N-API costs a generic property lookup each).  With kParamsArray in its
 * flags, the one argument after the fixed ones is the parameters' array
 * (the runtime passes long lists so, which a call's arguments cannot hold).
 */
class CallArgs
{
  public:
	CallArgs(napi_env env, napi_callback_info info, size_t fixed);
	napi_value	operator[](size_t i) const { return argv_[i]; }
	/* The parameters, after the fixed arguments. */
	const napi_value *params() const { return argv_ + fixed_; }
	size_t		nparams() const { return argc_ - fixed_; }

  private:
	static constexpr size_t kInline = 16;

	napi_value	inline_[kInline];
	std::unique_ptr<napi_value[]> heap_;
	napi_value *argv_ = inline_;
	size_t		argc_ = 0;
	size_t		fixed_ = 0;
};

/* Flag of a statement call: the parameters come as one array (see CallArgs). */
constexpr int kParamsArray = 0x10000;

napi_valuetype TypeOf(napi_env env, napi_value v);
/* A string argument as UTF-8; false (TypeError thrown) if it is not one or holds a NUL. */
bool		GetString(napi_env env, napi_value v, const char *what, std::string *out);
bool		GetBool(napi_env env, napi_value v, bool dflt);
int32_t		GetInt(napi_env env, napi_value v, int32_t dflt);
napi_value	Undefined(napi_env env);
napi_value	Null(napi_env env);
napi_value	String(napi_env env, const char *s, size_t len = NAPI_AUTO_LENGTH);

/*
 * Undefined when call() succeeded, else throw its error.  (The call and the
 * error it sets must not be two arguments of one call: their order of
 * evaluation is unspecified.)
 */
template <typename Call>
inline napi_value
Done(napi_env env, Call call)
{
	TswError   *err = nullptr;

	if (call(&err) == 0)
		return Undefined(env);
	return ThrowPgError(env, err);
}

/* ---- shapes of results (js_shapes.cc) ---- */

/* The index of res's shape in the runtime's `shapes`; -1 with an exception pending. */
int			ShapeOf(napi_env env, const TswResult *res);

/* The index of a command tag in the runtime's `commands`. */
int			CommandIndex(napi_env env, const char *command);

/* ---- values (js_values.cc) ---- */

/*
 * A result for the runtime's rowsOf(): its cells, row-major (undefined
 * when the statement returned no rows at all; the value itself when it is
 * one row of one column), described in info; nullptr with an exception
 * pending.  Frees res.
 */
napi_value	ResultValue(napi_env env, TswResult *res);

/* ---- parameters (js_params.cc) ---- */

/*
 * The values of a plan's parameters for tsw_execute / tsw_cursor_open:
 * integral numbers, floats and booleans as they are for the types that
 * take them (TswDirect), else the text form, kept alive here.
 */
class ParamValues
{
  public:
	ParamValues() = default;
	ParamValues(const ParamValues &) = delete;
	ParamValues &operator=(const ParamValues &) = delete;

	/* Convert `given` (an array, or undefined) for plan's parameters; false with an exception pending. */
	bool		Fill(napi_env env, const TswPlan *plan, napi_value given);
	/* The same for `count` values given one by one. */
	bool		Fill(napi_env env, const TswPlan *plan, const napi_value *given, size_t count);
	const TswParamValue *values() const { return values_; }

  private:
	static constexpr int kInline = 8;

	bool		Convert(napi_env env, napi_value v, const TswParamType &type, int i);

	TswParamValue inline_values_[kInline];
	std::string inline_texts_[kInline];
	std::unique_ptr<TswParamValue[]> heap_values_;
	std::unique_ptr<std::string[]> heap_texts_;
	std::unique_ptr<napi_value[]> elements_;
	TswParamValue *values_ = nullptr;
	std::string *texts_ = nullptr;
};

/*
 * Text of a non-null value `v` for a parameter of type `t` (nullptr: no
 * type information) into *out; false with a JavaScript exception pending.
 */
bool		ParamText(napi_env env, napi_value v, const TswParamType *t, std::string *out);

/* What a parameter's type expects, as the runtime's ParamType object. */
napi_value	ParamTypeObject(napi_env env, const TswParamType &t);

}								/* namespace tsw */

#endif							/* TSW_JS_COMMON_H */
