/*
 * addon.cc
 *		N-API surface of pg_tsworker: converts between JavaScript values and
 *		the plain structs of spi.c.
 *
 * Thin and synchronous, one PostgreSQL call each (better-sqlite3's model):
 * policy (transactions helpers, retries, parameter formatting) lives in
 * the TypeScript runtime.  Built with NAPI_DISABLE_CPP_EXCEPTIONS: errors
 * are thrown as JavaScript exceptions, PostgreSQL errors as instances of the
 * PgError class the runtime hands over through init().
 */
#include <napi.h>

#include <string>
#include <vector>

#include "spi.h"

namespace {

Napi::FunctionReference pg_error_class;

void
SetIfString(Napi::Env env, Napi::Object obj, const char *key, const char *value)
{
	if (value != nullptr)
		obj.Set(key, Napi::String::New(env, value));
}

/* Throw err as a PgError (or a plain Error before init()) and free it. */
Napi::Value
ThrowPgError(Napi::Env env, TswError *err)
{
	Napi::Object fields = Napi::Object::New(env);

	fields.Set("code", Napi::String::New(env, err->sqlstate, 5));
	fields.Set("severity", Napi::String::New(env, err->severity));
	SetIfString(env, fields, "detail", err->detail);
	SetIfString(env, fields, "hint", err->hint);
	SetIfString(env, fields, "where", err->context);
	SetIfString(env, fields, "schema", err->schema);
	SetIfString(env, fields, "table", err->table);
	SetIfString(env, fields, "column", err->column);
	SetIfString(env, fields, "dataType", err->datatype);
	SetIfString(env, fields, "constraint", err->constraint);
	SetIfString(env, fields, "internalQuery", err->internal_query);
	if (err->position > 0)
		fields.Set("position", Napi::String::New(env, std::to_string(err->position)));
	if (err->internal_position > 0)
		fields.Set("internalPosition", Napi::String::New(env, std::to_string(err->internal_position)));

	Napi::String message = Napi::String::New(env, err->message ? err->message : "unknown error");
	tsw_free_error(err);

	if (pg_error_class.IsEmpty())
	{
		Napi::Error e = Napi::Error::New(env, message.Utf8Value());
		e.Set("code", fields.Get("code"));
		e.ThrowAsJavaScriptException();
	}
	else
	{
		Napi::Value e = pg_error_class.New({message, fields});
		if (!env.IsExceptionPending())
			Napi::Error(env, e).ThrowAsJavaScriptException();
	}
	return env.Undefined();
}

Napi::Value
ThrowType(Napi::Env env, const char *msg)
{
	Napi::TypeError::New(env, msg).ThrowAsJavaScriptException();
	return env.Undefined();
}

/* init(PgError): remember the class used for PostgreSQL errors. */
Napi::Value
Init(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();

	if (info.Length() < 1 || !info[0].IsFunction())
		return ThrowType(env, "init(PgError) expects a class");
	pg_error_class = Napi::Persistent(info[0].As<Napi::Function>());
	return env.Undefined();
}

/* begin(readOnly?) */
Napi::Value
Begin(const Napi::CallbackInfo &info)
{
	TswError   *err = nullptr;
	bool		read_only = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();

	if (tsw_begin(read_only ? 1 : 0, &err) != 0)
		return ThrowPgError(info.Env(), err);
	return info.Env().Undefined();
}

/* savepoint(): open an internal subtransaction */
Napi::Value
Savepoint(const Napi::CallbackInfo &info)
{
	TswError   *err = nullptr;

	if (tsw_savepoint(&err) != 0)
		return ThrowPgError(info.Env(), err);
	return info.Env().Undefined();
}

/* endSavepoint(release: boolean) */
Napi::Value
EndSavepoint(const Napi::CallbackInfo &info)
{
	TswError   *err = nullptr;
	bool		release = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();

	if (tsw_savepoint_end(release ? 1 : 0, &err) != 0)
		return ThrowPgError(info.Env(), err);
	return info.Env().Undefined();
}

Napi::Value
Commit(const Napi::CallbackInfo &info)
{
	TswError   *err = nullptr;

	if (tsw_commit(&err) != 0)
		return ThrowPgError(info.Env(), err);
	return info.Env().Undefined();
}

Napi::Value
Rollback(const Napi::CallbackInfo &info)
{
	TswError   *err = nullptr;

	if (tsw_rollback(&err) != 0)
		return ThrowPgError(info.Env(), err);
	return info.Env().Undefined();
}

Napi::Value
InTransaction(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), tsw_in_transaction() != 0);
}

