/*-------------------------------------------------------------------------
 *
 * settings_reload.c
 *		A bad value in postgresql.conf for a setting that a worker process
 *		defined itself, reported at each reload.
 *
 * The settings of configured workers are parameters from the postmaster
 * on, and the postmaster reports a bad value at each reload, as for any
 * parameter.  A launched worker defines its declared settings in its own
 * process (worker_settings.c): there a reload reports a bad line only at
 * DEBUG2, as every process but the postmaster does, and keeps the value
 * before it.  So after each reload the worker checks the files' values for
 * the parameters it defined with set_config_option() without applying
 * them, and PostgreSQL says what is wrong with a WARNING in that worker's
 * log lines.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "manifest.h"

/* The parameters this process defined itself (names in TopMemoryContext). */
static List *tsw_defined_here = NIL;

/* Parameter `gucname` was defined by this process, not inherited from the postmaster. */
void
tsw_note_defined_here(const char *gucname)
{
	MemoryContext oldcontext;

	if (!IsUnderPostmaster)
		return;
	oldcontext = MemoryContextSwitchTo(TopMemoryContext);
	tsw_defined_here = lappend(tsw_defined_here, pstrdup(gucname));
	MemoryContextSwitchTo(oldcontext);
}

/*
 * After ProcessConfigFile(): check the last value postgresql.conf and
 * postgresql.auto.conf give each parameter this process defined, as
 * PostgreSQL reads them; a bad one is reported with PostgreSQL's own
 * WARNING.  Errors in the files themselves are the postmaster's to report.
 */
void
tsw_recheck_file_settings(void)
{
	ConfigVariable *head = NULL;
	ConfigVariable *tail = NULL;
	ConfigVariable *item;
	ListCell   *lc;

	if (tsw_defined_here == NIL)
		return;
	if (!ParseConfigFile(ConfigFileName, true, NULL, 0, 0, DEBUG2, &head, &tail))
	{
		FreeConfigVariables(head);
		return;
	}
	(void) ParseConfigFile(PG_AUTOCONF_FILENAME, false, NULL, 0, 0, DEBUG2, &head, &tail);

	foreach(lc, tsw_defined_here)
	{
		const char *name = (const char *) lfirst(lc);
		ConfigVariable *last = NULL;

		for (item = head; item != NULL; item = item->next)
			if (!item->ignore && pg_strcasecmp(item->name, name) == 0)
				last = item;
		if (last != NULL)
			(void) set_config_option(name, last->value, PGC_SIGHUP, PGC_S_FILE,
									 GUC_ACTION_SET, false, WARNING, false);
	}
	FreeConfigVariables(head);
}
