/**
 * The three-member cluster most cluster-mode test files start: members a,
 * b and c and etcd e in network namespaces (plus any other hosts asked
 * for), a leading and b and c streaming from it before the first test, all
 * removed after the last; and the settings each member gets.
 */
import { after, afterEach, before } from 'node:test';

import type { OperationLine } from '../src/workers/cluster/dcs-records';
import { MemberOps, startMembers, stepper, type Member } from './cluster-helpers';
import type { Cluster } from './harness/cluster';
import { Etcd } from './harness/etcd';
import { Network } from './harness/netns';

type Settings = Record<string, string>;

/** A cluster-mode member's settings in these tests (the promoter on etcd, short WAL timeouts), then `extra`. */
export function memberConf(net: Network, etcd: Etcd, scope: string, host: string, port: number, extra: Settings = {}): Settings {
  return {
    shared_preload_libraries: 'pg_tsworker',
    'tsworker.workers': 'promoter',
    'tsworker_promoter.etcd_hosts': etcd.url,
    'tsworker_promoter.scope': scope,
    'tsworker_promoter.name': host,
    'tsworker_promoter.restapi_listen': `${net.ip(host)}:8008`,
    'tsworker_promoter.conninfo': `host=${net.ip(host)} port=${port} user=postgres`,
    wal_log_hints: 'on',
    wal_receiver_timeout: '2s',
    wal_sender_timeout: '2s',
    wal_retrieve_retry_interval: '200ms',
    ...extra,
  };
}

export interface ClusterFixture {
  net(): Network;
  etcd(): Etcd;
  members: Member[];
  ops: MemberOps;
  /** The JSON value of this cluster's etcd key `name` (read with etcdctl from etcd's host); null when it is not there. */
  etcdValue<T>(name: string): Promise<T | null>;
  /** etcd's `operations` key of this cluster, oldest first. */
  operations(): Promise<OperationLine[]>;
}

/** Register before() and after() hooks for the three-member cluster of `scope`; call inside a describe block. */
export function clusterFixture(scope: string, extra: (host: string) => Settings = () => ({}), hosts: string[] = []): ClusterFixture {
  let net: Network;
  let etcd: Etcd;
  const members: Member[] = [];
  const ops = new MemberOps(members, () => net);
  before(async () => {
    net = await Network.create(['a', 'b', 'c', 'e', ...hosts]);
    etcd = await Etcd.start(scope, { netns: net.host('e') });
    members.push(...(await startMembers(net, (c, host) => c.appendConf(memberConf(net, etcd, scope, host, c.port, extra(host))))));
    for (const m of members.slice(1)) await ops.streamsFrom(m, members[0]);
  });
  // Each test ends with every member running and the cluster not paused. One that failed midway may
  // not: start what it left stopped (as its service manager would: rejoin, then start) and resume, so
  // that one failure is not every test after it. A no-op after a test that passed.
  const step = stepper(`fixture ${scope}`);
  afterEach(async () => {
    const down = members.filter((m) => !m.c.isRunning());
    if (down.length > 0) {
      const lead = await ops.leader().catch(() => null);
      step(`after the test: ${down.map((m) => m.c.name).join(', ')} stopped; leader ${lead?.c.name ?? 'none'}`);
      if (lead) for (const m of down) await ops.restartAsService(m, lead).catch((err: Error) => step(`${m.c.name} not restored: ${err.message}`));
    }
    const running = members.find((m) => m.c.isRunning());
    if (running && (await ops.status(running.c).catch(() => null))?.paused) await running.c.query('SELECT tsworker.resume()').catch(() => undefined);
  });
  after(async () => {
    for (const m of members) await m.c.cleanup().catch(() => undefined);
    await etcd?.cleanup();
    await net?.destroy();
  });
  const etcdValue = async <T>(name: string): Promise<T | null> => {
    const res = await net.exec('e', ['etcdctl', `--endpoints=${etcd.url}`, 'get', '--print-value-only', `/service/${scope}/${name}`]);
    return res.stdout.trim() ? (JSON.parse(res.stdout) as T) : null;
  };
  const operations = async (): Promise<OperationLine[]> => (await etcdValue<OperationLine[]>('operations')) ?? [];
  return { net: () => net, etcd: () => etcd, members, ops, etcdValue, operations };
}

/** The error `sql` fails with on `c` (throws when it succeeds). */
export async function sqlError(c: Cluster, sql: string, params: unknown[] = []): Promise<{ code: string; message: string; detail?: string; hint?: string }> {
  try {
    await c.query(sql, params);
  } catch (e) {
    return e as { code: string; message: string };
  }
  throw new Error(`${sql} did not fail`);
}
