/*-------------------------------------------------------------------------
 *
 * worker_register.c
 *		Registering the configured workers (tsworker.workers) in the
 *		postmaster, from _PG_init: one process per entry, or per instance
 *		for a module that declares instances.
 *
 * Launched workers are registered from a backend instead (slot_control.c);
 * both fill the BackgroundWorker through tsw_fill_bgworker() (slots.c).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdlib.h>

#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "postmaster/bgworker.h"

#include "compat.h"
#include "pg_tsworker.h"

static int	tsw_expand_instances(TswWorkerSpec *specs, int n, TswWorkerSpec **out);

/*
 * The processes to start for the configured workers: one per entry, or,
 * for a module declaring instances, <name>1 .. <name>N, each told its
 * index.  A module's own database and role settings, when declared and
 * set, override tsworker.database and tsworker.role.
 */
static int
tsw_expand_instances(TswWorkerSpec *specs, int n, TswWorkerSpec **out)
{
	List	   *procs = NIL;
	ListCell   *lc;
	int			i;
	int			k;

	for (i = 0; i < n; i++)
	{
		TswWorkerSpec *spec = &specs[i];
		int			count = 1;

		strlcpy(spec->config_name, spec->name, sizeof(spec->config_name));
		spec->database = tsw_declared_setting(spec->name, "database");
		spec->rolename = tsw_declared_setting(spec->name, "role");
		if (spec->instances != NULL)
		{
			char	   *v = tsw_declared_setting(spec->name, spec->instances);

			count = v ? atoi(v) : 0;
			if (count < 0)
				count = 0;
			if (count == 0)
				ereport(LOG,
						(errmsg("pg_tsworker: worker \"%s\" runs no instances (tsworker_%s.%s is 0)",
								spec->name, spec->name, spec->instances)));
		}
		for (k = 1; k <= count; k++)
		{
			TswWorkerSpec *p = palloc(sizeof(TswWorkerSpec));

			*p = *spec;
			if (spec->instances != NULL)
			{
				char	   *name = psprintf("%s%d", spec->name, k);

				if (strlen(name) > TSW_NAME_MAXLEN)
					ereport(ERROR,
							(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							 errmsg("worker name \"%s\" is too long for instance %d", spec->name, k)));
				strlcpy(p->name, name, sizeof(p->name));
				p->settings = psprintf("{\"index\": %d}", k);
			}
			procs = lappend(procs, p);
		}
	}

	*out = palloc0(sizeof(TswWorkerSpec) * Max(list_length(procs), 1));
	k = 0;
	foreach(lc, procs)
		(*out)[k++] = *(TswWorkerSpec *) lfirst(lc);
	return k;
}

void
tsw_register_workers(void)
{
	TswWorkerSpec *specs;
	TswWorkerSpec *procs;
	char	   *msg;
	int			n;
	int			nprocs;
	int			registered;
	int			i;
	int			j;

	n = tsw_parse_worker_list(tsw_workers, &specs, &msg);
	if (n < 0)					/* the check hook has already refused it */
		elog(ERROR, "invalid tsworker.workers: %s", msg);
	for (i = 0; i < n; i++)
		specs[i].start_time = BgWorkerStart_RecoveryFinished;

	/* what the modules declare: settings, start time, instances */
	tsw_define_worker_settings(specs, n);

	nprocs = tsw_expand_instances(specs, n, &procs);
	for (i = 0; i < nprocs; i++)
		for (j = 0; j < i; j++)
			if (strcmp(procs[i].name, procs[j].name) == 0)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("tsworker.workers: two workers are named \"%s\"", procs[i].name),
						 errhint("Name an entry explicitly: name=module.")));
	if (nprocs > tsw_max_workers)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("tsworker.workers needs %d worker processes but tsworker.max_workers is %d", nprocs, tsw_max_workers),
				 errhint("Raise tsworker.max_workers.")));

	registered = tsw_registered_bgworker_count();
	for (i = 0; i < nprocs; i++)
	{
		BackgroundWorker worker;

		/*
		 * RegisterBackgroundWorker() would only log "too many background
		 * workers", without the worker's name, and leave its slot waiting
		 * forever: register what fits, and mark the rest as not started.
		 */
		if (registered >= max_worker_processes)
		{
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("pg_tsworker: worker \"%s\" not started: no free background worker slot", procs[i].name),
					 errdetail("max_worker_processes is %d, and %d background workers are registered before it.",
							   max_worker_processes, registered),
					 errhint("Raise max_worker_processes.")));
			procs[i].not_registered = true;
			tsw_register_static_worker(i, &procs[i]);
			continue;
		}
		registered++;

		tsw_fill_bgworker(&worker, i, procs[i].name, procs[i].start_time, 0);

		tsw_register_static_worker(i, &procs[i]);
		RegisterBackgroundWorker(&worker);
	}
}
