/*
 * js_statements.cc
 *		The addon's calls for transactions, statements and cursors.
 *
 * Each is thin and synchronous (better-sqlite3's model): argument checks
 * and policy live in the TypeScript runtime.  queryOnce() is w.query()'s
 * one pass: begin, plan, parameters, execute, rows, commit, in one call
 * into the addon, each PostgreSQL step in C (pg_*.c).
 */
#include "js_common.h"

#include <vector>

namespace tsw
{

namespace
{

/* A kept plan, owned by a JavaScript external; freed by freePlan() or the GC. */
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
GetKeptPlan(napi_env env, napi_value v)
{
	v8::Local<v8::Value> local = ToV8(v);

	/* what napi_typeof and napi_get_value_external do, without their checks per call */
	if (!local->IsExternal())
	{
		ThrowType(env, "expected a prepared statement handle");
		return nullptr;
	}
	KeptPlan   *kp = static_cast<KeptPlan *>(local.As<v8::External>()->Value());

	if (kp->plan == nullptr)
	{
		ThrowError(env, "the prepared statement has been freed");
		return nullptr;
	}
	return kp;
}


/* Number of elements of a parameter array (0 for undefined); -1 with a TypeError. */
int
ParamCount(napi_env env, napi_value params)
{
	napi_valuetype t = TypeOf(env, params);
	bool		is = false;
	uint32_t	n = 0;

	if (t == napi_undefined || t == napi_null)
		return 0;
	napi_is_array(env, params, &is);
	if (!is)
	{
		ThrowType(env, "query(sql, params) expects params to be an array");
		return -1;
	}
	napi_get_array_length(env, params, &n);
	return static_cast<int>(n);
}

/*
 * The parameters of a statement call: args after `fixed`, one by one, or
 * in one array with kParamsArray in flags (js_common.h).
 */
struct GivenParams
{
	const CallArgs &args;
	size_t		fixed;
	bool		in_array;

	/* How many; -1 with a TypeError pending. */
	int			Count(napi_env env) const
	{
		return in_array ? ParamCount(env, args[fixed]) : static_cast<int>(args.nparams());
	}
	bool		Into(napi_env env, const TswPlan *plan, ParamValues *out) const
	{
		return in_array ? out->Fill(env, plan, args[fixed]) : out->Fill(env, plan, args.params(), args.nparams());
	}
};

/*
 * Run sql with params in the open transaction; the Rows, or nullptr with
 * an exception pending.
 */
napi_value
RunStatement(napi_env env, const std::string &sql, const GivenParams &params, int timeout_ms, int flags)
{
	TswResult  *res = nullptr;
	TswError   *err = nullptr;
	TswPlan    *plan = nullptr;
	ParamValues params_in;
	int			nparams = params.Count(env);

	if (nparams < 0)
		return nullptr;
	if (nparams > 0)
	{
		if (tsw_plan_statement(sql.c_str(), nparams, 0, timeout_ms, &plan, &err) != 0)
			return ThrowPgError(env, err);
		if (!params.Into(env, plan, &params_in))
		{
			tsw_plan_discard(plan);
			return nullptr;
		}
	}
	if (tsw_execute(plan, sql.c_str(), plan != nullptr ? params_in.values() : nullptr,
					timeout_ms, flags, &res, &err) != 0)
		return ThrowPgError(env, err);
	return ResultValue(env, res);
}

/* begin(readOnly?, statementSavepoints = true, synchronousCommit?: string) */
napi_value
Begin(napi_env env, napi_callback_info info)
{
	Args<3>		args(env, info);
	std::string sync;
	int			read_only = GetBool(env, args[0], false) ? 1 : 0;
	int			savepoints = GetBool(env, args[1], true) ? 1 : 0;

	if (TypeOf(env, args[2]) == napi_string && !GetString(env, args[2], "synchronousCommit", &sync))
		return nullptr;
	return Done(env, [&](TswError **err) {
		return tsw_begin(read_only, savepoints, sync.empty() ? nullptr : sync.c_str(), err);
	});
}

napi_value
Commit(napi_env env, napi_callback_info info)
{
	return Done(env, tsw_commit);
}

napi_value
Rollback(napi_env env, napi_callback_info info)
{
	return Done(env, tsw_rollback);
}

napi_value
Savepoint(napi_env env, napi_callback_info info)
{
	return Done(env, tsw_savepoint);
}

/* endSavepoint(release: boolean) */
napi_value
EndSavepoint(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);
	int			release = GetBool(env, args[0], false) ? 1 : 0;

