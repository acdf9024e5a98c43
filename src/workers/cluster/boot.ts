/**
 * Cluster mode's question at server start, asked by the postmaster
 * (native/shim/cluster_boot.c) through a pg_tsworker_node child before the
 * startup process runs: may this member start as it is, or must it start
 * as a standby?
 *
 *   pg_tsworker_node boot.js --hosts H --name N --sysid ID --recovery on|off
 *                            [--datadir D] [--scope S] [--namespace P] [--retry_timeout MS] [--citus_group G]
 *
 * Prints one line, tab-separated: `primary <why>` when this server is not
 * in recovery and the leader key holds its name (it still writes only
 * once its promoter holds a lease of its own), or it initializes a new
 * cluster with this data directory (never a server in recovery),
 * `standby <why> [<primary_conninfo>]` otherwise (another member leads,
 * none does, etcd did not answer), or `error <why>` when this data
 * directory is not the cluster's. Never exits with an error: any failure
 * is a `standby` answer.
 *
 * When another member leads, a standby streams from it from the start:
 * with `--datadir`, primary_conninfo in postgresql.auto.conf is set to the
 * leader's (as the promoter would set it) when it names anything else, and
 * printed as the third field for the postmaster to apply. A server rewound
 * by hand keeps the postgresql.auto.conf it had (its primary_conninfo may
 * name a member that is gone), and until it is consistent no promoter runs
 * to re-point it.
 */
import { autoPrimaryConninfo, setPrimaryConninfo } from './auto-conf';
import { Dcs } from './dcs';
import { followConninfo } from './follow';
import { clusterPrefix, parseHosts } from './settings';

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** "750", "750ms", "1s" in milliseconds. */
function millis(text: string | undefined, dflt: number): number {
  const m = /^\s*(\d+)\s*(ms|s|min)?\s*$/.exec(text ?? '');
  if (!m) return dflt;
  return Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'min' ? 60_000 : 1);
}

/** The answer for these arguments (exported for tests of the rules). */
export async function decide(argv: string[]): Promise<[kind: 'primary' | 'standby' | 'error', why: string, primaryConninfo?: string]> {
  const scope = arg(argv, 'scope') ?? '';
  const name = arg(argv, 'name') ?? '';
  const sysid = arg(argv, 'sysid') ?? '';
  const recovery = arg(argv, 'recovery') === 'on';
  if (!scope) return ['error', 'tsworker_promoter.scope is empty'];
  let hosts: string[];
  try {
    hosts = parseHosts(arg(argv, 'hosts') ?? '');
  } catch (err) {
    return ['error', `tsworker_promoter.etcd_hosts: ${(err as Error).message}`];
  }
  if (hosts.length === 0) return ['error', 'tsworker_promoter.etcd_hosts names no etcd endpoint'];
  // a new process knows nothing of the endpoints yet: with a silent one among them (half of this each,
  // endpoints.ts), the live one still needs time for a first connection on a loaded machine
  const timeout = Math.max(4 * millis(arg(argv, 'retry_timeout'), 750), 3000);
  const dcs = new Dcs(hosts, clusterPrefix(arg(argv, 'namespace') ?? '/service/', scope, Number(arg(argv, 'citus_group') ?? -1)), timeout);
  try {
    let view = await dcs.read();
    if (view.initialize === null && !recovery) {
      if (await dcs.initialize(sysid)) return ['primary', `this member initialized cluster "${scope}" in etcd with system identifier ${sysid}`];
      view = await dcs.read();
    }
    if (view.initialize === null) {
      return ['standby', `cluster "${scope}" is not initialized in etcd yet, and only a server that is not in recovery may initialize it (check tsworker_promoter.scope: a standby waits for its primary to initialize the scope)`];
    }
    if (view.initialize !== sysid) {
      return ['error', `this data directory (system identifier ${sysid}) is not cluster "${scope}"'s (${view.initialize})`];
    }
    if (view.leader?.name === name) {
      // the postmaster holds no lease, so it cannot tell this server's previous run from another
      // server with the same name: a standby stays one, and only a lease of its own makes it lead
      return recovery
        ? ['standby', `the leader key holds this member's name "${name}" under a lease this server did not create (another process with the same tsworker_promoter.name, or this server's previous run until its lease expires): it stays a standby`]
        : ['primary', `the leader key holds this member's name "${name}" (this server led before it stopped): it starts fenced and writes only under a leader lease of its own`];
    }
    if (view.leader) {
      const leader = view.leader.name;
      const conninfo = view.members.get(leader)?.conninfo;
      const dataDir = arg(argv, 'datadir');
      if (!conninfo || !dataDir) return ['standby', `member "${leader}" leads`];
      const want = followConninfo(conninfo, name);
      if (autoPrimaryConninfo(dataDir) === want) return ['standby', `member "${leader}" leads`];
      setPrimaryConninfo(dataDir, want);
      return ['standby', `member "${leader}" leads; primary_conninfo set to stream from it (postgresql.auto.conf)`, want];
    }
    if (view.config?.pause === true) {
      return ['standby', `no member leads, and the cluster is paused (maintenance mode, since ${view.config.paused_at ?? 'an unknown time'} by ${view.config.paused_by ? `member "${view.config.paused_by}"` : 'an unknown member'}): no member is elected until tsworker.resume() (or pg_tsworker_ctl resume), or tsworker.failover() names one`];
    }
    return ['standby', 'no member leads: the members will elect one'];
  } catch (err) {
    return ['standby', `etcd did not answer (${(err as Error).message})`];
  } finally {
    dcs.close();
  }
}

if (require.main === module) {
  decide(process.argv.slice(2))
    .then(([kind, why, conninfo]) => {
      const field = (text: string) => text.replace(/[\t\r\n]+/g, ' ');
      process.stdout.write(`${kind}\t${field(why)}${conninfo ? `\t${field(conninfo)}` : ''}\n`);
      process.exit(0);
    })
    .catch((err: Error) => {
      process.stdout.write(`standby\t${err.message.replace(/[\t\r\n]+/g, ' ')}\n`);
      process.exit(0);
    });
}
