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

#include <cmath>
#include <string>
#include <vector>

#include "spi.h"
#include "../shim/fence.h"

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

/*
 * init(PgError, helpers): remember the class used for PostgreSQL errors and
 * the runtime's helpers: makeInterval(months, days, microseconds: bigint)
 * and formatParam(value, paramType) -> string | null, which puts a value
 * that is not a plain string, number, boolean or bigint in the text form
 * of the parameter's type.
 */
Napi::FunctionReference make_interval;
Napi::FunctionReference format_param;
Napi::FunctionReference json_parse;

Napi::Value
Init(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();

	if (info.Length() < 2 || !info[0].IsFunction() || !info[1].IsObject())
		return ThrowType(env, "init(PgError, helpers) expects a class and an object");
	Napi::Object helpers = info[1].As<Napi::Object>();
	Napi::Value mi = helpers.Get("makeInterval");
	Napi::Value fp = helpers.Get("formatParam");

	if (!mi.IsFunction() || !fp.IsFunction())
		return ThrowType(env, "init(): helpers.makeInterval and helpers.formatParam must be functions");
	pg_error_class = Napi::Persistent(info[0].As<Napi::Function>());
	make_interval = Napi::Persistent(mi.As<Napi::Function>());
	format_param = Napi::Persistent(fp.As<Napi::Function>());
	json_parse = Napi::Persistent(env.Global().Get("JSON").As<Napi::Object>().Get("parse").As<Napi::Function>());
	return env.Undefined();
}

bool
BoolArg(const Napi::CallbackInfo &info, size_t i)
{
	return info.Length() > i && info[i].IsBoolean() && info[i].As<Napi::Boolean>().Value();
}

int
IntArg(const Napi::CallbackInfo &info, size_t i, int dflt)
{
	return info.Length() > i && info[i].IsNumber() ? info[i].As<Napi::Number>().Int32Value() : dflt;
}

/* begin(readOnly?, statementSavepoints = true, synchronousCommit?: string) */
Napi::Value
Begin(const Napi::CallbackInfo &info)
{
	TswError   *err = nullptr;
	bool		savepoints = !(info.Length() > 1 && info[1].IsBoolean() && !info[1].As<Napi::Boolean>().Value());
	std::string sync;

	if (info.Length() > 2 && info[2].IsString())
		sync = info[2].As<Napi::String>().Utf8Value();
	if (tsw_begin(BoolArg(info, 0) ? 1 : 0, savepoints ? 1 : 0,
				  sync.empty() ? NULL : sync.c_str(), &err) != 0)
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

	if (tsw_savepoint_end(BoolArg(info, 0) ? 1 : 0, &err) != 0)
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

/* ---- results ---------------------------------------------------------- */

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

			if (cell.isnull)
				napi_get_null(env, &v);
			else
				v = CellValue(env, cell);
		}
		if (v == nullptr)
			return nullptr;
		napi_set_element(env, out, i, v);
	}
	return out;
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
			napi_create_string_utf8(env, cell.v.text.ptr, cell.v.text.len, &v);
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
				napi_value	text;

				napi_create_string_utf8(env, cell.v.text.ptr, cell.v.text.len, &text);
				if (napi_call_function(env, json_parse.Value(), json_parse.Value(), 1, &text, &v) != napi_ok)
					return nullptr;
			}
			break;
		case TSW_KIND_INTERVAL:
			{
				napi_value	args[3];

				napi_create_int32(env, cell.v.interval->months, &args[0]);
				napi_create_int32(env, cell.v.interval->days, &args[1]);
				napi_create_bigint_int64(env, cell.v.interval->micros, &args[2]);
				if (napi_call_function(env, make_interval.Value(), make_interval.Value(), 3, args, &v) != napi_ok)
					return nullptr;
			}
			break;
		case TSW_KIND_ARRAY:
			{
				const TswArray *a = cell.v.array;
				int			next = 0;

				if (a->ndims == 0)
					napi_create_array(env, &v);
				else
					v = ArrayLevel(env, a, 0, &next);
			}
			break;
		case TSW_KIND_RECORD:
			{
				const TswRecord *r = cell.v.record;

				napi_create_object(env, &v);
				for (int i = 0; i < r->natts; i++)
				{
					napi_value	field;

					if (r->values[i].isnull)
						napi_get_null(env, &field);
					else if ((field = CellValue(env, r->values[i])) == nullptr)
						return nullptr;
					napi_set_named_property(env, v, r->names[i], field);
				}
			}
			break;
	}
	return v;
}

