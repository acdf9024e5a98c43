/*-------------------------------------------------------------------------
 *
 * worker_list.c
 *		Parse and resolve the tsworker.workers setting.
 *
 * Each comma-separated entry is "[name=]module".  A module is either the
 * name of a built-in worker (a file <sharedir>/pg_tsworker/dist/workers/
 * <name>.js) or an absolute path to a module file (module_kinds.h, from
 * the runtime's src/runtime/module-kinds.json: loaded as CommonJS,
 * TypeScript through tsx).
 * Without "name=", a built-in is named after itself and a path after its
 * file name without the extension.  Names are unique identifiers of at most
 * 63 bytes (letters, digits and '_', not starting with a digit).
 *
 * Only syntax and built-in names are checked here: a missing module file is
 * reported by the worker when it starts, so that a file that appears later
 * does not need a server restart.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/stat.h>

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/varlena.h"

#include "module_kinds.h"
#include "pg_tsworker.h"

static bool tsw_has_module_suffix(const char *path);
static void tsw_basename_noext(const char *path, char *out, size_t outlen);

/* the runtime's definition (src/runtime/module-kinds.json) */
static const char *const tsw_module_suffixes[] = TSW_MODULE_SUFFIXES;

void
tsw_runtime_dir(char *buf, size_t len)
{
	char		sharepath[MAXPGPATH];

	get_share_path(my_exec_path, sharepath);
	snprintf(buf, len, "%s/pg_tsworker", sharepath);
}

void
tsw_native_dir(char *buf, size_t len)
{
	snprintf(buf, len, "%s/pg_tsworker", pkglib_path);
}

/*
 * A worker name is an identifier as postgresql.conf's lexer reads one
 * ([A-Za-z_][A-Za-z0-9_]*): the worker's own settings are named
 * tsworker_<name>.<setting>, and a configuration file accepts only
 * two-part names made of such identifiers.
 */
bool
tsw_valid_name(const char *name)
{
	const char *p;

	if (*name == '\0' || strlen(name) > TSW_NAME_MAXLEN)
		return false;
	if (*name >= '0' && *name <= '9')
		return false;
	for (p = name; *p; p++)
	{
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			  (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	}
	return true;
}

static bool
tsw_has_module_suffix(const char *path)
{
	size_t		len = strlen(path);
	int			i;

	for (i = 0; tsw_module_suffixes[i] != NULL; i++)
	{
		size_t		slen = strlen(tsw_module_suffixes[i]);

		if (len > slen && strcmp(path + len - slen, tsw_module_suffixes[i]) == 0)
			return true;
	}
	return false;
}

static void
tsw_basename_noext(const char *path, char *out, size_t outlen)
{
	const char *base = strrchr(path, '/');
	const char *dot;
	size_t		n;

	base = base ? base + 1 : path;
	dot = strrchr(base, '.');
	n = dot && dot != base ? (size_t) (dot - base) : strlen(base);
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, base, n);
	out[n] = '\0';
}

int
tsw_parse_worker_list(const char *value, TswWorkerSpec **specs, char **errmsg_out)
{
	char	   *raw;
	List	   *elems;
	ListCell   *lc;
	TswWorkerSpec *out;
	int			n = 0;
	char		runtime_dir[MAXPGPATH];

	*specs = NULL;
	*errmsg_out = NULL;
	if (value == NULL || value[0] == '\0')
		return 0;

	raw = pstrdup(value);
	if (!SplitGUCList(raw, ',', &elems))
	{
		*errmsg_out = psprintf("invalid list syntax in \"%s\"", value);
		return -1;
	}

	tsw_runtime_dir(runtime_dir, sizeof(runtime_dir));
	out = palloc0(sizeof(TswWorkerSpec) * Max(list_length(elems), 1));

	foreach(lc, elems)
	{
		char	   *entry = (char *) lfirst(lc);
		char	   *eq = strchr(entry, '=');
		char	   *module = entry;
		TswWorkerSpec *spec = &out[n];
		int			i;

		if (entry[0] == '\0')
		{
			*errmsg_out = psprintf("empty entry");
			return -1;
		}

		if (eq != NULL)
		{
			*eq = '\0';
			module = eq + 1;
			if (!tsw_valid_name(entry))
			{
				*errmsg_out = psprintf("invalid worker name \"%s\": use at most %d letters, digits or '_', not starting with a digit",
									   entry, TSW_NAME_MAXLEN);
				return -1;
			}
			strlcpy(spec->name, entry, sizeof(spec->name));
		}

		if (module[0] == '\0')
		{
			*errmsg_out = psprintf("entry \"%s\" names no module", entry);
			return -1;
		}

		if (strchr(module, '/') == NULL && !tsw_has_module_suffix(module))
		{
			/* a built-in worker */
			char		path[MAXPGPATH];
			struct stat st;

			if (!tsw_valid_name(module))
			{
				*errmsg_out = psprintf("invalid built-in worker name \"%s\"", module);
				return -1;
			}
			snprintf(path, sizeof(path), "%s/dist/workers/%s.js", runtime_dir, module);
			if (stat(path, &st) != 0)
			{
				*errmsg_out = psprintf("\"%s\" is neither a built-in worker nor an absolute path to a module", module);
				return -1;
			}
			spec->module = pstrdup(path);
			spec->builtin = true;
			if (spec->name[0] == '\0')
				strlcpy(spec->name, module, sizeof(spec->name));
		}
		else
		{
			if (!is_absolute_path(module))
			{
				*errmsg_out = psprintf("module path \"%s\" is not absolute", module);
				return -1;
			}
			if (!tsw_has_module_suffix(module))
			{
				*errmsg_out = psprintf("module \"%s\" does not end in %s", module, TSW_MODULE_SUFFIX_WORDS);
				return -1;
			}
			spec->module = pstrdup(module);
			spec->builtin = false;
			if (spec->name[0] == '\0')
			{
				tsw_basename_noext(module, spec->name, sizeof(spec->name));
				if (!tsw_valid_name(spec->name))
				{
					*errmsg_out = psprintf("cannot derive a worker name from \"%s\": write the entry as name=%s",
										   module, module);
					return -1;
				}
			}
		}

		for (i = 0; i < n; i++)
		{
			if (strcmp(out[i].name, spec->name) == 0)
			{
				*errmsg_out = psprintf("worker name \"%s\" is used twice", spec->name);
				return -1;
			}
		}
		n++;
	}

	*specs = out;
	return n;
}
