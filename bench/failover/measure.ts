/**
 * bench/failover/measure.ts — the client side of a trial: from t0 (the
 * primary's SIGKILL) try an autocommit INSERT on the standby every ~20 ms
 * until one commits, and report the time from t0 to that commit.
 *
 * One client, as an application would be: it keeps its session while the
 * session works (a read-only standby answers "cannot execute INSERT in a
 * read-only transaction" at once, and a promotion does not end sessions),
 * and reconnects (connect timeout 1 s) when the session is lost. An INSERT
 * that waits (e.g. for a synchronous standby that is gone) is waited for:
 * it counts when it returns, committed.
 */
import { performance } from 'node:perf_hooks';

import pg from 'pg';

import type { Cluster } from '../../test/harness/cluster';
import { sleep, waitUntil } from './common';

export const ATTEMPT_INTERVAL_MS = 20;
export const PROBE_TABLE = 'failover_probe';
export const PROBE_DDL = `CREATE TABLE IF NOT EXISTS ${PROBE_TABLE}(id bigserial PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())`;

/**
 * Right before a kill: create the probe table on the primary and wait until
 * the standby has replayed it, so that replication is known to be healthy.
 */
export async function probeReplication(primary: Cluster, standby: Cluster): Promise<void> {
  await primary.query(PROBE_DDL);
  const lsn = (await primary.query<{ l: string }>('SELECT pg_current_wal_lsn()::text AS l'))[0].l;
  await waitUntil(
    'the standby to replay the probe table',
    async () => (await standby.query(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn AS ok`))[0].ok === true,
    30_000,
    50,
  );
}

export interface WriteResult {
  /** ms from t0 to the first committed INSERT's reply. */
  ms: number;
  attempts: number;
  /** Failed attempts by kind: 'read-only', 'connect', other SQLSTATEs/messages. */
  failures: Record<string, number>;
}

function kindOf(e: unknown): string {
  const err = e as { code?: string; message?: string };
  if (err.code === '25006') return 'read-only';
  if (err.code && /^[0-9A-Z]{5}$/.test(err.code)) return `sqlstate ${err.code}`;
  return 'connect';
}

export async function timeToFirstWrite(
  conn: pg.ClientConfig,
  t0: number,
  timeoutMs: number,
): Promise<WriteResult> {
  const deadline = t0 + timeoutMs;
  const failures: Record<string, number> = {};
  let attempts = 0;
  let client: pg.Client | undefined;
  let lastError = 'none';
  const drop = () => {
    const c = client;
    client = undefined;
    if (c) void c.end().catch(() => undefined);
  };
  try {
    while (performance.now() < deadline) {
      const started = performance.now();
      attempts++;
      try {
        const remaining = Math.max(1, deadline - started);
        const attempt = (async () => {
          if (!client) {
            const c = new pg.Client({ ...conn, connectionTimeoutMillis: Math.min(1000, remaining), application_name: 'failover_bench' });
            c.on('error', () => undefined);
            client = c;
            await c.connect();
          }
          await client.query(`INSERT INTO ${PROBE_TABLE} DEFAULT VALUES`);
        })();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          attempt,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error('trial timeout')), remaining);
          }),
        ]).finally(() => clearTimeout(timer));
        return { ms: performance.now() - t0, attempts, failures };
      } catch (e) {
        const k = kindOf(e);
        failures[k] = (failures[k] ?? 0) + 1;
        lastError = (e as Error).message;
        // Keep a session that answered with an SQL error; reconnect otherwise.
        if (k === 'connect') drop();
      }
      const wait = started + ATTEMPT_INTERVAL_MS - performance.now();
      if (wait > 0) await sleep(wait);
    }
  } finally {
    drop();
  }
  throw new Error(
    `no INSERT committed on the standby within ${timeoutMs / 1000} s of the kill ` +
      `(${attempts} attempts, ${JSON.stringify(failures)}, last error: ${lastError})`,
  );
}

/** One acknowledged INSERT: on which member, when sent and when acknowledged (performance.now()). */
interface Ack {
  member: string;
  sent: number;
  acked: number;
  /** When the session that committed it was opened. */
  session: number;
}

export interface AnyWriteResult extends WriteResult {
  /** The member whose commit came first after t0. */
  member: string;
  /**
   * Longest time in which two members both accepted writes: for each member
   * the window from the first INSERT sent to the last acknowledged (from
   * 2 s before t0 on), intersected pairwise. 0 when the windows do not
   * overlap.
   */
  overlapMs: number;
}

/**
 * One client per member, each trying an autocommit INSERT every
 * ATTEMPT_INTERVAL_MS (keeping its session while it answers, reconnecting
 * with a 1 s connect timeout when it does not), from before the kill until
 * stopped: as an application whose pooler routes writes to whichever member
 * takes them.
 */
export class MemberWriters {
  private readonly acks: Ack[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];
  private attempts = 0;
  private readonly failures: Record<string, number> = {};

  constructor(members: { name: string; conn: pg.ClientConfig }[]) {
    this.loops = members.map((m) => this.loop(m.name, m.conn));
  }

  private async loop(member: string, conn: pg.ClientConfig): Promise<void> {
    let client: pg.Client | undefined;
    let session = 0;
    while (!this.stopped) {
      const sent = performance.now();
      let connecting = false;
      try {
        if (!client) {
          const c = new pg.Client({ ...conn, connectionTimeoutMillis: 1000, application_name: 'failover_bench' });
          c.on('error', () => undefined);
          client = c;
          session = performance.now();
          connecting = true;
          await c.connect();
          connecting = false;
        }
        await client.query(`INSERT INTO ${PROBE_TABLE} DEFAULT VALUES`);
        this.acks.push({ member, sent, acked: performance.now(), session });
      } catch (e) {
        const k = kindOf(e);
        this.failures[k] = (this.failures[k] ?? 0) + 1;
        // a session that answered with an SQL error is kept; one that did not open (57P03 while the
        // server starts, a refused connection) is dropped: a query on it would wait forever
        if (k === 'connect' || connecting) {
          const c = client;
          client = undefined;
          if (c) void c.end().catch(() => undefined);
        }
      }
      this.attempts++;
      const wait = sent + ATTEMPT_INTERVAL_MS - performance.now();
      if (wait > 0) await sleep(wait);
    }
    if (client) await client.end().catch(() => undefined);
  }

  /**
   * Wait for the first commit sent after t0 on any member, then 500 ms more,
   * stop, and measure. On the killed member only a session opened after t0
   * counts: a backend of a SIGKILLed postmaster can still commit for a few
   * milliseconds before it notices (the cluster mode's fence refuses that),
   * which is not the service coming back.
   */
  async firstAfter(t0: number, timeoutMs: number, killed: string): Promise<AnyWriteResult> {
    const deadline = t0 + timeoutMs;
    let first: Ack | undefined;
    while (!first && performance.now() < deadline) {
      first = this.acks.find((a) => a.sent >= t0 && (a.member !== killed || a.session >= t0));
      if (!first) await sleep(5);
    }
    if (first) await sleep(500);
    await this.stop();
    if (!first) {
      throw new Error(`no INSERT committed on any member within ${timeoutMs / 1000} s of the kill (${this.attempts} attempts, ${JSON.stringify(this.failures)})`);
    }
    return { ms: first.acked - t0, attempts: this.attempts, failures: this.failures, member: first.member, overlapMs: this.overlap(t0 - 2000) };
  }

  /**
   * A planned switchover started at t0 from member `from` to member `to`:
   * once `to` has committed an INSERT sent after t0, the write pause is
   * from the last INSERT `from` acknowledged to that first one on `to`.
   */
  async switchPause(t0: number, from: string, to: string, timeoutMs: number): Promise<{ pauseMs: number; overlapMs: number }> {
    const deadline = t0 + timeoutMs;
    let first: Ack | undefined;
    while (!first && performance.now() < deadline) {
      first = this.acks.find((a) => a.sent >= t0 && a.member === to);
      if (!first) await sleep(5);
    }
    if (!first) throw new Error(`no INSERT committed on ${to} within ${timeoutMs / 1000} s of the switchover`);
    const lastOld = Math.max(...this.acks.filter((a) => a.member === from && a.acked <= first!.acked).map((a) => a.acked));
    return { pauseMs: first.acked - lastOld, overlapMs: this.overlap(t0 - 2000) };
  }

  private overlap(from: number): number {
    const spans = new Map<string, { first: number; last: number }>();
    for (const a of this.acks) {
      if (a.sent < from) continue;
      const s = spans.get(a.member) ?? { first: a.sent, last: a.acked };
      s.first = Math.min(s.first, a.sent);
      s.last = Math.max(s.last, a.acked);
      spans.set(a.member, s);
    }
    const list = [...spans.values()];
    let worst = 0;
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        worst = Math.max(worst, Math.min(list[i].last, list[j].last) - Math.max(list[i].first, list[j].first));
      }
    }
    return worst;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}
