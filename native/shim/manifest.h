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
 * Run the manifest child with `args` (after the script) and read its
 * document.  Returns the number of workers and sets *decls (palloc'd), or
 * -1 after a WARNING saying why (the child failed, timed out or printed
 * something that is not a manifest).  In a backend (in_backend) the wait
 * can be cancelled, and the child is killed then.
 */
extern int	tsw_read_manifest(char **args, int nargs, bool in_backend,
							  TswWorkerDecl **decls);

#endif							/* TSW_MANIFEST_H */
