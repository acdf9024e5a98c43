/**
 * [citus] Cluster mode in a Citus formation, on real servers with the real
 * Citus and a real etcd (docs/citus.md): a coordinator group and two worker
 * groups, each a primary and a standby, all on 127.0.0.1.
 *
 *  - the groups' leaders create the citus extension; the coordinator's
 *    leader registers itself and each worker group's primary in pg_dist_node;
 *  - SIGKILL of a worker group's primary: its standby is promoted,
 *    pg_dist_node points at it, distributed reads and writes through the
 *    coordinator succeed again (time from the kill to the first write);
 *  - a switchover of a worker group under a distributed write load: no
 *    acknowledged write is lost, the write pause is measured, the
 *    coordinator's transaction (before_demote ... after_promote) committed;
 *  - a coordinator failover, then a worker group failover;
 *  - bad requests on POST /citus; a forged before_demote (no switchover in
 *    etcd, cooldown 0) is refused and ends no client session;
 *  - a row changed by hand is repaired by the heartbeat (which reads
 *    pg_dist_node), and the status shows the table;
 *  - a mistyped conninfo reloaded on a worker primary does not repoint
 *    its group: the coordinator checks the address first;
 *  - a group's failover reaches pg_dist_node while another group's
 *    switchover transaction is open (a stalled switchover);
 *  - a worker primary frozen (SIGSTOP) under writes: another group's
 *    failover still goes through, the frozen group's update is bounded
 *    and follows once the server is resumed;
 *  - a member whose citus_group is set without Citus loaded, or mistyped,
 *    reports a configuration error naming the setting (these run where
 *    Citus is not installed, too).
 *
 * Where Citus is not installed in the PostgreSQL under test, the formation
 * tests are skipped and the reason is printed. bench/citus repeats the
 * timings over many trials.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as http from 'node:http';
import { after, before, describe, test } from 'node:test';

import pg from 'pg';

import { DistWriters, Formation, childPids, citusMissing, distWriteUntilOk, type FMember } from './citus-helpers';
import { stepper } from './cluster-helpers';
import { Cluster, getFreePort, waitFor, signalPid } from './harness/cluster';
import { Etcd } from './harness/etcd';
import { logLines } from './helpers';

const step = stepper('citus.test');

/** SIGKILL of a member's postmaster; returns when it was sent (the writes through the coordinator start at once). */
function killPostmaster(m: FMember): number {
  const pid = m.c.postmasterPid();
  assert.ok(pid, `${m.name} runs`);
  signalPid(pid, 'SIGKILL');
  step(`killed ${m.name}'s postmaster (${pid})`);
  return Date.now();
}
const missing = citusMissing();
if (missing) process.stdout.write(`citus.test: the Citus formation tests are skipped: ${missing}\n`);

function postJson(port: number, path: string, body: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', timeout: 10_000, headers: { 'Content-Type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('citus: configuration errors', () => {
  let etcd: Etcd;
  let c: Cluster;
  let c2: Cluster;

  before(async () => {
    etcd = await Etcd.start('citus-conf');
  });

  after(async () => {
    await c?.cleanup();
    await c2?.cleanup();
    await etcd?.cleanup();
  });

  test('citus_group set without Citus in shared_preload_libraries: the member takes part in nothing and says which setting', async () => {
    c = await Cluster.create('citus-conf', {
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'promoter',
        'tsworker_promoter.etcd_hosts': etcd.url,
        'tsworker_promoter.scope': 'cc',
        'tsworker_promoter.citus_group': 1,
        'tsworker_promoter.restapi_listen': `127.0.0.1:${await getFreePort()}`,
        'tsworker_promoter.conninfo': 'host=127.0.0.1 port=5432 user=postgres',
      },
    });
    await c.waitForLog(/cluster mode cannot run: .*tsworker_promoter\.citus_group = 1, but citus is missing in shared_preload_libraries/);
    // it never leads: writes stay fenced
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await c.queryText(`SELECT current_setting('tsworker.fenced')`), 'on');
  });

  test('a mistyped citus_group (PostgreSQL keeps -1 with a WARNING): cluster mode refuses to run, naming the setting, instead of running outside the formation', async () => {
    c2 = await Cluster.create('citus-typo', {
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'promoter',
        'tsworker_promoter.etcd_hosts': etcd.url,
        'tsworker_promoter.scope': 'ct-typo',
        'tsworker_promoter.citus_group': 'abc',
        'tsworker_promoter.restapi_listen': `127.0.0.1:${await getFreePort()}`,
        'tsworker_promoter.conninfo': 'host=127.0.0.1 port=5432 user=postgres',
      },
    });
    await c2.waitForLog(/cluster mode cannot run: tsworker_promoter\.citus_group = 'abc' \(.*postgresql\.conf line \d+\) is not a Citus group/);
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(await c2.queryText(`SELECT current_setting('tsworker.fenced')`), 'on', 'it never leads');
    const keys = execFileSync('etcdctl', [`--endpoints=${etcd.url}`, 'get', '--prefix', '--keys-only', '/service/ct-typo/'], { encoding: 'utf8', env: { ...process.env, ETCDCTL_API: '3' } });
    assert.doesNotMatch(keys, /\/(leader|members\/)/, 'it neither leads nor publishes itself as a member');
  });
});

