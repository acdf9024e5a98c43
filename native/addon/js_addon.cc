/*
 * js_addon.cc
 *		The N-API addon of pg_tsworker: its exports, init(), and the calls
 *		for settings, logging, the worker's slot and cluster mode's write
 *		fence.
 *
 * The runtime loads it inside a worker process (src/runtime/addon.ts) and
 * hands over, at init(), the classes the addon creates values of (PgError,
 * Interval) and where results are described (src/runtime/results.ts).
 * `constants` gives the runtime the numbers of the shim's enums (states,
 * restart policies, outcomes, log levels) and of the result flags, from
 * their one definition.  Statements are in js_statements.cc, calls on open
 * cursors in js_cursors.cc, results in js_values.cc and js_shapes.cc,
 * parameters in js_params.cc and js_param_text.cc.
 */
#include "js_common.h"

#include "../shim/fence.h"

#include <string>

namespace tsw
{

void		DefineStatementCalls(napi_env env, napi_value exports);
void		DefineCursorCalls(napi_env env, napi_value exports);

namespace
{

/*
 * init(PgError, { Interval }, { info, commands, shapes }): the classes the
 * addon creates values of, and where it describes results (results.ts).
 */
napi_value
Init(napi_env env, napi_callback_info info)
{
	Args<3>		args(env, info);
	napi_value	interval;
	napi_value	channel[3];
	napi_value	global;
	napi_value	json;
	napi_value	fn;
	bool		is_array = false;
	napi_typedarray_type type = napi_int8_array;
	size_t		length = 0;
	void	   *data = nullptr;

	if (TypeOf(env, args[0]) != napi_function || TypeOf(env, args[1]) != napi_object ||
		TypeOf(env, args[2]) != napi_object)
		return ThrowType(env, "init(PgError, classes, results) expects a class and two objects");
	napi_get_named_property(env, args[1], "Interval", &interval);
	if (TypeOf(env, interval) != napi_function)
		return ThrowType(env, "init(): classes.Interval must be a class");
	napi_get_named_property(env, args[2], "info", &channel[0]);
	napi_get_named_property(env, args[2], "commands", &channel[1]);
	napi_get_named_property(env, args[2], "shapes", &channel[2]);
	napi_is_typedarray(env, channel[0], &is_array);
	if (is_array)
		napi_get_typedarray_info(env, channel[0], &type, &length, &data, nullptr, nullptr);
	if (!is_array || type != napi_float64_array || length < 5)
		return ThrowType(env, "init(): results.info must be a Float64Array(5)");
	for (int i = 1; i < 3; i++)
	{
		napi_is_array(env, channel[i], &is_array);
		if (!is_array)
			return ThrowType(env, "init(): results.commands and results.shapes must be arrays");
	}
	napi_create_reference(env, args[0], 1, &g_refs.pg_error);
	napi_create_reference(env, interval, 1, &g_refs.interval);
	napi_create_reference(env, channel[0], 1, &g_refs.info);
	g_refs.info_data = static_cast<double *>(data);
	napi_create_reference(env, channel[1], 1, &g_refs.commands);
	napi_create_reference(env, channel[2], 1, &g_refs.shapes);
	napi_get_global(env, &global);
	napi_get_named_property(env, global, "JSON", &json);
	napi_get_named_property(env, json, "parse", &fn);
	napi_create_reference(env, fn, 1, &g_refs.json_parse);
	napi_get_named_property(env, json, "stringify", &fn);
	napi_create_reference(env, fn, 1, &g_refs.json_stringify);
	napi_get_named_property(env, global, "Function", &fn);
	napi_create_reference(env, fn, 1, &g_refs.function_ctor);
	return Undefined(env);
}

/* slot() -> { name, configName, module, settings, dynamic, recentFailures, wakes } */
napi_value
Slot(napi_env env, napi_callback_info info)
{
	TswSlotCopy slot;
	napi_value	out;
	napi_value	v;

	if (tsw_read_slot(&slot) != 0)
		return ThrowError(env, "this process has no worker slot");
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "name", String(env, slot.name));
	napi_set_named_property(env, out, "configName", String(env, slot.config_name));
	napi_set_named_property(env, out, "module", String(env, slot.module));
	napi_set_named_property(env, out, "settings", String(env, slot.settings));
	napi_get_boolean(env, slot.dynamic != 0, &v);
	napi_set_named_property(env, out, "dynamic", v);
	napi_create_int32(env, slot.recent_failures, &v);
	napi_set_named_property(env, out, "recentFailures", v);
	napi_create_double(env, slot.wakes, &v);
	napi_set_named_property(env, out, "wakes", v);
	tsw_free_slot(&slot);
	return out;
}

/* getSetting(name) -> { value: string | null, defined: boolean } */
napi_value
GetSetting(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);
	std::string name;
	char	   *value = nullptr;
	int			defined = 0;
	TswError   *err = nullptr;
	napi_value	out;
	napi_value	v;

