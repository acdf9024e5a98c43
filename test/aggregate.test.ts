/**
 * [aggregate] The built-in worker `aggregate` against PostgreSQL 15's own
 * worker_spi test (src/test/modules/worker_spi/t/001_worker_spi.pl), step by
 * step, then under concurrent load.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Cluster } from './harness/cluster';
import { CRASH_RESTART, IDLE_WAIT_EVENT_SQL, idleWaitEvent, logLines } from './helpers';

describe('aggregate: 001_worker_spi.pl, step by step', () => {
  let node: Cluster;

  before(async () => {
    node = await Cluster.create('mynode', { conf: { shared_preload_libraries: 'pg_tsworker' } });
  });

  after(async () => {
    await node?.cleanup();
  });

  test('dynamic worker: creates schema4.counted and folds a delta after a reload', async () => {
    await node.query('CREATE EXTENSION pg_tsworker');
    // worker_spi_launch(4) IS NOT NULL
    const launched = await node.queryText(`SELECT tsworker.launch('aggregate4', 'aggregate', '{"index": 4}') IS NOT NULL`);
    assert.equal(launched, 't', 'dynamic bgworker launched');
    await node.pollQueryUntil(
      `SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = 'schema4' AND table_name = 'counted'`,
    );
    await node.query(`INSERT INTO schema4.counted VALUES ('total', 0), ('delta', 1)`);
    // a SIGHUP makes the worker loop once
    await node.reload();
    await node.pollQueryUntil(`SELECT count(*) FROM schema4.counted WHERE type = 'delta'`, '0');
    assert.equal(await node.queryText('SELECT * FROM schema4.counted'), 'total|1', 'dynamic bgworker correctly consumed tuple data');
    // worker_spi's WaitLatch: its own wait event on 17+ (worker_spi's is
    // "WorkerSpiMain"), PG_WAIT_EXTENSION before.
    await node.pollQueryUntil(`SELECT wait_event FROM pg_stat_activity WHERE backend_type ~ 'aggregate'`, idleWaitEvent('aggregate4'));
    const off = node.logOffset();
    await node.query(`INSERT INTO schema4.counted VALUES ('delta', 41)`);
    await node.query(`SELECT tsworker.wake('aggregate4')`);
    await node.waitForLog(/tsworker "aggregate4": count in schema4\.counted is now 42/, off);
  });

  test('configured workers: total_workers = 3 in mydb, then two dynamic ones', async () => {
    await node.query('CREATE DATABASE mydb');
    await node.query('CREATE EXTENSION pg_tsworker', [], { database: 'mydb' });
    node.appendConf({
      'tsworker.workers': 'aggregate',
      'tsworker_aggregate.database': 'mydb',
      'tsworker_aggregate.total_workers': 3,
    });
    await node.restart();
    await node.pollQueryUntil(
      `SELECT datname, count(datname), bool_and(wait_event = ${IDLE_WAIT_EVENT_SQL}) FROM pg_stat_activity
         WHERE backend_type ~ '^aggregate[0-9]+$' GROUP BY datname`,
      'mydb|3|t',
      { database: 'mydb' },
    );
    const names = await node.query(`SELECT backend_type FROM pg_stat_activity WHERE backend_type ~ '^aggregate' ORDER BY 1`);
    assert.deepEqual(names.map((r) => r.backend_type), ['aggregate1', 'aggregate2', 'aggregate3']);
    const settings = await node.query(`SELECT name, setting, context FROM pg_settings WHERE name LIKE 'tsworker_aggregate.%' ORDER BY name`);
    assert.deepEqual(
      Object.fromEntries(settings.map((r) => [r.name, [r.setting, r.context]])),
      {
        'tsworker_aggregate.database': ['mydb', 'postmaster'],
        'tsworker_aggregate.naptime': ['10', 'sighup'],
        'tsworker_aggregate.role': ['', 'postmaster'],
        'tsworker_aggregate.schema': ['schema', 'sighup'],
        'tsworker_aggregate.table': ['counted', 'sighup'],
        'tsworker_aggregate.total_workers': ['3', 'postmaster'],
      },
    );

    const pid10 = await node.queryOne(`SELECT tsworker.launch('aggregate10', 'aggregate', '{"index": 10}')`, [], { database: 'mydb' });
    const pid11 = await node.queryOne(`SELECT tsworker.launch('aggregate11', 'aggregate', '{"index": 11}')`, [], { database: 'mydb' });
    await node.pollQueryUntil(
      `SELECT datname, count(datname), bool_and(wait_event = ${IDLE_WAIT_EVENT_SQL}) FROM pg_stat_activity
         WHERE backend_type ~ '^aggregate' AND pid IN (${pid10}, ${pid11}) GROUP BY datname`,
      'mydb|2|t',
      { database: 'mydb' },
    );
    for (const i of [1, 2, 3, 10, 11]) {
      await node.pollQueryUntil(
        `SELECT count(*) = 1 FROM information_schema.tables WHERE table_schema = 'schema${i}' AND table_name = 'counted'`,
        't',
        { database: 'mydb' },
      );
    }
  });

  test('a pass shows its statement in pg_stat_activity; totals survive a restart', async () => {
    const db = { database: 'mydb' };
    await node.query(`INSERT INTO schema2.counted VALUES ('total', 0), ('delta', 5), ('delta', 6)`, [], db);
    // Hold a conflicting lock so that the pass is caught running its statement.
    const blocker = await node.connect(db);
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE schema2.counted IN ACCESS EXCLUSIVE MODE');
    await node.query(`SELECT tsworker.wake('aggregate2')`, [], db);
    await node.pollQueryUntil(
      `SELECT query ~ '^WITH deleted AS \\(DELETE FROM "schema2"\\."counted"' AND state = 'active' FROM pg_stat_activity WHERE backend_type = 'aggregate2'`,
      't',
      db,
    );
    await blocker.query('COMMIT');
    await blocker.end();
    await node.pollQueryUntil(`SELECT value FROM schema2.counted WHERE type = 'total'`, '11', db);

    await node.restart();
    await node.pollQueryUntil(`SELECT count(*) FROM pg_stat_activity WHERE backend_type ~ '^aggregate[0-9]+$'`, '3', db);
    assert.equal(await node.queryText(`SELECT count(*) FROM pg_stat_activity WHERE backend_type IN ('aggregate10', 'aggregate11')`, [], db), '0', 'launched workers do not outlive the server');
    await node.query(`INSERT INTO schema2.counted VALUES ('delta', 100)`, [], db);
    await node.query(`SELECT tsworker.wake('aggregate2')`, [], db);
    await node.pollQueryUntil(`SELECT value FROM schema2.counted WHERE type = 'total'`, '111', db);
    assert.deepEqual(logLines(node, CRASH_RESTART), []);
  });
});

describe('aggregate: concurrent deltas', () => {
  let node: Cluster;

  before(async () => {
    node = await Cluster.create('aggregate-load', {
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'aggregate',
        'tsworker_aggregate.total_workers': 1,
        'tsworker_aggregate.naptime': '1s',
        max_connections: 30,
      },
    });
  });

  after(async () => {
    await node?.cleanup();
  });

  test('8 sessions insert 100k deltas while the worker folds: the total is exact', async (t) => {
    await node.query('CREATE EXTENSION pg_tsworker');
    await node.pollQueryUntil(`SELECT count(*) > 0 FROM information_schema.tables WHERE table_schema = 'schema1'`);
    await node.query(`INSERT INTO schema1.counted VALUES ('total', 0)`);
    const TOTAL = 100_000;
    const CLIENTS = 8;
    const value = (i: number) => (i % 7) + 1;
    let expected = 0;
    for (let i = 0; i < TOTAL; i++) expected += value(i);
    const start = Date.now();
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, c) => {
        const client = await node.connect();
        try {
          // 10-row statements, interleaved with the worker's passes
          for (let i = c * 10; i < TOTAL; i += CLIENTS * 10) {
            const vals = Array.from({ length: Math.min(10, TOTAL - i) }, (_, k) => `('delta', ${value(i + k)})`);
            await client.query(`INSERT INTO schema1.counted VALUES ${vals.join(', ')}`);
            if ((i / (CLIENTS * 10)) % 200 === 0) await client.query(`SELECT tsworker.wake('aggregate1')`);
          }
        } finally {
          await client.end();
        }
      }),
    );
    const loaded = Date.now() - start;
    const midway = Number(await node.queryOne(`SELECT value FROM schema1.counted WHERE type = 'total'`));
    await node.query(`SELECT tsworker.wake('aggregate1')`);
    await node.pollQueryUntil(`SELECT count(*) FROM schema1.counted WHERE type = 'delta'`, '0');
    const total = Number(await node.queryOne(`SELECT value FROM schema1.counted WHERE type = 'total'`));
    const passes = (await node.queryOne<any>(`SELECT status FROM tsworker.workers WHERE name = 'aggregate1'`)).passes;
    t.diagnostic(`${TOTAL} deltas from ${CLIENTS} sessions in ${loaded} ms; total ${midway} when loading ended; ${passes} passes`);
    assert.ok(midway > 0 && midway < expected, 'the worker folded while the sessions were inserting');
    assert.equal(total, expected, 'no delta lost or counted twice');
    assert.equal(await node.queryText(`SELECT count(*) FROM schema1.counted WHERE type = 'total'`), '1');
  });
});
