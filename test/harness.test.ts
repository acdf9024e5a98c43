/**
 * Self-test of the cluster harness (test/harness/cluster.ts): lifecycle,
 * queries, log waiting, crash (kill9) and a streaming standby.
 */

import { after, describe, it } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { Cluster, pidAlive, waitFor } from './harness/cluster';

describe('test harness: Cluster', () => {
  const clusters: Cluster[] = [];
  let node: Cluster;

  after(async () => {
    for (const c of clusters.reverse()) await c.cleanup();
  });

  it('creates and starts a cluster', async () => {
    node = await Cluster.create('main', { allowStreaming: true, conf: { application_name: "it's quoted" } });
    clusters.push(node);
    assert.ok(node.isRunning());
    assert.ok(Buffer.byteLength(node.host) < 80, `socket dir is short: ${node.host}`);
    assert.equal((fs.statSync(node.dataDir).mode & 0o777).toString(8), '700');
    assert.deepEqual(await node.query('select 1 as x'), [{ x: 1 }]);
    assert.equal(await node.queryOne('select $1::int + 1', [41]), 42);
    assert.equal(await node.queryOne('show port'), String(node.port));
    assert.equal(await node.queryOne('show fsync'), 'off');
    assert.equal(await node.queryOne('show wal_level'), 'replica');
    assert.equal(await node.queryOne("select current_setting('application_name', true)"), 'pg_tsworker_test');
  });

  it('reloads configuration', async () => {
    fs.appendFileSync(`${node.dataDir}/postgresql.conf`, "work_mem = '7MB'\n");
    const offset = node.logOffset();
    await node.reload();
    await node.waitForLog(/received SIGHUP, reloading configuration files/, offset);
    await node.pollQueryUntil('show work_mem', '7MB');
  });

  it('restarts and sees the ready line in the log after the offset', async () => {
    const before = node.postmasterPid();
    const offset = node.logOffset();
    await node.restart();
    const line = await node.waitForLog(/database system is ready to accept connections/, offset);
    assert.match(line, /ready to accept connections/);
    assert.notEqual(node.postmasterPid(), before);
    assert.equal(await node.queryOne('select true'), true);
    // pollQueryUntil compares PostgreSQL's text output, so booleans are 't'/'f'.
    await node.pollQueryUntil('select true');
  });

  it('waitForLog times out with the log tail', async () => {
    await assert.rejects(node.waitForLog(/this will never appear/, node.logOffset(), 300), /timed out/);
    await assert.rejects(
      node.pollQueryUntil('select 1', '2', { timeoutMs: 300 }),
      /last value: "1"/,
    );
  });

  it('kill9 kills the postmaster; start recovers', async () => {
    await node.query('create table t(a int)');
    await node.query('insert into t values (1)');
    const pid = node.postmasterPid();
    assert.ok(pid !== undefined && pidAlive(pid));
    const session = await node.connect();
    await node.kill9();
    assert.equal(pidAlive(pid!), false);
    assert.equal(node.isRunning(), false);
    await assert.rejects(session.query('select 1'));
    await session.end().catch(() => undefined);
    const offset = node.logOffset();
    await node.start();
    await node.waitForLog(/database system was interrupted|was not properly shut down/, offset);
    assert.equal(await node.queryOne('select count(*)::int from t'), 1);
  });

  it('waitFor polls until a value', async () => {
    let n = 0;
    assert.equal(await waitFor(() => (++n >= 3 ? n : undefined), { intervalMs: 10 }), 3);
    await assert.rejects(waitFor(() => false, { timeoutMs: 100, intervalMs: 10, what: 'never' }), /never/);
  });

  it('creates a streaming standby that replays inserts', async () => {
    const standby = await Cluster.createStandby(node, 'standby');
    clusters.push(standby);
    assert.notEqual(standby.port, node.port);
    assert.equal(await standby.queryOne('select pg_is_in_recovery()'), true);
    await node.query('create table repl(a int)');
    await node.query('insert into repl values (42)');
    await standby.pollQueryUntil('select a from repl', '42');
    await node.pollQueryUntil("select count(*) from pg_stat_replication where state = 'streaming'", '1');
  });

  it('creates a standby from a backup and promotes it', async () => {
    await node.backup('b1');
    const standby2 = await Cluster.createStandby(node, 'standby2', { fromBackup: 'b1' });
    clusters.push(standby2);
    await node.query('insert into repl values (43)');
    await standby2.pollQueryUntil('select count(*) from repl', '2');
    await standby2.promote();
    assert.equal(await standby2.queryOne('select pg_is_in_recovery()'), false);
    await standby2.query('insert into repl values (44)');
    assert.equal(await standby2.queryOne('select count(*)::int from repl'), 3);
  });
});
