/**
 * [runtime] The compile cache ($PGDATA/pg_tsworker/cache): a TypeScript
 * module is compiled once; a second launch, a server restart and the
 * modules it imports come from the cache without loading tsx; a changed
 * module is recompiled; a corrupt entry is recompiled, not fatal; a cache
 * that cannot be written leaves workers running, compiled at every start,
 * with one WARNING per process.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster } from './harness/cluster';
import { CRASH_RESTART, logLines } from './helpers';

/** A worker that records its version, pid and whether tsx was loaded, then waits. */
function workerSource(version: number): string {
  return `import { defineWorker } from 'pg-tsworker';
import { tag } from './helper';

export default defineWorker({
  name: 'cached',
  async main(w) {
    const tsx = Object.keys(require.cache).some((k) => k.includes('/node_modules/tsx/'));
    w.query('INSERT INTO cc_runs(name, version, tag, tsx) VALUES ($1, $2, $3, $4)', [w.name, ${version}, tag, tsx]);
    while (await w.wait()) {
      // until stopped
    }
  },
});
`;
}

const HELPER = `export const tag: string = ['from', 'helper'].join(' ');\n`;

/** Fails in main() at line 6 (a stack trace through the cache must still name it). */
const THROWER = `import { defineWorker } from 'pg-tsworker';

export default defineWorker({
  name: 'thrower',
  restart: 'never',
  async main() { throw new Error('thrown on line six'); },
});
`;

