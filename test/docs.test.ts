/**
 * docs/settings.md and docs/sql.md must say what the code does: their
 * tables and signatures are compared with the catalog of a real cluster.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster } from './harness/cluster';

const DOCS = path.join(__dirname, '..', 'docs');

describe('docs', () => {
  let c: Cluster;

  before(async () => {
    c = await Cluster.create('docs', { conf: { shared_preload_libraries: 'pg_tsworker' } });
    await c.query('CREATE EXTENSION pg_tsworker');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('docs/settings.md lists every tsworker.* setting with its type, default, unit and context', async () => {
    const text = fs.readFileSync(path.join(DOCS, 'settings.md'), 'utf8');
    const documented = new Map<string, string[]>();
    for (const line of text.split('\n')) {
      const m = /^\| `(tsworker\.[a-z_]+)` \| ([a-z]+) \| `([^`]*)` \| ([a-zA-Z]*) *\| ([a-z]+) \|/.exec(line);
      if (m) documented.set(m[1], [m[2], m[3], m[4], m[5]]);
    }
    const rows = await c.query<{ name: string; vartype: string; boot_val: string; unit: string | null; context: string }>(
      `SELECT name, vartype, boot_val, unit, context FROM pg_settings WHERE name LIKE 'tsworker.%' ORDER BY name`,
    );
    assert.deepEqual([...documented.keys()].sort(), rows.map((r) => r.name));
    for (const r of rows) {
      assert.deepEqual(documented.get(r.name), [r.vartype, r.boot_val, r.unit ?? '', r.context], r.name);
    }
  });

  test('docs/settings.md lists every setting of the built-in workers as pg_settings shows it', async () => {
    const text = fs.readFileSync(path.join(DOCS, 'settings.md'), 'utf8');
    const documented = new Map<string, string[]>();
    for (const line of text.split('\n')) {
      const m = /^\| `(tsworker_[a-z]+\.[a-z_]+)` \| ([a-z]+) \| `([^`]*)` \| ([a-zA-Z]*) *\| ([a-z]+) \|/.exec(line);
      if (m) documented.set(m[1], [m[2], m[3], m[4], m[5]]);
    }
    // total_workers = 0: the settings exist, no aggregate process runs
    // (walarchive runs without a directory: a configuration error, it waits)
    const b = await Cluster.create('docs-builtins', {
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'aggregate, promoter, compute, walarchive',
        'tsworker_aggregate.total_workers': 0,
        'tsworker_compute.listen': '127.0.0.1:0',
      },
    });
    try {
      const rows = await b.query<{ name: string; vartype: string; boot_val: string; unit: string | null; context: string }>(
        `SELECT name, vartype, boot_val, unit, context FROM pg_settings WHERE name ~ '^tsworker_(aggregate|promoter|compute|walarchive)\\.' ORDER BY name`,
      );
      assert.ok(rows.length > 10);
      assert.deepEqual([...documented.keys()].sort(), rows.map((r) => r.name));
      for (const r of rows) {
        assert.deepEqual(documented.get(r.name), [r.vartype, r.boot_val, r.unit ?? '', r.context], r.name);
      }
    } finally {
      await b.cleanup();
    }
  });

  test('docs/sql.md gives the exact signature of every function and the columns of the view', async () => {
    const text = fs.readFileSync(path.join(DOCS, 'sql.md'), 'utf8');
    const documented = [...text.matchAll(/^### `(tsworker\.[a-z_]+)\((.*)\) → (.*)`$/gm)].map((m) => `${m[1]}(${m[2]}) → ${m[3]}`);
    const fns = await c.query<{ sig: string }>(
      `SELECT 'tsworker.' || p.proname || '(' || pg_get_function_arguments(p.oid) || ') → ' || pg_get_function_result(p.oid) AS sig
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE n.nspname = 'tsworker' ORDER BY 1`,
    );
    assert.deepEqual(documented.sort(), fns.map((f) => f.sig));

    const section = text.slice(text.indexOf('### `tsworker.stat_workers`'), text.indexOf('## Functions'));
    const cols = [...section.matchAll(/^\| `([a-z_]+)` \| ([a-z ]+) \|/gm)].map((m) => [m[1], m[2]]);
    const actual = await c.query<{ column_name: string; type: string }>(
      `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_attribute a WHERE a.attrelid = 'tsworker.stat_workers'::regclass AND a.attnum > 0 ORDER BY a.attnum`,
    );
    assert.deepEqual(cols, actual.map((r) => [r.column_name, r.type]));
  });
});