/* The rows of res, with rowCount, command and fields as properties; res is freed. */
Napi::Value
ResultValue(Napi::Env env, TswResult *res)
{
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
		bool		failed = false;

		napi_open_handle_scope(env, &scope);
		napi_create_object(env, &row);
		for (int c = 0; c < res->ncolumns && !failed; c++)
		{
			const TswCell &cell = res->cells[r * res->ncolumns + c];
			napi_value	v;

			if (cell.isnull)
				napi_get_null(env, &v);
			else if ((v = CellValue(env, cell)) == nullptr)
				failed = true;
			if (!failed)
				napi_set_property(env, row, names[c], v);
		}
		if (!failed)
			napi_set_element(env, rows, static_cast<uint32_t>(r), row);
		napi_close_handle_scope(env, scope);
		if (failed)
		{
			tsw_free_result(res);
			return env.Undefined();
		}
	}

	/* the metadata rides on the rows array, not enumerable */
	napi_value	row_count;
	napi_value	command;

	napi_create_double(env, static_cast<double>(res->row_count), &row_count);
	napi_create_string_utf8(env, res->command, NAPI_AUTO_LENGTH, &command);
	napi_property_descriptor props[] = {
		{"rowCount", nullptr, nullptr, nullptr, nullptr, row_count, napi_default, nullptr},
		{"command", nullptr, nullptr, nullptr, nullptr, command, napi_default, nullptr},
		{"fields", nullptr, nullptr, nullptr, nullptr, fields, napi_default, nullptr},
	};
	napi_define_properties(env, rows, 3, props);
	tsw_free_result(res);
	return Napi::Value(env, rows);
}

/* ---- parameters ------------------------------------------------------- */

const char *
ParamClassName(TswParamClass k)
{
	switch (k)
	{
		case TSW_PARAM_JSON:
			return "json";
		case TSW_PARAM_ARRAY:
			return "array";
		case TSW_PARAM_COMPOSITE:
			return "composite";
		default:
			return "scalar";
	}
}

/* What formatParam is told about a parameter's type. */
Napi::Object
ParamTypeObject(Napi::Env env, const TswParamType &t)
{
	Napi::Object o = Napi::Object::New(env);

	o.Set("oid", Napi::Number::New(env, t.type_oid));
	o.Set("baseOid", Napi::Number::New(env, t.base_oid));
	o.Set("kind", Napi::String::New(env, ParamClassName(t.klass)));
	if (t.klass == TSW_PARAM_ARRAY)
	{
		o.Set("elementOid", Napi::Number::New(env, t.elem_oid));
		o.Set("elementKind", Napi::String::New(env, ParamClassName(t.elem_class)));
	}
	if (t.names != nullptr)
	{
		Napi::Array names = Napi::Array::New(env, t.nnames);

		for (int i = 0; i < t.nnames; i++)
			names.Set(static_cast<uint32_t>(i), Napi::String::New(env, t.names[i]));
		o.Set("attributes", names);
	}
	return o;
}

/* Text forms of a plan's parameters, kept alive by storage. */
class ParamTexts
{
  public:
	std::vector<std::string> storage;
	std::vector<const char *> ptrs;

	/* false with a JavaScript exception pending */
	bool		Fill(Napi::Env env, const TswPlan *plan, Napi::Value given);
};

