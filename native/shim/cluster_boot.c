/*-------------------------------------------------------------------------
 *
 * cluster_boot.c
 *		Cluster mode at server start: a member that does not hold the
 *		leader key starts as a standby.
 *
 * When the built-in promoter runs in cluster mode (its etcd_hosts setting
 * is set), the postmaster asks etcd, before the startup process runs and so
 * before any client can connect, whether this member holds the cluster's
 * leader key (or may initialize a new cluster with this data directory).
 * The question is put by a pg_tsworker_node child running
 * dist/workers/cluster/boot.js, which prints its answer on one line:
 *
 *     primary <why>              this member leads: start as it is
 *     standby <why> [<conninfo>] another member leads, none does, or etcd did not answer
 *     error <why>                this data directory is not the cluster's
 *
 * For anything but `primary`, standby.signal is written into the data
 * directory (unless it, or recovery.signal, is there): the server starts in
 * recovery and never accepts a write; its promoter then follows the leader
 * or takes part in an election.  Whatever the answer, writes stay behind
 * the fence (fence.c) until the promoter holds the leader lease.
 *
 * A `standby` answer with a third field is the leader's primary_conninfo,
 * which boot.js has just written into postgresql.auto.conf because it named
 * something else (a server rewound by hand keeps its old one): it is
 * applied here too, since the configuration was read before, so that the
 * startup process streams from the leader at once.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "access/xlog.h"
#include "common/file_perm.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "pg_tsworker.h"

#define TSW_BOOT_TIMEOUT_MS 20000

static bool
tsw_file_exists(const char *name)
{
	struct stat st;

	return stat(name, &st) == 0;
}

/* The member's name, as the promoter computes it: name, else cluster_name, else the host name. */
char *
tsw_member_name(const char *config_name)
{
	char	   *name = tsw_declared_setting(config_name, "name");
	const char *cluster_name;
	char		host[256];

	if (name != NULL)
		return name;
	cluster_name = GetConfigOption("cluster_name", true, false);
	if (cluster_name != NULL && cluster_name[0] != '\0')
		return pstrdup(cluster_name);
	if (gethostname(host, sizeof(host)) != 0)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	return pstrdup(host);
}

/*
 * The configured built-in promoter in cluster mode: its name in
 * tsworker.workers (its settings are tsworker_<name>.*), and its etcd_hosts
 * in *hosts; NULL when no promoter runs in cluster mode.  Two such
 * promoters are an error.
 */
char *
tsw_cluster_promoter(char **hosts_out)
{
	TswWorkerSpec *specs;
	char	   *msg;
	int			n;
	int			i;
	char	   *config_name = NULL;
	char	   *hosts = NULL;

	n = tsw_parse_worker_list(tsw_workers, &specs, &msg);
	for (i = 0; i < n; i++)
	{
		const char *base = strrchr(specs[i].module, '/');
		char	   *h;

		if (!specs[i].builtin || base == NULL || strcmp(base, "/promoter.js") != 0)
			continue;
		h = tsw_declared_setting(specs[i].name, "etcd_hosts");
		if (h == NULL)
			continue;
		if (hosts != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("tsworker.workers runs two promoters in cluster mode (\"%s\" and \"%s\")",
							config_name, specs[i].name),
					 errhint("A member runs one promoter with etcd_hosts set.")));
		hosts = h;
		config_name = pstrdup(specs[i].name);
	}
	*hosts_out = hosts;
	return config_name;
}

/*
 * Called by _PG_init in the postmaster, after the workers' settings are
 * defined.  Does nothing unless a built-in promoter is in cluster mode.
 */
void
tsw_cluster_boot(void)
{
	int			i;
	const char *config_name;
	char	   *hosts = NULL;
	char	   *args[20];
	int			nargs = 0;
	char	   *output;
	const char *answer;
	bool		in_recovery;
	const char *optional[] = {"namespace", "scope", "retry_timeout", "citus_group"};

	config_name = tsw_cluster_promoter(&hosts);
	if (config_name == NULL)
		return;

	/* from now on, writes wait for the promoter to hold the leader lease */
	tsw_fence_manage();

	if (!EnableHotStandby)
		ereport(WARNING,
				(errmsg("pg_tsworker: cluster member \"%s\" runs with hot_standby = off",
						tsw_member_name(config_name)),
				 errdetail("As a standby it runs no promoter (workers start once a standby accepts connections): it leaves etcd, is never a candidate, and is not re-pointed to a new leader."),
				 errhint("Set hot_standby = on (the default), as Patroni does.")));

	in_recovery = tsw_file_exists("standby.signal") || tsw_file_exists("recovery.signal");
	args[nargs++] = "--hosts";
	args[nargs++] = hosts;
	args[nargs++] = "--name";
	args[nargs++] = tsw_member_name(config_name);
	args[nargs++] = "--sysid";
	args[nargs++] = psprintf(UINT64_FORMAT, GetSystemIdentifier());
	args[nargs++] = "--recovery";
	args[nargs++] = in_recovery ? "on" : "off";
	args[nargs++] = "--datadir";
	args[nargs++] = DataDir;
	for (i = 0; i < lengthof(optional); i++)
	{
		char	   *v = tsw_declared_setting(config_name, optional[i]);

		if (v == NULL)
			continue;
		args[nargs++] = psprintf("--%s", optional[i]);
		args[nargs++] = v;
	}

	output = tsw_run_node_script("dist/workers/cluster/boot.js", args, nargs, false,
								 TSW_BOOT_TIMEOUT_MS, "asking etcd whether this member leads");
	if (output == NULL || output[0] == '\0')
		output = pstrdup(output == NULL ? "standby\tthe question to etcd failed (see the warning above)" :
						 "standby\tthe question to etcd got no answer");
	output[strcspn(output, "\n")] = '\0';
	answer = strchr(output, '\t') ? strchr(output, '\t') + 1 : output;

	if (strncmp(output, "primary\t", 8) == 0)
	{
		ereport(LOG,
				(errmsg("pg_tsworker: cluster member \"%s\" starts as it is: %s", args[3], answer),
				 errdetail("Writes are accepted once the promoter renews the leader lease.")));
		return;
	}
	if (strncmp(output, "error\t", 6) == 0)
		ereport(WARNING,
				(errmsg("pg_tsworker: cluster member \"%s\": %s", args[3], answer)));
	if (strncmp(output, "standby\t", 8) == 0 && strchr(answer, '\t') != NULL)
	{
		char	   *conninfo = strchr(answer, '\t');

		*conninfo++ = '\0';
		/* the same source as postgresql.auto.conf, which now holds it: ALTER SYSTEM and a reload still apply */
		SetConfigOption("primary_conninfo", conninfo, PGC_POSTMASTER, PGC_S_FILE);
	}
	if (in_recovery)
	{
		ereport(LOG,
				(errmsg("pg_tsworker: cluster member \"%s\" starts as a standby: %s", args[3], answer)));
		return;
	}

	/* not the leader: start in recovery, so that this server never accepts a write */
	{
		int			fd = open("standby.signal", O_WRONLY | O_CREAT | O_EXCL | PG_BINARY, pg_file_create_mode);

		if (fd < 0 || close(fd) != 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("pg_tsworker: could not create \"%s/standby.signal\": %m", DataDir),
					 errdetail("Cluster member \"%s\" does not hold the leader key (%s), so it must not start as a primary.",
							   args[3], answer)));
	}
	ereport(LOG,
			(errmsg("pg_tsworker: cluster member \"%s\" does not lead, so it starts as a standby (standby.signal written): %s",
					args[3], answer)));
}
