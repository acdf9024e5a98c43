/**
 * bench/failover/cluster.ts — pg_tsworker's promoter in cluster mode
 * (src/workers/cluster/, docs/failover.md "Cluster mode"): 1 primary + 2
 * standbys and one etcd (Debian's etcd-server), all on 127.0.0.1.
 *
 * Members built with the test harness (test/harness/cluster.ts): the first
 * initializes the cluster in etcd and leads; the others are made with
 * pg_basebackup and follow it. Every member runs the promoter with
 *
 *   tsworker_promoter.etcd_hosts = 'http://127.0.0.1:<port>'
 *   tsworker_promoter.scope = 'bench', name = 'node1' | 'node2' | 'node3'
 *   tsworker_promoter.conninfo = 'host=127.0.0.1 port=<port> user=postgres'
 *
 * and every timing setting at its default (ttl 2 s, loop_wait 500 ms,
 * retry_timeout 750 ms). Ready = the first member is writable and both
 * standbys stream from it.
 *
 * `postmaster`: SIGKILL of the leader's postmaster; its promoter sees the
 * postmaster die and revokes its lease (the leader key goes with it).
 * `host`: the leader's postmaster and all its children frozen and killed at
 * once: nothing revokes anything, the lease must expire.
 */
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { Cluster } from '../../test/harness/cluster';
import { Etcd } from '../../test/harness/etcd';
import { type FailoverSystem, type Log, type Nodes, type Scenario, PG_BIN, freezeAndKill, queryOnce, runAsServer, tail, waitGone, waitUntil } from './common';
import { PROBE_DDL } from './measure';

export class TsCluster implements FailoverSystem {
  readonly id = 'cluster';
  readonly label = 'pg_tsworker cluster mode';
  readonly settings: string;
  readonly scenarios: readonly Scenario[] = ['postmaster', 'host'];

  private etcd: Etcd | undefined;
  private members: Cluster[] = [];

  constructor(private readonly extra: Record<string, string> = {}) {
    const set = Object.entries(extra).map(([k, v]) => `${k.replace('tsworker_promoter.', '')}=${v}`);
    this.settings = `etcd 3.4, 1 primary + 2 standbys, ${set.length ? set.join(', ') + ', other settings' : 'every setting'} default (ttl=2 s, loop_wait=500 ms, retry_timeout=750 ms)`;
  }

  private conf(name: string): Record<string, string> {
    return {
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': 'promoter',
      'tsworker_promoter.etcd_hosts': this.etcd!.url,
      'tsworker_promoter.scope': 'bench',
      'tsworker_promoter.name': name,
      'tsworker_promoter.restapi_listen': '',
      wal_log_hints: 'on',
      ...this.extra,
    };
  }

