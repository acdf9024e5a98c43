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
 * - sessions on the candidate, with the call on another member: one
 *   holding a lock on a table the leader drops, one running a query, one
 *   idle in its transaction, one that catches its cancel in PL/pgSQL (review
 *   14c findings B and E). The promotion waited for them with no member
 *   accepting writes. The promoting member now, once the promotion has
 *   waited 500 ms, finds the lock's holder in pg_locks, cancels the running
 *   query, terminates the idle transaction, and terminates the one still in
 *   the way 2 s after its cancel (recovery-conflicts.ts); it logs each.
 *
 * A pg_tsworker worker reading on the candidate (review 14c finding D) held
 * the promotion back: background workers show their bgw_type (for ours,
 * the worker's name) as backend_type, and only "background worker" was
 * ended. Every backend that is not one of PostgreSQL's own processes now is.
 *
 * The call made on the candidate while a cursor there pins a page whose
 * cleanup the replay must apply (review 14c finding C): a buffer pin's
 * holder is any session in a transaction, and the caller was cancelled with
 * the cursor although the switchover went through; the caller is spared.
 *
 * A candidate lost right after the handover (review 14b finding 11): cut
 * off from etcd once the leader has fenced, it never learns it holds the
 * key, its lease runs out and the third member is elected. The call used
 * to wait out its whole timeout and end with "did not finish (state:
 * done)"; it now says at once that the switchover was overtaken, and by
 * whom.
 *
 * A candidate that loses its lease while PostgreSQL has yet to act on its
 * promote request (review 14c finding K): the request used to complete
 * later, onto the timeline ID the member elected meanwhile had taken, two
 * histories that pg_rewind cannot tell apart. The promoter now withdraws
 * the request (removes the promote signal file) when its lease is lost or
 * the promotion times out.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import type pg from 'pg';

import { type Member } from './cluster-helpers';
import { clusterFixture } from './cluster-fixture';
import { signalPid, waitFor } from './harness/cluster';

const root = process.getuid?.() === 0;

