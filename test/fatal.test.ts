/**
 * [reliability] Every fatal path of V8 and Node.js that a worker can
 * provoke ends in a logged exit 1 with the reason in last_error, never in
 * a crash-restart of the cluster; the restarted worker works again and
 * stops promptly. And every failed run leaves a useful last_error: the
 * first line of its reason, with the position where there is one.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster, pidAlive, waitFor } from './harness/cluster';
import { CRASH_RESTART, installFixtures, logLines } from './helpers';

describe('fatal paths and last_error', () => {
  let c: Cluster;
  let dir: string;
  let module: string;

  const lastError = (name: string) => c.queryOne<string | null>(`SELECT last_error FROM tsworker.workers WHERE name = $1`, [name]);

  /**
   * Launch `mode` (faults.ts) under `name`: its first run fails, the
   * restarted one writes rows. Returns the failed run's last_error after
   * checking that the cluster was not crash-restarted and that the
   * restarted worker writes rows and stops within 2 s.
   */
  async function failsThenRecovers(name: string, mode: string): Promise<string> {
    const off = c.logOffset();
    await c.query(`SELECT tsworker.launch($1, $2, $3, 'postgres')`, [name, module, JSON.stringify({ mode })]);
    await c.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = '${name}'`, 'rows', { timeoutMs: 90_000 });
    const err = await lastError(name);
    assert.ok(err, `${name}: last_error is set`);
    await c.waitForLog(new RegExp(`background worker "${name}" \\(PID \\d+\\) exited with exit code 1`), off);
    assert.deepEqual(logLines(c, CRASH_RESTART, off), [], `${name}: no crash-restart`);
    assert.deepEqual(logLines(c, new RegExp(`background worker "${name}" \\(PID \\d+\\) was terminated by signal`), off), []);
    // the restarted run works: it writes rows again
    const rows = () => c.queryOne<number>(`SELECT count(*)::int FROM fault_rows WHERE name = $1`, [name]);
    const before = await rows();
    await waitFor(async () => (await rows()) > before + 2, { timeoutMs: 10_000, what: `${name} to write rows again` });
    // and stops promptly
    const pid = await c.queryOne<number>(`SELECT pid FROM tsworker.workers WHERE name = $1`, [name]);
    const t0 = Date.now();
    await c.query(`SELECT tsworker.stop($1)`, [name]);
    await waitFor(() => !pidAlive(pid), { timeoutMs: 10_000, intervalMs: 10, what: `${name} to stop` });
    const ms = Date.now() - t0;
    console.log(`# ${name}: failed with "${err}"; restarted, wrote rows, stopped in ${ms} ms`);
    assert.ok(ms < 2000, `${name} stopped in ${ms} ms`);
    return err!;
  }

  async function setHeapLimit(mb: number): Promise<void> {
    await c.query(`ALTER SYSTEM SET tsworker.max_old_space_mb = ${mb}`);
    await c.query('SELECT pg_reload_conf()');
    await c.pollQueryUntil('SHOW tsworker.max_old_space_mb', mb === 0 ? '0' : `${mb}MB`);
  }

  before(async () => {
    c = await Cluster.create('fatal', { start: false });
    dir = installFixtures(c, 'faults');
    module = `${dir}/faults.ts`;
    const bad = installFixtures(c, 'bad');
    fs.writeFileSync(path.join(bad, 'syntax.js'), "const { defineWorker } = require('pg-tsworker');\nmodule.exports = defineWorker({ name: 'x', main() { return 1 +; } });\n");
    fs.chmodSync(path.join(bad, 'syntax.js'), 0o644);
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      max_worker_processes: 24,
      'tsworker.restart_interval': 1,
      'tsworker.crash_loop_failures': 0,
      'tsworker.max_old_space_mb': 64,
      'tsworker.workers': `conn_fail=${module}, syntax_ts=${bad}/syntax.ts, syntax_js=${bad}/syntax.js`,
      'tsworker_conn_fail.database': 'nosuchdb',
    });
    await c.start();
    await c.query(`
      CREATE EXTENSION pg_tsworker;
      CREATE TABLE fault_runs(name text, at timestamptz DEFAULT now());
      CREATE TABLE fault_rows(name text, at timestamptz DEFAULT now());
    `);
  });

  after(async () => {
    await c?.cleanup();
  });

  test('an array grown without end, heap limit 0 (V8 default) and 6000 MB: V8\'s fatal error is an exit 1', async () => {
    await setHeapLimit(0);
    assert.match(await failsThenRecovers('array0', 'array_forever'), /^V8 fatal error: Fatal JavaScript invalid size error \d+; worker stopped$/);
    await setHeapLimit(6000);
    assert.match(await failsThenRecovers('array6000', 'array_forever'), /^V8 fatal error: Fatal JavaScript invalid size error \d+; worker stopped$/);
    await setHeapLimit(64);
  });

  test('a forgotten await at a 64 MB heap limit: exit 1, and the restarted worker does not spin', async () => {
    assert.equal(
      await failsThenRecovers('heap64', 'heap_forget_await'),
      'JavaScript heap limit reached (64 MB, tsworker.max_old_space_mb); worker stopped',
    );
  });

  test('process.abort() (SIGABRT from Node.js): exit 1, not a signal', async () => {
    assert.match(await failsThenRecovers('aborts', 'abort'), /^the JavaScript engine stopped the process with SIGABRT \(signal 6\)/);
  });

  test('last_error of each failure kind: the first line of the reason, with its position', async () => {
    // an exception: its message and where the worker threw it
    const thrown = await failsThenRecovers('throws', 'throw');
    assert.match(thrown, new RegExp(`^worker failed: Error: boom: thrown from main \\(at ${module.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+\\)$`));
    // a failed connection (configured worker whose database does not exist)
    await c.pollQueryUntil(`SELECT last_error FROM tsworker.workers WHERE name = 'conn_fail'`, 'database "nosuchdb" does not exist');
    // TypeScript and JavaScript syntax errors: file:line:column
    await c.pollQueryUntil(`SELECT last_error IS NOT NULL FROM tsworker.workers WHERE name = 'syntax_ts'`);
    assert.match((await lastError('syntax_ts'))!, /^could not load module .*\/syntax\.ts: .*\/syntax\.ts:5:15: Unexpected ";"$/);
    await c.pollQueryUntil(`SELECT last_error IS NOT NULL FROM tsworker.workers WHERE name = 'syntax_js'`);
    assert.match((await lastError('syntax_js'))!, /^could not load module .*\/syntax\.js: .*\/syntax\.js:2: SyntaxError: Unexpected token ';'$/);
    // a busy loop that ignored SIGTERM
    await c.query(`SELECT tsworker.launch('busy', $1, '{"mode": "busy_timer"}', 'postgres')`, [module]);
    await c.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'busy'`, 'busy');
    await c.query(`SELECT tsworker.stop('busy')`);
    await c.pollQueryUntil(`SELECT state FROM tsworker.workers WHERE name = 'busy'`, 'stopped');
    assert.match((await lastError('busy'))!, /^did not stop within tsworker\.terminate_grace \(5 s\) after SIGTERM; JavaScript terminated$/);
    assert.deepEqual(logLines(c, CRASH_RESTART), []);
  });
});
