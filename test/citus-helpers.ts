/**
 * Helpers of the Citus tests and benchmark (test/citus.test.ts,
 * bench/citus): whether Citus is installed in the PostgreSQL under test, a
 * formation of cluster-mode groups (coordinator group 0, worker groups 1,
 * 2, ...; each a primary and standbys) on 127.0.0.1 with one etcd, and a
 * writer of distributed rows through the coordinator that keeps every
 * acknowledged write.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import pg from 'pg';

import { Cluster, PG_BIN, getFreePort, pidExists, waitFor } from './harness/cluster';
import type { Etcd } from './harness/etcd';
import { PG_CONFIG, pgConfigValue } from './harness/pg-config';

/** null when Citus can run here, else why not (the reason a skipped test prints). */
export function citusMissing(): string | null {
  let share: string;
  try {
    share = pgConfigValue('--sharedir');
  } catch (err) {
    return `cannot run ${PG_CONFIG} --sharedir: ${(err as Error).message}`;
  }
  const control = path.join(share, 'extension', 'citus.control');
  if (!fs.existsSync(control)) return `Citus is not installed in the PostgreSQL under test (no ${control}); see docs/citus.md to build it`;
  return null;
}

/** The live children of `pid` (Linux /proc): a postmaster's processes, to freeze a whole server. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export interface FMember {
  name: string;
  group: number;
  c: Cluster;
  apiPort: number;
}

/** A Citus formation: one etcd, groups of members, the scope `scope`. */
export class Formation {
  readonly members: FMember[] = [];

  constructor(
    readonly etcd: Etcd,
    readonly scope: string,
    private readonly extra: Record<string, string | number> = {},
  ) {}

  private async configure(c: Cluster, name: string, group: number): Promise<FMember> {
    const apiPort = await getFreePort();
    c.appendConf({
      shared_preload_libraries: 'citus,pg_tsworker',
      'tsworker.workers': 'promoter',
      'tsworker_promoter.etcd_hosts': this.etcd.url,
      'tsworker_promoter.scope': this.scope,
      'tsworker_promoter.name': name,
      'tsworker_promoter.citus_group': group,
      'tsworker_promoter.restapi_listen': `127.0.0.1:${apiPort}`,
      'tsworker_promoter.conninfo': `host=127.0.0.1 port=${c.port} user=postgres`,
      wal_log_hints: 'on',
      wal_receiver_timeout: '2s',
      wal_sender_timeout: '2s',
      wal_retrieve_retry_interval: '200ms',
      ...this.extra,
    });
    const m = { name, group, c, apiPort };
    this.members.push(m);
    return m;
  }

  /** Group `group`: primary `names[0]` (it leads, creates the citus extension), standbys of it for the other names. */
  async addGroup(group: number, names: string[]): Promise<FMember[]> {
    const out: FMember[] = [];
    const p = await Cluster.create(names[0], { allowStreaming: true, start: false });
    out.push(await this.configure(p, names[0], group));
    await p.start();
    await p.pollQueryUntil(`SELECT current_setting('tsworker.fenced')`, 'off', { timeoutMs: 60_000 });
    await p.query('CREATE EXTENSION IF NOT EXISTS pg_tsworker');
    await p.pollQueryUntil(`SELECT count(*) FROM pg_extension WHERE extname = 'citus'`, '1', { timeoutMs: 60_000, database: 'citus' });
    for (const n of names.slice(1)) {
      const s = await Cluster.createStandby(p, n, { start: false });
      out.push(await this.configure(s, n, group));
      await s.start();
    }
    return out;
  }

  byName(n: string): FMember {
    const m = this.members.find((x) => x.name === n);
    if (!m) throw new Error(`no member ${n}`);
    return m;
  }

  /** The member of `group` that accepts writes, once exactly one does. */
  async leader(group: number, timeoutMs = 60_000): Promise<FMember> {
    return waitFor(
      async () => {
        const w: FMember[] = [];
        for (const m of this.members.filter((x) => x.group === group && x.c.isRunning())) {
          const r = await m.c.queryText(`SELECT NOT pg_is_in_recovery() AND current_setting('tsworker.fenced') = 'off'`).catch(() => 'f');
          if (r === 't') w.push(m);
        }
        if (w.length > 1) throw new Error(`two writable members in group ${group}: ${w.map((m) => m.name).join(', ')}`);
        return w[0];
      },
      { timeoutMs, intervalMs: 50, what: `a writable leader of group ${group}` },
    );
  }

  /** pg_dist_node's primary rows on coordinator member `coord`, as group → "host:port". */
  async distNodes(coord: FMember): Promise<Record<number, string>> {
    const rows = await coord.c.query<{ groupid: number; nodename: string; nodeport: number }>(
      `SELECT groupid, nodename, nodeport FROM pg_dist_node WHERE noderole = 'primary' ORDER BY groupid`,
      [],
      { database: 'citus' },
    );
    return Object.fromEntries(rows.map((r) => [r.groupid, `${r.nodename}:${r.nodeport}`]));
  }

