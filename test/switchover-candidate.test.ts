/**
 * [switchover] The candidate's side of a switchover.
 *
 * Recovery conflicts on the candidate (review 14b finding 5).
 * The candidate's promotion ends only once everything it received is
 * replayed, and a session on it whose snapshot still sees rows a replayed
 * VACUUM removes holds that replay back for max_standby_streaming_delay
 * (here -1: for ever). Two such sessions:
 *
 * - the switchover's own call, made on the candidate: its statement's
 *   snapshot held the promotion back until the call was cancelled with
 *   40001 although the switchover then went through. The waiting backend
 *   now advertises no xmin (cluster_ctl.c): a record replayed during the
 *   call (replay is paused until the leader is fenced) conflicts with a
 *   reporting transaction there, which is ended, not with the caller,
 *   whose call returns done;
 * - reporting sessions on the candidate, one running a query and one idle
 *   in its transaction, with the call on another member: the promotion
 *   waited for them with no member accepting writes. The promoting member
 *   now cancels the one and terminates the other once the promotion has
 *   waited 500 ms (recovery-conflicts.ts), and logs both.
 *
 * A candidate lost right after the handover (review 14b finding 11): cut
 * off from etcd once the leader has fenced, it never learns it holds the
 * key, its lease runs out and the third member is elected. The call used
 * to wait out its whole timeout and end with "did not finish (state:
 * done)"; it now says at once that the switchover was overtaken, and by
 * whom.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type pg from 'pg';

import { type Member } from './cluster-helpers';
import { clusterFixture } from './cluster-fixture';
import { waitFor } from './harness/cluster';

const root = process.getuid?.() === 0;

describe('switchover: recovery conflicts on the candidate, a candidate lost after the handover', { skip: root ? false : 'needs root' }, () => {
  // a conflicting session holds replay back for ever unless something ends it
  const { net, members, ops } = clusterFixture('sc', () => ({ max_standby_streaming_delay: '-1' }), ['h']);

  /** The leader, a candidate and the third member, each standby streaming and caught up; `junk` fresh on the leader. */
  async function setUp(): Promise<{ lead: Member; cand: Member; third: Member }> {
    const lead = await ops.leader();
    const [cand, third] = members.filter((m) => m !== lead);
    await lead.c.query('DROP TABLE IF EXISTS junk; CREATE TABLE junk (id int) WITH (autovacuum_enabled = off); INSERT INTO junk SELECT generate_series(1, 20000)');
    for (const m of [cand, third]) {
      await ops.streamsFrom(m, lead);
      await ops.caughtUp(m, lead);
      await ops.registered(m);
    }
    return { lead, cand, third };
  }

  /** Rows seen by the candidate's sessions removed on the leader: the VACUUM's record conflicts with their snapshots. */
  async function removeRows(lead: Member, cand: Member): Promise<void> {
    await lead.c.query('DELETE FROM junk WHERE id % 2 = 0');
    await lead.c.query('VACUUM junk');
    await waitFor(
      async () => (await cand.c.queryText(`SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup'`)) === 'RecoveryConflictSnapshot' || undefined,
      { timeoutMs: 15_000, intervalMs: 20, what: `${cand.c.name}'s replay held back by a snapshot` },
    );
  }

  test('called on the candidate itself: its own snapshot does not hold back the promotion; the call returns done', async (t) => {
    const { lead, cand, third } = await setUp();
    const logAt = cand.c.logOffset();
    const clients: pg.Client[] = [];
    try {
      // a reporting transaction on the candidate that sees the rows: the VACUUM's record conflicts with it
      const idle = await cand.c.connect();
      idle.on('error', () => undefined); // its connection is ended
      clients.push(idle);
      await idle.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await idle.query('SELECT count(*) FROM junk');
      const idlePid = (await idle.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      // the record is replayed only once the call runs: its snapshot, taken before, is then a candidate for the conflict too
      await cand.c.query('SELECT pg_wal_replay_pause()');
      await lead.c.query('DELETE FROM junk WHERE id % 2 = 0');
      await lead.c.query('VACUUM junk');
      await ops.caughtUp(cand, lead);
      const caller = await cand.c.connect();
      clients.push(caller);
      const callerPid = (await caller.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const call = caller
        .query<{ r: any }>(`SELECT tsworker.switchover($1, timeout => '40s') AS r`, [cand.c.name])
        .then((res) => ({ r: res.rows[0].r, e: null }), (e: { code?: string; message?: string }) => ({ r: null, e }));
      // (a promotion ends the pause by itself; the leader may be shut down already)
      await waitFor(async () => (await ops.status(lead.c).catch(() => ({ fenced: true })))?.fenced === true || undefined, { timeoutMs: 20_000, intervalMs: 20, what: 'the leader fenced' });
      await cand.c.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
      const { r, e } = await call;
      t.diagnostic(`call: ${JSON.stringify(r ?? e)}`);
      assert.equal(e, null, `the call failed: ${e?.code} ${e?.message}`);
      assert.equal(r.state, 'done');
      assert.equal(r.to, cand.c.name);
      assert.equal((await ops.leader()).c.name, cand.c.name);
      const log = cand.c.readLog(logAt);
      assert.match(log, new RegExp(`terminated session ${idlePid} .*RecoveryConflictSnapshot`), 'the reporting transaction held the replay back');
      assert.doesNotMatch(log, new RegExp(`session ${callerPid} `), 'the caller held nothing back');
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
    }
    await ops.restartAsService(lead, cand);
    await ops.streamsFrom(third, cand);
  });

  test('a reporting query and an idle transaction on the candidate: cancelled and terminated at once, logged; the switchover is done', async (t) => {
    const { lead, cand, third } = await setUp();
    const logAt = cand.c.logOffset();
    const clients: pg.Client[] = [];
    try {
      const sessions: { pid: number; client: pg.Client }[] = [];
      for (let i = 0; i < 2; i++) {
        const client = await cand.c.connect();
        client.on('error', () => undefined); // the terminated one's connection ends
        clients.push(client);
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await client.query('SELECT count(*) FROM junk');
        sessions.push({ pid: (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid, client });
      }
      const [active, idle] = sessions;
      const running = active.client.query('SELECT pg_sleep(120)').then(() => null, (err: { code?: string }) => err);
      await removeRows(lead, cand);
      const r = JSON.parse(await third.c.queryText(`SELECT tsworker.switchover($1, timeout => '40s')`, [cand.c.name]));
      t.diagnostic(`switchover: ${JSON.stringify(r)}`);
      assert.equal(r.state, 'done');
      assert.equal(r.to, cand.c.name);
      assert.ok(r.write_pause_ms < 15_000, `write pause ${r.write_pause_ms} ms`);
      assert.equal((await running)?.code, '57014', 'the running query was cancelled');
      const after = await idle.client.query('SELECT 1').then(() => null, (err: Error) => err);
      assert.ok(after, 'the idle transaction\'s session was terminated');
      const log = cand.c.readLog(logAt);
      assert.match(log, new RegExp(`cancelled the query of session ${active.pid} .*held back the replay this server must finish to promote`));
      assert.match(log, new RegExp(`terminated session ${idle.pid} .*idle in transaction.*RecoveryConflictSnapshot`));
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
    }
    await ops.restartAsService(lead, cand);
    await ops.streamsFrom(third, cand);
  });

  test('the candidate cut off from etcd once the leader has fenced: the call says at once that the switchover was overtaken, and who leads', async (t) => {
    const { lead, cand, third } = await setUp();
    const call = third.c
      .query(`SELECT tsworker.switchover($1, timeout => '40s')`, [cand.c.name])
      .then(() => null, (e: { code?: string; message?: string; detail?: string }) => e);
    const t0 = Date.now();
    try {
      await waitFor(async () => (await ops.status(lead.c).catch(() => ({ fenced: true })))?.fenced === true || undefined, { timeoutMs: 20_000, intervalMs: 10, what: 'the leader fenced' });
      await net().partition([cand.host], ['e']);
      const e = await call;
      t.diagnostic(`after ${Date.now() - t0} ms: ${e?.code} ${e?.message} / ${e?.detail ?? ''}`);
      assert.equal(e?.code, '55000');
      assert.match(e?.message ?? '', new RegExp(`switchover to member "${cand.c.name}" was overtaken: member "${third.c.name}" leads now`));
      assert.ok(Date.now() - t0 < 30_000, 'not the whole timeout');
      assert.equal((await ops.leader()).c.name, third.c.name);
    } finally {
      await net().heal();
    }
    await ops.restartAsService(lead, third);
    await ops.streamsFrom(cand, third);
  });
});
