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
const ROUNDS = Number(process.env.RESTART_ROUNDS ?? 3);

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

  test('tsworker.restart() refuses a module that no longer loads, keeping the old process; last_error is cleared; concurrent restarts agree', async () => {
    const good = fs.readFileSync(`${modules}/busy.ts`, 'utf8');
    fs.writeFileSync(`${modules}/deploy2.ts`, good);
    const oldPid = await c.queryOne(`SELECT tsworker.launch('deploy2', 'deploy2.ts')`);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = 'deploy2'`);

    fs.writeFileSync(`${modules}/deploy2.ts`, good.replace('async main(w) {', 'async main(w) { {'));
    await assert.rejects(c.query(`SELECT tsworker.restart('deploy2')`), (err: { code?: string; message: string; detail?: string }) =>
      err.code === '42P17' && /^could not restart worker "deploy2": could not load module ".*deploy2\.ts": /.test(err.message) &&
      /was left running/.test(err.detail ?? ''));
    assert.equal(pidAlive(oldPid), true, 'the old process runs on');
    assert.equal((await row('deploy2')).pid, oldPid);

    // loads, but its main() fails: restarted, and the failure is in last_error
    fs.writeFileSync(`${modules}/deploy2.ts`, good.replace("w.log.log('busy worker up');", "throw new Error('main failed on purpose');"));
    await c.queryOne(`SELECT tsworker.restart('deploy2')`);
    await c.pollQueryUntil(`SELECT last_error LIKE '%main failed on purpose%' FROM tsworker.stat_workers WHERE name = 'deploy2'`);
    // a good module again: the new run does not show the old error
    fs.writeFileSync(`${modules}/deploy2.ts`, good);
    const pid = await c.queryOne(`SELECT tsworker.restart('deploy2')`);
    let r = await row('deploy2');
    assert.equal(r.last_error, null);
    assert.equal(r.last_error_at, null);
    await c.pollQueryUntil(`SELECT state = 'waiting' AND pid = ${pid} FROM tsworker.stat_workers WHERE name = 'deploy2'`);

    // three at once, a few times: none fails, one process is left, and it is one they returned
    for (let round = 0; round < ROUNDS; round++) {
      const results = await Promise.allSettled([1, 2, 3].map(() => c.queryOne(`SELECT tsworker.restart('deploy2')`)));
      const pids = results.map((x) => (x.status === 'fulfilled' ? Number(x.value) : `${(x.reason as Error).message}`));
      assert.ok(pids.every((p) => typeof p === 'number' && p > 0), `round ${round}: ${JSON.stringify(pids)}`);
      r = await row('deploy2');
      assert.ok(pids.includes(r.pid), `running ${r.pid}, returned ${JSON.stringify(pids)}`);
      assert.equal(r.last_error, null);
      await c.pollQueryUntil(`SELECT state = 'waiting' AND pid = ${r.pid} FROM tsworker.stat_workers WHERE name = 'deploy2'`);
      assert.equal(await c.queryOne(`SELECT count(*)::int FROM pg_stat_activity WHERE backend_type = 'deploy2'`), 1);
    }
    await c.query(`SELECT tsworker.stop('deploy2')`);
  });
});

describe('tsworker.restart() when every background worker slot is in use', () => {
  let c: Cluster;

  before(async () => {
    c = await Cluster.create('restartfull', { start: false });
    const modules = installFixtures(c, 'authoring');
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': `cfg=${modules}/busy.ts`,
      'tsworker.module_path': modules,
      // the logical replication launcher and cfg: nothing spare
      max_worker_processes: 2,
    });
    await c.start();
    await c.query(`CREATE EXTENSION pg_tsworker; CREATE TABLE busy_mode (mode text)`);
  });

  after(async () => {
    await c?.cleanup();
  });

  test('a restart needs no slot beyond the one its worker holds: many in a row never fail', async () => {
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = 'cfg'`);
    await assert.rejects(c.query(`SELECT tsworker.launch('extra', 'busy.ts')`), (err: { code?: string }) => err.code === '53400', 'the server is full');
    let before = await c.queryOne(`SELECT pid FROM tsworker.stat_workers WHERE name = 'cfg'`);
    for (let i = 0; i < 8; i++) {
      const pid = await c.queryOne(`SELECT tsworker.restart('cfg')`);
      assert.ok(pid > 0 && pid !== before, `restart ${i + 1}: ${pid} after ${before}`);
      const r = (await c.query(`SELECT pid, last_error FROM tsworker.stat_workers WHERE name = 'cfg'`))[0];
      assert.equal(r.pid, pid);
      assert.equal(r.last_error, null);
      before = pid;
    }
  });
});
