/**
 * [switchover] What review 14 found in cluster mode's planned operations,
 * on real servers and a real etcd (members a, b, c and etcd e in network
 * namespaces): `pg_tsworker_ctl rejoin` is bounded when the leader's host
 * accepts TCP but never answers (finding 11); the leader's status shows the
 * running switchover (finding 9); cancelling the call calls it off at once
 * (finding 10); a candidate whose WAL receiver is stuck is refused before
 * writes stop (finding 6), also when it stopped just before the call
 * (review 14b finding 1); the expected-leader guard and the failover name
 * check (findings 8, 14); pause shows on every health body at once (finding
 * 5); after etcd was frozen longer than ttl (every lease expired), a lagging
 * standby does not win an election of one while the old leader comes back
 * (finding 1), and meanwhile the fenced primary reports
 * default_transaction_read_only = on, so libpq's
 * target_session_attrs=read-write skips it (finding 2).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';

import { assertFenceHeld, freezeWalReceiver, stallAtFence, stepper, type Member } from './cluster-helpers';
import { clusterFixture, sqlError } from './cluster-fixture';
import { PG_BIN, waitFor, signalPid } from './harness/cluster';
import { logLines } from './helpers';

const step = stepper('switchover-review.test');
const root = process.getuid?.() === 0;

describe('switchover review 14: rejoin limits, elections after an etcd freeze, fenced read-only, status', { skip: root ? false : 'needs root' }, () => {
  // the election's wait after etcd dropped the leases is ttl + loop_wait: 4.5 s leaves the old leader's
  // promoter, resumed 1.5 s after the lagging member is back in etcd, time to take the key back
  const { net, etcd, members, ops, operations } = clusterFixture('sr', () => ({ 'tsworker_promoter.ttl': '4', max_prepared_transactions: '2' }), ['h']);
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  /** `pg_tsworker_ctl rejoin` as systemd's ExecStartPre= would run it; its output and how long it took. */
  async function ctlRejoin(m: Member): Promise<{ said: string; ms: number }> {
    const t0 = Date.now();
    const r = await net().exec(m.host, ['runuser', '-u', 'postgres', '--', path.join(PG_BIN, 'pg_tsworker_ctl'), 'rejoin', '-D', m.c.dataDir], { timeoutMs: 120_000 });
    return { said: r.stdout.trim(), ms: Date.now() - t0 };
  }

  /** psql from host h with a multi-host connection string over every member. */
  async function psqlAll(attrs: string, sql: string): Promise<{ code: number; out: string }> {
    const hosts = members.map((m) => net().ip(m.host)).join(',');
    const ports = members.map((m) => m.c.port).join(',');
    const dsn = `host=${hosts} port=${ports} user=postgres dbname=postgres connect_timeout=5 target_session_attrs=${attrs}`;
    try {
      const r = await net().exec('h', ['runuser', '-u', 'postgres', '--', path.join(PG_BIN, 'psql'), '-XAtc', sql, dsn], { timeoutMs: 60_000 });
      return { code: 0, out: r.stdout.trim() };
    } catch (e) {
      return { code: 1, out: String((e as Error).message) };
    }
  }

  test('rejoin while the leader\'s postmaster is SIGSTOPped: bounded, exit 0, "does not answer: starting as a standby", standby.signal in place (finding 11)', async (t) => {
    const old = await ops.leader();
    const next = members.find((m) => m !== old)!;
    for (const m of members) if (m !== old) await ops.streamsFrom(m, old);
    // asked on the leader: it hands over, then shuts itself down (state "shut down", no standby.signal)
    const res = (await old.c.query<{ r: any }>('SELECT tsworker.switchover($1) AS r', [next.c.name]))[0].r;
    assert.equal(res.state, 'handed_over');
    await waitFor(() => !old.c.isRunning(), { timeoutMs: 30_000, what: `${old.c.name} to stop` });
    assert.equal((await ops.leader()).c.name, next.c.name);
    const pid = next.c.postmasterPid()!;
    step(`SIGSTOP ${next.c.name}'s postmaster ${pid}; rejoin ${old.c.name}`);
    signalPid(pid, 'SIGSTOP');
    let r: { said: string; ms: number };
    try {
      r = await ctlRejoin(old);
    } finally {
      signalPid(pid, 'SIGCONT');
    }
    t.diagnostic(`${old.c.name} in ${r.ms} ms: ${r.said}`);
    assert.match(r.said, new RegExp(`member "${old.c.name}": standby: leader "${next.c.name}" does not answer .*: starting as a standby`));
    assert.ok(fs.existsSync(path.join(old.c.dataDir, 'standby.signal')), 'standby.signal written');
    assert.ok(r.ms < 90_000, `rejoin took ${r.ms} ms: within systemd's TimeoutStartSec`);
    // the leader answers again: the member starts as a standby and streams (no rewind was needed)
    await old.c.start();
    await ops.streamsFrom(old, next);
    // back in etcd before the next test names it as a candidate
    await ops.registered(old);
  });

  test('during a switchover the leader\'s status says fenced, why, and the running request in its state (finding 9)', async (t) => {
    const { lead, standbys: [cand, caller] } = await ops.standbysCaughtUp();
    const off = lead.c.logOffset();
    // the candidate stalls once the leader has fenced: the leader stays fenced, waiting for it, until the deadline
    let settled = false;
    const stall = await stallAtFence(
      net(),
      lead,
      cand,
      () =>
        caller.c.query(`SELECT tsworker.switchover($1, timeout => '6s')`, [cand.c.name]).then(
          () => null,
          (err: { code?: string; message?: string }) => err,
        ),
      (x) => x?.code === '55000',
    );
    const thaw = stall.undo;
    const samples: any[] = [];
    let e: { code?: string; message?: string } | null;
    try {
      const call = stall.call.finally(() => {
        settled = true;
      });
      while (!settled) {
        samples.push(await ops.status(lead.c).catch(() => null));
        await sleep(100);
      }
      e = await call;
    } finally {
      await thaw();
    }
    t.diagnostic(`call: ${e?.code} ${e?.message}`);
    assert.equal(e?.code, '57014');
    const during = samples.find((x) => x?.fenced === true && x?.switchover?.state === 'fenced');
    assert.ok(during, `a sample with fenced: true and the request in state fenced; last: ${JSON.stringify(samples.filter(Boolean).slice(-2))}`);
    t.diagnostic(`during: fenced ${during.fenced}, fence ${during.fence}, switchover ${JSON.stringify(during.switchover)}`);
    assert.match(during.fence, new RegExp(`switchover to member "${cand.c.name}"`));
    assert.equal(during.switchover.to, cand.c.name);
    assert.equal(during.switchover.from, lead.c.name);
    assert.equal(during.switchover.kind, 'switchover');
    assert.equal((await ops.leader()).c.name, lead.c.name, 'the same leader after the refusal');
    assertFenceHeld(lead, off);
    await waitFor(async () => (await ops.status(lead.c))?.fenced === false || undefined, { timeoutMs: 10_000, what: 'the status to say unfenced' });
    await ops.streamsFrom(cand, lead);
  });

  test('cancelling the call calls the switchover off: the leader resumes writes at once, not at the deadline (finding 10); fenced, it refuses two-phase commit (review 14c finding F)', async (t) => {
    const { lead, standbys: [cand, caller] } = await ops.standbysCaughtUp();
    const off = lead.c.logOffset();
    // a prepared transaction: COMMIT PREPARED passes read-only mode and has no transaction ID of its own
    await lead.c.query(`BEGIN; INSERT INTO probe(member) VALUES ('2pc'); PREPARE TRANSACTION 'fence_2pc'`);
    await lead.c.query(`BEGIN; INSERT INTO probe(member) VALUES ('2pc'); PREPARE TRANSACTION 'fence_2pc_rb'`);
    const session = await caller.c.connect();
    const pid = Number((await session.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0].p);
    const stall = await stallAtFence(
      net(),
      lead,
      cand,
      () =>
        session.query(`SELECT tsworker.switchover($1, timeout => '30s')`, [cand.c.name]).then(
          () => null,
          (err: { code?: string }) => err,
        ),
      (x) => x?.code === '55000',
    );
    const thaw = stall.undo;
    try {
      const call = stall.call;
      await waitFor(async () => (await ops.status(lead.c).catch(() => null))?.fenced === true || undefined, { timeoutMs: 20_000, intervalMs: 50, what: 'the leader fenced for the switchover' });
      for (const [sql, what] of [
        [`COMMIT PREPARED 'fence_2pc'`, 'COMMIT PREPARED'],
        [`ROLLBACK PREPARED 'fence_2pc_rb'`, 'ROLLBACK PREPARED'],
        [`BEGIN; PREPARE TRANSACTION 'fence_2pc_new'`, 'PREPARE TRANSACTION'],
      ]) {
        const e = await sqlError(lead.c, sql);
        assert.equal(e.code, '25006', `${sql}: ${e.message}`);
        assert.match(e.message, new RegExp(`cannot execute ${what}: this server does not accept writes`));
      }
      const t0 = Date.now();
      await caller.c.query('SELECT pg_cancel_backend($1)', [pid]);
      assert.equal((await call)?.code, '57014');
      // (an attempt stallAtFence made again left a refusal before writes stopped: the last one is this call's)
      const lines = await waitFor(() => {
        const l = logLines(lead.c, /tsworker "promoter": switchover_refused: /, off).filter((x) => !/nothing was fenced/.test(x));
        return l.length > 0 ? l : undefined;
      }, { timeoutMs: 20_000, what: 'the leader to end the switchover' });
      t.diagnostic(`${Date.now() - t0} ms after the cancel: ${lines[0].replace(/.*switchover_refused: /, '').slice(0, 200)}`);
      assert.match(lines[0], /the request was withdrawn \(its caller was cancelled\)/);
      assertFenceHeld(lead, off);
      assert.equal((await ops.leader()).c.name, lead.c.name, 'the same leader, writable again');
      // and in etcd's operations, written by the cancelled call's withdrawal as it exits (review 14d finding 2)
      const last = await waitFor(
        async () => {
          const l = (await operations()).filter((x) => x.op === 'switchover').pop();
          return l && l.outcome !== 'refused' ? l : undefined;
        },
        { timeoutMs: 10_000, what: "the cancelled call's line in operations" },
      );
      assert.deepEqual([last.member, last.candidate, last.outcome], [caller.c.name, cand.c.name, 'withdrawn'], JSON.stringify(last));
      await lead.c.query(`COMMIT PREPARED 'fence_2pc'`);
      await lead.c.query(`ROLLBACK PREPARED 'fence_2pc_rb'`);
      assert.equal(await lead.c.queryText(`SELECT count(*) FROM pg_prepared_xacts`), '0');
    } finally {
      await thaw();
      await session.end().catch(() => undefined);
    }
    await ops.streamsFrom(cand, lead);
  });

  test('a candidate whose WAL receiver stopped replying is refused before writes stop (finding 6)', async (t) => {
    const { lead, standbys: [cand, caller] } = await ops.standbysCaughtUp();
    // replies every second on this candidate: silent for 2 x 1 s + loop_wait is stuck
    await cand.c.query(`ALTER SYSTEM SET wal_receiver_status_interval = '1s'`);
    await cand.c.query('SELECT pg_reload_conf()');
    await sleep(1500);
    const off = lead.c.logOffset();
    const thaw = await freezeWalReceiver(lead, cand);
    let e: Awaited<ReturnType<typeof sqlError>>;
    try {
      await sleep(4000);
      e = await sqlError(caller.c, `SELECT tsworker.switchover($1, timeout => '30s')`, [cand.c.name]);
    } finally {
      await thaw();
      await cand.c.query('ALTER SYSTEM RESET wal_receiver_status_interval');
      await cand.c.query('SELECT pg_reload_conf()');
    }
    t.diagnostic(`${e.code} ${e.message}`);
    assert.equal(e.code, '55000');
    assert.match(e.message, new RegExp(`member "${cand.c.name}"'s WAL receiver has not replied for \\d+ ms .*nothing was fenced`));
    assert.deepEqual(logLines(lead.c, /tsworker "promoter": fenced: /, off), [], 'writes never stopped');
    assert.equal((await ops.leader()).c.name, lead.c.name);
    await ops.streamsFrom(cand, lead);
  });

  test('a candidate whose WAL receiver stopped just before the call is refused before writes stop (review 14b finding 1)', async (t) => {
    const { lead, standbys: [cand, caller] } = await ops.standbysCaughtUp();
    const off = lead.c.logOffset();
    // frozen at once before the call: it replied moments ago, so the check of its silence does not see it
    const thaw = await freezeWalReceiver(lead, cand);
    let e: Awaited<ReturnType<typeof sqlError>>;
    const t0 = Date.now();
    try {
      e = await sqlError(caller.c, `SELECT tsworker.switchover($1, timeout => '30s')`, [cand.c.name]);
    } finally {
      await thaw();
    }
    t.diagnostic(`after ${Date.now() - t0} ms: ${e.code} ${e.message}`);
    assert.equal(e.code, '55000');
    assert.match(e.message, new RegExp(`member "${cand.c.name}" confirmed no WAL beyond \\S+ \\(the leader's is at \\S+\\) within 2000 ms while writes went on: its WAL receiver is stuck or stopped; nothing was fenced`));
    assert.deepEqual(logLines(lead.c, /tsworker "promoter": fenced: /, off), [], 'writes never stopped');
    assert.equal((await ops.leader()).c.name, lead.c.name);
    await ops.streamsFrom(cand, lead);
  });

  test('etcd frozen during a switchover\'s fence: the leader takes its key back, resumes writes, and records the refusal; the call says so at once (review 14c finding I)', async (t) => {
    const { lead, standbys: [cand, caller] } = await ops.standbysCaughtUp();
    const off = lead.c.logOffset();
    const t0 = Date.now();
    const stall = await stallAtFence(
      net(),
      lead,
      cand,
      () => sqlError(caller.c, `SELECT tsworker.switchover($1, timeout => '40s')`, [cand.c.name]).catch((err: Error) => ({ code: 'done', message: err.message })),
      (x) => x.code === '55000' && /nothing was fenced|bytes behind/.test(x.message),
    );
    let e: { code: string; message: string } | null = null;
    let thawedAt = 0;
    try {
      const call = stall.call;
      // longer than ttl (4 s here): the leader's lease runs out while it waits for its candidate
      signalPid(etcd().pid!, 'SIGSTOP');
      try {
        await sleep(6000);
      } finally {
        signalPid(etcd().pid!, 'SIGCONT');
        thawedAt = Date.now();
      }
      e = await call;
    } finally {
      await stall.undo();
    }
    t.diagnostic(`after ${Date.now() - t0} ms (${Date.now() - thawedAt} ms after etcd was back): ${e?.code} ${e?.message}`);
    assert.equal(e?.code, '55000');
    assert.match(e?.message ?? '', /switchover refused: .*lost its key during the switchover/);
    assert.ok(Date.now() - t0 < 30_000, 'not the whole timeout');
    assert.equal(logLines(lead.c, /tsworker "promoter": switchover_refused: /, off).length >= 1, true, 'the refusal is logged');
    assert.equal((await ops.leader()).c.name, lead.c.name, 'the same leader, writable again');
    await ops.streamsFrom(cand, lead);
  });

  test('switchover(leader => ...) and pg_tsworker_ctl --leader: refused (55000) when another member leads, nothing requested; done when it leads (finding 8)', async (t) => {
    const lead = await ops.leader();
    const [cand, other] = members.filter((m) => m !== lead);
    const e = await sqlError(other.c, `SELECT tsworker.switchover($1, leader => $2)`, [cand.c.name, other.c.name]);
    assert.equal(e.code, '55000');
    assert.match(e.message, new RegExp(`member "${other.c.name}" does not lead cluster "sr": member "${lead.c.name}" does`));
    assert.equal((await sqlError(other.c, `SELECT tsworker.switchover($1, leader => '')`, [cand.c.name])).code, '22023');
    // a typo in leader is not "the leader changed" (review 14b finding 3)
    const typo = await sqlError(other.c, `SELECT tsworker.switchover($1, leader => 'nosuch')`, [cand.c.name]);
    assert.equal(typo.code, '42704');
    assert.match(typo.detail ?? '', new RegExp(`member "${lead.c.name}" leads`));
    // finding 14: a name that is not a member is said first, not hinted at as a switchover target
    const f = await sqlError(other.c, `SELECT tsworker.failover('nosuch')`);
    assert.equal(f.code, '42704');
    assert.doesNotMatch(`${f.message} ${f.hint ?? ''}`, /switchover\('nosuch'\)/);
    assert.match(f.detail ?? '', new RegExp(`Members alive in etcd: .*${lead.c.name}`));
    let cli: { code: number; err: string } = { code: 0, err: '' };
    try {
      await net().exec(other.host, ['runuser', '-u', 'postgres', '--', path.join(PG_BIN, 'pg_tsworker_ctl'), 'switchover', '-D', other.c.dataDir, '--candidate', cand.c.name, '--leader', other.c.name], { timeoutMs: 60_000 });
    } catch (err) {
      cli = { code: 1, err: String((err as Error).message) };
    }
    assert.equal(cli.code, 1, 'the CLI fails');
    assert.match(cli.err, /does not lead cluster/);
    assert.equal((await ops.leader()).c.name, lead.c.name, 'nothing moved');
    // the expected leader: it goes ahead (the old two-argument call keeps working in switchover.test.ts)
    const r = (await other.c.query<{ r: any }>(`SELECT tsworker.switchover($1, '60s', $2) AS r`, [cand.c.name, lead.c.name]))[0].r;
    t.diagnostic(JSON.stringify(r));
    assert.equal(r.state, 'done');
    assert.equal((await ops.leader()).c.name, cand.c.name);
    await waitFor(() => !lead.c.isRunning(), { timeoutMs: 30_000, what: `${lead.c.name} to stop` });
    const back = await ctlRejoin(lead);
    t.diagnostic(`${lead.c.name}: ${back.said}`);
    await lead.c.start();
    for (const m of members) if (m !== cand) await ops.streamsFrom(m, cand);
  });

  const promoterPid = async (m: Member) => Number(await m.c.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'promoter'`));

  test('pause(): every member\'s /patroni body says "pause": true soon after the call returns (finding 5)', async (t) => {
    const lead = await ops.leader();
    try {
      assert.equal((await lead.c.query<{ p: boolean }>('SELECT tsworker.pause() AS p'))[0].p, true);
      const t0 = Date.now();
      await waitFor(async () => {
        const bodies = await ops.healthFull('GET', '/patroni');
        return Object.values(bodies).every((b) => b.code !== 0 && JSON.parse(b.body).pause === true) || undefined;
      }, { timeoutMs: 10_000, intervalMs: 20, what: 'every /patroni body to say pause' });
      t.diagnostic(`every /patroni body said "pause": true ${Date.now() - t0} ms after pause() returned (loop_wait 500 ms)`);
    } finally {
      await lead.c.query('SELECT tsworker.resume()');
    }
    await waitFor(async () => {
      const bodies = await ops.healthFull('GET', '/patroni');
      return Object.values(bodies).every((b) => b.code !== 0 && JSON.parse(b.body).pause === undefined) || undefined;
    }, { timeoutMs: 10_000, what: 'every /patroni body without pause' });
  });

  test('etcd frozen longer than ttl (every lease expires): a lagging standby back first does not win an election of one; the old leader takes the key back (finding 1)', async (t) => {
    const lead = await ops.leader();
    const [lag, other] = members.filter((m) => m !== lead);
    for (const m of [lag, other]) await ops.streamsFrom(m, lead);
    for (const m of members) await waitFor(async () => (await ops.status(m.c))?.leader === lead.c.name || undefined, { timeoutMs: 30_000, what: `${m.c.name} to see ${lead.c.name} lead` });
    const receiver = await waitFor(
      async () => {
        const pid = Number(await lag.c.queryText(`SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'`));
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
      },
      { timeoutMs: 30_000, what: `${lag.c.name}'s WAL receiver` },
    );
    const offLag = lag.c.logOffset();
    const offLead = lead.c.logOffset();
    signalPid(receiver, 'SIGSTOP');
    try {
      // lag behind the leader, well within maximum_lag_on_failover (1 MB): without the wait it could win
      // (the ids acknowledged: a sequence skips up to 32 values after each promotion, so max(id) is not a count)
      const acked = (await lead.c.query<{ id: string }>(`INSERT INTO probe(member) SELECT 'before the freeze' FROM generate_series(1, 200) RETURNING id`)).map((r) => r.id);
      await sleep(1500); // the leader publishes its position in `status`
      const frozen = [await promoterPid(lead), await promoterPid(other)];
      step(`SIGSTOP etcd ${etcd().pid} and the promoters of ${lead.c.name}, ${other.c.name} (${frozen.join(', ')}); ${lag.c.name} lags`);
      signalPid(etcd().pid!, 'SIGSTOP');
      for (const pid of frozen) signalPid(pid, 'SIGSTOP');
      try {
        await sleep(7000); // longer than ttl: at SIGCONT etcd revokes every lease
        // finding 2: the fenced leader reports default_transaction_read_only = on, so libpq's
        // target_session_attrs=read-write finds no writable member instead of connecting to it
        assert.equal(await lead.c.queryText(`SELECT current_setting('tsworker.fenced')`), 'on');
        assert.equal(await lead.c.queryText('SHOW default_transaction_read_only'), 'on');
        const rw = await psqlAll('read-write', 'SELECT inet_server_port()');
        t.diagnostic(`read-write while ${lead.c.name} is fenced: ${rw.code} ${rw.out.slice(-200)}`);
        assert.notEqual(rw.code, 0, 'no member is chosen for writes');
        assert.match(rw.out, /read-only|hot standby/);
        assert.equal((await psqlAll('read-only', 'SELECT 1')).out, '1');
        signalPid(etcd().pid!, 'SIGCONT');
        await waitFor(() => logLines(lag.c, /tsworker "promoter": dcs_reachable: /, offLag).length > 0 || undefined, { timeoutMs: 30_000, what: `${lag.c.name} back in etcd` });
        await sleep(1500); // the lagging member alone in etcd for this long
      } finally {
        signalPid(etcd().pid!, 'SIGCONT');
        for (const pid of frozen) signalPid(pid, 'SIGCONT');
      }
      step('etcd and the promoters resumed');
      await waitFor(async () => (await ops.status(lead.c))?.leader === lead.c.name && (await ops.status(lead.c))?.dcs === 'ok' ? true : undefined, { timeoutMs: 30_000, what: `${lead.c.name} to lead again` });
      assert.equal((await ops.leader()).c.name, lead.c.name, 'the old leader leads and accepts writes');
      assert.equal(await lead.c.queryText('SHOW default_transaction_read_only'), 'off', 'unfenced: shown off again');
      assert.equal((await psqlAll('read-write', 'SELECT inet_server_port()')).out, String(lead.c.port), 'read-write finds the leader');
      t.diagnostic(`${lag.c.name}: ${logLines(lag.c, /tsworker "promoter": (no leader|leader_acquired|promoting|dcs_)/, offLag).map((l) => l.replace(/.*promoter": /, '').slice(0, 150)).join(' | ')}`);
      t.diagnostic(`${lead.c.name}: ${logLines(lead.c, /tsworker "promoter": (fenced|unfenced|leader_lost|leader_acquired|dcs_)/, offLead).map((l) => l.replace(/.*promoter": /, '').slice(0, 100)).join(' | ')}`);
      assert.equal(await lag.c.queryText('SELECT pg_is_in_recovery()'), 't', `${lag.c.name} was not promoted`);
      assert.deepEqual(logLines(lag.c, /tsworker "promoter": (leader_acquired|promoting): /, offLag), [], `${lag.c.name} never took the key`);
      assert.equal(await lead.c.queryText(`SELECT count(*) FROM probe WHERE id = ANY($1::bigint[])`, [acked]), String(acked.length), 'every acknowledged write is on the leader');
    } finally {
      signalPid(receiver, 'SIGCONT');
    }
    for (const m of [lag, other]) await ops.streamsFrom(m, lead);

    // a normal failover still happens (the wait applies only for ttl + loop_wait after etcd dropped the leases)
    await sleep(1000);
    await lead.c.kill9();
    const next = await ops.leader(60_000);
    assert.notEqual(next, lead);
    const r = await ctlRejoin(lead);
    t.diagnostic(`failover to ${next.c.name}; ${lead.c.name}: ${r.said}`);
    await lead.c.start();
    for (const m of members) if (m !== next) await ops.streamsFrom(m, next);
  });
});