/* An integer a Number holds exactly, and not -0 (which float8 keeps). */
bool
IsPlainInteger(double d)
{
	return std::isfinite(d) && std::trunc(d) == d && std::fabs(d) < 9007199254740992.0 &&
		!(d == 0 && std::signbit(d));
}

bool
ParamTexts::Fill(Napi::Env env, const TswPlan *plan, Napi::Value given)
{
	uint32_t	n = 0;
	Napi::Array arr;

	if (!given.IsUndefined() && !given.IsNull())
	{
		if (!given.IsArray())
		{
			Napi::TypeError::New(env, "query parameters must be an array").ThrowAsJavaScriptException();
			return false;
		}
		arr = given.As<Napi::Array>();
		n = arr.Length();
	}
	if (n != static_cast<uint32_t>(plan->nparams))
	{
		Napi::RangeError::New(env, "the statement takes " + std::to_string(plan->nparams) +
							  " parameters, " + std::to_string(n) + " were given")
			.ThrowAsJavaScriptException();
		return false;
	}
	storage.clear();
	storage.reserve(n);
	ptrs.assign(n, nullptr);
	for (uint32_t i = 0; i < n; i++)
	{
		Napi::Value v = arr.Get(i);
		std::string text;

		if (env.IsExceptionPending())
			return false;
		if (v.IsNull() || v.IsUndefined())
			continue;
		if (v.IsString() && plan->params[i].klass != TSW_PARAM_JSON)
			text = v.As<Napi::String>().Utf8Value();
		else if (v.IsBoolean())
			text = v.As<Napi::Boolean>().Value() ? "true" : "false";
		else if (v.IsNumber() && IsPlainInteger(v.As<Napi::Number>().DoubleValue()))
			text = std::to_string(static_cast<int64_t>(v.As<Napi::Number>().DoubleValue()));
		else
		{
			/* everything else is formatted by the runtime, knowing the type */
			Napi::Value r = format_param.Call({v, ParamTypeObject(env, plan->params[i])});

			if (env.IsExceptionPending())
				return false;
			if (r.IsNull() || r.IsUndefined())
				continue;
			if (!r.IsString())
			{
				Napi::TypeError::New(env, "formatParam must return a string").ThrowAsJavaScriptException();
				return false;
			}
			text = r.As<Napi::String>().Utf8Value();
		}
		if (text.find('\0') != std::string::npos)
		{
			Napi::TypeError::New(env, "query parameter $" + std::to_string(i + 1) +
								 " contains a NUL character, which PostgreSQL text cannot hold")
				.ThrowAsJavaScriptException();
			return false;
		}
		/* reserve(n) above: no reallocation, the pointers stay valid */
		storage.push_back(std::move(text));
		ptrs[i] = storage.back().c_str();
	}
	return true;
}

/* Result flags from an options object: { int8: 'bigint'|'string', dates: 'date'|'text' }. */
int
ResultFlags(Napi::Value opts)
{
	int			flags = 0;

	if (!opts.IsObject())
		return 0;
	Napi::Object o = opts.As<Napi::Object>();
	Napi::Value int8 = o.Get("int8");
	Napi::Value dates = o.Get("dates");

	if (int8.IsString() && int8.As<Napi::String>().Utf8Value() == "string")
		flags |= TSW_RESULT_INT8_TEXT;
	if (dates.IsString() && dates.As<Napi::String>().Utf8Value() == "text")
		flags |= TSW_RESULT_TIME_TEXT;
	return flags;
}

bool
GetSql(const Napi::CallbackInfo &info, std::string *sql)
{
	if (info.Length() < 1 || !info[0].IsString())
	{
		ThrowType(info.Env(), "query(sql, params) expects sql to be a string");
		return false;
	}
	*sql = info[0].As<Napi::String>().Utf8Value();
	if (sql->find('\0') != std::string::npos)
	{
		ThrowType(info.Env(), "query(sql, params): sql contains a NUL character");
		return false;
	}
	return true;
}

