/**
 * Cluster mode's question at server start, asked by the postmaster
 * (native/shim/cluster_boot.c) through a pg_tsworker_node child before the
 * startup process runs: may this member start as it is, or must it start
 * as a standby?
 *
 *   pg_tsworker_node boot.js --hosts H --name N --sysid ID --recovery on|off
 *                            [--scope S] [--namespace P] [--retry_timeout MS] [--citus_group G]
 *
 * Prints one line, tab-separated: `primary <why>` when this server is not
 * in recovery and the leader key holds its name (it still writes only
 * once its promoter holds a lease of its own), or it initializes a new
 * cluster with this data directory (never a server in recovery),
 * `standby <why>` otherwise (another member leads, none does, etcd did not
 * answer), or `error <why>` when this data directory is not the cluster's.
 * Never exits with an error: any failure is a `standby` answer.
 */
import { Dcs } from './dcs';
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
export async function decide(argv: string[]): Promise<[kind: 'primary' | 'standby' | 'error', why: string]> {
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
  const timeout = Math.max(millis(arg(argv, 'retry_timeout'), 750), 1000);
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
    if (view.leader) return ['standby', `member "${view.leader.name}" leads`];
    return ['standby', 'no member leads: the members will elect one'];
  } catch (err) {
    return ['standby', `etcd did not answer (${(err as Error).message})`];
  } finally {
    dcs.close();
  }
}

if (require.main === module) {
  decide(process.argv.slice(2))
    .then(([kind, why]) => {
      process.stdout.write(`${kind}\t${why.replace(/[\t\r\n]+/g, ' ')}\n`);
      process.exit(0);
    })
    .catch((err: Error) => {
      process.stdout.write(`standby\t${err.message.replace(/[\t\r\n]+/g, ' ')}\n`);
      process.exit(0);
    });
}