/* Build the JavaScript value of one non-null cell. */
napi_value
CellValue(napi_env env, const TswColumn &col, const TswCell &cell)
{
	napi_value	v = nullptr;

	switch (col.kind)
	{
		case TSW_KIND_BOOL:
			napi_get_boolean(env, cell.v.b != 0, &v);
			break;
		case TSW_KIND_INT32:
			if (col.is_unsigned)
				napi_create_uint32(env, cell.v.u32, &v);
			else
				napi_create_int32(env, cell.v.i32, &v);
			break;
		case TSW_KIND_INT64:
			napi_create_bigint_int64(env, cell.v.i64, &v);
			break;
		case TSW_KIND_FLOAT64:
			napi_create_double(env, cell.v.f64, &v);
			break;
		case TSW_KIND_TEXT:
			napi_create_string_utf8(env, cell.v.text.ptr, cell.v.text.len, &v);
			break;
	}
	return v;
}

/*
 * query(sql, params?, timeoutMs?) -> { rows, rowCount, command, fields }
 * params: array of string | null, already in PostgreSQL's text form.
 * timeoutMs: 0 no limit; absent or -1: tsworker.statement_timeout.
 */
Napi::Value
Query(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	std::vector<std::string> storage;
	std::vector<const char *> params;
	TswResult  *res = nullptr;
	TswError   *err = nullptr;

	if (info.Length() < 1 || !info[0].IsString())
		return ThrowType(env, "query(sql, params) expects sql to be a string");
	std::string sql = info[0].As<Napi::String>().Utf8Value();
	if (sql.find('\0') != std::string::npos)
		return ThrowType(env, "query(sql, params): sql contains a NUL character");

	if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull())
	{
		if (!info[1].IsArray())
			return ThrowType(env, "query(sql, params) expects params to be an array");
		Napi::Array arr = info[1].As<Napi::Array>();
		uint32_t	n = arr.Length();

		storage.reserve(n);
		params.resize(n, nullptr);
		for (uint32_t i = 0; i < n; i++)
		{
			Napi::Value v = arr.Get(i);

			if (v.IsNull() || v.IsUndefined())
				continue;
			if (!v.IsString())
				return ThrowType(env, "query parameters must be strings or null after formatting");
			/* reserve(n) above: no reallocation, the pointers stay valid */
			storage.push_back(v.As<Napi::String>().Utf8Value());
			if (storage.back().find('\0') != std::string::npos)
				return ThrowType(env, "query parameters must not contain NUL characters (PostgreSQL text cannot hold them)");
			params[i] = storage.back().c_str();
		}
	}

	int			timeout_ms = -1;

	if (info.Length() > 2 && info[2].IsNumber())
		timeout_ms = info[2].As<Napi::Number>().Int32Value();

	if (tsw_query(sql.c_str(), static_cast<int>(params.size()),
				  params.empty() ? nullptr : params.data(), timeout_ms, &res, &err) != 0)
		return ThrowPgError(env, err);

	Napi::Object out = Napi::Object::New(env);
	Napi::Array fields = Napi::Array::New(env, res->ncolumns);
	std::vector<napi_value> names(res->ncolumns);

	for (int c = 0; c < res->ncolumns; c++)
	{
		Napi::Object f = Napi::Object::New(env);
		Napi::String name = Napi::String::New(env, res->columns[c].name);

		names[c] = name;
		f.Set("name", name);
		f.Set("dataTypeID", Napi::Number::New(env, res->columns[c].type_oid));
		fields.Set(static_cast<uint32_t>(c), f);
	}

	napi_value	rows;
	napi_create_array_with_length(env, res->nrows, &rows);
	for (uint64_t r = 0; r < res->nrows; r++)
	{
		napi_handle_scope scope;
		napi_value	row;

		napi_open_handle_scope(env, &scope);
		napi_create_object(env, &row);
		for (int c = 0; c < res->ncolumns; c++)
		{
			const TswCell &cell = res->cells[r * res->ncolumns + c];
			napi_value	v;

			if (cell.isnull)
				napi_get_null(env, &v);
			else
				v = CellValue(env, res->columns[c], cell);
			napi_set_property(env, row, names[c], v);
		}
		napi_set_element(env, rows, static_cast<uint32_t>(r), row);
		napi_close_handle_scope(env, scope);
	}

	out.Set("rows", Napi::Value(env, rows));
	out.Set("rowCount", Napi::Number::New(env, static_cast<double>(res->row_count)));
	out.Set("command", Napi::String::New(env, res->command));
	out.Set("fields", fields);
	tsw_free_result(res);
	return out;
}