/* A kept plan, owned by a JavaScript external; freed by free() or the GC. */
struct KeptPlan
{
	TswPlan    *plan;
	std::string sql;
};

void
FinalizeKeptPlan(napi_env env, void *data, void *hint)
{
	KeptPlan   *kp = static_cast<KeptPlan *>(data);

	if (kp->plan != nullptr)
		tsw_plan_free(kp->plan);
	delete kp;
}

KeptPlan *
GetKeptPlan(Napi::Env env, Napi::Value v)
{
	if (!v.IsExternal())
	{
		ThrowType(env, "expected a prepared statement handle");
		return nullptr;
	}
	KeptPlan   *kp = v.As<Napi::External<KeptPlan>>().Data();

	if (kp->plan == nullptr)
	{
		Napi::Error::New(env, "the prepared statement has been freed").ThrowAsJavaScriptException();
		return nullptr;
	}
	return kp;
}

/*
 * query(sql, params?, timeoutMs?, options?) -> { rows, rowCount, command, fields }
 * timeoutMs: 0 no limit; absent or -1: tsworker.statement_timeout.
 */
Napi::Value
Query(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	std::string sql;
	TswResult  *res = nullptr;
	TswError   *err = nullptr;
	TswPlan    *plan = nullptr;
	ParamTexts	texts;
	int			timeout_ms = IntArg(info, 2, -1);
	int			flags = ResultFlags(info.Length() > 3 ? info[3] : env.Undefined());
	Napi::Value params = info.Length() > 1 ? info[1] : env.Undefined();
	uint32_t	nparams = 0;

	if (!GetSql(info, &sql))
		return env.Undefined();
	if (params.IsArray())
		nparams = params.As<Napi::Array>().Length();
	else if (!params.IsUndefined() && !params.IsNull())
		return ThrowType(env, "query(sql, params) expects params to be an array");

	if (nparams > 0)
	{
		if (tsw_plan_statement(sql.c_str(), static_cast<int>(nparams), 0, timeout_ms, &plan, &err) != 0)
			return ThrowPgError(env, err);
		if (!texts.Fill(env, plan, params))
		{
			tsw_plan_discard(plan);
			return env.Undefined();
		}
	}
	if (tsw_execute(plan, sql.c_str(), plan != nullptr ? texts.ptrs.data() : nullptr,
					timeout_ms, flags, &res, &err) != 0)
		return ThrowPgError(env, err);
	return ResultValue(env, res);
}

/* prepare(sql, types?) -> { handle, params: ParamType[] } */
Napi::Value
Prepare(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	std::string sql;
	std::vector<std::string> storage;
	std::vector<const char *> types;
	TswPlan    *plan = nullptr;
	TswError   *err = nullptr;

	if (!GetSql(info, &sql))
		return env.Undefined();
	if (info.Length() > 1 && info[1].IsArray())
	{
		Napi::Array arr = info[1].As<Napi::Array>();
		uint32_t	n = arr.Length();

		storage.reserve(n);
		types.assign(n, nullptr);
		for (uint32_t i = 0; i < n; i++)
		{
			Napi::Value v = arr.Get(i);

			if (v.IsNull() || v.IsUndefined())
				continue;
			if (!v.IsString())
				return ThrowType(env, "prepare(sql, types): types must be type names (strings) or null");
			storage.push_back(v.As<Napi::String>().Utf8Value());
			types[i] = storage.back().c_str();
		}
	}
	if (tsw_prepare(sql.c_str(), static_cast<int>(types.size()), types.empty() ? nullptr : types.data(),
					&plan, &err) != 0)
		return ThrowPgError(env, err);

	KeptPlan   *kp = new KeptPlan{plan, sql};
	Napi::Object out = Napi::Object::New(env);
	Napi::Array params = Napi::Array::New(env, plan->nparams);

	for (int i = 0; i < plan->nparams; i++)
		params.Set(static_cast<uint32_t>(i), ParamTypeObject(env, plan->params[i]));
	out.Set("handle", Napi::External<KeptPlan>::New(env, kp, [](Napi::Env e, KeptPlan *p) {
				FinalizeKeptPlan(e, p, nullptr);
			}));
	out.Set("params", params);
	return out;
}