	return Done(env, [&](TswError **err) { return tsw_savepoint_end(release, err); });
}

napi_value
InTransaction(napi_env env, napi_callback_info info)
{
	napi_value	v;

	napi_get_boolean(env, tsw_in_transaction() != 0, &v);
	return v;
}

/*
 * query(sql, timeoutMs, flags, ...params) -> Rows, in the open
 * transaction.  timeoutMs: 0 no limit, -1 tsworker.statement_timeout;
 * flags: TSW_RESULT_*, and kParamsArray when the parameters come as one
 * array (see CallArgs).
 */
napi_value
Query(napi_env env, napi_callback_info info)
{
	CallArgs	args(env, info, 3);
	std::string sql;
	int			flags = GetInt(env, args[2], 0);

	if (!GetString(env, args[0], "query(sql, params): sql", &sql))
		return nullptr;
	return RunStatement(env, sql, GivenParams{args, 3, (flags & kParamsArray) != 0},
						GetInt(env, args[1], -1), flags & ~kParamsArray);
}

/*
 * queryOnce(sql, timeoutMs, flags, ...params) -> Rows: sql alone in a
 * transaction of its own, without a statement subtransaction (a failure
 * rolls back everything anyway).  Refused (25001) inside a transaction.
 */
napi_value
QueryOnce(napi_env env, napi_callback_info info)
{
	CallArgs	args(env, info, 3);
	std::string sql;
	TswError   *err = nullptr;
	napi_value	rows;
	int			flags = GetInt(env, args[2], 0);

	if (!GetString(env, args[0], "query(sql, params): sql", &sql))
		return nullptr;
	if (tsw_begin(0, 0, nullptr, &err) != 0)
		return ThrowPgError(env, err);
	rows = RunStatement(env, sql, GivenParams{args, 3, (flags & kParamsArray) != 0},
						GetInt(env, args[1], -1), flags & ~kParamsArray);
	if (rows == nullptr)
	{
		TswError   *rollback_err = nullptr;

		if (tsw_rollback(&rollback_err) != 0)
			tsw_free_error(rollback_err);	/* the statement's error is the one to show */
		return nullptr;
	}
	if (tsw_commit(&err) != 0)
		return ThrowPgError(env, err);
	return rows;
}

/* prepare(sql, types?) -> { handle, params: ParamType[] } */
napi_value
Prepare(napi_env env, napi_callback_info info)
{
	Args<2>		args(env, info);
	std::string sql;
	std::vector<std::string> storage;
	std::vector<const char *> types;
	TswPlan    *plan = nullptr;
	TswError   *err = nullptr;
	bool		is_array = false;

	if (!GetString(env, args[0], "prepare(sql, types): sql", &sql))
		return nullptr;
	napi_is_array(env, args[1], &is_array);
	if (is_array)
	{
		uint32_t	n = 0;

		napi_get_array_length(env, args[1], &n);
		storage.resize(n);
		types.assign(n, nullptr);
		for (uint32_t i = 0; i < n; i++)
		{
			napi_value	v;
			napi_valuetype t;

			napi_get_element(env, args[1], i, &v);
			t = TypeOf(env, v);
			if (t == napi_null || t == napi_undefined)
				continue;
			if (!GetString(env, v, "prepare(sql, types): each type", &storage[i]))
				return nullptr;
			types[i] = storage[i].c_str();
		}
	}
	if (tsw_prepare(sql.c_str(), static_cast<int>(types.size()), types.empty() ? nullptr : types.data(),
					&plan, &err) != 0)
		return ThrowPgError(env, err);

	KeptPlan   *kp = new KeptPlan{plan, sql};
	napi_value	out;
	napi_value	handle;
	napi_value	params;

	napi_create_object(env, &out);
	napi_create_external(env, kp, FinalizeKeptPlan, nullptr, &handle);
	napi_create_array_with_length(env, plan->nparams, &params);
	for (int i = 0; i < plan->nparams; i++)
		napi_set_element(env, params, i, ParamTypeObject(env, plan->params[i]));
	napi_set_named_property(env, out, "handle", handle);
	napi_set_named_property(env, out, "params", params);
	return out;
}

/* execute(handle, timeoutMs, flags, ...params) -> Rows (flags as for query()) */
napi_value
Execute(napi_env env, napi_callback_info info)
{
	CallArgs	args(env, info, 3);
	KeptPlan   *kp = GetKeptPlan(env, args[0]);
	ParamValues params_in;
	TswResult  *res = nullptr;
	TswError   *err = nullptr;
	int			flags = GetInt(env, args[2], 0);

	if (kp == nullptr || !GivenParams{args, 3, (flags & kParamsArray) != 0}.Into(env, kp->plan, &params_in))
		return nullptr;
	if (tsw_execute(kp->plan, kp->sql.c_str(), params_in.values(), GetInt(env, args[1], -1),
					flags & ~kParamsArray, &res, &err) != 0)
		return ThrowPgError(env, err);
	return ResultValue(env, res);
}

/* freePlan(handle) */
napi_value
FreePlan(napi_env env, napi_callback_info info)
{
	Args<1>		args(env, info);
	void	   *data = nullptr;

	if (TypeOf(env, args[0]) != napi_external || napi_get_value_external(env, args[0], &data) != napi_ok)
		return ThrowType(env, "freePlan(handle) expects a prepared statement handle");
	KeptPlan   *kp = static_cast<KeptPlan *>(data);

	if (kp->plan != nullptr)
	{
		tsw_plan_free(kp->plan);
		kp->plan = nullptr;
	}
	return Undefined(env);
}

/* openCursor(sqlOrHandle, params?, scroll?) -> cursor name */
napi_value
OpenCursor(napi_env env, napi_callback_info info)
{
	Args<3>		args(env, info);
	ParamValues params_in;
	TswPlan    *plan = nullptr;
	TswError   *err = nullptr;
	char	   *name = nullptr;
	std::string sql;
	bool		oneshot = false;

	if (TypeOf(env, args[0]) == napi_external)
	{
		KeptPlan   *kp = GetKeptPlan(env, args[0]);

		if (kp == nullptr)
			return nullptr;
		plan = kp->plan;
		sql = kp->sql;
	}
	else
	{
		int			nparams = ParamCount(env, args[1]);
		int			options = GetBool(env, args[2], false) ? TSW_CURSOR_SCROLL : TSW_CURSOR_NO_SCROLL;

		if (nparams < 0 || !GetString(env, args[0], "cursor(sql, params): sql", &sql))
			return nullptr;
		if (tsw_plan_statement(sql.c_str(), nparams, options, -1, &plan, &err) != 0)
			return ThrowPgError(env, err);
		oneshot = true;
	}
	if (!params_in.Fill(env, plan, args[1]))
	{
		if (oneshot)
			tsw_plan_discard(plan);
		return nullptr;
	}
	if (tsw_cursor_open(plan, sql.c_str(), params_in.values(), &name, &err) != 0)
		return ThrowPgError(env, err);
	napi_value	out = String(env, name);

	tsw_free_string(name);
	return out;
}

}								/* namespace */

/* The calls of this file, for js_addon.cc. */
void
DefineStatementCalls(napi_env env, napi_value exports)
{
	napi_property_descriptor calls[] = {
		{"begin", nullptr, Begin, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"commit", nullptr, Commit, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"rollback", nullptr, Rollback, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"savepoint", nullptr, Savepoint, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"endSavepoint", nullptr, EndSavepoint, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"inTransaction", nullptr, InTransaction, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"query", nullptr, Query, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"queryOnce", nullptr, QueryOnce, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"prepare", nullptr, Prepare, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"execute", nullptr, Execute, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"freePlan", nullptr, FreePlan, nullptr, nullptr, nullptr, napi_default, nullptr},
		{"openCursor", nullptr, OpenCursor, nullptr, nullptr, nullptr, napi_default, nullptr},
	};

	napi_define_properties(env, exports, sizeof(calls) / sizeof(calls[0]), calls);
}

}								/* namespace tsw */
