/**
 * Helpers of the cluster-mode tests (cluster.test.ts, switchover.test.ts):
 * members in network namespaces, a writer loop against every member that
 * keeps each acknowledged write, and questions to the members (who leads,
 * who streams from whom, what the health endpoints answer).
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';

import pg from 'pg';

import { Cluster, PG_BIN, signalPid, waitFor } from './harness/cluster';
import { logLines } from './helpers';
import type { Network } from './harness/netns';

export interface Member {
  host: string;
  c: Cluster;
}

export interface Ack {
  member: string;
  sent: number;
  acked: number;
  id: number;
}

/**
 * One client per member writing every 10 ms; keeps every acknowledged write.
 * Stopped when the test `owner` ends, passed or failed, at the latest: a
 * failed assertion once left them writing through the rest of the file,
 * and the file's process waiting for them for ever.
 */
export class Writers {
  readonly acks: Ack[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[] = [];

  constructor(members: Member[], owner: { after(fn: () => Promise<void>): void }) {
    for (const m of members) this.loops.push(this.loop(m));
    owner.after(() => this.stop());
  }

  private async loop(m: Member): Promise<void> {
    let client: pg.Client | undefined;
    while (!this.stopped) {
      const sent = Date.now();
      let connecting = false;
      try {
        if (!client) {
          // bounded: a write a fence holds waits out a switchover's deadline (at most 30 s in these tests);
          // one sent to a frozen or cut-off server would otherwise keep stop() waiting forever
          client = new pg.Client({ ...m.c.clientConfig(), connectionTimeoutMillis: 1000, query_timeout: 60_000 });
          client.on('error', () => undefined);
          connecting = true;
          await client.connect();
          connecting = false;
        }
        const r = await client.query<{ id: string }>('INSERT INTO probe(member) VALUES ($1) RETURNING id', [m.c.name]);
        this.acks.push({ member: m.c.name, sent, acked: Date.now(), id: Number(r.rows[0].id) });
      } catch (e) {
        // keep a session that answered with an SQL error; open a new one otherwise (also after an
        // SQL error at connect, such as 57P03 while the server starts: a query on it would wait forever)
        if (connecting || !/^[0-9A-Z]{5}$/.test(String((e as { code?: string }).code))) {
          client?.end().catch(() => undefined);
          client = undefined;
        }
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    client?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }

  /** Longest time in which two members both acknowledged writes sent from `from` to `until` (0: the windows do not overlap). */
  overlapMs(from: number, until = Infinity): number {
    const spans = new Map<string, { first: number; last: number }>();
    for (const a of this.acks.filter((x) => x.sent >= from && x.sent <= until)) {
      const s = spans.get(a.member) ?? { first: a.sent, last: a.acked };
      s.first = Math.min(s.first, a.sent);
      s.last = Math.max(s.last, a.acked);
      spans.set(a.member, s);
    }
    let worst = 0;
    const list = [...spans.values()];
    for (let i = 0; i < list.length; i++) {
      for (let j = i + 1; j < list.length; j++) {
        worst = Math.max(worst, Math.min(list[i].last, list[j].last) - Math.max(list[i].first, list[j].first));
      }
    }
    return worst;
  }
}

/** Progress on stderr, for a test that stalls. */
export function stepper(file: string): (msg: string) => void {
  return (msg) => process.stderr.write(`[${file} ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

/** Questions to the members of one test cluster. */
export class MemberOps {
  constructor(
    private readonly members: Member[],
    private readonly net: () => Network,
  ) {}

  /** The promoter's status on `c`. */
  async status(c: Cluster): Promise<any> {
    return (await c.query(`SELECT status FROM tsworker.workers WHERE name = 'promoter'`))[0]?.status;
  }

  /** The member that leads and accepts writes, once exactly one does. */
  async leader(timeoutMs = 30_000): Promise<Member> {
    return waitFor(
      async () => {
        const writable: Member[] = [];
        for (const m of this.members) {
          if (!m.c.isRunning()) continue;
          const r = await m.c.queryText(`SELECT NOT pg_is_in_recovery() AND current_setting('tsworker.fenced') = 'off'`).catch(() => 'f');
          if (r === 't') writable.push(m);
        }
        assert.ok(writable.length <= 1, `two writable members: ${writable.map((m) => m.c.name).join(', ')}`);
        return writable[0];
      },
      { timeoutMs, intervalMs: 50, what: 'a writable leader' },
    );
  }

  /** Wait until `m` streams from `lead` on lead's timeline. */
  async streamsFrom(m: Member, lead: Member, timeoutMs = 30_000): Promise<void> {
    const tl = (await lead.c.queryText('SELECT pg_walfile_name(pg_current_wal_lsn())')).slice(0, 8);
    try {
      await m.c.pollQueryUntil(
        `SELECT status = 'streaming' AND received_tli = ${parseInt(tl, 16)} AND sender_port = ${lead.c.port} FROM pg_stat_wal_receiver`,
        't',
        { timeoutMs },
      );
    } catch (err) {
      // what the member's promoter and server said: a CI run keeps no logs
      const said = m.c
        .readLog()
        .split('\n')
        .filter((l) => /tsworker "promoter"|FATAL|ERROR|timeline|WAL/.test(l))
        .slice(-12)
        .join('\n');
      (err as Error).message += `\n${m.c.name}'s last log lines:\n${said}`;
      throw err;
    }
  }

  /** Wait until `m` has received the WAL `lead` had written when called (streaming is not caught up). */
  async caughtUp(m: Member, lead: Member, timeoutMs = 60_000): Promise<void> {
    const at = await lead.c.queryText('SELECT pg_current_wal_flush_lsn()');
    await m.c.pollQueryUntil(`SELECT pg_last_wal_receive_lsn() >= '${at}'::pg_lsn`, 't', { timeoutMs });
  }

  /** The leader, and the other members once each streams from it and has caught up. */
  async standbysCaughtUp(): Promise<{ lead: Member; standbys: Member[] }> {
    const lead = await this.leader();
    const standbys = this.members.filter((m) => m !== lead);
    for (const m of standbys) {
      await this.streamsFrom(m, lead);
      await this.caughtUp(m, lead);
    }
    return { lead, standbys };
  }

  /** `pg_tsworker_ctl rejoin` as systemd's ExecStartPre= would run it (as postgres, in the member's namespace); what it printed. */
  async ctlRejoin(m: Member): Promise<string> {
    const r = await this.net().exec(m.host, ['runuser', '-u', 'postgres', '--', path.join(PG_BIN, 'pg_tsworker_ctl'), 'rejoin', '-D', m.c.dataDir], { timeoutMs: 120_000 });
    return r.stdout.trim();
  }

  /** What systemd does for a member that stopped (Restart=always): rejoin, then start; waits until it streams from `lead`. */
  async restartAsService(m: Member, lead: Member): Promise<string> {
    await waitFor(() => !m.c.isRunning(), { timeoutMs: 30_000, what: `${m.c.name} to stop` });
    const said = await this.ctlRejoin(m);
    await m.c.start();
    await this.streamsFrom(m, lead);
    return said;
  }

  /** HTTP status codes (and bodies) of `method path` on each member's health endpoints, asked from host h (as HAProxy would). */
  async healthFull(method: string, pathname: string): Promise<Record<string, { code: number; body: string }>> {
    const script = `
      const http = require('http');
      const targets = JSON.parse(process.argv[1]);
      Promise.all(targets.map((t) => new Promise((resolve) => {
        const req = http.request({ host: t.ip, port: 8008, path: t.path, method: t.method, timeout: 3000 }, (res) => {
          let body = ''; res.on('data', (d) => { body += d; }); res.on('end', () => resolve({ code: res.statusCode, body }));
        });
        req.on('error', () => resolve({ code: 0, body: '' }));
        req.on('timeout', () => { req.destroy(); resolve({ code: 0, body: '' }); });
        req.end();
      }))).then((codes) => process.stdout.write(JSON.stringify(codes)));`;
    const targets = this.members.map((m) => ({ ip: this.net().ip(m.host), path: pathname, method }));
    const res = await this.net().exec('h', [process.execPath, '-e', script, JSON.stringify(targets)], { env: { PATH: process.env.PATH } });
    const codes = JSON.parse(res.stdout) as { code: number; body: string }[];
    return Object.fromEntries(this.members.map((m, i) => [m.c.name, codes[i]]));
  }

  /** Wait until `m`'s promoter has published its member key again (GET /cluster lists it): a member unknown to etcd is refused as a candidate. */
  async registered(m: Member, timeoutMs = 30_000): Promise<void> {
    const listed = new RegExp(`"name":\\s*"${m.c.name}"`);
    await waitFor(
      async () => Object.values(await this.healthFull('GET', '/cluster')).some((r) => r.code === 200 && listed.test(r.body)) || undefined,
      { timeoutMs, what: `${m.c.name} listed in etcd (GET /cluster)` },
    );
  }

  /** HTTP status codes of `method path` on each member's health endpoints. */
  async health(method: string, pathname: string): Promise<Record<string, number>> {
    const full = await this.healthFull(method, pathname);
    return Object.fromEntries(Object.entries(full).map(([k, v]) => [k, v.code]));
  }
}

/**
 * Create member a (it initializes the cluster in etcd and leads; the
 * extension and the probe table are created there) and standbys b and c
 * of it, each in its namespace and configured by `configure` before it starts.
 */
export async function startMembers(net: Network, configure: (c: Cluster, host: string) => void | Promise<void>): Promise<Member[]> {
  const members: Member[] = [];
  const a = await Cluster.create('a', { allowStreaming: true, netns: net.host('a'), start: false });
  await configure(a, 'a');
  await a.start();
  members.push({ host: 'a', c: a });
  await a.pollQueryUntil(`SELECT current_setting('tsworker.fenced')`, 'off', { timeoutMs: 30_000 });
  await a.query('CREATE EXTENSION pg_tsworker; CREATE TABLE probe(id bigserial PRIMARY KEY, member text, at timestamptz DEFAULT clock_timestamp())');
  for (const host of ['b', 'c']) {
    const s = await Cluster.createStandby(a, host, { netns: net.host(host), start: false });
    await configure(s, host);
    await s.start();
    members.push({ host, c: s });
  }
  return members;
}

/**
 * Hold a switchover's fence until its deadline. `cand`'s WAL stream is
 * throttled to 5 Mbit/s (about 620 kB/s) while a session on `lead` writes
 * WAL (logical messages of 64 kB) whenever `cand` has received all but
 * 512 kB of it, until the fence ends that session: `cand` stays 0.5 MB
 * behind, within the default maximum_lag_on_failover of 1 MB however slow
 * the machine. Once the stream is seen to carry WAL under the throttle,
 * and `cand` is 200 kB behind, `start()` makes the call. `cand` confirms
 * WAL as it streams (a 128 kB message about every 0.2 s), so the leader's
 * checks before the fence pass, and whenever writes stop it is behind;
 * once the leader has fenced, `cand`'s WAL receiver is frozen (SIGSTOP). A shaped TCP stream can still
 * stall for a few seconds, and the leader then refuses the candidate before
 * writes stop (`refusedEarly`): the attempt is undone and made again, up to
 * 5 times. Throws, with each attempt's outcome and the throttle's `tc`
 * statistics, when no attempt got a fence or the throttled stream carried
 * nothing. Returns the call (`start()` must not reject) and the undo, for a
 * finally.
 */
export async function stallAtFence<T>(
  net: Network,
  lead: Member,
  cand: Member,
  start: () => Promise<T>,
  refusedEarly: (outcome: T) => boolean,
): Promise<{ call: Promise<T>; undo(): Promise<void> }> {
  await lead.c.query(`ALTER SYSTEM SET wal_sender_timeout = '60s'`);
  await lead.c.query('SELECT pg_reload_conf()');
  let frozen = 0;
  const undo = async (): Promise<void> => {
    if (frozen) signalPid(frozen, 'SIGCONT');
    frozen = 0;
    await net.unthrottle(cand.host);
  };
  const undoAll = async (): Promise<void> => {
    await undo();
    await lead.c.query('ALTER SYSTEM RESET wal_sender_timeout');
    await lead.c.query('SELECT pg_reload_conf()');
  };
  const lsn = async (client: pg.Client, sql: string) => BigInt((await client.query<{ x: string }>(`SELECT (${sql} - '0/0')::text AS x`)).rows[0].x);
  const outcomes: string[] = [];
  for (let attempt = 1; ; attempt++) {
    const receiver = await receiverPid(cand);
    await net.throttle(lead.host, lead.c.port, cand.host, 5000);
    // the pump: ended by the fence (its session is terminated), or stopped here
    const pumpSession = await lead.c.connect();
    const candSession = await cand.c.connect();
    const received = () => lsn(candSession, 'pg_last_wal_receive_lsn()');
    const behind = async () => (await lsn(pumpSession, 'pg_current_wal_flush_lsn()')) - (await received());
    let pumping = true;
    const pump = (async () => {
      while (pumping) {
        if ((await behind()) < 512n * 1024n) await pumpSession.query(`SELECT pg_logical_emit_message(true, 'stall_at_fence', repeat('x', 65536))`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })().catch(() => undefined);
    const stopPump = async () => {
      pumping = false;
      await pump;
      await pumpSession.end().catch(() => undefined);
      await candSession.end().catch(() => undefined);
    };
    const fail = async (why: string): Promise<never> => {
      const stats = await net.throttleStats(cand.host);
      await stopPump();
      await undoAll();
      throw new Error(`stallAtFence: ${why}\n  ${outcomes.join('\n  ')}\n  throttle towards ${cand.host}: ${stats.replace(/\n/g, '\n    ')}`);
    };
    // the throttled stream carries WAL, and cand is behind by a part of maximum_lag_on_failover
    const from = await received();
    try {
      await waitFor(async () => ((await received()) > from && (await behind()) >= 200_000n) || undefined, {
        timeoutMs: 10_000,
        intervalMs: 20,
        what: `${cand.c.name} receiving WAL through the throttle, 200 kB behind`,
      });
    } catch (err) {
      const now = await Promise.all([received(), behind()]).catch(() => null);
      return fail(`attempt ${attempt}: ${(err as Error).message} (${now ? `received ${now[0] - from} bytes, ${now[1]} behind` : 'positions unknown'})`);
    }
    let outcome: { v: T } | null = null;
    const call = start();
    call.then((v) => {
      outcome = { v };
    });
    let fenced: string;
    try {
      fenced = await waitFor(
        async () => {
          if (outcome) return 'settled';
          return (await lead.c.queryText(`SELECT current_setting('tsworker.fenced')`).catch(() => 'off')) === 'on' ? 'fenced' : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 5, what: `${lead.c.name} fenced, or the call answered` },
      );
    } catch (err) {
      return fail((err as Error).message);
    }
    if (fenced === 'fenced') {
      signalPid(receiver, 'SIGSTOP');
      frozen = receiver;
      await stopPump();
      return { call, undo: undoAll };
    }
    const v = (outcome as unknown as { v: T }).v;
    outcomes.push(`attempt ${attempt}: ${JSON.stringify(v, ['code', 'message'])}`);
    if (attempt === 5 || !refusedEarly(v)) return fail(`${lead.c.name} never fenced for a switchover to ${cand.c.name}:`);
    await stopPump();
    await undo();
    await cand.c.pollQueryUntil(`SELECT pg_last_wal_receive_lsn() >= '${await lead.c.queryText('SELECT pg_current_wal_flush_lsn()')}'::pg_lsn`, 't', { timeoutMs: 60_000 });
  }
}

/**
 * The leader's write fence, once closed for a switchover, stayed closed
 * until that switchover ended (handed over, refused, or the key lost): in
 * `lead`'s log after `offset`, no `unfenced` comes between a `fenced` for a
 * switchover and its outcome. (A lease renewal in flight when the fence
 * closed once reopened it in the middle of the catch-up.)
 */
export function assertFenceHeld(lead: Member, offset: number): void {
  const lines = logLines(lead.c, /tsworker "promoter": (fenced|unfenced|switchover_refused|switchover_handed_over|leader_lost): /, offset);
  let held = false;
  lines.forEach((l, i) => {
    if (/fenced: \{"reason":"switchover to member/.test(l)) held = true;
    else if (/switchover_refused|switchover_handed_over|leader_lost/.test(l)) held = false;
    // a refusal reopens the fence, then logs itself
    else if (held && /unfenced: /.test(l) && !/switchover_refused/.test(lines[i + 1] ?? '')) {
      assert.fail(`the fence reopened during the switchover:\n${lines.join('\n')}`);
    }
  });
}

/** The pid of `cand`'s streaming WAL receiver: never 0 or NaN (process.kill(0, ...) would stop this test's own process group). */
async function receiverPid(cand: Member): Promise<number> {
  return waitFor(
    async () => {
      const pid = Number(await cand.c.queryText(`SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'`));
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    },
    { timeoutMs: 30_000, what: `${cand.c.name}'s WAL receiver to stream` },
  );
}

/** SIGSTOP `cand`'s WAL receiver (it still looks streaming to the leader, but flushes and replies no more); returns the undo. */
export async function freezeWalReceiver(lead: Member, cand: Member): Promise<() => Promise<void>> {
  await lead.c.query(`ALTER SYSTEM SET wal_sender_timeout = '60s'`);
  await lead.c.query('SELECT pg_reload_conf()');
  await new Promise((r) => setTimeout(r, 300));
  const receiver = await receiverPid(cand);
  signalPid(receiver, 'SIGSTOP');
  return async () => {
    signalPid(receiver, 'SIGCONT');
    await lead.c.query('ALTER SYSTEM RESET wal_sender_timeout');
    await lead.c.query('SELECT pg_reload_conf()');
  };
}