  async setup(_log: Log): Promise<Nodes> {
    this.etcd = await Etcd.start('bench');
    const first = await Cluster.create('cl-node1', { allowStreaming: true, start: false });
    this.members.push(first);
    first.appendConf({ ...this.conf('node1'), 'tsworker_promoter.conninfo': `host=127.0.0.1 port=${first.port} user=postgres` });
    await first.start();
    await first.pollQueryUntil(`SELECT current_setting('tsworker.fenced')`, 'off', { timeoutMs: 60_000 });
    await first.query(`CREATE EXTENSION pg_tsworker; ${PROBE_DDL}`);
    for (const name of ['node2', 'node3']) {
      const s = await Cluster.createStandby(first, `cl-${name}`, { start: false });
      this.members.push(s);
      s.appendConf({ ...this.conf(name), 'tsworker_promoter.conninfo': `host=127.0.0.1 port=${s.port} user=postgres` });
      await s.start();
    }
    await waitUntil(
      'both standbys to stream from node1',
      async () => (await first.query(`SELECT 1 FROM pg_stat_replication WHERE application_name IN ('node2', 'node3') AND state = 'streaming'`)).length === 2,
      60_000,
    );
    const lsn = (await first.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l'))[0].l;
    for (const s of this.members.slice(1)) {
      await waitUntil('the standbys to replay the probe table', async () => (await s.query(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`))[0].ok === true, 30_000, 50);
    }
    await new Promise((r) => setTimeout(r, 1000)); // every member has published its key
    const conn = (c: Cluster) => ({ host: '127.0.0.1', port: c.port, user: 'postgres', database: 'postgres' });
    return {
      standby: conn(this.members[1]),
      members: this.members.map((c, i) => ({ name: `node${i + 1}`, conn: conn(c) })),
      describe: `etcd ${this.etcd.url}, node1 :${first.port} (leader, postmaster ${first.postmasterPid()}), node2 :${this.members[1].port}, node3 :${this.members[2].port}`,
    };
  }

  async killPrimary(scenario: Scenario = 'host'): Promise<number> {
    const pm = this.members[0]?.postmasterPid();
    if (pm === undefined) throw new Error('node1 has no postmaster.pid');
    if (scenario === 'postmaster') {
      const t0 = performance.now();
      process.kill(pm, 'SIGKILL');
      await waitGone([pm]);
      return t0;
    }
    const { t0, pids } = freezeAndKill([pm]);
    await waitGone(pids);
    return t0;
  }

  /**
   * Planned switchover with `SELECT tsworker.switchover(candidate)`, asked
   * on the candidate (bench/switchover): it returns once the candidate
   * accepts writes (asked on the leader, it returns at the handover, since
   * the leader shuts down).
   */
  async switchover(_leader: string, candidate: string): Promise<string> {
    const c = this.member(candidate);
    const r = await queryOnce<{ r: unknown }>({ host: '127.0.0.1', port: c.port, user: 'postgres', database: 'postgres' }, 'SELECT tsworker.switchover($1) AS r', [candidate]);
    return JSON.stringify(r[0].r);
  }

  /**
   * After a switchover the old leader shut itself down: do what the
   * systemd unit of docs/failover.md does (ExecStartPre= pg_tsworker_ctl
   * rejoin, then start it); resolves once it runs again.
   */
  async afterSwitchover(old: string): Promise<void> {
    const c = this.member(old);
    await waitUntil(`${old} to shut down`, async () => !c.isRunning(), 60_000, 20);
    await runAsServer(path.join(PG_BIN, 'pg_tsworker_ctl'), ['rejoin', '-D', c.dataDir], { cwd: c.baseDir, timeoutMs: 120_000 });
    await c.start();
  }

  private member(name: string): Cluster {
    const c = this.members[Number(name.replace('node', '')) - 1];
    if (!c) throw new Error(`no member ${name}`);
    return c;
  }

  /** The new leader's account of the trial: its election and promotion, from its log. */
  async explain(): Promise<string> {
    const out: string[] = [];
    for (const c of this.members.slice(1)) {
      for (const line of c.readLog().split('\n')) {
        const m = /^\S+ (\S+) .*tsworker "promoter": (leader_expired|leader_acquired|promoted): (.*)$/.exec(line);
        if (m) out.push(`${c.name} ${m[2]} at ${m[1]} ${m[3].slice(0, 120)}`);
      }
    }
    return out.join('; ');
  }

  async teardown(): Promise<void> {
    const members = this.members;
    this.members = [];
    for (const c of members.reverse()) await c.cleanup().catch(() => undefined);
    await this.etcd?.cleanup().catch(() => undefined);
    this.etcd = undefined;
  }

  async diagnostics(): Promise<string> {
    const out: string[] = [];
    for (const c of this.members) {
      out.push(tail(c.logFile, 20));
      try {
        const r = await queryOnce({ host: '127.0.0.1', port: c.port, user: 'postgres', database: 'postgres' }, `SELECT pg_is_in_recovery() AS recovery, (SELECT status FROM tsworker.workers WHERE name = 'promoter') AS status`);
        out.push(`${c.name}: ${JSON.stringify(r)}`);
      } catch (e) {
        out.push(`${c.name} not reachable: ${(e as Error).message}`);
      }
    }
    if (this.etcd) out.push(tail(this.etcd.logFile, 10));
    return out.join('\n');
  }
}
