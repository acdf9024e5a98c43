/**
 * bench/failover/patroni.ts — Patroni 3.0.2 (Debian's `patroni`) with its
 * etcd v3 backend and one etcd (Debian's etcd-server): 1 primary + 2
 * replicas on 127.0.0.1, the same shape as the cluster mode of
 * pg_tsworker's promoter in cluster.ts.
 *
 * Three `patroni <config.yml>` daemons run as the server's OS user; the
 * first bootstraps the cluster (initdb by Patroni), the others clone it
 * (pg_basebackup by Patroni). Timing: ttl 5 s, loop_wait 1 s, retry_timeout
 * 2 s (the fastest that still fails over on 3.0.2: with ttl 3 it never
 * does), maximum_lag_on_failover 1 MB, use_pg_rewind; everything else is
 * Patroni's default. Ready = node1 leads and both replicas stream from it.
 *
 * `postmaster`: SIGKILL of the leader's postmaster; its Patroni stays and,
 * holding the leader key, restarts PostgreSQL in place. `host`: the
 * leader's Patroni with every process under it (the postmaster and its
 * children) frozen and killed at once; the leader key must expire.
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { getFreePort } from '../../test/harness/cluster';
import { Etcd } from '../../test/harness/etcd';
import {
  type Daemon,
  type FailoverSystem,
  type Log,
  type Nodes,
  type Scenario,
  PG_BIN,
  freezeAndKill,
  makeDir,
  makeTmpDir,
  postmasterPid,
  processTree,
  queryOnce,
  runAsServer,
  startDaemon,
  stopTree,
  tail,
  waitGone,
  waitUntil,
  writeFile,
} from './common';
import { PROBE_DDL } from './measure';

export const PATRONI_TIMING = { ttl: 5, loop_wait: 1, retry_timeout: 2 };
const PATRONI_BIN = '/usr/bin/patroni';

interface PatroniNode {
  name: string;
  dir: string;
  pgPort: number;
  apiPort: number;
  daemon?: Daemon;
}

export class Patroni implements FailoverSystem {
  readonly id = 'patroni';
  readonly label = 'Patroni 3.0.2';
  readonly settings = `etcd 3.4 (etcd3 API), ttl=${PATRONI_TIMING.ttl} s, loop_wait=${PATRONI_TIMING.loop_wait} s, retry_timeout=${PATRONI_TIMING.retry_timeout} s, 1 primary + 2 replicas, other settings default`;
  readonly scenarios: readonly Scenario[] = ['postmaster', 'host'];

  private etcd: Etcd | undefined;
  private nodes: PatroniNode[] = [];

  private config(n: PatroniNode): string {
    const t = PATRONI_TIMING;
    return `scope: bench
namespace: /service/
name: ${n.name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:${n.apiPort}
  connect_address: 127.0.0.1:${n.apiPort}
etcd3:
  hosts: 127.0.0.1:${this.etcd!.clientPort}
bootstrap:
  dcs:
    ttl: ${t.ttl}
    loop_wait: ${t.loop_wait}
    retry_timeout: ${t.retry_timeout}
    maximum_lag_on_failover: 1048576
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        wal_keep_size: 128MB
        wal_log_hints: "on"
  initdb:
    - encoding: UTF8
    - locale: C
    - auth: trust
  pg_hba:
    - local all all trust
    - host all all 127.0.0.1/32 trust
    - host replication all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:${n.pgPort}
  connect_address: 127.0.0.1:${n.pgPort}
  data_dir: ${path.join(n.dir, 'data')}
  bin_dir: ${PG_BIN}
  pgpass: ${path.join(n.dir, 'pgpass')}
  authentication:
    superuser:
      username: postgres
    replication:
      username: postgres
    rewind:
      username: postgres
  parameters:
    unix_socket_directories: '${n.dir}'
    fsync: "off"
`;
  }

  private conn(n: PatroniNode) {
    return { host: '127.0.0.1', port: n.pgPort, user: 'postgres', database: 'postgres' };
  }

  private async start(n: PatroniNode): Promise<void> {
    const conf = path.join(n.dir, 'patroni.yml');
    writeFile(conf, this.config(n), 0o600);
    n.daemon = startDaemon(PATRONI_BIN, [conf], { cwd: n.dir, logFile: path.join(n.dir, 'patroni.log') });
  }

  async setup(_log: Log): Promise<Nodes> {
    this.etcd = await Etcd.start('patroni');
    for (const name of ['node1', 'node2', 'node3']) {
      const dir = makeTmpDir(`patroni-${name}`);
      makeDir(path.join(dir, 'data'));
      this.nodes.push({ name, dir, pgPort: await getFreePort(), apiPort: await getFreePort() });
    }
    const [first, ...rest] = this.nodes;
    await this.start(first);
    await waitUntil('node1 to bootstrap and lead', async () => (await queryOnce<{ r: boolean }>(this.conn(first), 'SELECT pg_is_in_recovery() AS r'))[0].r === false, 120_000, 200);
    await queryOnce(this.conn(first), PROBE_DDL);
    for (const n of rest) await this.start(n);
    await waitUntil(
      'both replicas to stream from node1',
      async () => (await queryOnce(this.conn(first), `SELECT 1 FROM pg_stat_replication WHERE application_name IN ('node2', 'node3') AND state = 'streaming'`)).length === 2,
      120_000,
      200,
    );
    const lsn = (await queryOnce<{ l: string }>(this.conn(first), 'SELECT pg_current_wal_lsn()::text AS l'))[0].l;
    for (const n of rest) {
      await waitUntil('the replicas to replay the probe table', async () => (await queryOnce<{ ok: boolean }>(this.conn(n), `SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`))[0].ok, 30_000, 50);
    }
    await new Promise((r) => setTimeout(r, 2000)); // a few Patroni loops: every member is known in etcd
    return {
      standby: this.conn(rest[0]),
      members: this.nodes.map((n) => ({ name: n.name, conn: this.conn(n) })),
      describe: `etcd ${this.etcd.url}, node1 :${first.pgPort} (leader, patroni ${first.daemon?.pid}), node2 :${rest[0].pgPort}, node3 :${rest[1].pgPort}`,
    };
  }

  async killPrimary(scenario: Scenario = 'host'): Promise<number> {
    const first = this.nodes[0];
    const pm = postmasterPid(path.join(first.dir, 'data'));
    if (pm === undefined || !first.daemon) throw new Error('node1 is not running');
    if (scenario === 'postmaster') {
      const t0 = performance.now();
      process.kill(pm, 'SIGKILL');
      await waitGone([pm]);
      return t0;
    }
    const { t0, pids } = freezeAndKill([first.daemon.pid, pm]);
    await waitGone(pids);
    return t0;
  }

  /** Planned switchover with `patronictl switchover --force` (bench/switchover); resolves when patronictl exits. */
  async switchover(leader: string, candidate: string): Promise<string> {
    const conf = path.join(this.nodes[0].dir, 'patroni.yml');
    return runAsServer('/usr/bin/patronictl', ['-c', conf, 'switchover', '--leader', leader, '--candidate', candidate, '--force'], { cwd: this.nodes[0].dir, timeoutMs: 120_000 });
  }

  /** Nothing to do after a switchover: Patroni restarts the old leader as a replica itself. */
  async afterSwitchover(_old: string): Promise<void> {}

  async teardown(): Promise<void> {
    const nodes = this.nodes;
    this.nodes = [];
    for (const n of nodes) {
      const pm = postmasterPid(path.join(n.dir, 'data'));
      await stopTree([...(n.daemon ? [n.daemon.pid] : []), ...(pm ? processTree([pm]) : [])], 15_000).catch(() => undefined);
    }
    await this.etcd?.cleanup().catch(() => undefined);
    this.etcd = undefined;
    if (!process.env.PG_TSWORKER_KEEP_TMP) {
      const fs = await import('node:fs');
      for (const n of nodes) fs.rmSync(n.dir, { recursive: true, force: true });
    }
  }

  async diagnostics(): Promise<string> {
    return this.nodes.map((n) => tail(path.join(n.dir, 'patroni.log'), 25)).join('\n');
  }
}