	if (!GetString(env, args[0], "setting(name): name", &name))
		return nullptr;
	if (tsw_get_setting(name.c_str(), &value, &defined, &err) != 0)
		return ThrowPgError(env, err);
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "value", value != nullptr ? String(env, value) : Null(env));
	napi_get_boolean(env, defined != 0, &v);
	napi_set_named_property(env, out, "defined", v);
	tsw_free_string(value);
	return out;
}

/*
 * defineSettings(worker, configName, declarations JSON, launch settings
 * JSON) -> null, or every refused launch setting in one string
 */
napi_value
DefineSettings(napi_env env, napi_callback_info info)
{
	Args<4>		args(env, info);
	std::string worker;
	std::string config_name;
	std::string decls;
	std::string settings;
	char	   *bad = nullptr;
	TswError   *err = nullptr;
	napi_value	out;

	if (!GetString(env, args[0], "defineSettings(): worker", &worker) ||
		!GetString(env, args[1], "defineSettings(): configName", &config_name) ||
		!GetString(env, args[2], "defineSettings(): declarations", &decls) ||
		!GetString(env, args[3], "defineSettings(): settings", &settings))
		return nullptr;
	if (tsw_define_settings(worker.c_str(), config_name.c_str(), decls.c_str(), settings.c_str(),
							&bad, &err) != 0)
		return ThrowPgError(env, err);
	out = bad != nullptr ? String(env, bad) : Null(env);
	tsw_free_string(bad);
	return out;
}

/* log(level, message) */
napi_value
Log(napi_env env, napi_callback_info info)
{
	Args<2>		args(env, info);
	std::string msg;

	if (TypeOf(env, args[0]) != napi_number || !GetString(env, args[1], "log(level, message): message", &msg))
		return nullptr;
	tsw_log(GetInt(env, args[0], 1), msg.c_str());
	return Undefined(env);
}

/* A call taking one number and reporting it to the slot. */
template <void (*Report) (int)>
napi_value
ReportNumber(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);

	if (TypeOf(env, args[0]) != napi_number)
		return ThrowType(env, "expects a number (see the addon's constants)");
	Report(GetInt(env, args[0], 0));
	return Undefined(env);
}

napi_value
NoteLoop(napi_env env, napi_callback_info info)
{
	tsw_report_loop();
	return Undefined(env);
}

napi_value
ShutdownRequested(napi_env env, napi_callback_info info)
{
	napi_value	v;

	napi_get_boolean(env, tsw_shutdown_requested() != 0, &v);
	return v;
}

/* stopRequested(): tsworker.stop() or tsworker.restart() asked this worker to stop */
napi_value
StopRequested(napi_env env, napi_callback_info info)
{
	napi_value	v;

	napi_get_boolean(env, tsw_stop_requested() != 0, &v);
	return v;
}

/* wakes(): tsworker.wake() calls so far (a Number; exact below 2^53) */
napi_value
Wakes(napi_env env, napi_callback_info info)
{
	napi_value	v;

	napi_create_double(env, static_cast<double>(tsw_read_wakes()), &v);
	return v;
}