  /** Wait until pg_dist_node on `coord` names `m` as its group's primary. */
  async pointsAt(coord: FMember, m: FMember, timeoutMs = 60_000): Promise<void> {
    await coord.c.pollQueryUntil(
      `SELECT count(*) FROM pg_dist_node WHERE groupid = ${m.group} AND noderole = 'primary' AND nodename = '127.0.0.1' AND nodeport = ${m.c.port}`,
      '1',
      { timeoutMs, database: 'citus', intervalMs: 50 },
    );
  }

  /** `pg_tsworker_ctl rejoin` then start, as a service manager would restart a stopped old leader. */
  async rejoinAndStart(m: FMember): Promise<string> {
    // reaped too: a SIGKILLed postmaster not yet reaped still holds postmaster.pid for PostgreSQL's own
    // check (kill(pid, 0)), which rejoin's crash recovery makes; a service manager reaps it before restarting
    const old = m.c.postmasterPid();
    await waitFor(() => (!m.c.isRunning() && (old === undefined || !pidExists(old))) || undefined, { timeoutMs: 30_000, what: `${m.name} to stop and be reaped` });
    const out = execFileSync('runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'pg_tsworker_ctl'), 'rejoin', '-D', m.c.dataDir], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    const off = m.c.logOffset();
    await m.c.start();
    // its promoter saw it stream (a standby whose promoter starts after its primary died cannot tell its timeline)
    await m.c.waitForLog(/tsworker "promoter": streaming: /, off, 60_000);
    return out.trim();
  }

  async cleanup(): Promise<void> {
    for (const m of this.members) await m.c.cleanup().catch(() => undefined);
  }
}

export interface DistAck {
  k: number;
  sent: number;
  acked: number;
}

/**
 * Clients of the coordinator (whichever member of group 0 accepts writes)
 * inserting one distributed row each every `everyMs`, with keys unique to
 * the run; every acknowledged key is kept.
 */
export class DistWriters {
  readonly acks: DistAck[] = [];
  readonly errors: string[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];
  private next: number;

  constructor(
    private readonly coordinator: () => FMember,
    clients: number,
    start: number,
    private readonly everyMs = 10,
  ) {
    this.next = start;
    for (let i = 0; i < clients; i++) this.loops.push(this.loop());
  }

  private async loop(): Promise<void> {
    let client: pg.Client | undefined;
    let port = 0;
    while (!this.stopped) {
      const k = this.next++;
      const sent = Date.now();
      try {
        const coord = this.coordinator();
        if (client && port !== coord.c.port) {
          client.end().catch(() => undefined);
          client = undefined;
        }
        if (!client) {
          port = coord.c.port;
          client = new pg.Client({ ...coord.c.clientConfig({ database: 'citus' }), connectionTimeoutMillis: 2000 });
          client.on('error', () => undefined);
          await client.connect();
        }
        await client.query('INSERT INTO dist(k, v) VALUES ($1, $2)', [k, 'w']);
        this.acks.push({ k, sent, acked: Date.now() });
      } catch (e) {
        if (this.errors.length < 1000) this.errors.push(`${new Date().toISOString()} ${(e as Error).message}`);
        client?.end().catch(() => undefined);
        client = undefined;
      }
      await new Promise((r) => setTimeout(r, this.everyMs));
    }
    client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /**
   * Once writes reach the new primary after a switchover (`switchedAt`):
   * stop, and return the acknowledged keys and those missing through `coord`.
   */
  async finish(coord: FMember, switchedAt: number): Promise<{ acked: number[]; lost: number[] }> {
    await waitFor(() => this.acks.some((a) => a.sent > switchedAt), { timeoutMs: 30_000, what: 'a write after the switchover' });
    await new Promise((r) => setTimeout(r, 300));
    await this.stop();
    const acked = this.acks.map((a) => a.k);
    const rows = await coord.c.query<{ k: string }>('SELECT k FROM dist WHERE k = ANY($1::bigint[])', [acked], { database: 'citus' });
    const there = new Set(rows.map((r) => Number(r.k)));
    return { acked, lost: acked.filter((k) => !there.has(k)) };
  }

  /** The longest time without an acknowledged write between `from` and `until` (ms). */
  longestGap(from: number, until: number): number {
    const times = this.acks.map((a) => a.acked).filter((t) => t >= from && t <= until).sort((a, b) => a - b);
    let worst = 0;
    let prev = from;
    for (const t of times) {
      worst = Math.max(worst, t - prev);
      prev = t;
    }
    return Math.max(worst, until - prev);
  }
}

/** A distributed write that touches every shard (32 keys), then a distributed read: resolves with the time it succeeded. */
export async function distWriteUntilOk(coord: FMember, base: number, timeoutMs = 60_000): Promise<number> {
  return waitFor(
    async () => {
      const c = new pg.Client({ ...coord.c.clientConfig({ database: 'citus' }), connectionTimeoutMillis: 1000, query_timeout: 3000 });
      c.on('error', () => undefined);
      try {
        await c.connect();
        await c.query(`INSERT INTO dist(k, v) SELECT g, 'probe' FROM generate_series($1::bigint, $1::bigint + 31) g`, [base]);
        return Date.now();
      } catch {
        return undefined;
      } finally {
        c.end().catch(() => undefined);
      }
    },
    { timeoutMs, intervalMs: 20, what: 'a distributed write through the coordinator' },
  );
}
