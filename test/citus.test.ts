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
 *  - bad requests on POST /citus; a member whose citus_group is set
 *    without Citus loaded reports a configuration error naming the setting
 *    (this one runs where Citus is not installed, too).
 *
 * Where Citus is not installed in the PostgreSQL under test, the formation
 * tests are skipped and the reason is printed. bench/citus repeats the
 * timings over many trials.
 */
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { DistWriters, Formation, citusMissing, distWriteUntilOk, type FMember } from './citus-helpers';
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

  before(async () => {
    etcd = await Etcd.start('citus-conf');
  });

  after(async () => {
    await c?.cleanup();
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

  test('POST /citus: bad requests are refused with the reason', async () => {
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
    assert.deepEqual(await f.distNodes(coordLeader), { 0: `127.0.0.1:${f.byName('a').c.port}`, 1: `127.0.0.1:${f.byName('c').c.port}`, 2: `127.0.0.1:${f.byName('e').c.port}` });
  });

  test('a before_demote without its after_promote: the paused writes go on once the deadline passes; pg_dist_node is unchanged', async (t) => {
    const off = coordLeader.c.logOffset();
    const sent = Date.now();
    const res = await postJson(coordLeader.apiPort, '/citus', JSON.stringify({ type: 'before_demote', group: 1, leader: 'c', timeout: 2, cooldown: 1 }));
    assert.equal(res.code, 200, res.body);
    await coordLeader.c.waitForLog(/citus_node_updating: .*"group":1.*"event":"before_demote"/, off, 10_000);
    const wrote = await distWriteUntilOk(coordLeader, base, 30_000);
    base += 100;
    t.diagnostic(`a distributed write went through ${wrote - sent} ms after the before_demote (deadline 2000 ms)`);
    await coordLeader.c.waitForLog(/citus_rollback: .*"group":1|citus_node_updated: .*"group":1.*"transaction":"committed"/, off, 10_000);
    assert.deepEqual(await f.distNodes(coordLeader), { 0: `127.0.0.1:${f.byName('a').c.port}`, 1: `127.0.0.1:${f.byName('c').c.port}`, 2: `127.0.0.1:${f.byName('e').c.port}` });
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
    const leader2 = await f.leader(2);
    const other = f.byName(leader2.name === 'f' ? 'e' : 'f');
    await other.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 30_000 });
    const t1 = killPostmaster(leader2);
    const w2 = await distWriteUntilOk(b, base, 60_000);
    base += 100;
    await f.pointsAt(b, other, 1000);
    t.diagnostic(`then worker group 2 failover ${leader2.name} -> ${other.name}: kill -> first distributed write ${w2 - t1} ms`);
    const n = await b.c.queryText('SELECT count(*) FROM dist', [], { database: 'citus' });
    assert.ok(Number(n) > 0);
  });
});