/* getSetting(name) -> string | null */
Napi::Value
GetSetting(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	char	   *value = nullptr;
	TswError   *err = nullptr;

	if (info.Length() < 1 || !info[0].IsString())
		return ThrowType(env, "getSetting(name) expects a string");
	std::string name = info[0].As<Napi::String>().Utf8Value();
	if (tsw_get_setting(name.c_str(), &value, &err) != 0)
		return ThrowPgError(env, err);
	if (value == nullptr)
		return env.Null();
	Napi::String s = Napi::String::New(env, value);
	tsw_free_string(value);
	return s;
}

/* log(level, message): level 0 debug, 1 log, 2 notice, 3 warning */
Napi::Value
Log(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();

	if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsString())
		return ThrowType(env, "log(level, message) expects a number and a string");
	int			level = info[0].As<Napi::Number>().Int32Value();
	std::string msg = info[1].As<Napi::String>().Utf8Value();

	tsw_log(level, msg.c_str());
	return env.Undefined();
}

/* setState(n): 1 running, 2 waiting, 3 stopping */
Napi::Value
SetState(const Napi::CallbackInfo &info)
{
	if (info.Length() < 1 || !info[0].IsNumber())
		return ThrowType(info.Env(), "setState(state) expects a number");
	tsw_report_state(info[0].As<Napi::Number>().Int32Value());
	return info.Env().Undefined();
}

/* noteLoop(): one more loop; last activity now */
Napi::Value
NoteLoop(const Napi::CallbackInfo &info)
{
	tsw_report_loop();
	return info.Env().Undefined();
}

/* shutdownRequested(): SIGTERM arrived */
Napi::Value
ShutdownRequested(const Napi::CallbackInfo &info)
{
	return Napi::Boolean::New(info.Env(), tsw_shutdown_requested() != 0);
}

/* wakes(): tsworker.wake() calls so far (a Number; exact below 2^53) */
Napi::Value
Wakes(const Napi::CallbackInfo &info)
{
	return Napi::Number::New(info.Env(), static_cast<double>(tsw_read_wakes()));
}

/* requestRestart(): exit 1 is a requested restart, not a failure */
Napi::Value
RequestRestart(const Napi::CallbackInfo &info)
{
	tsw_report_restart();
	return info.Env().Undefined();
}

/* setError(message) */
Napi::Value
SetError(const Napi::CallbackInfo &info)
{
	if (info.Length() < 1 || !info[0].IsString())
		return ThrowType(info.Env(), "setError(message) expects a string");
	std::string msg = info[0].As<Napi::String>().Utf8Value();
	tsw_report_error(msg.c_str());
	return info.Env().Undefined();
}

/* setStatus(json) */
Napi::Value
SetStatus(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	int			maxlen;

	if (info.Length() < 1 || !info[0].IsString())
		return ThrowType(env, "setStatus(json) expects a string");
	std::string json = info[0].As<Napi::String>().Utf8Value();
	if (tsw_report_status(json.c_str(), &maxlen) != 0)
	{
		Napi::RangeError::New(env, "status is " + std::to_string(json.size()) +
							  " bytes of JSON; at most " + std::to_string(maxlen) + " fit")
			.ThrowAsJavaScriptException();
	}
	return env.Undefined();
}

Napi::Object
InitModule(Napi::Env env, Napi::Object exports)
{
	exports.Set("init", Napi::Function::New(env, Init, "init"));
	exports.Set("begin", Napi::Function::New(env, Begin, "begin"));
	exports.Set("commit", Napi::Function::New(env, Commit, "commit"));
	exports.Set("savepoint", Napi::Function::New(env, Savepoint, "savepoint"));
	exports.Set("endSavepoint", Napi::Function::New(env, EndSavepoint, "endSavepoint"));
	exports.Set("rollback", Napi::Function::New(env, Rollback, "rollback"));
	exports.Set("inTransaction", Napi::Function::New(env, InTransaction, "inTransaction"));
	exports.Set("query", Napi::Function::New(env, Query, "query"));
	exports.Set("getSetting", Napi::Function::New(env, GetSetting, "getSetting"));
	exports.Set("log", Napi::Function::New(env, Log, "log"));
	exports.Set("setState", Napi::Function::New(env, SetState, "setState"));
	exports.Set("noteLoop", Napi::Function::New(env, NoteLoop, "noteLoop"));
	exports.Set("setError", Napi::Function::New(env, SetError, "setError"));
	exports.Set("requestRestart", Napi::Function::New(env, RequestRestart, "requestRestart"));
	exports.Set("wakes", Napi::Function::New(env, Wakes, "wakes"));
	exports.Set("shutdownRequested", Napi::Function::New(env, ShutdownRequested, "shutdownRequested"));
	exports.Set("setStatus", Napi::Function::New(env, SetStatus, "setStatus"));
	return exports;
}

}								/* namespace */

NODE_API_MODULE(pg_tsworker_addon, InitModule)
