/**
 * [switchover] Planned operations of cluster mode on real servers and a
 * real etcd (members a, b, c and etcd e in network namespaces, h for the
 * health endpoints): tsworker.switchover() round-robin under a write load
 * (every acknowledged write on the final primary, every member streaming
 * from it, the write pause measured), refusals, maintenance mode
 * (tsworker.pause(): a SIGKILLed primary is not failed over until
 * tsworker.resume()), tsworker.failover() with and without force, and
 * `pg_tsworker_ctl rejoin` on a diverged former primary, a healthy standby
 * and the leader. The old leader of a switchover shuts itself down; the
 * test then does what systemd would (ExecStartPre= rejoin, start).
 *
 * SWITCHOVER_TRIALS sets the number of switchovers (default 5, to keep the
 * file near 4 minutes on 2 shared cores; SWITCHOVER_TRIALS=10 is the
 * issue's full run, and bench/switchover measures the pause).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { Writers, assertFenceHeld, stallAtFence, stepper, type Member } from './cluster-helpers';
import { clusterFixture, sqlError } from './cluster-fixture';
import { waitFor } from './harness/cluster';
import { logLines } from './helpers';

const TRIALS = Number(process.env.SWITCHOVER_TRIALS) || 5;
const step = stepper('switchover.test');
const root = process.getuid?.() === 0;

describe('switchover, pause, manual failover, rejoin: 3 members and etcd in network namespaces', { skip: root ? false : 'needs root' }, () => {
  const { net, etcd, members, ops, operations } = clusterFixture('so', () => ({}), ['h']);
  const byName = (n: string) => members.find((m) => m.c.name === n)!;

  const ctlRejoin = (m: Member) => ops.ctlRejoin(m);
  const restartAsService = (m: Member, lead: Member) => ops.restartAsService(m, lead);

  test(`${TRIALS} switchovers round-robin under a write load: every acknowledged write on the final primary, all members stream from it`, async (t) => {
    const writers = new Writers(members, t);
    const pauses: number[] = [];
    const reported: number[] = [];
    const t0 = Date.now();
    for (let trial = 1; trial <= TRIALS; trial++) {
      const old = await ops.leader();
      for (const m of members) if (m !== old) await ops.streamsFrom(m, old);
      const order = ['a', 'b', 'c'];
      const target = byName(order[(order.indexOf(old.c.name) + 1) % 3]);
      // asked on the candidate, the third member and the leader in turn
      const caller = members[(members.indexOf(old) + trial) % 3];
      await new Promise((r) => setTimeout(r, 300));
      const off = new Map(members.map((m) => [m.c.name, m.c.logOffset()]));
      const started = Date.now();
      step(`trial ${trial}: switchover ${old.c.name} -> ${target.c.name}, asked on ${caller.c.name}`);
      const res = (await caller.c.query<{ r: any }>(`SELECT tsworker.switchover($1) AS r`, [target.c.name]))[0].r;
      const took = Date.now() - started;
      assert.equal(res.from, old.c.name);
      assert.equal(res.to, target.c.name);
      // asked on the leader, it answers once the candidate holds the key and every commit (the leader then shuts down)
      assert.equal(res.state, caller === old ? 'handed_over' : 'done');
      assert.equal((await ops.leader()).c.name, target.c.name);
      // the write pause seen by clients: last write acknowledged by the old leader, first by the new one
      const lastOld = Math.max(...writers.acks.filter((a) => a.member === old.c.name && a.acked >= started - 5000).map((a) => a.acked));
      await waitFor(() => writers.acks.some((a) => a.member === target.c.name && a.sent >= started), { timeoutMs: 10_000, what: 'a write on the new leader' });
      const firstNew = Math.min(...writers.acks.filter((a) => a.member === target.c.name && a.sent >= started).map((a) => a.acked));
      pauses.push(firstNew - lastOld);
      assert.equal(writers.overlapMs(started - 2000, firstNew + 500), 0, 'no moment with two members accepting writes');
      if (res.write_pause_ms !== null) reported.push(res.write_pause_ms);
      t.diagnostic(`trial ${trial}: ${old.c.name} -> ${target.c.name} in ${took} ms; write pause ${firstNew - lastOld} ms (clients), ${res.write_pause_ms} ms (fence to done); final LSN ${res.final_lsn}, timeline ${res.timeline}`);
      // asked on the leader, the call returns once the candidate holds the key: its promotion may still be logging
      await waitFor(() => logLines(target.c, /tsworker "promoter": switchover_done: /, off.get(target.c.name)).length > 0 || undefined, { timeoutMs: 10_000, what: `${target.c.name}'s switchover_done` });
      assert.equal(logLines(target.c, /tsworker "promoter": switchover_done: /, off.get(target.c.name)).length, 1);
      assert.equal(logLines(old.c, /tsworker "promoter": switchover_handed_over: /, off.get(old.c.name)).length, 1);
      // the old leader shut itself down; its service manager starts it again
      const said = await restartAsService(old, target);
      t.diagnostic(`trial ${trial}: ${said}`);
      assert.match(said, /: (standby|none): /, 'the old leader follows without pg_rewind');
      assert.match(old.c.readLog(off.get(old.c.name)), /cluster member "\w" (starts as a standby|does not lead, so it starts as a standby)/);
    }
    const final = await ops.leader();
    for (const m of members) if (m !== final) await ops.streamsFrom(m, final);
    await new Promise((r) => setTimeout(r, 300));
    await writers.stop();
    const acked = writers.acks.filter((a) => a.sent >= t0);
    const rows = await final.c.query<{ id: string; member: string }>('SELECT id, member FROM probe WHERE id = ANY($1::bigint[])', [acked.map((a) => a.id)]);
    const there = new Map(rows.map((r) => [Number(r.id), r.member]));
    const lost = acked.filter((a) => there.get(a.id) !== a.member);
    const sorted = [...pauses].sort((x, y) => x - y);
    t.diagnostic(
      `${TRIALS} switchovers: ${acked.length} acknowledged writes, ${lost.length} missing on the final primary ${final.c.name}; ` +
        `write pause median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms (reported: ${reported.join(', ')} ms)`,
    );
    assert.deepEqual(lost, []);
    const events = await final.c.query<{ kind: string }>(`SELECT kind FROM tsworker.events WHERE kind = 'switchover_done'`);
    assert.ok(events.length >= 1, 'switchover_done in tsworker.events');
    const history = await ops.healthFull('GET', '/history');
    assert.match(history[final.c.name].body, /switchover from member/);
    // each call is a line of etcd's operations, with what the function returned
    const calls = (await operations()).filter((l) => l.op === 'switchover');
    assert.equal(calls.length, TRIALS);
    assert.ok(calls.every((l) => l.outcome === 'done' && typeof l.result?.to === 'string' && l.candidate === l.result.to));
    assert.equal(calls[TRIALS - 1].result?.to, final.c.name);
  });

  test('refused with the reason: unknown member, the leader itself, nofailover, a lagging candidate, no eligible member', async () => {
    const lead = await ops.leader();
    const [s1, s2] = members.filter((m) => m !== lead);
    let e = await sqlError(lead.c, `SELECT tsworker.switchover('nobody')`);
    assert.equal(e.code, '42704');
    // an empty name (a script's unset variable) is not "the most advanced member"
    e = await sqlError(lead.c, `SELECT tsworker.switchover('')`);
    assert.equal(e.code, '22023');
    assert.match(e.message, /candidate must not be empty/);
    assert.equal((await ops.leader()).c.name, lead.c.name);
    e = await sqlError(lead.c, `SELECT tsworker.switchover($1)`, [lead.c.name]);
    assert.equal(e.code, '22023');
    assert.match(e.message, /already leads/);
    e = await sqlError(lead.c, `SELECT tsworker.switchover($1, timeout => '500ms')`, [s1.c.name]);
    assert.equal(e.code, '22023');
    // cancellable: statement_timeout ends the call and kills its child process
    const session = await s1.c.connect();
    try {
      await session.query(`SET statement_timeout = '50ms'`);
      const t0 = Date.now();
      await assert.rejects(session.query(`SELECT tsworker.switchover($1)`, [s2.c.name]), (err: { code?: string }) => err.code === '57014');
      assert.ok(Date.now() - t0 < 5000, 'cancelled at once');
    } finally {
      await session.end();
    }
    e = await sqlError(lead.c, `SELECT tsworker.failover($1)`, [s1.c.name]);
    assert.equal(e.code, '55000');
    assert.match(e.message, /holds the leader key/);

    for (const m of [s1, s2]) {
      m.c.appendConf({ 'tsworker_promoter.nofailover': 'on' });
      await m.c.reload();
    }
    await waitFor(async () => {
      const err = await sqlError(lead.c, `SELECT tsworker.switchover()`);
      return err.code === '55000' && /no member .* is eligible/.test(err.message) ? err : undefined;
    }, { timeoutMs: 20_000, what: 'the switchover refused for want of an eligible member' });
    e = await sqlError(s2.c, `SELECT tsworker.switchover($1)`, [s1.c.name]);
    assert.equal(e.code, '55000');
    assert.match(e.message, /nofailover/);
    for (const m of [s1, s2]) {
      m.c.appendConf({ 'tsworker_promoter.nofailover': 'off' });
      await m.c.reload();
    }

    // s1 cut off from the leader only: it lags once the leader writes more than maximum_lag_on_failover (1 MB)
    await net().partition([s1.host], [lead.host]);
    try {
      await lead.c.query(`INSERT INTO probe(member) SELECT 'bulk' FROM generate_series(1, 40000)`);
      e = await waitFor(async () => {
        const err = await sqlError(s2.c, `SELECT tsworker.switchover($1)`, [s1.c.name]);
        return /lags \d+ bytes/.test(err.message) ? err : undefined;
      }, { timeoutMs: 20_000, what: 'the switchover refused for lag' });
      assert.equal(e.code, '55000');
      assert.match(e.message, /maximum_lag_on_failover/);
    } finally {
      await net().heal();
    }
    await ops.streamsFrom(s1, lead);
    assert.equal((await ops.leader()).c.name, lead.c.name, 'a refusal changes nothing');
  });

  test('a switchover whose timeout expires midway (the candidate stalls once the leader has fenced): refused at the deadline, writes resume on the same leader, nothing lost', async (t) => {
    // streaming, and caught up: the test before left a standby 6 MB behind (a lag the checks refuse)
    const { lead, standbys: [cand, caller] } = await ops.standbysCaughtUp();
    const writers = new Writers(members, t);
    try {
      await timedOutSwitchover(t, writers, lead, cand, caller);
    } finally {
      await writers.stop();
    }
  });

  async function timedOutSwitchover(t: { diagnostic: (s: string) => void }, writers: Writers, lead: Member, cand: Member, caller: Member): Promise<void> {
    await new Promise((r) => setTimeout(r, 300));
    const off = lead.c.logOffset();
    // the candidate stalls once the leader has fenced: it got past the checks, but cannot flush the final position
    let t0 = Date.now();
    const stall = await stallAtFence(
      net(),
      lead,
      cand,
      () => {
        t0 = Date.now();
        return sqlError(caller.c, `SELECT tsworker.switchover($1, timeout => '4s')`, [cand.c.name]).catch((err: Error) => ({ code: 'done', message: err.message, detail: '' }));
      },
      (x) => x.code === '55000' && /nothing was fenced|bytes behind/.test(x.message),
    );
    let e: { code: string; message: string; detail?: string };
    try {
      e = await stall.call;
    } finally {
      await stall.undo();
    }
    t.diagnostic(`after ${Date.now() - t0} ms: ${e.code} ${e.message} / ${e.detail ?? ''}`);
    assert.equal(e.code, '57014');
    assert.match(e.message, new RegExp(`switchover to member "${cand.c.name}" did not finish within 4000 ms: member "${cand.c.name}" (flushed WAL only up to|stopped streaming from this leader before it flushed) .* writes resumed here`));
    assert.match(e.detail ?? '', new RegExp(`member "${lead.c.name}" still leads and accepts writes`));
    assert.equal((await ops.leader()).c.name, lead.c.name, 'exactly one writable leader, the same');
    assert.equal(logLines(lead.c, /tsworker "promoter": fenced: /, off).length, 1, 'the leader had stopped writes');
    assertFenceHeld(lead, off);
    // (attempts stallAtFence made again were refused before writes stopped)
    assert.equal(logLines(lead.c, /tsworker "promoter": switchover_refused: /, off).filter((x) => !/nothing was fenced/.test(x)).length, 1);
    await ops.streamsFrom(cand, lead);
    await new Promise((r) => setTimeout(r, 300));
    await writers.stop();
    const acked = writers.acks.filter((a) => a.sent >= t0 - 300);
    const there = new Set((await lead.c.query<{ id: string }>('SELECT id FROM probe WHERE id = ANY($1::bigint[])', [acked.map((a) => a.id)])).map((r) => Number(r.id)));
    assert.deepEqual(acked.filter((a) => !there.has(a.id)), [], 'every acknowledged write is on the leader');
    assert.ok(acked.some((a) => a.member === lead.c.name && a.sent > t0 + 4000), 'writes resumed on the leader after the deadline');
  }

  test('paused with etcd down: the leader keeps accepting writes, nobody is promoted (Patroni\'s maintenance mode); etcd back: the same leader leads', async (t) => {
    const lead = await ops.leader();
    await lead.c.query('SELECT tsworker.pause()');
    try {
      for (const m of members) await waitFor(async () => (await ops.status(m.c))?.paused === true, { timeoutMs: 10_000, what: `${m.c.name} paused` });
      const off = new Map(members.map((m) => [m.c.name, m.c.logOffset()]));
      await etcd().stop();
      try {
        // longer than ttl: the leader's lease expires in etcd meanwhile
        for (let i = 0; i < 8; i++) {
          await lead.c.query('INSERT INTO probe(member) VALUES ($1)', ['paused, etcd down']);
          await new Promise((r) => setTimeout(r, 500));
        }
        assert.match((await ops.status(lead.c)).dcs, /^error/);
        for (const m of members) if (m !== lead) assert.equal(await m.c.queryText('SELECT pg_is_in_recovery()'), 't', `${m.c.name} not promoted`);
        assert.deepEqual(logLines(lead.c, /tsworker "promoter": fenced: /, off.get(lead.c.name)), [], 'no fencing while paused');
      } finally {
        await etcd().start();
      }
      await waitFor(async () => ((await ops.status(lead.c))?.dcs === 'ok' && (await ops.status(lead.c))?.leader === lead.c.name) || undefined, { timeoutMs: 30_000, what: 'the leader back in etcd' });
      assert.equal((await ops.leader()).c.name, lead.c.name, 'the same leader, writable');
      for (const m of members) if (m !== lead) await ops.streamsFrom(m, lead);
      t.diagnostic(`leader ${lead.c.name}: ${logLines(lead.c, /tsworker "promoter": (fenced|unfenced|leader_lost|leader_acquired|dcs_reachable)/, off.get(lead.c.name)).map((l) => l.replace(/.*promoter": /, '').slice(0, 60)).join(' | ')}`);
    } finally {
      await lead.c.query('SELECT tsworker.resume()').catch(() => undefined);
    }
  });

  test('paused: a SIGKILLed primary is not failed over, status and health endpoints say so; resumed, the normal failover happens', async (t) => {
    const old = await ops.leader();
    const standbys = members.filter((m) => m !== old);
    assert.equal((await old.c.query<{ p: boolean }>('SELECT tsworker.pause() AS p'))[0].p, true);
    assert.equal((await standbys[0].c.query<{ p: boolean }>('SELECT tsworker.pause() AS p'))[0].p, false, 'already paused');
    for (const m of members) await waitFor(async () => (await ops.status(m.c))?.paused === true, { timeoutMs: 10_000, what: `${m.c.name} paused` });
    const health = await ops.healthFull('GET', '/health');
    for (const m of members) assert.equal(JSON.parse(health[m.c.name].body).pause, true, `${m.c.name}'s /health shows the pause`);
    const off = new Map(members.map((m) => [m.c.name, m.c.logOffset()]));
    await old.c.kill9();
    await new Promise((r) => setTimeout(r, 6000));
    for (const m of standbys) {
      assert.equal(await m.c.queryText('SELECT pg_is_in_recovery()'), 't', `${m.c.name} was not promoted while paused`);
      assert.ok(logLines(m.c, /maintenance mode \(paused\): no automatic failover/, off.get(m.c.name)).length >= 1);
    }
    const t0 = Date.now();
    assert.equal((await standbys[1].c.query<{ p: boolean }>('SELECT tsworker.resume() AS p'))[0].p, true);
    const lead = await ops.leader();
    t.diagnostic(`resumed: ${lead.c.name} leads ${Date.now() - t0} ms later`);
    assert.ok(standbys.includes(lead));
    for (const m of members) if (m.c.isRunning() && m !== lead) await ops.streamsFrom(m, lead);
    const said = await restartAsService(old, lead);
    t.diagnostic(`${old.c.name}: ${said}`);
    const events = await lead.c.query<{ kind: string }>(`SELECT kind FROM tsworker.events WHERE kind IN ('paused', 'resumed')`);
    assert.ok(events.some((e) => e.kind === 'resumed'));
    // the pause, the second pause (nothing changed), the resume and the rejoin, in etcd's operations
    const lines = (await operations()).slice(-4);
    t.diagnostic(`operations: ${JSON.stringify(lines)}`);
    assert.deepEqual(
      lines.map((l) => [l.op, l.member, l.outcome]),
      [
        ['pause', old.c.name, 'done'],
        ['pause', standbys[0].c.name, 'unchanged'],
        ['resume', standbys[1].c.name, 'done'],
        ['rejoin', old.c.name, said.match(/: (standby|rewind): /)?.[1]],
      ],
    );
    assert.equal(`pg_tsworker_ctl rejoin: member "${old.c.name}": ${lines[3].outcome}: ${lines[3].detail}`, said);
  });

  test('manual failover: refused with what would be lost, then forced; the diverged standby is rejoined by the CLI', async (t) => {
    const old = await ops.leader();
    const [ahead, behind] = members.filter((m) => m !== old);
    await old.c.query('SELECT tsworker.pause()');
    try {
      await manualFailover(t, old, ahead, behind);
    } finally {
      await ops.leader().then((l) => l.c.query('SELECT tsworker.resume()')).catch(() => undefined);
    }
  });

  async function manualFailover(t: { diagnostic: (s: string) => void }, old: Member, ahead: Member, behind: Member): Promise<void> {
    // `behind` stops receiving; `ahead` receives more
    await net().partition([behind.host], [old.host]);
    await old.c.query(`INSERT INTO probe(member) SELECT 'more' FROM generate_series(1, 2000)`);
    const aheadOff = ahead.c.logOffset();
    await waitFor(async () => (await old.c.queryText(`SELECT flush_lsn >= pg_current_wal_flush_lsn() FROM pg_stat_replication WHERE application_name = '${ahead.c.name}'`)) === 't' || undefined, { timeoutMs: 10_000, what: `${ahead.c.name} to catch up` });
    await new Promise((r) => setTimeout(r, 1500)); // the leader publishes its position in `status` (every loop_wait)
    await old.c.kill9();
    // an orphaned walsender of the killed leader, blocked on the cut-off standby, could still deliver
    // the WAL it holds once the partition heals: heal only after it gave up (wal_sender_timeout 2 s)
    await new Promise((r) => setTimeout(r, 2500));
    await net().heal();
    await waitFor(async () => (await ahead.c.queryText(`SELECT count(*) FROM tsworker.stat_workers WHERE status->>'leader' IS NULL`)) === '1' || undefined, { timeoutMs: 10_000, what: 'the leader key gone' });
    // the member that holds more cut off from etcd: once its key expires, only the position the last leader
    // published says that `behind` misses WAL (review 14c finding J)
    await net().partition([ahead.host], ['e']);
    try {
      const j = await waitFor(
        async () => {
          const e = await sqlError(behind.c, `SELECT tsworker.failover($1)`, [behind.c.name]);
          return /behind the last position the leader/.test(e.message) ? e : undefined;
        },
        { timeoutMs: 30_000, intervalMs: 500, what: 'a refusal for what the last leader published' },
      );
      t.diagnostic(`refused: ${j.message} / ${j.hint}`);
      assert.equal(j.code, '55000');
      assert.match(j.message, new RegExp(`member "${behind.c.name}" is \\d+ bytes behind the last position the leader "${old.c.name}" published`));
      assert.match(j.hint ?? '', /force => true/);
    } finally {
      await net().heal([ahead.host], ['e']);
    }
    await ops.registered(ahead);
    // (back in etcd, it is counted once the call can ask it)
    const e = await waitFor(
      async () => {
        const x = await sqlError(ahead.c, `SELECT tsworker.failover($1)`, [behind.c.name]);
        return /holds \d+ bytes of WAL more than/.test(x.message) ? x : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, what: `the refusal naming ${ahead.c.name}` },
    );
    t.diagnostic(`refused: ${e.message} / ${e.detail} / ${e.hint}`);
    assert.equal(e.code, '55000');
    assert.match(e.message, new RegExp(`member "${ahead.c.name}" holds \\d+ bytes of WAL more than "${behind.c.name}"`));
    assert.match(e.hint ?? '', /force => true/);
    const res = (await ahead.c.query<{ r: any }>(`SELECT tsworker.failover($1, force => true) AS r`, [behind.c.name]))[0].r;
    t.diagnostic(`forced: ${JSON.stringify(res)}`);
    assert.equal(res.to, behind.c.name);
    assert.ok(res.lost_bytes > 0);
    assert.equal((await ops.leader()).c.name, behind.c.name);
    // the more advanced standby diverged: it says so, and the CLI rewinds it
    await ahead.c.waitForLog(/tsworker "promoter": needs_rewind: /, aheadOff, 30_000);
    await ahead.c.stop('fast');
    const said = await restartAsService(ahead, behind);
    t.diagnostic(`${ahead.c.name}: ${said}`);
    assert.match(said, /: rewind: pg_rewind from/);
    t.diagnostic(`${old.c.name}: ${await restartAsService(old, behind)}`);
  }

  test('rejoin CLI: rewinds a former primary that accepted writes after it was cut off; a no-op on a healthy standby and on the leader', async (t) => {
    const old = await ops.leader();
    const standby = members.find((m) => m !== old)!;
    assert.match(await ctlRejoin(old), /: none: this member leads/);
    await standby.c.stop('fast');
    assert.match(await ctlRejoin(standby), /: none: a standby/);
    await standby.c.start();
    await ops.streamsFrom(standby, old);
    // its promoter is back in the cluster (a member unknown to etcd takes no part in the election)
    await waitFor(async () => (await ops.status(standby.c))?.leader === old.c.name || undefined, { timeoutMs: 30_000, what: `${standby.c.name}'s promoter to see the leader` });

    const writers = new Writers([old], t);
    await new Promise((r) => setTimeout(r, 300));
    const cut = Date.now();
    await net().isolate(old.host);
    const lead = await waitFor(async () => {
      for (const m of members) if (m !== old && (await m.c.queryText(`SELECT NOT pg_is_in_recovery() AND current_setting('tsworker.fenced') = 'off'`).catch(() => 'f')) === 't') return m;
      return undefined;
    }, { timeoutMs: 30_000, intervalMs: 50, what: 'a new leader' });
    await writers.stop();
    const afterCut = writers.acks.filter((a) => a.sent >= cut + 100).length;
    t.diagnostic(`${old.c.name} acknowledged ${afterCut} writes after it was cut off (asynchronous mode: they are on no other member)`);
    // shut down before its network comes back: a standby still pointed at it would stream what it wrote
    // after the cut and diverge as well (docs/failover.md, "Another standby may diverge too")
    await old.c.stop('fast');
    await net().heal();
    const said = await restartAsService(old, lead);
    t.diagnostic(`${old.c.name}: ${said}`);
    assert.match(said, /: (rewind|standby): /);
    for (const m of members) if (m !== lead) await ops.streamsFrom(m, lead);

    // a standby that crashed (its postmaster SIGKILLed) while the leader goes on writing: rejoin re-points it
    // and never runs pg_rewind, whose crash recovery outside standby mode would fork its WAL off the leader's
    // unseen (review 14 finding 13); it then streams and has what the leader wrote after the crash
    const crashed = members.find((m) => m !== lead)!;
    await crashed.c.kill9();
    await lead.c.query('CREATE TABLE IF NOT EXISTS after_crash (id int)');
    await lead.c.query('INSERT INTO after_crash SELECT g FROM generate_series(1, 1000) g');
    await lead.c.query('CHECKPOINT');
    const saidCrashed = await ctlRejoin(crashed);
    t.diagnostic(`${crashed.c.name} after a crash: ${saidCrashed}`);
    assert.match(saidCrashed, /: standby: a standby that did not shut down cleanly/);
    await crashed.c.start();
    await ops.streamsFrom(crashed, lead);
    await lead.c.query('INSERT INTO after_crash VALUES (1001)');
    await crashed.c.pollQueryUntil('SELECT count(*) = 1001 FROM after_crash', 't', { timeoutMs: 30_000 });
  });
});