describe('switchover: recovery conflicts on the candidate, a candidate lost after the handover', { skip: root ? false : 'needs root' }, () => {
  // a conflicting session holds replay back for ever unless something ends it
  const { net, ops } = clusterFixture('sc', () => ({ max_standby_streaming_delay: '-1' }), ['h']);

  /** The leader, a candidate and the third member, each standby streaming and caught up; `junk` fresh on the leader. */
  async function setUp(): Promise<{ lead: Member; cand: Member; third: Member }> {
    const lead = await ops.leader();
    await lead.c.query('DROP TABLE IF EXISTS junk; CREATE TABLE junk (id int) WITH (autovacuum_enabled = off); INSERT INTO junk SELECT generate_series(1, 20000)');
    const {
      standbys: [cand, third],
    } = await ops.standbysCaughtUp();
    for (const m of [cand, third]) await ops.registered(m);
    return { lead, cand, third };
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
      assert.match(log, new RegExp(`terminated client backend ${idlePid} .*RecoveryConflictSnapshot`), 'the reporting transaction held the replay back');
      assert.doesNotMatch(log, new RegExp(`client backend ${callerPid} \\(`), 'the caller held nothing back');
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
    }
    await ops.restartAsService(lead, cand);
    await ops.streamsFrom(third, cand);
  });

  test('the call advertises no xmin only as a plain SELECT of the call alone: not next to another output column, not in a transaction block (review 14c finding A)', async (t) => {
    const { standbys: [cand] } = await ops.standbysCaughtUp();
    const watcher = await cand.c.connect();
    /** backend_xmin of the session running `sqls` (the last one the call, refused at once: 42704), sampled while the call runs. */
    async function xminsDuring(sqls: string[]): Promise<(string | null)[]> {
      const caller = await cand.c.connect();
      try {
        const pid = (await caller.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
        for (const sql of sqls.slice(0, -1)) await caller.query(sql);
        let done = false;
        const call = caller.query(sqls[sqls.length - 1]).then(
          () => null,
          (e: { code?: string }) => e,
        ).finally(() => {
          done = true;
        });
        const samples: (string | null)[] = [];
        while (!done) {
          const r = await watcher.query<{ x: string | null }>(
            `SELECT backend_xmin::text AS x FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND query ~ 'tsworker\\.switchover'`,
            [pid],
          );
          if (r.rows.length) samples.push(r.rows[0].x);
          await new Promise((res) => setTimeout(res, 10));
        }
        assert.equal((await call)?.code, '42704');
        return samples;
      } finally {
        await caller.end().catch(() => undefined);
      }
    }
    try {
      const plain = await xminsDuring([`SELECT tsworker.switchover('nobody')`]);
      const besides = await xminsDuring([`SELECT tsworker.switchover('nobody'), pg_sleep(0)`]);
      const inBlock = await xminsDuring(['BEGIN', `SELECT tsworker.switchover('nobody')`]);
      t.diagnostic(`samples with an xmin: plain ${plain.filter(Boolean).length}/${plain.length}, next to pg_sleep(0) ${besides.filter(Boolean).length}/${besides.length}, in BEGIN ${inBlock.filter(Boolean).length}/${inBlock.length}`);
      for (const [what, samples] of [['plain', plain], ['besides', besides], ['in a block', inBlock]] as const) assert.ok(samples.length >= 3, `${what}: sampled during the call`);
      // (a sample may fall in the moments before the release or after the call restored the xmin)
      assert.ok(plain.filter((x) => x === null).length >= 3 && plain.filter(Boolean).length <= 1, 'the plain call advertises no xmin while it waits');
      assert.ok(besides.every(Boolean), 'next to another column, the statement keeps its xmin');
      assert.ok(inBlock.every(Boolean), 'in a transaction block, the statement keeps its xmin');
    } finally {
      await watcher.end().catch(() => undefined);
    }
  });

  test('sessions holding the candidate\'s replay back (a lock, a running query, an idle transaction, one that catches its cancel): ended at once, logged; the switchover is done', async (t) => {
    const { lead, cand, third } = await setUp();
    await lead.c.query('DROP TABLE IF EXISTS locked; CREATE TABLE locked (id int)');
    await ops.caughtUp(cand, lead);
    const logAt = cand.c.logOffset();
    const clients: pg.Client[] = [];
    const session = async (...sql: string[]): Promise<{ pid: number; client: pg.Client }> => {
      const client = await cand.c.connect();
      client.on('error', () => undefined); // a terminated session's connection ends
      clients.push(client);
      for (const q of sql) await client.query(q);
      return { pid: (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid, client };
    };
    try {
      // a lock on a table the leader drops: the startup process waits for it (pg_locks, not pg_blocking_pids)
      const locker = await session('BEGIN', 'LOCK TABLE locked IN ACCESS SHARE MODE');
      // snapshots that see the rows a VACUUM removes
      const active = await session('BEGIN ISOLATION LEVEL REPEATABLE READ', 'SELECT count(*) FROM junk');
      const idle = await session('BEGIN ISOLATION LEVEL REPEATABLE READ', 'SELECT count(*) FROM junk');
      const catcher = await session('BEGIN ISOLATION LEVEL REPEATABLE READ', 'SELECT count(*) FROM junk');
      const running = active.client.query('SELECT pg_sleep(120)').then(() => null, (err: { code?: string }) => err);
      const catching = catcher.client
        .query(`DO $$ BEGIN LOOP BEGIN PERFORM count(*), pg_sleep(1) FROM junk; EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$`)
        .then(() => null, (err: Error) => err);
      await lead.c.query('DROP TABLE locked');
      await waitFor(
        async () => (await cand.c.queryText(`SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'startup'`)) === 'Lock' || undefined,
        { timeoutMs: 15_000, intervalMs: 20, what: `${cand.c.name}'s replay waiting for a lock` },
      );
      await lead.c.query('DELETE FROM junk WHERE id % 2 = 0');
      await lead.c.query('VACUUM junk');
      await ops.caughtUp(cand, lead);
      const r = JSON.parse(await third.c.queryText(`SELECT tsworker.switchover($1, timeout => '40s')`, [cand.c.name]));
      t.diagnostic(`switchover: ${JSON.stringify(r)}`);
      assert.equal(r.state, 'done');
      assert.equal(r.to, cand.c.name);
      assert.ok(r.write_pause_ms < 15_000, `write pause ${r.write_pause_ms} ms`);
      assert.equal((await running)?.code, '57014', 'the running query was cancelled');
      assert.ok(await catching, 'the session that caught its cancel was terminated');
      for (const x of [locker, idle]) assert.ok(await x.client.query('SELECT 1').then(() => null, (err: Error) => err), `session ${x.pid} was terminated`);
      const log = cand.c.readLog(logAt);
      assert.match(log, new RegExp(`terminated client backend ${locker.pid} .*the startup process waits on Lock:relation`));
      assert.match(log, new RegExp(`cancelled the query of client backend ${active.pid} .*may hold back the replay this server must finish to promote`));
      assert.match(log, new RegExp(`terminated client backend ${idle.pid} .*idle in transaction.*RecoveryConflictSnapshot`));
      assert.match(log, new RegExp(`cancelled the query of client backend ${catcher.pid} `));
      assert.match(log, new RegExp(`terminated client backend ${catcher.pid} .*still in the way 2000 ms after its cancel`));
      const promoted = /tsworker "promoter": promoted: (.*)/.exec(log);
      assert.equal(JSON.parse(promoted![1]).sessionsEnded, 4, 'each session counted once');
    } finally {
      for (const c of clients) await c.end().catch(() => undefined);
    }
    await ops.restartAsService(lead, cand);
    await ops.streamsFrom(third, cand);
  });

  test('a pg_tsworker worker on the candidate whose snapshot holds the replay back is ended (its backend_type is its name), and started again once promoted; the switchover is done (review 14c finding D, review 14d finding 1)', async (t) => {
    const { lead, cand, third } = await setUp();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgtsw-holder-'));
    fs.chmodSync(dir, 0o755);
    const module = path.join(dir, 'holder.ts');
    fs.writeFileSync(
      module,
      `import { defineWorker } from 'pg-tsworker';
export default defineWorker({
  name: 'holder',
  start: 'standby',
  restart: 'never',
  main(w) {
    const inRecovery = w.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')[0].r;
    w.log.log(\`holder runs, in recovery: \${inRecovery}\`);
    if (!inRecovery) return;
    // a snapshot kept across a cancel (each statement is a subtransaction): only a termination ends it
    w.query("SET default_transaction_isolation = 'repeatable read'");
    w.transaction((tx) => {
      tx.query('SELECT count(*) FROM junk');
      while (!w.shutdownRequested) {
        try {
          tx.query('SELECT pg_sleep(120)');
        } catch {
          w.log.log('holder: its query was cancelled; it keeps its snapshot');
        }
      }
    });
  },
});
`,
    );
    fs.chmodSync(module, 0o644);
    const logAt = cand.c.logOffset();
    try {
      const pid = Number(await cand.c.queryText(`SELECT tsworker.launch('holder', $1)`, [module]));
      await waitFor(
        async () => (await cand.c.queryText(`SELECT backend_type FROM pg_stat_activity WHERE pid = $1 AND backend_xmin IS NOT NULL AND query ~ 'pg_sleep'`, [pid])) === 'holder' || undefined,
        { timeoutMs: 20_000, what: 'the worker reading junk, its backend_type its name' },
      );
      await lead.c.query('DELETE FROM junk WHERE id % 2 = 0');
      await lead.c.query('VACUUM junk');
      await waitFor(
        async () => (await cand.c.queryText(`SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'startup'`)) === 'RecoveryConflictSnapshot' || undefined,
        { timeoutMs: 15_000, intervalMs: 20, what: `${cand.c.name}'s replay held back by the worker's snapshot` },
      );
      const r = JSON.parse(await third.c.queryText(`SELECT tsworker.switchover($1, timeout => '40s')`, [cand.c.name]));
      t.diagnostic(`switchover: ${JSON.stringify(r)}`);
      assert.equal(r.state, 'done');
      assert.equal(r.to, cand.c.name);
      assert.ok(r.write_pause_ms < 15_000, `write pause ${r.write_pause_ms} ms`);
      assert.match(cand.c.readLog(logAt), new RegExp(`terminated holder ${pid} .*still in the way 2000 ms after its cancel.*RecoveryConflictSnapshot`));
      // ended by the promotion, it is started again on the new primary, as PostgreSQL restarts a background worker a conflict ended
      await cand.c.waitForLog(/holder runs, in recovery: false/, logAt, 30_000);
      assert.match(cand.c.readLog(logAt), /started worker "holder" again \(tsworker.start\): the promotion had terminated it/);
    } finally {
      await cand.c.query(`SELECT tsworker.stop('holder')`).catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    }
    await ops.restartAsService(lead, cand);
    await ops.streamsFrom(third, cand);
  });

  test('called on the candidate while a cursor there pins a page the replay must clean up (BufferPin): the cursor\'s session is ended, not the caller; the call returns done (review 14c finding C)', async (t) => {
    const { lead, cand, third } = await setUp();
    await lead.c.query('DELETE FROM junk WHERE id % 2 = 0');
    const deleted = await lead.c.queryText('SELECT pg_current_wal_flush_lsn()');
    // the delete replayed first: the cursor's snapshot sees it, so the VACUUM conflicts with its pin only
    await cand.c.pollQueryUntil(`SELECT pg_last_wal_replay_lsn() >= '${deleted}'::pg_lsn`, 't', { timeoutMs: 30_000 });
    const logAt = cand.c.logOffset();
    const clients: pg.Client[] = [];
    try {
      const pinner = await cand.c.connect();
      pinner.on('error', () => undefined); // its connection is ended
      clients.push(pinner);
      const pinPid = (await pinner.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await pinner.query('BEGIN');
      await pinner.query('DECLARE c CURSOR FOR SELECT * FROM junk');
      await pinner.query('FETCH 1 FROM c');
      await lead.c.query('VACUUM junk');
      await waitFor(
        async () => (await cand.c.queryText(`SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'startup'`)) === 'BufferPin' || undefined,
        { timeoutMs: 15_000, intervalMs: 20, what: `${cand.c.name}'s replay waiting for a buffer pin` },
      );
      const caller = await cand.c.connect();
      clients.push(caller);
      const callerPid = (await caller.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const { r, e } = await caller
        .query<{ r: any }>(`SELECT tsworker.switchover($1, timeout => '40s') AS r`, [cand.c.name])
        .then((res) => ({ r: res.rows[0].r, e: null }), (err: { code?: string; message?: string }) => ({ r: null, e: err }));
      t.diagnostic(`call: ${JSON.stringify(r ?? e)}`);
      assert.equal(e, null, `the call failed: ${e?.code} ${e?.message}`);
      assert.equal(r.state, 'done');
      assert.equal(r.to, cand.c.name);
      const log = cand.c.readLog(logAt);
      assert.match(log, new RegExp(`client backend ${pinPid} .*BufferPin`), 'the cursor\'s session was ended');
      assert.doesNotMatch(log, new RegExp(`client backend ${callerPid} \\(`), 'the caller was left alone');
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
    // it may have promoted before it lost its key (promoted_without_key, needs_restart): what systemd would do then
    if ((await cand.c.queryText('SELECT pg_is_in_recovery()')) === 'f') {
      await cand.c.stop('immediate');
      await ops.restartAsService(cand, third);
    }
    await ops.streamsFrom(cand, third);
  });

  test('the candidate loses its lease while PostgreSQL has yet to act on its promote request: the request is withdrawn, it never promotes onto the elected member\'s timeline ID (review 14c finding K)', async (t) => {
    const { lead, cand, third } = await setUp();
    const startup = Number(await cand.c.queryText(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'startup'`));
    const promoter = Number(await cand.c.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'promoter'`));
    assert.ok(startup > 0 && promoter > 0);
    const logAt = cand.c.logOffset();
    // its startup process frozen: WAL is still received and flushed (the switchover's checks pass), nothing replayed,
    // so the promote request stays pending for as long as this test wants
    signalPid(startup, 'SIGSTOP');
    let stopped = [startup];
    try {
      const call = third.c.query(`SELECT tsworker.switchover($1, timeout => '30s')`, [cand.c.name]).then(() => null, (e: Error) => e);
      await waitFor(() => /tsworker "promoter": promoting: /.test(cand.c.readLog(logAt)) || undefined, { timeoutMs: 30_000, intervalMs: 5, what: `${cand.c.name} promoting` });
      // and its promoter frozen: its lease runs out, and the third member is elected and promotes
      signalPid(promoter, 'SIGSTOP');
      stopped.push(promoter);
      await third.c.pollQueryUntil('SELECT NOT pg_is_in_recovery()', 't', { timeoutMs: 30_000 });
      const tl = await third.c.queryText('SELECT timeline_id FROM pg_control_checkpoint()');
      t.diagnostic(`${third.c.name} promoted (timeline ${tl}); the call: ${String(await call)}`);
      // the promoter back first: it finds its lease gone and withdraws the request; then the startup process
      signalPid(promoter, 'SIGCONT');
      stopped = [startup];
      await waitFor(() => /tsworker "promoter": promotion_failed: .*withdrawn/.test(cand.c.readLog(logAt)) || undefined, { timeoutMs: 30_000, what: `${cand.c.name} to withdraw its promotion` });
      signalPid(startup, 'SIGCONT');
      stopped = [];
      await new Promise((r) => setTimeout(r, 3000));
      assert.equal(await cand.c.queryText('SELECT pg_is_in_recovery()'), 't', `${cand.c.name} never promoted`);
      assert.doesNotMatch(cand.c.readLog(logAt), /received promote request/, 'PostgreSQL never acted on the withdrawn request');
      await ops.streamsFrom(cand, third, 60_000);
    } finally {
      for (const pid of stopped) signalPid(pid, 'SIGCONT');
    }
    await ops.restartAsService(lead, third);
  });
});