/* execute(handle, params?, timeoutMs?, options?) -> result */
Napi::Value
Execute(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	KeptPlan   *kp = GetKeptPlan(env, info.Length() > 0 ? info[0] : env.Undefined());
	ParamTexts	texts;
	TswResult  *res = nullptr;
	TswError   *err = nullptr;

	if (kp == nullptr)
		return env.Undefined();
	if (!texts.Fill(env, kp->plan, info.Length() > 1 ? info[1] : env.Undefined()))
		return env.Undefined();
	if (tsw_execute(kp->plan, kp->sql.c_str(), texts.ptrs.data(), IntArg(info, 2, -1),
					ResultFlags(info.Length() > 3 ? info[3] : env.Undefined()), &res, &err) != 0)
		return ThrowPgError(env, err);
	return ResultValue(env, res);
}

/* freePlan(handle) */
Napi::Value
FreePlan(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();

	if (info.Length() < 1 || !info[0].IsExternal())
		return ThrowType(env, "freePlan(handle) expects a prepared statement handle");
	KeptPlan   *kp = info[0].As<Napi::External<KeptPlan>>().Data();

	if (kp->plan != nullptr)
	{
		tsw_plan_free(kp->plan);
		kp->plan = nullptr;
	}
	return env.Undefined();
}

/* openCursor(sqlOrHandle, params?, scroll?) -> cursor name */
Napi::Value
OpenCursor(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	Napi::Value params = info.Length() > 1 ? info[1] : env.Undefined();
	ParamTexts	texts;
	TswPlan    *plan = nullptr;
	TswError   *err = nullptr;
	char	   *name = nullptr;
	std::string sql;
	bool		oneshot = false;

	if (info.Length() > 0 && info[0].IsExternal())
	{
		KeptPlan   *kp = GetKeptPlan(env, info[0]);

		if (kp == nullptr)
			return env.Undefined();
		plan = kp->plan;
		sql = kp->sql;
	}
	else
	{
		uint32_t	nparams = params.IsArray() ? params.As<Napi::Array>().Length() : 0;
		int			options = BoolArg(info, 2) ? TSW_CURSOR_SCROLL : TSW_CURSOR_NO_SCROLL;

		if (!GetSql(info, &sql))
			return env.Undefined();
		if (tsw_plan_statement(sql.c_str(), static_cast<int>(nparams), options, -1, &plan, &err) != 0)
			return ThrowPgError(env, err);
		oneshot = true;
	}
	if (!texts.Fill(env, plan, params))
	{
		if (oneshot)
			tsw_plan_discard(plan);
		return env.Undefined();
	}
	if (tsw_cursor_open(plan, sql.c_str(), texts.ptrs.data(), &name, &err) != 0)
		return ThrowPgError(env, err);
	Napi::String out = Napi::String::New(env, name);
	tsw_free_string(name);
	return out;
}

/* fetchCursor(name, forward, count, options?) -> result */
Napi::Value
FetchCursor(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	TswResult  *res = nullptr;
	TswError   *err = nullptr;

	if (info.Length() < 3 || !info[0].IsString() || !info[2].IsNumber())
		return ThrowType(env, "fetchCursor(name, forward, count) expects a string, a boolean and a number");
	std::string name = info[0].As<Napi::String>().Utf8Value();

	if (tsw_cursor_fetch(name.c_str(), BoolArg(info, 1) ? 1 : 0,
						 info[2].As<Napi::Number>().Int64Value(),
						 ResultFlags(info.Length() > 3 ? info[3] : env.Undefined()), &res, &err) != 0)
		return ThrowPgError(env, err);
	return ResultValue(env, res);
}

