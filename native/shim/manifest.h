/*-------------------------------------------------------------------------
 *
 * manifest.h
 *		What worker modules declare, as read from the manifest child
 *		(src/runtime/manifest.ts, whose ManifestWorker and ManifestSetting
 *		name the same fields).
 *
 *-------------------------------------------------------------------------
 */
#ifndef TSW_MANIFEST_H
#define TSW_MANIFEST_H

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
	char	  **launch_errors;	/* --launch: one message per bad setting */
	int			nlaunch_errors;
} TswWorkerDecl;

/*
 * Load the modules of `entries` ("<worker>=<module>") in manifest children
 * and read what each declares; with `launch_settings` (a JSON object), the
 * one entry of a launch or restart, whose settings are checked.  Returns n
 * and sets *decls (palloc'd, in the order of `entries`): a module that
 * could not be loaded, or that ended the child or did not finish within
 * tsworker.module_load_timeout, has its reason in `error`.  -1 after a
 * WARNING saying why when the loader itself failed (before any module, or
 * printing something that is not a manifest).  In a backend (in_backend)
 * the wait can be cancelled, and the child is killed then.
 */
extern int	tsw_read_manifest(char **entries, int n, const char *launch_settings,
							  bool in_backend, TswWorkerDecl **decls);

#endif							/* TSW_MANIFEST_H */
