/*-------------------------------------------------------------------------
 *
 * settings_check.c
 *		A tsworker.launch() value checked in the calling session, with
 *		PostgreSQL's parsers, against the module's declarations of now.
 *
 * The worker defines its declared settings as parameters of its own
 * process and applies the launch values with set_config_option()
 * (worker_settings.c).  The session that calls launch() checks them first,
 * so that a bad value is refused before anything starts; it must not
 * define the parameters itself: a definition lasts as long as the session,
 * and the module's declarations may change between two launches (another
 * range, another type), which a second definition cannot follow.  So the
 * value goes through the same functions guc.c's parse_and_validate_value()
 * calls (parse_bool, parse_int, parse_real with the declared unit; enum
 * names compared as config_enum_lookup_by_name does), with its bounds check
 * and its messages.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <float.h>
#include <limits.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "manifest.h"

/* `message` followed by " (hint)", without the hint's final period; the message alone without one */
char *
tsw_with_hint(char *message, const char *hint)
{
	size_t		len;

	if (hint == NULL)
		return message;
	len = strlen(hint);
	return psprintf("%s (%.*s)", message, (int) (len > 0 && hint[len - 1] == '.' ? len - 1 : len), hint);
}

/*
 * Why `value` is not a good value of declared setting `s`, whose parameter
 * is `gucname` (PostgreSQL's message, with its hint), or NULL.
 */
char *
tsw_parse_setting_value(const char *gucname, const TswSettingDecl *s, int unit_flag, const char *value)
{
	const char *hint = NULL;
	const char *unit = s->unit;
	int			i;

	if (strcmp(s->type, "bool") == 0)
	{
		bool		b;

		if (!parse_bool(value, &b))
			return psprintf("parameter \"%s\" requires a Boolean value", gucname);
	}
	else if (strcmp(s->type, "int") == 0)
	{
		int			v;
		long		min = s->min ? strtol(s->min, NULL, 10) : INT_MIN;
		long		max = s->max ? strtol(s->max, NULL, 10) : INT_MAX;

		if (!parse_int(value, &v, unit_flag, &hint))
			return tsw_with_hint(psprintf("invalid value for parameter \"%s\": \"%s\"", gucname, value), hint);
		if (v < min || v > max)
			return psprintf("%d%s%s is outside the valid range for parameter \"%s\" (%ld .. %ld)",
							v, unit ? " " : "", unit ? unit : "", gucname, min, max);
	}
	else if (strcmp(s->type, "real") == 0)
	{
		double		v;
		double		min = s->min ? strtod(s->min, NULL) : -DBL_MAX;
		double		max = s->max ? strtod(s->max, NULL) : DBL_MAX;

		if (!parse_real(value, &v, unit_flag, &hint))
			return tsw_with_hint(psprintf("invalid value for parameter \"%s\": \"%s\"", gucname, value), hint);
		if (v < min || v > max)
			return psprintf("%g%s%s is outside the valid range for parameter \"%s\" (%g .. %g)",
							v, unit ? " " : "", unit ? unit : "", gucname, min, max);
	}
	else if (strcmp(s->type, "enum") == 0)
	{
		StringInfoData options;

		for (i = 0; i < s->nvalues; i++)
			if (pg_strcasecmp(s->values[i], value) == 0)
				return NULL;
		initStringInfo(&options);
		for (i = 0; i < s->nvalues; i++)
			appendStringInfo(&options, "%s%s", i > 0 ? ", " : "", s->values[i]);
		return tsw_with_hint(psprintf("invalid value for parameter \"%s\": \"%s\"", gucname, value),
							 psprintf("Available values: %s.", options.data));
	}
	/* a string takes any text */
	return NULL;
}