/* fenceOpenFor(ms, reason?): cluster mode's write fence (native/shim/fence.c). */
napi_value
FenceOpenFor(napi_env env, napi_callback_info info)
{
	Args<2>		args(env, info);
	std::string reason;
	double		ms = 0;

	if (TypeOf(env, args[0]) != napi_number)
		return ThrowType(env, "fenceOpenFor(ms, reason) expects a number");
	napi_get_value_double(env, args[0], &ms);
	if (TypeOf(env, args[1]) == napi_string && !GetString(env, args[1], "fenceOpenFor(ms, reason): reason", &reason))
		return nullptr;
	tsw_fence_open_for(static_cast<int64_t>(ms), TypeOf(env, args[1]) == napi_string ? reason.c_str() : nullptr);
	return Undefined(env);
}

/* fenceState(): null when the fence is not in use, else the milliseconds writes stay allowed (<= 0: closed). */
napi_value
FenceState(napi_env env, napi_callback_info info)
{
	int64_t		remaining;
	napi_value	v;

	if (!tsw_fence_state(&remaining))
		return Null(env);
	napi_create_double(env, static_cast<double>(remaining), &v);
	return v;
}

/* setError(message) */
napi_value
SetError(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);
	std::string msg;

	if (!GetString(env, args[0], "setError(message): message", &msg))
		return nullptr;
	tsw_report_error(msg.c_str());
	return Undefined(env);
}

/* setStatus(json) */
napi_value
SetStatus(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);
	std::string json;
	int			maxlen;

	if (!GetString(env, args[0], "setStatus(json): json", &json))
		return nullptr;
	if (tsw_report_status(json.c_str(), &maxlen) != 0)
		return ThrowRange(env, "status is " + std::to_string(json.size()) +
						  " bytes of JSON; at most " + std::to_string(maxlen) + " fit");
	return Undefined(env);
}

struct ConstantsArg
{
	napi_env	env;
	napi_value	root;
};

void
AddConstant(void *arg, const char *group, const char *name, int value)
{
	ConstantsArg *c = static_cast<ConstantsArg *>(arg);
	napi_value	g;
	napi_value	v;
	bool		has = false;

	napi_has_named_property(c->env, c->root, group, &has);
	if (!has)
	{
		napi_create_object(c->env, &g);
		napi_set_named_property(c->env, c->root, group, g);
	}
	napi_get_named_property(c->env, c->root, group, &g);
	napi_create_int32(c->env, value, &v);
	napi_set_named_property(c->env, g, name, v);
}

/* { state, restart, outcome, log, result }: name -> number */
napi_value
Constants(napi_env env)
{
	ConstantsArg arg = {env, nullptr};

	napi_create_object(env, &arg.root);
	tsw_describe_constants(AddConstant, &arg);
	AddConstant(&arg, "result", "int8Text", TSW_RESULT_INT8_TEXT);
	AddConstant(&arg, "result", "timeText", TSW_RESULT_TIME_TEXT);
	AddConstant(&arg, "result", "paramsArray", kParamsArray);
	return arg.root;
}

}								/* namespace */

}								/* namespace tsw */

using namespace tsw;

NAPI_MODULE_INIT()
{
	napi_property_descriptor calls[] = {
		{"init", nullptr, Init, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"slot", nullptr, Slot, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"getSetting", nullptr, GetSetting, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"defineSettings", nullptr, DefineSettings, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"log", nullptr, Log, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"setState", nullptr, ReportNumber<tsw_report_state>, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"setPolicy", nullptr, ReportNumber<tsw_report_policy>, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"setOutcome", nullptr, ReportNumber<tsw_report_outcome>, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"noteLoop", nullptr, NoteLoop, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"shutdownRequested", nullptr, ShutdownRequested, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"stopRequested", nullptr, StopRequested, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"wakes", nullptr, Wakes, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"setError", nullptr, SetError, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"setStatus", nullptr, SetStatus, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"fenceOpenFor", nullptr, FenceOpenFor, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"fenceState", nullptr, FenceState, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"constants", nullptr, nullptr, nullptr, nullptr, Constants(env), napi_enumerable, nullptr},
	};

	napi_define_properties(env, exports, sizeof(calls) / sizeof(calls[0]), calls);
	DefineStatementCalls(env, exports);
	DefineCursorCalls(env, exports);
	return exports;
}