describe('citus: a coordinator and two worker groups, each a primary and a standby', { skip: missing ?? false }, () => {
  let etcd: Etcd;
  let f: Formation;
  let base = 1_000_000;
  let coordLeader: FMember;

  before(async () => {
    etcd = await Etcd.start('citus');
    f = new Formation(etcd, 'ct');
    step('coordinator group 0: a (leader), b');
    await f.addGroup(0, ['a', 'b']);
    step('worker group 1: c (leader), d; worker group 2: e (leader), f');
    await f.addGroup(1, ['c', 'd']);
    await f.addGroup(2, ['e', 'f']);
    coordLeader = f.byName('a');
    for (const n of ['a', 'c', 'e']) await f.pointsAt(coordLeader, f.byName(n));
    await coordLeader.c.query(`CREATE TABLE dist(k bigint NOT NULL, v text, at timestamptz DEFAULT clock_timestamp()); SELECT create_distributed_table('dist', 'k', shard_count := 8)`, [], { database: 'citus' });
    step(`pg_dist_node: ${JSON.stringify(await f.distNodes(coordLeader))}`);
  });

  after(async () => {
    await f?.cleanup();
    await etcd?.cleanup();
  });

  test('the leaders created the extension; the coordinator registered every group; shards are on both worker groups', async () => {
    const nodes = await f.distNodes(coordLeader);
    assert.deepEqual(nodes, { 0: `127.0.0.1:${f.byName('a').c.port}`, 1: `127.0.0.1:${f.byName('c').c.port}`, 2: `127.0.0.1:${f.byName('e').c.port}` });
    const groups = await coordLeader.c.query<{ groupid: number }>(
      `SELECT DISTINCT groupid FROM pg_dist_placement JOIN pg_dist_shard USING (shardid) WHERE logicalrelid = 'dist'::regclass ORDER BY 1`,
      [],
      { database: 'citus' },
    );
    assert.deepEqual(groups.map((g) => g.groupid), [1, 2]);
    await distWriteUntilOk(coordLeader, base, 10_000);
    base += 100;
    for (const n of ['a', 'c', 'e']) assert.ok(logLines(f.byName(n).c, /citus_extension_created/).length >= 1, `${n} created the extension`);
  });

  /** A key of `dist` whose shard is on worker group `group`. */
  async function keyOnGroup(group: number): Promise<number> {
    return Number(
      await coordLeader.c.queryText(
        `SELECT k FROM generate_series(1, 1000) k WHERE (SELECT groupid FROM pg_dist_placement WHERE shardid = get_shard_id_for_distribution_column('dist', k)) = $1 LIMIT 1`,
        [group],
        { database: 'citus' },
      ),
    );
  }

  /** The promoter's status on the coordinator's leader: its citus part. */
  async function citusStatus(m: FMember): Promise<any> {
    return JSON.parse(await m.c.queryText(`SELECT status->'citus' FROM tsworker.stat_workers WHERE name = 'promoter'`));
  }

  const allAt = (g0: FMember, g1: FMember, g2: FMember) => ({ 0: `127.0.0.1:${g0.c.port}`, 1: `127.0.0.1:${g1.c.port}`, 2: `127.0.0.1:${g2.c.port}` });

  test('POST /citus: bad requests are refused with the reason; a forged before_demote (no switchover in etcd) is refused and ends no session', async () => {
    const port = coordLeader.apiPort;
    assert.equal((await postJson(port, '/citus', '{not json')).code, 400);
    const g0 = await postJson(port, '/citus', JSON.stringify({ type: 'after_promote', group: 0, leader: 'a', timeout: 10, cooldown: 1 }));
    assert.equal(g0.code, 400);
    assert.match(g0.body, /worker group id/);
    const bad = await postJson(port, '/citus', JSON.stringify({ type: 'promote', group: 1, leader: 'c' }));
    assert.equal(bad.code, 400);
    const notLeader = await postJson(port, '/citus', JSON.stringify({ type: 'before_demote', group: 1, leader: 'd', timeout: 10, cooldown: 1 }));
    assert.equal(notLeader.code, 409);
    // a worker's own health endpoints are not the coordinator's
    const onWorker = await postJson(f.byName('c').apiPort, '/citus', JSON.stringify({ type: 'after_promote', group: 1, leader: 'c' }));
    assert.equal(onWorker.code, 400);
    // a client's transaction holds a lock on a group-1 shard; a forged before_demote with cooldown 0 used to terminate it at once
    const k = await keyOnGroup(1);
    const client = new pg.Client({ ...coordLeader.c.clientConfig({ database: 'citus' }) });
    client.on('error', () => undefined);
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query(`INSERT INTO dist(k, v) VALUES ($1, 'held')`, [k]);
      const forged = await postJson(port, '/citus', JSON.stringify({ type: 'before_demote', group: 1, leader: 'c', timeout: 5, cooldown: 0 }));
      assert.equal(forged.code, 409, forged.body);
      assert.match(forged.body, /no switchover away from \\"c\\" is in progress in group 1/);
      const promote = await postJson(port, '/citus', JSON.stringify({ type: 'before_promote', group: 1, leader: 'c', timeout: 5, cooldown: 0 }));
      assert.equal(promote.code, 409, promote.body);
      await new Promise((r) => setTimeout(r, 500));
      await client.query('COMMIT');
    } finally {
      await client.end().catch(() => undefined);
    }
    assert.equal(await coordLeader.c.queryText(`SELECT count(*) FROM dist WHERE k = $1 AND v = 'held'`, [k], { database: 'citus' }), '1');
    const ok = await postJson(port, '/citus', JSON.stringify({ type: 'after_promote', group: 1, leader: 'c' }));
    assert.equal(ok.code, 200, ok.body);
    assert.deepEqual(await f.distNodes(coordLeader), allAt(f.byName('a'), f.byName('c'), f.byName('e')));
  });

  test('a row changed by hand in pg_dist_node is repaired by the next heartbeats, with an event; the status shows the table', async () => {
    const off = coordLeader.c.logOffset();
    const id = await coordLeader.c.queryText(`SELECT nodeid FROM pg_dist_node WHERE groupid = 1 AND noderole = 'primary'`, [], { database: 'citus' });
    await coordLeader.c.query(`SELECT citus_update_node($1, '127.0.0.1', $2)`, [Number(id), f.byName('d').c.port], { database: 'citus' });
    await f.pointsAt(coordLeader, f.byName('c'), 20_000);
    await coordLeader.c.waitForLog(new RegExp(`citus_node_updated: .*"group":1.*"from":"127\\.0\\.0\\.1:${f.byName('d').c.port}","to":"127\\.0\\.0\\.1:${f.byName('c').c.port}","source":"heartbeat"`), off, 10_000);
    await waitFor(async () => JSON.stringify((await citusStatus(coordLeader)).pg_dist_node) === JSON.stringify(allAt(f.byName('a'), f.byName('c'), f.byName('e'))) || undefined, {
      timeoutMs: 10_000,
      what: 'the status to show pg_dist_node',
    });
    assert.deepEqual((await citusStatus(coordLeader)).leaders, { 0: 'a', 1: 'c', 2: 'e' });
  });

  test('a mistyped conninfo reloaded on a worker primary: pg_dist_node keeps its row, and the coordinator names the setting', async () => {
    const c = f.byName('c');
    const off = coordLeader.c.logOffset();
    const good = `host=127.0.0.1 port=${c.c.port} user=postgres`;
    c.c.appendConf({ 'tsworker_promoter.conninfo': `host=127.0.0.1 port=${await getFreePort()} user=postgres` });
    await c.c.reload();
    try {
      await coordLeader.c.waitForLog(/citus_error: .*"group":1.*tsworker_promoter\.conninfo of member \\"c\\" .* does not reach it/, off, 20_000);
      assert.deepEqual(await f.distNodes(coordLeader), allAt(f.byName('a'), c, f.byName('e')));
    } finally {
      c.c.appendConf({ 'tsworker_promoter.conninfo': good });
      await c.c.reload();
    }
    await new Promise((r) => setTimeout(r, 1500));
    assert.deepEqual(await f.distNodes(coordLeader), allAt(f.byName('a'), c, f.byName('e')));
    assert.equal(logLines(coordLeader.c, /citus_node_updated: .*"group":1/, off).length, 0, 'group 1 was never repointed');
  });

  test('SIGKILL of worker group 1\'s primary: the standby is promoted, pg_dist_node points at it, distributed writes and reads succeed', async (t) => {
    const c = f.byName('c');
    const d = f.byName('d');
    await d.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 30_000 });
    const killedAt = killPostmaster(c);
    const firstWrite = await distWriteUntilOk(coordLeader, base, 60_000);
    base += 100;
    assert.equal((await f.leader(1)).name, 'd');
    await f.pointsAt(coordLeader, d, 1000);
    const n = await coordLeader.c.queryText('SELECT count(*) FROM dist', [], { database: 'citus' });
    assert.ok(Number(n) >= 64);
    t.diagnostic(`worker group 1 failover: kill -> first successful distributed write ${firstWrite - killedAt} ms`);
    assert.ok(logLines(coordLeader.c, /citus_node_updated: .*"group":1.*single statement/).length >= 1, 'the coordinator updated group 1 in one statement');
    step(`c rejoins: ${await f.rejoinAndStart(c)}`);
  });

  test('while group 2\'s switchover transaction is open, group 1\'s failover reaches pg_dist_node', async (t) => {
    const c = f.byName('c');
    const d = f.byName('d');
    const e = f.byName('e');
    const ff = f.byName('f');
    await c.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 60_000 });
    // group 2's candidate f cannot catch up (its WAL receiver frozen once it confirmed e's checkpoint): e's switchover keeps the coordinator's transaction open until it gives up
    await e.c.query(`ALTER SYSTEM SET wal_sender_timeout = '60s'`);
    await e.c.query('SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 300));
    const receiver = await waitFor(
      async () => {
        const pid = Number(await ff.c.queryText(`SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'`));
        return Number.isInteger(pid) && pid > 0 ? pid : undefined;
      },
      { timeoutMs: 30_000, what: `f's WAL receiver to stream` },
    );
    const off = coordLeader.c.logOffset();
    await e.c.query(`CREATE TABLE IF NOT EXISTS walgen(x int)`);
    const es = await e.c.connect();
    es.on('error', () => undefined); // ended when e stops writes
    const ckpt0 = (await es.query<{ l: string }>('SELECT checkpoint_lsn::text AS l FROM pg_control_checkpoint()')).rows[0].l;
    signalPid(receiver, 'SIGSTOP');
    let switchover: Promise<unknown> | undefined;
    try {
      switchover = e.c.query(`SELECT tsworker.switchover('f', timeout => '8s')`).catch((err: Error) => err);
      // e checks that f confirms WAL after its CHECKPOINT (a frozen receiver is refused before writes stop):
      // f runs just long enough to confirm it, then stops again, and WAL it does not receive follows, before e stops writes
      await waitFor(async () => (await es.query<{ l: string }>('SELECT checkpoint_lsn::text AS l FROM pg_control_checkpoint()')).rows[0].l !== ckpt0 || undefined, { timeoutMs: 15_000, intervalMs: 2, what: `e's switchover checkpoint` });
      const target = (await es.query<{ l: string }>('SELECT pg_current_wal_flush_lsn()::text AS l')).rows[0].l;
      signalPid(receiver, 'SIGCONT');
      await waitFor(async () => (await es.query<{ ok: boolean }>(`SELECT flush_lsn >= $1::pg_lsn AS ok FROM pg_stat_replication WHERE application_name = 'f'`, [target])).rows[0]?.ok || undefined, { timeoutMs: 15_000, intervalMs: 2, what: 'f to confirm the checkpoint' });
      signalPid(receiver, 'SIGSTOP');
      await es.query('INSERT INTO walgen SELECT generate_series(1, 100)');
      await es.end().catch(() => undefined);
      await coordLeader.c.waitForLog(/citus_node_updating: .*"group":2.*"event":"before_demote"/, off, 15_000);
      const opened = Date.now();
      killPostmaster(d);
      await f.pointsAt(coordLeader, c, 15_000);
      const updatedAfter = Date.now() - opened;
      const log = coordLeader.c.readLog(off);
      const closed = /citus_node_updated: .*"group":2.*"transaction":"committed"|citus_rollback: .*"group":2/.test(log);
      t.diagnostic(`group 1's row followed its failover ${updatedAfter} ms after group 2's transaction opened; group 2's transaction ${closed ? 'had closed' : 'was still open'}`);
      assert.ok(!closed, 'group 1 was updated while group 2\'s switchover transaction was still open');
      // the switchover gives up (f cannot catch up): e leads again
      const r = await switchover;
      assert.ok(r instanceof Error && /switchover refused|did not finish within 8000 ms/.test(r.message), `the switchover was refused: ${String(r)}`);
    } finally {
      signalPid(receiver, 'SIGCONT');
      await es.end().catch(() => undefined);
      await switchover;
      await e.c.query('ALTER SYSTEM RESET wal_sender_timeout').catch(() => undefined);
      await e.c.query('SELECT pg_reload_conf()').catch(() => undefined);
    }
    assert.equal((await f.leader(2)).name, 'e', 'the switchover was refused: e leads group 2');
    await f.pointsAt(coordLeader, e, 30_000);
    await distWriteUntilOk(coordLeader, base, 30_000);
    base += 100;
    step(`d rejoins: ${await f.rejoinAndStart(d)}`);
  });

  test('switchover of worker group 2 under a distributed write load: no acknowledged write lost, the write pause measured', async (t) => {
    const e = f.byName('e');
    const ff = f.byName('f');
    await ff.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 30_000 });
    const writers = new DistWriters(() => coordLeader, 2, 10_000_000);
    await waitFor(() => writers.acks.length > 50, { timeoutMs: 30_000, what: 'writes before the switchover' });
    const off = coordLeader.c.logOffset();
    const started = Date.now();
    const res = (await e.c.query<{ r: any }>('SELECT tsworker.switchover($1) AS r', ['f']))[0].r;
    assert.equal(res.to, 'f');
    await f.pointsAt(coordLeader, ff, 30_000);
    const switched = Date.now();
    const { acked, lost } = await writers.finish(coordLeader, switched);
    const pause = writers.longestGap(started - 1000, switched + 300);
    t.diagnostic(`worker group 2 switchover e -> f: ${acked.length} acknowledged distributed writes, ${lost.length} lost; longest pause without an acknowledged write ${pause} ms; ${writers.errors.length} failed writes`);
    assert.deepEqual(lost, []);
    const log = coordLeader.c.readLog(off);
    assert.match(log, /citus_node_updating: .*"group":2.*"event":"before_demote"/);
    assert.match(log, /citus_node_updated: .*"group":2.*"transaction":"committed"/);
    step(`e rejoins: ${await f.rejoinAndStart(e)}`);
    await e.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 60_000 });
  });

  test('group 1\'s primary frozen (SIGSTOP) under writes: group 2\'s failover still reaches pg_dist_node, and group 1\'s row follows its new leader', async (t) => {
    const c = f.byName('c');
    const d = f.byName('d');
    const e = f.byName('e');
    const ff = f.byName('f');
    await d.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 60_000 });
    await e.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 60_000 });
    const writers = new DistWriters(() => coordLeader, 2, 20_000_000);
    await waitFor(() => writers.acks.length > 20, { timeoutMs: 30_000, what: 'writes before the freeze' });
    const pm = c.c.postmasterPid()!;
    const frozen = [pm, ...childPids(pm)];
    const off = coordLeader.c.logOffset();
    for (const p of frozen) signalPid(p, 'SIGSTOP');
    const t0 = Date.now();
    let rowMs = -1;
    try {
      await d.c.pollQueryUntil(`SELECT NOT pg_is_in_recovery() AND current_setting('tsworker.fenced') = 'off'`, 't', { timeoutMs: 30_000 });
      const promoted = Date.now() - t0;
      const killed = killPostmaster(ff);
      await f.pointsAt(coordLeader, e, 20_000);
      t.diagnostic(`c frozen: d promoted after ${promoted} ms; then f killed: group 2's row followed ${Date.now() - killed} ms later, c still frozen`);
      // group 1's row: moved, or the update fails within its bounded lock wait (a backend stuck sending a cancel to c), said in an event
      const how = await waitFor(
        async () => {
          if ((await f.distNodes(coordLeader))[1] === `127.0.0.1:${d.c.port}`) return 'moved';
          return logLines(coordLeader.c, /citus_error: .*"group":1.*did not get its locks within/, off).length > 0 ? 'bounded error' : undefined;
        },
        { timeoutMs: 40_000, what: 'group 1\'s row to move, or a bounded error' },
      );
      if (how === 'moved') rowMs = Date.now() - t0;
      t.diagnostic(`group 1 while c is frozen: ${how === 'moved' ? `row moved to d ${rowMs} ms after the freeze` : `update refused within its lock wait: ${logLines(coordLeader.c, /citus_error: .*"group":1/, off)[0]?.slice(0, 600)}`}`);
    } finally {
      for (const p of frozen) {
        try {
          signalPid(p, 'SIGCONT');
        } catch {
          // gone
        }
      }
    }
    await f.pointsAt(coordLeader, d, 60_000);
    await writers.stop();
    await distWriteUntilOk(coordLeader, base, 30_000);
    base += 100;
    await c.c.stop('immediate').catch(() => undefined);
    step(`c rejoins: ${await f.rejoinAndStart(c)}`);
  });

  test('a coordinator failover, then a worker group failover: both succeed', async (t) => {
    const a = f.byName('a');
    const b = f.byName('b');
    await b.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 30_000 });
    const t0 = killPostmaster(a);
    coordLeader = await f.leader(0);
    assert.equal(coordLeader.name, 'b');
    await f.pointsAt(b, b, 30_000);
    const w1 = await distWriteUntilOk(b, base, 60_000);
    base += 100;
    t.diagnostic(`coordinator failover a -> b: kill -> first distributed write through b ${w1 - t0} ms`);
    const leader1 = await f.leader(1);
    const other = f.byName(leader1.name === 'c' ? 'd' : 'c');
    await other.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 30_000 });
    const t1 = killPostmaster(leader1);
    const w2 = await distWriteUntilOk(b, base, 60_000);
    base += 100;
    await f.pointsAt(b, other, 1000);
    t.diagnostic(`then worker group 1 failover ${leader1.name} -> ${other.name}: kill -> first distributed write ${w2 - t1} ms`);
    const n = await b.c.queryText('SELECT count(*) FROM dist', [], { database: 'citus' });
    assert.ok(Number(n) > 0);
  });
});