describe('compile cache', () => {
  let c: Cluster;
  let modules: string;
  let cacheDir: string;

  /** Launch `file` as worker `name`, wait for its row (the nth of that name), stop it; the new log text. */
  async function run(name: string, file: string): Promise<{ log: string; row: Record<string, unknown> }> {
    const offset = c.logOffset();
    const before = Number(await c.queryOne('SELECT count(*) FROM cc_runs WHERE name = $1', [name]));
    await c.query('SELECT tsworker.launch($1, $2)', [name, file]);
    await c.pollQueryUntil(`SELECT count(*) > ${before} FROM cc_runs WHERE name = '${name}'`);
    const row = (await c.query('SELECT * FROM cc_runs WHERE name = $1 ORDER BY at DESC LIMIT 1', [name]))[0];
    await c.query('SELECT tsworker.stop($1)', [name]);
    await c.pollQueryUntil(`SELECT pid IS NULL FROM tsworker.workers WHERE name = '${name}'`);
    return { log: c.readLog(offset), row };
  }

  /** Cache entries: file name → mtime (ns) and inode. */
  function entries(): Map<string, string> {
    return new Map(
      fs.readdirSync(cacheDir).map((n) => {
        const st = fs.statSync(path.join(cacheDir, n), { bigint: true });
        return [n, `${st.mtimeNs}:${st.ino}`];
      }),
    );
  }

  /** The entry whose header names `file`. */
  function entryOf(file: string): string {
    for (const n of fs.readdirSync(cacheDir)) {
      const text = fs.readFileSync(path.join(cacheDir, n), 'utf8');
      if (text.startsWith('{') && (JSON.parse(text.slice(0, text.indexOf('\n'))) as { file: string }).file === file) {
        return path.join(cacheDir, n);
      }
    }
    throw new Error(`no cache entry for ${file}`);
  }

  before(async () => {
    c = await Cluster.create('compilecache', {
      conf: { shared_preload_libraries: 'pg_tsworker', max_worker_processes: 16, log_min_messages: 'debug1' },
    });
    await c.query('CREATE EXTENSION pg_tsworker');
    await c.query('CREATE TABLE cc_runs(name text, version int, tag text, tsx bool, at timestamptz DEFAULT clock_timestamp())');
    modules = path.join(c.baseDir, 'cc');
    fs.mkdirSync(modules, { mode: 0o755 });
    fs.chmodSync(modules, 0o755);
    fs.writeFileSync(path.join(modules, 'helper.ts'), HELPER, { mode: 0o644 });
    fs.writeFileSync(path.join(modules, 'main.ts'), workerSource(1), { mode: 0o644 });
    fs.writeFileSync(path.join(modules, 'thrower.ts'), THROWER, { mode: 0o644 });
    cacheDir = path.join(c.dataDir, 'pg_tsworker', 'cache');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('a second launch and a server restart take the module and its imports from the cache, without tsx', async () => {
    const main = path.join(modules, 'main.ts');
    const first = await run('cc1', main);
    assert.equal(first.row.tag, 'from helper');
    // The launch's loader child compiled both files; the worker found them.
    assert.equal(fs.statSync(cacheDir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.join(c.dataDir, 'pg_tsworker')).mode & 0o777, 0o700);
    assert.equal(fs.statSync(entryOf(main)).mode & 0o777, 0o600);
    const stored = entries();
    assert.equal(stored.size, 2, [...stored.keys()].join(', '));

    const second = await run('cc1', main);
    assert.equal(second.row.tsx, false, 'tsx was not loaded by the worker');
    assert.ok(second.log.includes(`DEBUG:  tsworker "cc1": module ${main}: compiled code from the compile cache`), second.log);
    assert.match(second.log, /DEBUG: {2}tsworker "cc1": module \S+\/helper\.ts: compiled code from the compile cache/);
    assert.doesNotMatch(second.log, /compiled TypeScript, stored/);
    assert.deepEqual(entries(), stored, 'no entry was written again');

    // A configured worker after a restart: the postmaster's loader child and the worker both hit.
    c.appendConf({ 'tsworker.workers': `cc_conf=${main}` });
    const offset = c.logOffset();
    await c.restart();
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM cc_runs WHERE name = 'cc_conf'`);
    assert.equal(await c.queryOne(`SELECT tsx FROM cc_runs WHERE name = 'cc_conf'`), false);
    assert.match(c.readLog(offset), /tsworker "cc_conf": module \S+\/main\.ts: compiled code from the compile cache/);
    assert.deepEqual(entries(), stored, 'no entry was written at the restart');
    c.appendConf({ 'tsworker.workers': '' });
    await c.restart();
  });

  test('stack traces from cached code point at the .ts lines', async () => {
    const file = path.join(modules, 'thrower.ts');
    for (const name of ['thrower1', 'thrower2']) {
      await c.query('SELECT tsworker.launch($1, $2)', [name, file]);
      await c.pollQueryUntil(`SELECT last_error IS NOT NULL FROM tsworker.workers WHERE name = '${name}'`);
    }
    // thrower2's loader and worker both took the code from the cache.
    const err = await c.queryOne<string>(`SELECT last_error FROM tsworker.workers WHERE name = 'thrower2'`);
    assert.match(err, /thrown on line six/);
    assert.match(err, /thrower\.ts:6:/);
    assert.match(c.readLog(), /tsworker "thrower2": module \S+\/thrower\.ts: compiled code from the compile cache/);
  });

  test('a changed module is recompiled', async () => {
    const main = path.join(modules, 'main.ts');
    const entry = entryOf(main);
    const before = fs.statSync(entry, { bigint: true }).mtimeNs;
    fs.writeFileSync(main, workerSource(2));
    const { row } = await run('cc2', main);
    assert.equal(row.version, 2);
    assert.notEqual(fs.statSync(entry, { bigint: true }).mtimeNs, before, 'the entry was written again');
    assert.match(fs.readFileSync(entry, 'utf8'), /\$2, \$3, \$4\)', \[w\.name, 2,/);
  });

  test('a corrupt or truncated entry is compiled again, not fatal', async () => {
    const main = path.join(modules, 'main.ts');
    const entry = entryOf(main);
    const good = fs.readFileSync(entry, 'utf8');
    for (const bad of ['not a cache entry', good.slice(0, good.length - 40)]) {
      fs.writeFileSync(entry, bad);
      const { row, log } = await run('cc3', main);
      assert.equal(row.version, 2);
      assert.equal(fs.readFileSync(entry, 'utf8'), good, 'the entry was written again');
      assert.doesNotMatch(log, /WARNING/);
    }
    assert.deepEqual(logLines(c, CRASH_RESTART), []);
  });

  test('a cache that cannot be written: workers run, compiled every time, one WARNING', async () => {
    const main = path.join(modules, 'main.ts');
    fs.rmSync(cacheDir, { recursive: true });
    fs.mkdirSync(cacheDir, { mode: 0o555 }); // owned by root: the server cannot write it
    fs.chmodSync(cacheDir, 0o555);
    try {
      for (let i = 0; i < 2; i++) {
        const { row, log } = await run('cc4', main);
        assert.equal(row.version, 2);
        assert.equal(row.tsx, true, 'the worker compiled the module');
        const warnings = log.split('\n').filter((l) => /WARNING/.test(l));
        assert.equal(warnings.length, 1, warnings.join('\n'));
        assert.match(warnings[0], /tsworker "cc4": could not write the compile cache .*pg_tsworker\/cache: .*compiled at every start/);
      }
      assert.deepEqual(fs.readdirSync(cacheDir), []);
    } finally {
      fs.rmSync(cacheDir, { recursive: true });
    }
    // Gone altogether: created again, and used.
    await run('cc5', main);
    const { row } = await run('cc5', main);
    assert.equal(row.tsx, false);
    assert.equal(fs.statSync(cacheDir).mode & 0o777, 0o700);
  });
});
