/**
 * [core] The extension's versions: a cluster created at 0.1 is updated to
 * 0.2 with ALTER EXTENSION, ends with the same objects as a fresh 0.2, and
 * its old names (the tsworker.workers view, tsworker.reload()) keep working
 * for this version.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import * as fs from 'node:fs';
import * as path from 'node:path';

import { Cluster } from './harness/cluster';
import { pgMajor } from './harness/pg-config';

/** The extension's objects, comments and privileges, as one comparable list. */
const CATALOG = `
  SELECT 'function ' || p.oid::regprocedure::text || ' → ' || pg_get_function_result(p.oid)
         || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '') || ' ' || coalesce(array_to_string(p.proacl, ','), '') AS obj
    FROM pg_proc p WHERE p.pronamespace = 'tsworker'::regnamespace
  UNION ALL
  SELECT c.relkind::text || ' ' || c.oid::regclass::text || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
         || ' ' || coalesce(array_to_string(c.relacl, ','), '') || ' '
         || coalesce((SELECT string_agg(a.attname || ':' || format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum)
                        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
         || ' ' || coalesce(pg_get_viewdef(c.oid), '')
    FROM pg_class c WHERE c.relnamespace = 'tsworker'::regnamespace
  ORDER BY 1`;

describe('extension versions', () => {
  let c: Cluster;

  before(async () => {
    c = await Cluster.create('extension', { conf: { shared_preload_libraries: 'pg_tsworker' } });
    await c.query('CREATE DATABASE fresh');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('18: the library names itself and the extension version in pg_get_loaded_modules()', { skip: pgMajor() < 18 && 'PG_MODULE_MAGIC_EXT and pg_get_loaded_modules() are new in PostgreSQL 18' }, async () => {
    const control = fs.readFileSync(path.join(__dirname, '..', 'pg_tsworker.control'), 'utf8');
    const version = /^default_version = '(.*)'$/m.exec(control)![1];
    assert.equal(
      await c.queryText(`SELECT module_name || '|' || version || '|' || file_name FROM pg_get_loaded_modules() WHERE file_name = 'pg_tsworker.so'`),
      `pg_tsworker|${version}|pg_tsworker.so`,
    );
  });

  test('ALTER EXTENSION pg_tsworker UPDATE from 0.1 to 0.2 gives a fresh 0.2, and the 0.1 names still work', async () => {
    await c.query(`CREATE EXTENSION pg_tsworker VERSION '0.1'`);
    assert.equal(await c.queryOne(`SELECT extversion FROM pg_extension WHERE extname = 'pg_tsworker'`), '0.1');
    assert.equal(await c.queryOne(`SELECT to_regclass('tsworker.stat_workers') IS NULL`), true);
    assert.equal(await c.queryOne(`SELECT count(*)::int FROM tsworker.workers`), 0);

    await c.query(`ALTER EXTENSION pg_tsworker UPDATE`);
    assert.equal(await c.queryOne(`SELECT extversion FROM pg_extension WHERE extname = 'pg_tsworker'`), '0.2');

    await c.query(`CREATE EXTENSION pg_tsworker`, [], { database: 'fresh' });
    const updated = (await c.query<{ obj: string }>(CATALOG)).map((r) => r.obj);
    const fresh = (await c.query<{ obj: string }>(CATALOG, [], { database: 'fresh' })).map((r) => r.obj);
    assert.deepEqual(updated, fresh);

    // new names, and the old ones for this version
    assert.equal(await c.queryOne(`SELECT count(*)::int FROM tsworker.stat_workers`), 0);
    assert.equal(await c.queryOne(`SELECT count(*)::int FROM tsworker.workers`), 0);
    assert.equal(await c.queryOne(`SELECT tsworker.start()`), 0);
    assert.equal(await c.queryOne(`SELECT tsworker.reload()`), 0);
    await assert.rejects(c.query(`SELECT tsworker.start('nobody')`), /worker "nobody" does not exist/);
  });
});
