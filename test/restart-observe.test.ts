/**
 * [authoring] Restarting one worker with new code (tsworker.restart()), and
 * what the view and the log say about a worker: running JavaScript, running
 * SQL or waiting; its memory; %a, %u and %d in log_line_prefix.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { Cluster, pidAlive, waitFor } from './harness/cluster';
import { installFixtures, logLines } from './helpers';

const MB = 1024 * 1024;

describe('tsworker.restart(), state and memory in the view, log_line_prefix', () => {
  let c: Cluster;
  let modules: string;

  const row = async (name: string) =>
    (await c.query('SELECT * FROM tsworker.stat_workers WHERE name = $1', [name]))[0];
  const setMode = (mode: string) => c.query(`UPDATE busy_mode SET mode = $1`, [mode]);

  before(async () => {
    c = await Cluster.create('restartobserve', { start: false });
    modules = installFixtures(c, 'authoring');
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': `cfg=${modules}/busy.ts`,
      'tsworker.module_path': modules,
      log_line_prefix: '%m [%p] app=%a user=%u db=%d %q| ',
      max_worker_processes: 16,
    });
    await c.start();
    await c.query(`
      CREATE EXTENSION pg_tsworker;
      CREATE TABLE busy_mode (mode text);
      INSERT INTO busy_mode VALUES ('none');
      GRANT ALL ON busy_mode TO PUBLIC;
      CREATE ROLE alice LOGIN;
      CREATE ROLE bob LOGIN;
      GRANT tsworker_admin TO alice;
    `);
    await c.query('CREATE DATABASE appdb');
    await c.query(`CREATE TABLE busy_mode (mode text); INSERT INTO busy_mode VALUES ('none'); GRANT ALL ON busy_mode TO PUBLIC`, [], {
      database: 'appdb',
    });
  });

  after(async () => {
    await c?.cleanup();
  });

  test('the state tells JavaScript from SQL from waiting; memory columns are filled', async () => {
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = 'cfg'`);
    await c.pollQueryUntil(`SELECT rss_bytes IS NOT NULL FROM tsworker.stat_workers WHERE name = 'cfg'`);
    let r = await row('cfg');
    assert.ok(Number(r.rss_bytes) > 20 * MB, `rss ${r.rss_bytes}`);
    assert.ok(Number(r.heap_used_bytes) > 1 * MB, `heap used ${r.heap_used_bytes}`);
    // tsworker.max_old_space_mb (256 MB) and V8's young generation
    assert.ok(Number(r.heap_limit_bytes) >= 256 * MB && Number(r.heap_limit_bytes) < 512 * MB, `heap limit ${r.heap_limit_bytes}`);

    await setMode('js');
    await c.query(`SELECT tsworker.wake('cfg')`);
    await c.pollQueryUntil(`SELECT state FROM tsworker.stat_workers WHERE name = 'cfg'`, 'running', { intervalMs: 50 });
    await c.pollQueryUntil(`SELECT state FROM tsworker.stat_workers WHERE name = 'cfg'`, 'waiting', { intervalMs: 50 });

    await setMode('sql');
    await c.query(`SELECT tsworker.wake('cfg')`);
    await c.pollQueryUntil(`SELECT state FROM tsworker.stat_workers WHERE name = 'cfg'`, 'running sql', { intervalMs: 50 });
    await c.pollQueryUntil(`SELECT state FROM tsworker.stat_workers WHERE name = 'cfg'`, 'waiting', { intervalMs: 50 });

    // heap growth shows within about a second, though the worker then waits
    r = await row('cfg');
    const used = Number(r.heap_used_bytes);
    await setMode('grow');
    await c.query(`SELECT tsworker.wake('cfg')`);
    await waitFor(async () => Number((await row('cfg')).heap_used_bytes) > used + 40 * MB, {
      timeoutMs: 15_000,
      what: 'heap growth reported',
    });
    await setMode('none');
  });

  test("%a, %u and %d of log_line_prefix are filled for a worker's lines", async () => {
    const offset = c.logOffset();
    await c.query(`SELECT tsworker.launch('alices', 'busy.ts', '{}', 'appdb')`, [], { user: 'alice' });
    await c.waitForLog(/busy worker up/, offset);
    const [line] = logLines(c, /tsworker "alices": busy worker up/, offset);
    assert.match(line, / app=alices user=alice db=appdb \| /, line);
    const [cfg] = logLines(c, /tsworker "cfg": busy worker up/);
    assert.match(cfg, / app=cfg user=postgres db=postgres \| /, cfg);
    await c.query(`SELECT tsworker.stop('alices')`);
  });

  test('tsworker.restart() loads new code into a launched worker, and restarts a configured one', async () => {
    fs.copyFileSync(`${modules}/busy.ts`, `${modules}/deploy.ts`);
    const oldPid = await c.queryOne(`SELECT tsworker.launch('deploy', 'deploy.ts')`);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = 'deploy'`);
    fs.writeFileSync(`${modules}/deploy.ts`, fs.readFileSync(`${modules}/busy.ts`, 'utf8').replace('busy worker up', 'busy worker v2 up'));
    const offset = c.logOffset();
    const newPid = await c.queryOne(`SELECT tsworker.restart('deploy')`);
    assert.ok(newPid > 0 && newPid !== oldPid, `new pid ${newPid}, old ${oldPid}`);
    assert.equal(pidAlive(oldPid), false, 'the old process is gone');
    await c.waitForLog(/tsworker "deploy": busy worker v2 up/, offset);
    await c.pollQueryUntil(`SELECT state = 'waiting' AND pid = ${newPid} AND NOT disabled FROM tsworker.stat_workers WHERE name = 'deploy'`);

    // a configured worker, twice (its static registration is gone after the first)
    for (let i = 0; i < 2; i++) {
      const before = (await row('cfg')).pid;
      const pid = await c.queryOne(`SELECT tsworker.restart('cfg')`);
      assert.ok(pid > 0 && pid !== before);
      await c.pollQueryUntil(`SELECT state = 'waiting' AND pid = ${pid} FROM tsworker.stat_workers WHERE name = 'cfg'`);
    }

    // a stopped worker is started
    await c.query(`SELECT tsworker.stop('deploy')`);
    await c.pollQueryUntil(`SELECT state = 'stopped' FROM tsworker.stat_workers WHERE name = 'deploy'`);
    assert.ok((await c.queryOne(`SELECT tsworker.restart('deploy')`)) > 0);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = 'deploy'`);

    await assert.rejects(c.query(`SELECT tsworker.restart('nope')`), (err: { code?: string; message: string }) =>
      err.code === '42704' && /worker "nope" does not exist/.test(err.message));
    await assert.rejects(c.query(`SELECT tsworker.restart('deploy')`, [], { user: 'bob' }), /permission denied for (function restart|schema)/);
    await c.query(`SELECT tsworker.stop('deploy')`);
  });
});
