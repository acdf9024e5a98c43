/*
 * js_param_text.cc
 *		The rules that turn one JavaScript value into the text of a query
 *		parameter of a given type (docs/types.md, "Parameters"): the only
 *		place they are written.
 *
 * The server knows each parameter's type (given to prepare(), or inferred
 * from the statement as the extended query protocol does) and parses the
 * text with that type's input function.  So a value is formatted for what
 * its type expects: JSON for json and jsonb, an array literal for an
 * array type, a row literal for a composite type, else its scalar text.
 * Only objects with a toPostgres() method call back into JavaScript (that
 * is their protocol, as in node-postgres); JSON goes through JSON.stringify.
 */
#include "js_common.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

namespace tsw
{

namespace
{

/* A failure with a JavaScript exception pending. */
struct Failed
{
};

class Formatter
{
  public:
	explicit Formatter(napi_env env) : env_(env) {}

	/* Text of a non-null value for a parameter of type t (nullptr: no type information). */
	std::string Text(napi_value v, const TswParamType *t);

  private:
	napi_env	env_;

	[[noreturn]] void Fail(const std::string &msg)
	{
		ThrowType(env_, msg);
		throw Failed();
	}
	void		Check(napi_status status)
	{
		if (status != napi_ok)
			throw Failed();
	}
	bool		IsNullish(napi_value v);
	bool		IsArray(napi_value v);
	bool		HasToPostgres(napi_value v);
	napi_value	ToPostgres(napi_value v);
	std::string StringOf(napi_value v);
	std::string Json(napi_value v);
	std::string Scalar(napi_value v);
	std::string DateText(double ms);
	std::string Element(napi_value v, TswParamClass kind, const TswParamType *t);
	std::string ArrayText(napi_value a, TswParamClass kind, const TswParamType *t);
	std::string RowText(napi_value v, const TswParamType *t);
	static std::string Quote(const std::string &s);
};

bool
Formatter::IsNullish(napi_value v)
{
	napi_valuetype t = TypeOf(env_, v);

	return t == napi_null || t == napi_undefined;
}

bool
Formatter::IsArray(napi_value v)
{
	bool		is = false;

	napi_is_array(env_, v, &is);
	return is;
}

/* Does v have a toPostgres() method? */
bool
Formatter::HasToPostgres(napi_value v)
{
	napi_value	fn;

	if (TypeOf(env_, v) != napi_object)
		return false;
	Check(napi_get_named_property(env_, v, "toPostgres", &fn));
	return TypeOf(env_, fn) == napi_function;
}

/* v.toPostgres(), or nullptr when v has no such method. */
napi_value
Formatter::ToPostgres(napi_value v)
{
	napi_value	fn;
	napi_value	out;

	if (TypeOf(env_, v) != napi_object)
		return nullptr;
	Check(napi_get_named_property(env_, v, "toPostgres", &fn));
	if (TypeOf(env_, fn) != napi_function)
		return nullptr;
	Check(napi_call_function(env_, v, fn, 0, nullptr, &out));
	return out;
}

/* String(v) for a string, number or bigint. */
std::string
Formatter::StringOf(napi_value v)
{
	napi_value	s;
	std::string out;

	Check(napi_coerce_to_string(env_, v, &s));
	if (!GetString(env_, s, "query parameter", &out))
		throw Failed();
	return out;
}

/* JSON text of any value, strings included (JSON text as is: write $1::text::jsonb). */
std::string
Formatter::Json(napi_value v)
{
	napi_value	s;

	if (napi_call_function(env_, Undefined(env_), Ref(env_, g_refs.json_stringify), 1, &v, &s) != napi_ok)
	{
		napi_value	err;
		napi_value	msg;
		std::string text;

		napi_get_and_clear_last_exception(env_, &err);
		if (napi_coerce_to_string(env_, err, &msg) == napi_ok)
			GetString(env_, msg, "error", &text);
		Fail("query parameter cannot be turned into JSON: " + text);
	}
	if (TypeOf(env_, s) != napi_string)
		Fail("query parameter cannot be turned into JSON: it has no JSON form");
	return StringOf(s);
}

/*
 * A Date in PostgreSQL's ISO input form, in UTC, for every year a Date
 * holds: YYYY-MM-DDTHH:MM:SS.mmmZ, with " BC" for years before 1 AD
 * (JavaScript's year 0 is 1 BC) and five or six digits after 9999.
 * (toISOString() writes -000044 or +010000, which PostgreSQL reads as a
 * time zone.)  Dates before 4713 BC fail in PostgreSQL with 22008.
 */
std::string
Formatter::DateText(double ms)
{
	if (std::isnan(ms))
		Fail("invalid Date passed as a query parameter");

	int64_t		t = static_cast<int64_t>(ms);
	int64_t		days = t >= 0 ? t / 86400000 : -((-t + 86399999) / 86400000);
	int64_t		msday = t - days * 86400000;

	/* civil date from days since 1970-01-01 (Howard Hinnant's algorithm) */
	int64_t		z = days + 719468;
	int64_t		era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t		doe = z - era * 146097;
	int64_t		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t		mp = (5 * doy + 2) / 153;
	int64_t		day = doy - (153 * mp + 2) / 5 + 1;
	int64_t		month = mp < 10 ? mp + 3 : mp - 9;
	int64_t		year = yoe + era * 400 + (month <= 2 ? 1 : 0);
	char		buf[96];

	snprintf(buf, sizeof(buf), "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lldZ%s",
			 (long long) (year > 0 ? year : 1 - year), (long long) month, (long long) day,
			 (long long) (msday / 3600000), (long long) (msday / 60000 % 60),
			 (long long) (msday / 1000 % 60), (long long) (msday % 1000),
			 year > 0 ? "" : " BC");
	return buf;
}

/* Text of a value for a type that is neither JSON, an array nor a row. */
std::string
Formatter::Scalar(napi_value v)
{
	napi_valuetype t = TypeOf(env_, v);
	bool		is = false;

	switch (t)
	{
		case napi_string:
		case napi_bigint:
			return StringOf(v);
		case napi_boolean:
			return GetBool(env_, v, false) ? "true" : "false";
		case napi_number:
			{
				double		d;

				napi_get_value_double(env_, v, &d);
				/* NaN, Infinity and -Infinity are valid float input; -0 stays -0 */
				if (d == 0 && std::signbit(d))
					return "-0";
				return StringOf(v);
			}
		default:
			break;
	}
	napi_is_date(env_, v, &is);
	if (is)
	{
		double		ms;

		napi_get_date_value(env_, v, &ms);
		return DateText(ms);
	}
	napi_is_typedarray(env_, v, &is);
	if (is)
	{
		napi_typedarray_type type;
		size_t		length;
		void	   *data;
		size_t		bytes;
		static const char hex[] = "0123456789abcdef";
		std::string out = "\\x";

		napi_get_typedarray_info(env_, v, &type, &length, &data, nullptr, nullptr);
		if (type == napi_uint8_array)
		{
			bytes = length;
			out.reserve(2 + 2 * bytes);
			for (size_t i = 0; i < bytes; i++)
			{
				out += hex[static_cast<unsigned char *>(data)[i] >> 4];
				out += hex[static_cast<unsigned char *>(data)[i] & 15];
			}
			return out;
		}
	}
	if (napi_value pg = ToPostgres(v))
		return Text(pg, nullptr);
	if (IsArray(v))
		return ArrayText(v, TSW_PARAM_SCALAR, nullptr);
	return Json(v);
}

/* Quote a value inside an array or row literal (backslash escapes). */
std::string
Formatter::Quote(const std::string &s)
{
	std::string out = "\"";

	for (char ch : s)
	{
		if (ch == '\\' || ch == '"')
			out += '\\';
		out += ch;
	}
	return out + "\"";
}

std::string
Formatter::Element(napi_value v, TswParamClass kind, const TswParamType *t)
{
	if (IsNullish(v))
		return "NULL";
	if (IsArray(v) && kind != TSW_PARAM_JSON && kind != TSW_PARAM_COMPOSITE)
		return ArrayText(v, kind, t);
	if (kind == TSW_PARAM_JSON)
		return Quote(Json(v));
	if (kind == TSW_PARAM_COMPOSITE)
	{
		napi_value	first;
		uint32_t	n = 0;

		if (IsArray(v))
		{
			napi_get_array_length(env_, v, &n);
			if (n > 0 && napi_get_element(env_, v, 0, &first) == napi_ok && IsArray(first))
				return ArrayText(v, kind, t);
		}
		return Quote(RowText(v, t));
	}
	return Quote(Scalar(v));
}

/* An array literal; nested arrays are further dimensions. */
std::string
Formatter::ArrayText(napi_value a, TswParamClass kind, const TswParamType *t)
{
	uint32_t	n = 0;
	std::string out = "{";

	napi_get_array_length(env_, a, &n);
	for (uint32_t i = 0; i < n; i++)
	{
		napi_value	e;

		Check(napi_get_element(env_, a, i, &e));
		if (i > 0)
			out += ',';
		out += Element(e, kind, t);
	}
	return out + "}";
}

/* A row literal from an array (attribute order) or an object (attribute names). */
std::string
Formatter::RowText(napi_value v, const TswParamType *t)
{
	std::vector<napi_value> values;
	napi_valuetype type = TypeOf(env_, v);

	if (type == napi_string)
		return StringOf(v);
	if (napi_value pg = ToPostgres(v))
		return Text(pg, nullptr);
	if (IsArray(v))
	{
		uint32_t	n = 0;

		napi_get_array_length(env_, v, &n);
		values.resize(n);
		for (uint32_t i = 0; i < n; i++)
			Check(napi_get_element(env_, v, i, &values[i]));
	}
	else if (type == napi_object)
	{
		napi_value	keys;
		uint32_t	n = 0;

		Check(napi_get_all_property_names(env_, v, napi_key_own_only,
										  static_cast<napi_key_filter>(napi_key_enumerable | napi_key_skip_symbols),
										  napi_key_numbers_to_strings, &keys));
		napi_get_array_length(env_, keys, &n);
		if (t == nullptr || t->names == nullptr)
		{
			/* an anonymous record: the keys' order */
			values.resize(n);
			for (uint32_t i = 0; i < n; i++)
			{
				napi_value	k;

				Check(napi_get_element(env_, keys, i, &k));
				Check(napi_get_property(env_, v, k, &values[i]));
			}
		}
		else
		{
			std::string names;

			for (int a = 0; a < t->nnames; a++)
				names += (a ? ", " : "") + std::string(t->names[a]);
			for (uint32_t i = 0; i < n; i++)
			{
				napi_value	k;
				std::string key;
				bool		known = false;

				Check(napi_get_element(env_, keys, i, &k));
				if (!GetString(env_, k, "key", &key))
					throw Failed();
				for (int a = 0; a < t->nnames && !known; a++)
					known = key == t->names[a];
				if (!known)
					Fail("row parameter has key \"" + key + "\", which is not an attribute of the type (" + names + ")");
			}
			values.resize(t->nnames);
			for (int a = 0; a < t->nnames; a++)
				Check(napi_get_named_property(env_, v, t->names[a], &values[a]));
		}
	}
	else
		Fail("a row parameter must be an array of attribute values, an object, or a row literal string");

	std::string out = "(";

	for (size_t i = 0; i < values.size(); i++)
	{
		napi_value	x = values[i];
		napi_valuetype xt = TypeOf(env_, x);
		bool		is_date = false;
		bool		is_bytes = false;

		if (i > 0)
			out += ',';
		if (IsNullish(x))
			continue;
		if (IsArray(x))
		{
			out += Quote(ArrayText(x, TSW_PARAM_SCALAR, nullptr));
			continue;
		}
		napi_is_date(env_, x, &is_date);
		napi_is_typedarray(env_, x, &is_bytes);
		if (xt == napi_object && !is_date && !is_bytes && !HasToPostgres(x))
			out += Quote(Json(x));
		else
			out += Quote(Scalar(x));
	}
	return out + ")";
}

std::string
Formatter::Text(napi_value v, const TswParamType *t)
{
	if (t != nullptr && t->klass == TSW_PARAM_JSON)
	{
		napi_value	pg = ToPostgres(v);

		return Json(pg ? pg : v);
	}
	if (napi_value pg = ToPostgres(v))
		return Text(pg, t);
	if (TypeOf(env_, v) == napi_string)
		return StringOf(v);
	if (t != nullptr && t->klass == TSW_PARAM_ARRAY && IsArray(v))
		return ArrayText(v, t->elem_class, t);
	if (t != nullptr && t->klass == TSW_PARAM_COMPOSITE)
		return RowText(v, t);
	return Scalar(v);
}

}								/* namespace */

bool
ParamText(napi_env env, napi_value v, const TswParamType *t, std::string *out)
{
	try
	{
		*out = Formatter(env).Text(v, t);
	}
	catch (const Failed &)
	{
		return false;
	}
	return true;
}

}								/* namespace tsw */
