/**
 * [runtime] Node embedded in background workers: SPI, the latch, reload,
 * shutdown, failures and postmaster death, on a real cluster.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { Cluster, pidAlive, waitFor, signalPid } from './harness/cluster';
import { CRASH_RESTART, installFixtures, logLines, workerPids } from './helpers';

const FAULTS = ['fault_throw', 'fault_timer', 'fault_reject', 'fault_exit'];

describe('runtime', () => {
  let c: Cluster;
  let dir: string;

  before(async () => {
    c = await Cluster.create('runtime', { conf: { max_worker_processes: 16 } });
    dir = installFixtures(c);
    await c.query(`
      CREATE TABLE fault_runs(name text, pid int, run int, at timestamptz DEFAULT now());
      CREATE TABLE fault_trigger(name text);
      CREATE TABLE txn_t(id int PRIMARY KEY);
      CREATE TABLE txn_report(step text, ok bool, detail text);
      CREATE TABLE txn_deferred(id int UNIQUE DEFERRABLE INITIALLY DEFERRED);
    `);
    const workers = [
      `${dir}/sample.ts`,
      `${dir}/txn.ts`,
      `${dir}/pingpong.ts`,
      `${dir}/plain.js`,
      `${dir}/idlepg.js`,
      ...FAULTS.map((f) => `${f}=${dir}/fault.ts`),
    ];
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': workers.join(', '),
      'tsworker.restart_interval': 1,
    });
    await c.restart();
  });

  after(async () => {
    await c?.cleanup();
  });

  test('a TypeScript worker runs SQL through SPI and shows in pg_stat_activity by name', async () => {
    await c.pollQueryUntil('SELECT count(*) > 0 FROM sample_heartbeat');
    const [hb] = await c.query('SELECT pid, label FROM sample_heartbeat ORDER BY at LIMIT 1');
    assert.equal(hb.label, 'initial');
    const act = await c.query(
      `SELECT pid, backend_type, application_name FROM pg_stat_activity WHERE backend_type = 'sample'`,
    );
    assert.equal(act.length, 1);
    assert.equal(act[0].pid, hb.pid, 'the heartbeat was written by the worker process itself');
    assert.equal(act[0].application_name, 'sample');
  });

  test('a plain .js worker loads and can require pg-tsworker', async () => {
    await c.pollQueryUntil('SELECT count(*) > 0 FROM plain_js');
    assert.equal(await c.queryOne('SELECT v FROM plain_js'), 'function');
  });

  test('a worker waiting without a timeout uses no CPU, also after loading pg', async () => {
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM plain_js`);
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM idle_pg`);
    assert.equal(await c.queryOne('SELECT v FROM idle_pg'), 'function');
    const pids = await workerPids(c);
    for (const name of ['plain', 'idlepg']) {
      const pid = pids.get(name);
      assert.ok(pid, name);
      const ticks = () => {
        const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (1/100 s)
      };
      const before = ticks();
      await new Promise((r) => setTimeout(r, 2000));
      const used = ticks() - before;
      assert.ok(used <= 5, `idle worker ${name} used ${used} ticks of CPU in 2 s`);
    }
  });

  test('SIGHUP delivers a changed setting to the running worker', async () => {
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM sample_heartbeat`);
    const pid = (await workerPids(c)).get('sample');
    assert.ok(pid);
    c.appendConf({ 'tsworker_sample.label': 'changed', 'tsworker_sample.naptime': '2min' });
    await c.reload();
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM sample_reloads WHERE label = 'changed'`);
    const [row] = await c.query(`SELECT pid, naptime FROM sample_reloads WHERE label = 'changed'`);
    assert.equal(row.pid, pid, 'same worker process: no restart');
    assert.equal(row.naptime, 120, '2min converted to the declared unit (s)');
    assert.equal((await workerPids(c)).get('sample'), pid);

    // The declared settings are real parameters: PostgreSQL refuses a bad value.
    const [guc] = await c.query(`SELECT vartype, unit, min_val, context, short_desc FROM pg_settings WHERE name = 'tsworker_sample.naptime'`);
    assert.deepEqual(guc, { vartype: 'integer', unit: 's', min_val: '1', context: 'sighup', short_desc: 'Seconds between heartbeats.' });
    const off = c.logOffset();
    c.appendConf({ 'tsworker_sample.naptime': '0' });
    await c.reload();
    // (18 names the unit in the bounds too: "(1 s .. 2147483647 s)")
    await c.waitForLog(/0 s is outside the valid range for parameter "tsworker_sample\.naptime" \(1( s)? \.\. 2147483647( s)?\)/, off);
    assert.equal(await c.queryOne(`SELECT setting FROM pg_settings WHERE name = 'tsworker_sample.naptime'`), '120');
  });

  test('a string setting reloaded to an empty string reads empty, as SHOW prints it (not the previous value)', async () => {
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM sample_heartbeat`);
    c.appendConf({ 'tsworker_sample.label': 'before-empty' });
    await c.reload();
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM sample_reloads WHERE label = 'before-empty'`);
    c.appendConf({ 'tsworker_sample.label': '' });
    await c.reload();
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM sample_reloads WHERE label = ''`);
    assert.equal(await c.queryOne(`SELECT setting FROM pg_settings WHERE name = 'tsworker_sample.label'`), '');
  });

  test('SQL errors in transactions become PgErrors, roll back, and leave no leaks', async () => {
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM txn_report WHERE step = 'done'`);
    const rows = await c.query('SELECT step, ok, detail FROM txn_report');
    const steps = Object.fromEntries(rows.map((r) => [r.step, r]));
    for (const step of ['propagated', 'rolled_back', 'caught_inside', 'syntax', 'next_works', 'async_commits', 'async_rolls_back', 'commit_error']) {
      assert.ok(steps[step], `step ${step} reported`);
      assert.equal(steps[step].ok, true, `step ${step}: ${steps[step].detail}`);
    }
    const detail = JSON.parse(steps.propagated.detail);
    assert.equal(detail.constraint, 'txn_t_pkey');
    assert.equal(detail.table, 'txn_t');
    assert.match(detail.detail, /Key \(id\)=\(1\) already exists/);
    // Where in PostgreSQL's source the error was raised, as node-postgres gives it.
    assert.equal(detail.routine, '_bt_check_unique');
    assert.equal(detail.file, 'nbtinsert.c');
    assert.match(detail.line, /^[1-9][0-9]*$/);
    assert.deepEqual(logLines(c, /leak|still referenced|non-empty SPI stack|snapshot still active/i), []);
  });

  test('every thread of a worker keeps SIGURG blocked', async () => {
    const pid = (await workerPids(c)).get('pingpong');
    assert.ok(pid);
    const tasks = fs.readdirSync(`/proc/${pid}/task`);
    assert.ok(tasks.length > 2, `Node's threads exist (${tasks.length})`);
    const SIGURG = 23n;
    for (const t of tasks) {
      const status = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8');
      const m = /^SigBlk:\s*([0-9a-f]+)$/m.exec(status);
      assert.ok(m, `SigBlk of thread ${t}`);
      const mask = BigInt('0x' + m[1]);
      assert.ok(mask & (1n << (SIGURG - 1n)), `thread ${t} blocks SIGURG (SigBlk ${m[1]})`);
    }
  });

  test('no latch wake-up is lost: 1000 rounds of ping-pong against a 60 s wait', async () => {
    const pid = (await workerPids(c)).get('pingpong');
    assert.ok(pid);
    const client = await c.connect();
    try {
      let last = 0;
      let resolveNext: ((n: number) => void) | undefined;
      client.on('notification', (msg) => {
        const n = Number(msg.payload);
        if (n > last) {
          last = n;
          resolveNext?.(n);
        }
      });
      await client.query('LISTEN pingpong');
      const start = Date.now();
      for (let i = 0; i < 1000; i++) {
        const before = last;
        const answered = new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`round ${i}: no answer within 30 s (wake-up lost)`)), 30_000);
          resolveNext = (n) => {
            if (n > before) {
              clearTimeout(timer);
              resolve(n);
            }
          };
        });
        signalPid(pid, 'SIGUSR1');
        await answered;
      }
      const seconds = (Date.now() - start) / 1000;
      console.log(`# ping-pong: 1000 rounds in ${seconds.toFixed(2)} s`);
      assert.ok(seconds < 60, `1000 rounds took ${seconds} s`);
    } finally {
      await client.end();
    }
  });

  test('throw, timer exception, unhandled rejection and process.exit(3) exit 1 and restart; the cluster stays up', async () => {
    await c.pollQueryUntil(`SELECT count(DISTINCT name) = ${FAULTS.length} FROM fault_runs`);
    const client = await c.connect();
    try {
      const backend = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      const off = c.logOffset();
      const pids = await workerPids(c);
      for (const f of FAULTS) {
        await c.query('INSERT INTO fault_trigger VALUES ($1)', [f]);
        signalPid(pids.get(f)!, 'SIGUSR1');
      }
      for (const f of FAULTS) {
        await c.pollQueryUntil(`SELECT count(*) > 0 FROM fault_runs WHERE name = '${f}' AND run = 2`);
        const pid = pids.get(f)!;
        await c.waitForLog(new RegExp(`background worker "${f}" \\(PID ${pid}\\) exited with exit code 1`), off);
      }
      await c.waitForLog(/tsworker "fault_throw": worker failed: Error: boom: thrown from main\n\s+at /, off);
      await c.waitForLog(/tsworker "fault_timer": uncaught exception: Error: boom: thrown from a timer\n\s+at /, off);
      await c.waitForLog(/tsworker "fault_reject": unhandled promise rejection: Error: boom: rejected promise nobody handles\n\s+at /, off);
      await c.waitForLog(/tsworker "fault_exit": process\.exit\(3\) called; exiting with code 1/, off);
      const after = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      assert.equal(after, backend, 'the client session survived');
      assert.deepEqual(logLines(c, CRASH_RESTART), []);
    } finally {
      await client.end();
    }
  });

  test('pg_ctl stop -m fast finishes within 5 s with workers mid-wait; the worker logs a clean exit', async () => {
    const pid = (await workerPids(c)).get('sample');
    assert.ok(pid);
    const off = c.logOffset();
    const start = Date.now();
    await c.stop('fast');
    const seconds = (Date.now() - start) / 1000;
    assert.ok(seconds < 5, `stop took ${seconds} s`);
    await c.waitForLog(/tsworker "sample": sample leaving its loop/, off);
    const stopped = await c.waitForLog(/tsworker "sample": stopped on shutdown request.*/, off);
    assert.doesNotMatch(stopped, /tsworker\.stop/, 'a server shutdown is not told as tsworker.stop()');
    await c.waitForLog(/tsworker "sample": exiting with code 0/, off);
    assert.deepEqual(logLines(c, CRASH_RESTART, off), []);
    await c.start();
  });

  test('SIGKILL of the postmaster leaves no worker process behind after 5 s', async () => {
    await c.pollQueryUntil(`SELECT count(*) >= 4 FROM pg_stat_activity WHERE backend_type IN ('sample', 'txn', 'pingpong', 'plain')`);
    const pids = [...(await workerPids(c)).values()];
    assert.ok(pids.length >= 4);
    const killedAt = Date.now();
    await c.kill9({ waitChildren: false });
    await waitFor(() => pids.every((p) => !pidAlive(p)), { timeoutMs: 5_000, intervalMs: 50, what: 'workers to exit' });
    console.log(`# workers gone ${Date.now() - killedAt} ms after the postmaster's SIGKILL`);
  });
});