/* moveCursor(name, forward, count) -> rows moved */
Napi::Value
MoveCursor(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	TswError   *err = nullptr;
	uint64_t	moved = 0;

	if (info.Length() < 3 || !info[0].IsString() || !info[2].IsNumber())
		return ThrowType(env, "moveCursor(name, forward, count) expects a string, a boolean and a number");
	std::string name = info[0].As<Napi::String>().Utf8Value();

	if (tsw_cursor_move(name.c_str(), BoolArg(info, 1) ? 1 : 0,
						info[2].As<Napi::Number>().Int64Value(), &moved, &err) != 0)
		return ThrowPgError(env, err);
	return Napi::Number::New(env, static_cast<double>(moved));
}

/* closeCursor(name) */
Napi::Value
CloseCursor(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();
	TswError   *err = nullptr;

	if (info.Length() < 1 || !info[0].IsString())
		return ThrowType(env, "closeCursor(name) expects a string");
	std::string name = info[0].As<Napi::String>().Utf8Value();

	if (tsw_cursor_close(name.c_str(), &err) != 0)
		return ThrowPgError(env, err);
	return env.Undefined();
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

/* fenceOpenFor(ms, reason?): cluster mode's write fence (native/shim/fence.c). */
Napi::Value
FenceOpenFor(const Napi::CallbackInfo &info)
{
	Napi::Env	env = info.Env();

	if (info.Length() < 1 || !info[0].IsNumber())
		return ThrowType(env, "fenceOpenFor(ms, reason) expects a number");
	std::string reason = info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "";
	tsw_fence_open_for((int64_t) info[0].As<Napi::Number>().DoubleValue(),
					   info.Length() > 1 && info[1].IsString() ? reason.c_str() : NULL);
	return env.Undefined();
}

/* fenceState(): null when the fence is not in use, else the milliseconds writes stay allowed (<= 0: closed). */
Napi::Value
FenceState(const Napi::CallbackInfo &info)
{
	int64_t		remaining;

	if (!tsw_fence_state(&remaining))
		return info.Env().Null();
	return Napi::Number::New(info.Env(), (double) remaining);
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
	exports.Set("prepare", Napi::Function::New(env, Prepare, "prepare"));
	exports.Set("execute", Napi::Function::New(env, Execute, "execute"));
	exports.Set("freePlan", Napi::Function::New(env, FreePlan, "freePlan"));
	exports.Set("openCursor", Napi::Function::New(env, OpenCursor, "openCursor"));
	exports.Set("fetchCursor", Napi::Function::New(env, FetchCursor, "fetchCursor"));
	exports.Set("moveCursor", Napi::Function::New(env, MoveCursor, "moveCursor"));
	exports.Set("closeCursor", Napi::Function::New(env, CloseCursor, "closeCursor"));
	exports.Set("getSetting", Napi::Function::New(env, GetSetting, "getSetting"));
	exports.Set("log", Napi::Function::New(env, Log, "log"));
	exports.Set("setState", Napi::Function::New(env, SetState, "setState"));
	exports.Set("noteLoop", Napi::Function::New(env, NoteLoop, "noteLoop"));
	exports.Set("setError", Napi::Function::New(env, SetError, "setError"));
	exports.Set("requestRestart", Napi::Function::New(env, RequestRestart, "requestRestart"));
	exports.Set("wakes", Napi::Function::New(env, Wakes, "wakes"));
	exports.Set("shutdownRequested", Napi::Function::New(env, ShutdownRequested, "shutdownRequested"));
	exports.Set("setStatus", Napi::Function::New(env, SetStatus, "setStatus"));
	exports.Set("fenceOpenFor", Napi::Function::New(env, FenceOpenFor, "fenceOpenFor"));
	exports.Set("fenceState", Napi::Function::New(env, FenceState, "fenceState"));
	return exports;
}

}								/* namespace */

NODE_API_MODULE(pg_tsworker_addon, InitModule)
