/**
 * [runtime] Bad configuration and broken modules: clear errors, and never a
 * crash-restart of the cluster.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { Cluster } from './harness/cluster';
import { CRASH_RESTART, installFixtures, logLines } from './helpers';

describe('configuration errors', () => {
  let c: Cluster;
  let dir: string;

  before(async () => {
    c = await Cluster.create('config', { start: false });
    dir = installFixtures(c, 'bad');
    c.appendConf({ shared_preload_libraries: 'pg_tsworker', 'tsworker.restart_interval': -1 });
  });

  after(async () => {
    await c?.cleanup();
  });

  const refused: [string, string, RegExp][] = [
    ['a relative module path', 'relative/worker.ts', /module path "relative\/worker\.ts" is not absolute/],
    ['an unknown built-in', 'no_such_builtin', /"no_such_builtin" is neither a built-in worker nor an absolute path to a module/],
    ['a module without a known extension', '/tmp/worker.py', /module "\/tmp\/worker\.py" does not end in \.ts, \.cts, \.js or \.cjs/],
    ['a duplicate name', 'a=/tmp/x.ts, a=/tmp/y.ts', /worker name "a" is used twice/],
    ['a name that is not an identifier', 'my-worker=/tmp/x.ts', /invalid worker name "my-worker"/],
    ['a file name that gives no valid name', '/tmp/my-worker.ts', /cannot derive a worker name from "\/tmp\/my-worker\.ts": write the entry as name=/],
  ];
  for (const [what, value, message] of refused) {
    test(`the server refuses to start with ${what} in tsworker.workers`, async () => {
      const off = c.logOffset();
      c.appendConf({ 'tsworker.workers': value });
      let started = false;
      await c.start().then(
        () => (started = true),
        () => undefined,
      );
      if (started) await c.stop('immediate');
      assert.equal(started, false, 'the server must not start');
      await c.waitForLog(/invalid value for parameter "tsworker\.workers"/, off);
      await c.waitForLog(message, off);
    });
  }

  test('broken modules are reported by name and exit 1; the cluster stays up', async () => {
    const off = c.logOffset();
    c.appendConf({
      'tsworker.workers': `missing=${dir}/missing.ts, nodefault=${dir}/nodefault.ts, syntax=${dir}/syntax.ts, heap=${dir}/heap.ts, ok=${dir}/ok.ts`,
      'tsworker.max_old_space_mb': 32,
    });
    await c.start();
    const client = await c.connect();
    try {
      const backend = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      await c.waitForLog(new RegExp(`missing WARNING:  tsworker "missing": module "${dir}/missing\\.ts" does not exist or cannot be read by the server: No such file or directory`), off);
      await c.waitForLog(/tsworker "nodefault": could not load module .*nodefault\.ts: TypeError: module .* must have a default export made by defineWorker\(\)/, off);
      await c.waitForLog(/tsworker "syntax": could not load module .*syntax\.ts: [\s\S]*?syntax\.ts:5:14: ERROR: Unexpected ";"/, off);
      await c.waitForLog(/tsworker "heap": JavaScript heap limit reached \(32 MB, tsworker\.max_old_space_mb\); worker stopped/, off);
      for (const name of ['missing', 'nodefault', 'syntax', 'heap']) {
        await c.waitForLog(new RegExp(`background worker "${name}" \\(PID \\d+\\) exited with exit code 1`), off);
      }
      await c.pollQueryUntil(`SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'ok'`);
      assert.equal((await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid, backend);
      assert.deepEqual(logLines(c, CRASH_RESTART, off), []);
    } finally {
      await client.end();
    }
  });

  test('a module that exits or loops at its top level costs only itself: the others keep their settings and instances', async () => {
    const write = (file: string, text: string) => {
      fs.writeFileSync(`${dir}/${file}`, text);
      fs.chmodSync(`${dir}/${file}`, 0o644);
    };
    const declares = (extra: string) => `import { defineWorker } from 'pg-tsworker';
export default defineWorker({
  name: 'x',
  ${extra}
  settings: { count: { type: 'int', default: 2, min: 1, max: 5, context: 'postmaster', description: 'instances' }, naptime: { type: 'int', default: 7, unit: 's', description: 'nap' } },
  async main(w) { while (await w.wait()) {} },
});
`;
    write('multi.ts', declares("instances: 'count',"));
    write('later.ts', declares(''));
    write('exiter.ts', `import { defineWorker } from 'pg-tsworker';
if (!process.env.API_TOKEN) { console.error('API_TOKEN missing'); process.exit(1); }
export default defineWorker({ name: 'exiter', async main(w) { while (await w.wait()) {} } });
`);
    write('looper.ts', `import { defineWorker } from 'pg-tsworker';
for (;;) {}
export default defineWorker({ name: 'looper', async main(w) { while (await w.wait()) {} } });
`);
    write('killer.ts', `import { defineWorker } from 'pg-tsworker';
process.reallyExit(3);
export default defineWorker({ name: 'killer', async main(w) { while (await w.wait()) {} } });
`);
    c.appendConf({
      'tsworker.workers': `multi=${dir}/multi.ts, exiter=${dir}/exiter.ts, looper=${dir}/looper.ts, killer=${dir}/killer.ts, later=${dir}/later.ts`,
      'tsworker.database': 'postgres',
      'tsworker.module_load_timeout': '3s',
      'tsworker.max_old_space_mb': 256,
    });
    const off = c.logOffset();
    await c.restart();
    await c.waitForLog(/could not read the settings of worker "exiter": Error: process\.exit\(1\) called while the module was loading/, off);
    await c.waitForLog(/could not read the settings of worker "looper": loading it did not finish within 3 s \(tsworker\.module_load_timeout\)/, off);
    await c.waitForLog(/could not read the settings of worker "killer": the module loader exited with status 3 while loading it/, off);
    assert.deepEqual(logLines(c, /could not read the settings of the configured workers/, off), []);
    const settings = await c.query(`SELECT name, setting FROM pg_settings WHERE name ~ '^tsworker_(multi|later)\\.' ORDER BY name`);
    assert.deepEqual(
      settings.map((r) => `${r.name}=${r.setting}`),
      ['tsworker_later.count=2', 'tsworker_later.naptime=7', 'tsworker_multi.count=2', 'tsworker_multi.naptime=7'],
    );
    await c.query('CREATE EXTENSION IF NOT EXISTS pg_tsworker');
    const names = (await c.query(`SELECT name FROM tsworker.stat_workers WHERE name ~ '^(multi|later)' ORDER BY name`)).map((r) => r.name);
    assert.deepEqual(names, ['later', 'multi1', 'multi2']);
    assert.deepEqual(logLines(c, CRASH_RESTART, off), []);
    await c.stop();
  });

  test('a database that does not exist: FATAL, exit 1, no crash-restart', async () => {
    c.appendConf({ 'tsworker.workers': `ok=${dir}/ok.ts`, 'tsworker.database': 'no_such_db' });
    const off = c.logOffset();
    await c.restart();
    await c.waitForLog(/ok FATAL:  database "no_such_db" does not exist/, off);
    await c.waitForLog(/background worker "ok" \(PID \d+\) exited with exit code 1/, off);
    assert.equal(await c.queryOne('SELECT 1'), 1);
    assert.deepEqual(logLines(c, CRASH_RESTART, off), []);
  });
});
