/*-------------------------------------------------------------------------
 *
 * manifest.h
 *		What worker modules declare, as read from the manifest child
 *		(ManifestWorker in src/runtime/manifest.ts and ManifestSetting in
 *		src/runtime/settings.ts name the same fields).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_MANIFEST_H
#define TSW_MANIFEST_H

struct JsonbValue;

/* One declared setting (ManifestSetting). */
typedef struct TswSettingDecl
{
	char	   *name;
	char	   *type;			/* int, real, bool, string, enum */
	char	   *default_value;	/* PostgreSQL's text for the default */
	char	   *min;			/* int/real bounds as text; NULL: unbounded */
	char	   *max;
	char	   *unit;			/* base unit (ms, s, min, B, kB, MB); NULL: none */
	char	  **values;			/* enum values */
	int			nvalues;
	char	   *description;
	bool		postmaster;		/* context 'postmaster' rather than 'sighup' */
	bool		superuser_only; /* GUC_SUPERUSER_ONLY: may hold a password */
} TswSettingDecl;

/* What one worker's module declares, or why it could not be read (ManifestWorker). */
typedef struct TswWorkerDecl
{
	char	   *worker;
	char	   *error;			/* the module could not be loaded; NULL: it was */
	bool		standby;		/* start: 'standby' rather than 'primary' */
	char	   *instances;		/* setting giving the number of instances, or NULL */
	TswSettingDecl *settings;
	int			nsettings;
} TswWorkerDecl;

/*
 * Load the modules of `entries` ("<worker>=<module>") in manifest children
 * and read what each declares.  Returns n
 * and sets *decls (palloc'd, in the order of `entries`): a module that
 * could not be loaded, or that ended the child or did not finish within
 * tsworker.module_load_timeout, has its reason in `error`.  -1 after a
 * WARNING saying why when the loader itself failed (before any module, or
 * printing something that is not a manifest).  In a backend (in_backend)
 * the wait can be cancelled, and the child is killed then.
 */
extern int	tsw_read_manifest(char **entries, int n, bool in_backend, TswWorkerDecl **decls);

/*
 * A JSON scalar as text: a string as it is, a number in numeric's text, a
 * boolean as on/off; NULL for null; an ERROR for an array or object.
 */
extern char *tsw_json_text(struct JsonbValue *v);

/*
 * Parse a JSON array of declared settings (ManifestSetting[]), as a worker
 * passes its own declarations; returns their number and sets *decls.
 * Raises an ERROR on malformed input.
 */
extern PGDLLEXPORT int tsw_parse_setting_decls(const char *json, TswSettingDecl **decls);

/*
 * Check the settings given to tsworker.launch() (a JSON object) against a
 * worker's declarations with PostgreSQL's own rules, and with `apply` set
 * them (worker_settings.c); NULL when all are good, else every bad one.
 */
extern PGDLLEXPORT char *tsw_check_settings(const char *worker, const char *config_name,
											const TswSettingDecl *decls, int n,
											const char *settings, bool apply);

/* settings_check.c: a refusal's message with PostgreSQL's hint in parentheses */
extern char *tsw_with_hint(char *message, const char *hint);

/* settings_check.c: why a launch value is refused by PostgreSQL's parsers, or NULL */
extern char *tsw_parse_setting_value(const char *gucname, const TswSettingDecl *s, int unit_flag,
									 const char *value);

/* settings_reload.c: a bad postgresql.conf value for a setting this process defined, at reload */
extern void tsw_note_defined_here(const char *gucname);
extern PGDLLEXPORT void tsw_recheck_file_settings(void);

#endif							/* TSW_MANIFEST_H */
