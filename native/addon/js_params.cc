/*
 * js_params.cc
 *		Query parameters: the array given to a statement, checked against
 *		the plan's parameters and formatted (js_param_text.cc holds the
 *		rules for one value); and the description of a parameter's type
 *		that prepared statements show.
 */
#include "js_common.h"

#include <cmath>
#include <cstring>

namespace tsw
{

/*
 * Parameter i's value v (not null or undefined) for its type: as it is
 * when the type takes it directly and it fits, else its text form.
 */
bool
ParamValues::Convert(napi_env env, napi_value v, const TswParamType &type, int i)
{
	TswParamValue &out = values_[i];
	napi_valuetype t = TypeOf(env, v);

	switch (type.direct)
	{
		case TSW_DIRECT_INT2:
		case TSW_DIRECT_INT4:
		case TSW_DIRECT_INT8:
			{
				/* the range of the type; int8's as doubles, exactly */
				double		lo = type.direct == TSW_DIRECT_INT2 ? -32768.0 :
					type.direct == TSW_DIRECT_INT4 ? -2147483648.0 : -9223372036854775808.0;
				double		hi = type.direct == TSW_DIRECT_INT2 ? 32767.0 :
					type.direct == TSW_DIRECT_INT4 ? 2147483647.0 : 9223372036854775807.0;
				double		d;
				int64_t		i64;
				bool		lossless = false;

				if (t == napi_number && napi_get_value_double(env, v, &d) == napi_ok &&
					std::trunc(d) == d && d >= lo && d < hi + 1.0)
				{
					out.form = TSW_VALUE_INT;
					out.v.i = static_cast<int64_t>(d);
					return true;
				}
				if (t == napi_bigint && napi_get_value_bigint_int64(env, v, &i64, &lossless) == napi_ok &&
					lossless && static_cast<double>(i64) >= lo && static_cast<double>(i64) <= hi)
				{
					out.form = TSW_VALUE_INT;
					out.v.i = i64;
					return true;
				}
			}
			break;
		case TSW_DIRECT_FLOAT8:
			if (t == napi_number && napi_get_value_double(env, v, &out.v.f) == napi_ok)
			{
				out.form = TSW_VALUE_FLOAT;
				return true;
			}
			break;
		case TSW_DIRECT_BOOL:
			if (t == napi_boolean)
			{
				bool		b = false;

				napi_get_value_bool(env, v, &b);
				out.form = TSW_VALUE_BOOL;
				out.v.b = b ? 1 : 0;
				return true;
			}
			break;
		default:
			break;
	}

	/* its text form; a string is its own, except for json, which takes JSON */
	std::string &text = texts_[i];

	if (t == napi_string && type.klass != TSW_PARAM_JSON)
	{
		if (!GetString(env, v, "query parameter", &text))
			return false;
	}
	else if (!ParamText(env, v, &type, &text))
		return false;
	if (std::memchr(text.data(), '\0', text.size()) != nullptr)
	{
		ThrowType(env, "query parameter $" + std::to_string(i + 1) +
				  " contains a NUL character, which PostgreSQL text cannot hold");
		return false;
	}
	out.form = TSW_VALUE_TEXT;
	out.v.text = text.c_str();
	out.len = text.size();
	return true;
}

/* The elements of an array of parameters (or undefined: none), then Fill() them. */
bool
ParamValues::Fill(napi_env env, const TswPlan *plan, napi_value given)
{
	uint32_t	count = 0;
	napi_valuetype gt = TypeOf(env, given);
	bool		is_array = false;

	if (gt != napi_undefined && gt != napi_null)
	{
		napi_is_array(env, given, &is_array);
		if (!is_array)
		{
			ThrowType(env, "query parameters must be an array");
			return false;
		}
		napi_get_array_length(env, given, &count);
	}
	if (count != static_cast<uint32_t>(plan->nparams))
		return Fill(env, plan, nullptr, count);
	elements_.reset(new napi_value[count > 0 ? count : 1]);
	for (uint32_t i = 0; i < count; i++)
	{
		if (napi_get_element(env, given, i, &elements_[i]) != napi_ok)
			return false;
	}
	return Fill(env, plan, elements_.get(), count);
}

bool
ParamValues::Fill(napi_env env, const TswPlan *plan, const napi_value *given, size_t count)
{
	if (count != static_cast<size_t>(plan->nparams))
	{
		ThrowRange(env, "the statement takes " + std::to_string(plan->nparams) +
				   " parameters, " + std::to_string(count) + " were given");
		return false;
	}
	if (count <= static_cast<size_t>(kInline))
	{
		values_ = inline_values_;
		texts_ = inline_texts_;
	}
	else
	{
		heap_values_.reset(new TswParamValue[count]);
		heap_texts_.reset(new std::string[count]);
		values_ = heap_values_.get();
		texts_ = heap_texts_.get();
	}
	for (size_t i = 0; i < count; i++)
	{
		napi_valuetype t = TypeOf(env, given[i]);

		values_[i].form = TSW_VALUE_NULL;
		values_[i].len = 0;
		if (t == napi_null || t == napi_undefined)
			continue;
		if (!Convert(env, given[i], plan->params[i], static_cast<int>(i)))
			return false;
	}
	return true;
}

/* The arguments of a statement call (see js_common.h). */
CallArgs::CallArgs(napi_env env, napi_callback_info info, size_t fixed)
	: fixed_(fixed)
{
	argc_ = kInline;
	napi_get_cb_info(env, info, &argc_, inline_, nullptr, nullptr);
	if (argc_ > kInline)
	{
		heap_.reset(new napi_value[argc_]);
		napi_get_cb_info(env, info, &argc_, heap_.get(), nullptr, nullptr);
		argv_ = heap_.get();
	}
	/* the fixed ones and the one after them (an array of parameters) are always there */
	for (size_t i = argc_; i <= fixed && i < kInline; i++)
		napi_get_undefined(env, &inline_[i]);
	if (argc_ < fixed)
		argc_ = fixed;
}

static const char *
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

napi_value
ParamTypeObject(napi_env env, const TswParamType &t)
{
	napi_value	o;
	napi_value	v;

	napi_create_object(env, &o);
	napi_create_uint32(env, t.type_oid, &v);
	napi_set_named_property(env, o, "oid", v);
	napi_create_uint32(env, t.base_oid, &v);
	napi_set_named_property(env, o, "baseOid", v);
	napi_set_named_property(env, o, "kind", String(env, ParamClassName(t.klass)));
	if (t.klass == TSW_PARAM_ARRAY)
	{
		napi_create_uint32(env, t.elem_oid, &v);
		napi_set_named_property(env, o, "elementOid", v);
		napi_set_named_property(env, o, "elementKind", String(env, ParamClassName(t.elem_class)));
	}
	if (t.names != nullptr)
	{
		napi_create_array_with_length(env, t.nnames, &v);
		for (int i = 0; i < t.nnames; i++)
			napi_set_element(env, v, i, String(env, t.names[i]));
		napi_set_named_property(env, o, "attributes", v);
	}
	return o;
}

}								/* namespace tsw */
