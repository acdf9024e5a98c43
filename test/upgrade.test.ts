/**
 * [reliability] pg_upgrade of a cluster that preloads pg_tsworker and runs
 * configured workers: no worker starts in binary-upgrade mode (a worker
 * connected to a database made the schema restore fail), and the workers
 * run again once the upgraded server starts normally.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster, PG_BIN } from './harness/cluster';
import { installFixtures } from './helpers';

function runAsServerUser(file: string, args: string[], cwd: string): Promise<{ code: number; out: string }> {
  const root = process.getuid?.() === 0;
  const cmd = root ? 'runuser' : file;
  const argv = root ? ['-u', process.env.PG_TSWORKER_OSUSER || 'postgres', '--', file, ...args] : args;
  return new Promise((resolve) => {
    execFile(cmd, argv, { cwd, timeout: 180_000, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, out: `${stdout}${stderr}` });
    });
  });
}

describe('pg_upgrade', () => {
  let oldc: Cluster;
  let newc: Cluster;

  before(async () => {
    oldc = await Cluster.create('up-old', { start: false });
    const dir = installFixtures(oldc, 'faults');
    const conf = {
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': `keeper=${dir}/faults.ts, second=${dir}/faults.ts`,
    };
    oldc.appendConf(conf);
    await oldc.start();
    await oldc.query(`CREATE EXTENSION pg_tsworker; CREATE TABLE fault_runs(name text, at timestamptz DEFAULT now()); INSERT INTO fault_runs VALUES ('before upgrade')`);
    await oldc.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE state = 'waiting'`, '2');
    await oldc.stop();
    newc = await Cluster.create('up-new', { start: false });
    newc.appendConf(conf);
  });

  after(async () => {
    await oldc?.cleanup();
    await newc?.cleanup();
  });

  test('pg_upgrade completes, and the workers run once the new server starts', async () => {
    const res = await runAsServerUser(
      path.join(PG_BIN, 'pg_upgrade'),
      ['-b', PG_BIN, '-B', PG_BIN, '-d', oldc.dataDir, '-D', newc.dataDir, '-p', String(oldc.port), '-P', String(newc.port), '-s', newc.host],
      newc.baseDir,
    );
    assert.equal(res.code, 0, `pg_upgrade failed:\n${res.out}`);
    assert.match(res.out, /Upgrade Complete/);
    await newc.start();
    await newc.pollQueryUntil(`SELECT count(*) FROM tsworker.workers WHERE state = 'waiting'`, '2');
    assert.equal(await newc.queryOne(`SELECT count(*)::int FROM fault_runs WHERE name = 'before upgrade'`), 1);
    const types = await newc.query(`SELECT backend_type FROM pg_stat_activity WHERE backend_type IN ('keeper', 'second') ORDER BY 1`);
    assert.deepEqual(types.map((r) => r.backend_type), ['keeper', 'second']);
  });
});
