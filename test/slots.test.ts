/**
 * [reliability] Background worker slots under max_worker_processes
 * pressure, and launches refused before anything starts: a failed
 * registration is reported to the caller and in the view, never leaves a
 * worker stuck in `starting`, and a stopped worker gives its slot back.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster, waitFor } from './harness/cluster';
import { installFixtures } from './helpers';

interface Row {
  name: string;
  state: string;
  pid: number | null;
  last_error: string | null;
}

describe('worker slots and launch checks', () => {
  let c: Cluster;
  let module: string;

  const row = async (name: string): Promise<Row | undefined> =>
    (await c.query<Row>(`SELECT name, state, pid, last_error FROM tsworker.workers WHERE name = $1`, [name]))[0];

  /** The error a statement fails with. */
  async function failure(sql: string, params: unknown[] = []): Promise<{ message: string; detail?: string; code?: string }> {
    try {
      await c.query(sql, params);
    } catch (err) {
      return err as { message: string; detail?: string; code?: string };
    }
    throw new Error(`expected ${sql} to fail`);
  }

  const launch = (name: string, mode: string) =>
    c.query(`SELECT tsworker.launch($1, $2, $3)`, [name, module, JSON.stringify({ mode })]);

  before(async () => {
    c = await Cluster.create('slots', { start: false });
    module = `${installFixtures(c, 'faults')}/faults.ts`;
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      // the logical replication launcher takes one: two are left
      max_worker_processes: 3,
      'tsworker.workers': `w1=${module}, w2=${module}`,
      'tsworker.restart_interval': 30,
    });
    await c.start();
    await c.query(`CREATE EXTENSION pg_tsworker; CREATE TABLE fault_runs(name text, at timestamptz DEFAULT now())`);
    await c.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE state = 'waiting'`, '2');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('no free slot: launch says what holds them, and leaves nothing behind', async () => {
    const err = await failure(`SELECT tsworker.launch('d1', $1)`, [module]);
    assert.equal(err.message, 'could not register background worker "d1": no free background worker slot');
    assert.match(err.detail!, /^max_worker_processes is 3: pg_tsworker holds 2 of its slots \(2 running, 0 waiting to be restarted\); the others belong to PostgreSQL/);
    assert.equal(await row('d1'), undefined);
  });

  test('a failed worker waiting to be restarted holds a slot until tsworker.stop() gives it back', async () => {
    await c.query(`SELECT tsworker.stop('w1')`);
    await c.pollQueryUntil(`SELECT state FROM tsworker.workers WHERE name = 'w1'`, 'stopped');
    await launch('d1', 'fail'); // fails at once, then waits 30 s to be restarted
    await c.pollQueryUntil(`SELECT state FROM tsworker.workers WHERE name = 'd1'`, 'failed');
    const err = await failure(`SELECT tsworker.launch('d2', $1)`, [module]);
    assert.match(err.detail!, /pg_tsworker holds 2 of its slots \(1 running, 1 waiting to be restarted\)/);
    assert.equal(await c.queryOne(`SELECT tsworker.stop('d1')`), false, 'd1 was not running');
    assert.equal((await row('d1'))!.state, 'stopped');
    await waitFor(async () => {
      try {
        await launch('d2', 'idle');
        return true;
      } catch {
        return false; // the postmaster forgets the registration a moment later
      }
    }, { timeoutMs: 10_000, what: 'the slot d1 held to be free' });
    await c.pollQueryUntil(`SELECT state FROM tsworker.workers WHERE name = 'd2'`, 'waiting');
  });

  test('tsworker.reload() with too few slots: starts what fits, reports the rest, leaves none stuck', async () => {
    await c.query(`SELECT tsworker.stop('w2'), tsworker.stop('d2')`);
    await c.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE pid IS NOT NULL`, '0');
    // four stopped workers (w1, w2, d1, d2), two free slots
    await new Promise((r) => setTimeout(r, 500));
    const client = await c.connect();
    const warnings: string[] = [];
    client.on('notice', (n) => warnings.push(`${n.message} | ${n.detail ?? ''}`));
    try {
      const started = (await client.query('SELECT tsworker.reload() AS n')).rows[0].n;
      assert.equal(started, 2);
      assert.equal(warnings.length, 2, warnings.join('\n'));
      for (const w of warnings) {
        assert.match(w, /^could not start worker "\w+": no free background worker slot \| max_worker_processes is 3: /);
      }
    } finally {
      await client.end();
    }
    await c.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE state = 'waiting'`, '2');
    const rows = await c.query<Row>(`SELECT name, state, pid, last_error FROM tsworker.workers WHERE pid IS NULL`);
    assert.equal(rows.length, 2);
    for (const r of rows) {
      assert.equal(r.state, 'stopped', `${r.name} is not left starting`);
      assert.match(r.last_error!, /^not started: no free background worker slot \(max_worker_processes is 3\)$/);
      assert.equal(await c.queryOne(`SELECT tsworker.stop($1)`, [r.name]), false);
    }
    // once a slot is free, the reported worker starts
    const running = await c.queryOne<string>(`SELECT name FROM tsworker.workers WHERE pid IS NOT NULL LIMIT 1`);
    await c.query(`SELECT tsworker.stop($1)`, [running]);
    await c.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE pid IS NOT NULL`, '1');
    await waitFor(async () => (await c.queryOne<number>('SELECT tsworker.reload()')) >= 1, { timeoutMs: 10_000, what: 'reload to start one' });
  });

  test('configured workers beyond max_worker_processes at server start: reported, shown as stopped, startable later', async () => {
    const small = await Cluster.create('slots-start', { start: false });
    try {
      const m = `${installFixtures(small, 'faults')}/faults.ts`;
      small.appendConf({
        shared_preload_libraries: 'pg_tsworker',
        // the logical replication launcher registers first: two are left
        max_worker_processes: 3,
        'tsworker.workers': `a1=${m}, a2=${m}, a3=${m}`,
      });
      await small.start();
      await small.query(`CREATE EXTENSION pg_tsworker; CREATE TABLE fault_runs(name text, at timestamptz DEFAULT now())`);
      await small.waitForLog(/pg_tsworker: worker "a3" not started: no free background worker slot/);
      await small.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE state = 'waiting'`, '2');
      const a3 = (await small.query<Row>(`SELECT name, state, pid, last_error FROM tsworker.workers WHERE name = 'a3'`))[0];
      assert.equal(a3.state, 'stopped');
      assert.equal(a3.pid, null);
      assert.equal(a3.last_error, 'not started: no free background worker slot at server start (max_worker_processes is 3)');
      assert.equal(await small.queryOne(`SELECT tsworker.stop('a3')`), false);
      // once a slot is free it starts
      await small.query(`SELECT tsworker.stop('a1')`);
      await small.pollQueryUntil(`SELECT state FROM tsworker.workers WHERE name = 'a1'`, 'stopped');
      await waitFor(async () => (await small.query(`SELECT tsworker.launch('a3', $1)`, [m]).then(() => true, () => false)), {
        timeoutMs: 10_000,
        what: 'a3 to start in the slot a1 gave back',
      });
      await small.pollQueryUntil(`SELECT state FROM tsworker.workers WHERE name = 'a3'`, 'waiting');
    } finally {
      await small.cleanup();
    }
  });

  test('launch refuses invalid settings, naming every bad one, before anything starts', async () => {
    const err = await failure(`SELECT tsworker.launch('v1', $1, '{"count": 0, "nope": true, "index": -1, "mode": {"a": 1}}')`, [module]);
    assert.equal(err.code, '22023');
    assert.equal(err.message, 'invalid settings for worker "v1"');
    // the value's error is PostgreSQL's own (set_config_option), as for postgresql.conf
    assert.match(err.detail!, /setting "count": 0 is outside the valid range for parameter "tsworker_v1\.count" \(1 \.\. 2147483647\)/);
    assert.match(err.detail!, /setting "nope" is not declared by worker "v1" \(it declares: mode, count, database\)/);
    assert.match(err.detail!, /setting "index" must be an integer >= 0, not -1/);
    assert.match(err.detail!, /setting "mode" must be a string, number or boolean/);
    assert.equal(await row('v1'), undefined);
  });

  test('launch refuses a module that does not load, with the position of the error', async () => {
    const dir = path.dirname(module);
    const bad = path.join(dir, 'broken.ts');
    fs.writeFileSync(bad, "import { defineWorker } from 'pg-tsworker';\nexport default defineWorker({ name: 'b', main() { const x = ; } });\n");
    fs.chmodSync(bad, 0o644);
    const err = await failure(`SELECT tsworker.launch('v2', $1)`, [bad]);
    assert.match(err.message, /^could not load module ".*\/broken\.ts": .*\/broken\.ts:2:61: Unexpected ";"$/);
    const missing = path.join(dir, 'missing-import.ts');
    fs.writeFileSync(missing, "import { nope } from './nowhere';\nexport default nope;\n");
    fs.chmodSync(missing, 0o644);
    const err2 = await failure(`SELECT tsworker.launch('v3', $1)`, [missing]);
    assert.match(err2.message, /^could not load module ".*\/missing-import\.ts": Error: Cannot find module '\.\/nowhere'/);
    assert.equal(await row('v2'), undefined);
    assert.equal(await row('v3'), undefined);
  });
});
