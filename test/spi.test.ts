/**
 * [spi] Statements, limits and interrupts through the bindings, on a real
 * cluster.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { Cluster, pidAlive, waitFor, signalPid } from './harness/cluster';
import { CRASH_RESTART, installFixtures, logLines } from './helpers';

describe('interrupts and limits', () => {
  let c: Cluster;
  let dir: string;

  before(async () => {
    c = await Cluster.create('spi-interrupts', { start: false });
    dir = installFixtures(c, 'spi');
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.statement_timeout': '300ms',
      'tsworker.terminate_grace': '1s',
      'tsworker.restart_interval': -1,
    });
    await c.start();
    await c.query('CREATE EXTENSION pg_tsworker; CREATE TABLE spi_report(step text, value text)');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('tsworker.statement_timeout and a per-call timeout cancel statements with SQLSTATE 57014', async () => {
    await c.query(`SELECT tsworker.launch('timeouts', $1)`, [`${dir}/timeouts.ts`]);
    await c.pollQueryUntil(`SELECT count(*) = 1 FROM spi_report WHERE step = 'done'`, 't', { timeoutMs: 20_000 });
    const rows = Object.fromEntries((await c.query('SELECT step, value FROM spi_report')).map((r) => [r.step, JSON.parse(r.value)]));
    assert.equal(rows.guc.ok, false);
    assert.equal(rows.guc.code, '57014');
    assert.equal(rows.guc.message, 'canceling statement due to statement timeout');
    assert.ok(rows.guc.ms >= 250 && rows.guc.ms < 2000, `guc timeout after ${rows.guc.ms} ms`);
    assert.equal(rows.option.code, '57014');
    assert.ok(rows.option.ms < 250, `per-call timeout after ${rows.option.ms} ms`);
    assert.equal(rows.unlimited.ok, true, 'timeout 0 is no limit');
    assert.equal(rows.after.ok, true, 'the worker goes on after a timeout');
    await c.query(`SELECT tsworker.stop('timeouts')`);
  });

  test('SIGTERM during a long statement ends the statement and the worker within 2 s', async () => {
    const pid = await c.queryOne(`SELECT tsworker.launch('longquery', $1)`, [`${dir}/longquery.ts`]);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.workers WHERE name = 'longquery'`);
    await c.query(`SELECT tsworker.wake('longquery')`);
    await c.pollQueryUntil(`SELECT query = 'SELECT pg_sleep(60)' AND state = 'active' FROM pg_stat_activity WHERE pid = ${pid}`);
    const off = c.logOffset();
    const start = Date.now();
    signalPid(pid, 'SIGTERM');
    await waitFor(() => !pidAlive(pid), { timeoutMs: 5_000, intervalMs: 20, what: 'the worker to exit' });
    const ms = Date.now() - start;
    assert.ok(ms < 2000, `worker exited ${ms} ms after SIGTERM`);
    await c.waitForLog(/tsworker "longquery": stopped on shutdown request \(its running statement was cancelled\)/, off);
    await c.waitForLog(/tsworker "longquery": exiting with code 0/, off);
  });

  test('a busy loop is terminated tsworker.terminate_grace after SIGTERM, without a crash-restart', async () => {
    const pid = await c.queryOne(`SELECT tsworker.launch('busy', $1)`, [`${dir}/busy.ts`]);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.workers WHERE name = 'busy'`);
    await c.query(`SELECT tsworker.wake('busy')`);
    await c.pollQueryUntil(`SELECT (status->>'spinning')::bool FROM tsworker.workers WHERE name = 'busy'`);
    const off = c.logOffset();
    const start = Date.now();
    await c.query(`SELECT tsworker.stop('busy')`);
    await waitFor(() => !pidAlive(pid), { timeoutMs: 10_000, intervalMs: 20, what: 'the busy worker to exit' });
    const ms = Date.now() - start;
    assert.ok(ms >= 900 && ms < 3000, `busy worker ended ${ms} ms after SIGTERM (grace 1 s)`);
    await c.waitForLog(/tsworker "busy": did not stop within tsworker\.terminate_grace \(1 s\) after SIGTERM; JavaScript terminated/, off);
    assert.deepEqual(logLines(c, CRASH_RESTART), []);
    assert.equal(await c.queryOne('SELECT 1'), 1);
  });

  test('a busy loop does not outlive a SIGKILLed postmaster', async () => {
    const pid = await c.queryOne(`SELECT tsworker.launch('busy2', $1)`, [`${dir}/busy.ts`]);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.workers WHERE name = 'busy2'`);
    await c.query(`SELECT tsworker.wake('busy2')`);
    await c.pollQueryUntil(`SELECT (status->>'spinning')::bool FROM tsworker.workers WHERE name = 'busy2'`);
    const start = Date.now();
    await c.kill9({ waitChildren: false });
    await waitFor(() => !pidAlive(pid), { timeoutMs: 5_000, intervalMs: 20, what: 'the busy worker to exit' });
    console.log(`# spinning worker gone ${Date.now() - start} ms after the postmaster's SIGKILL`);
  });
});

describe('transactions: savepoints, read-only, standby', () => {
  let primary: Cluster;
  let standby: Cluster;
  let dir: string;

  before(async () => {
    primary = await Cluster.create('spi-tx', { allowStreaming: true, start: false });
    dir = installFixtures(primary, 'spi');
    primary.appendConf({ shared_preload_libraries: 'pg_tsworker' });
    await primary.start();
    await primary.query('CREATE EXTENSION pg_tsworker');
    standby = await Cluster.createStandby(primary, 'spi-tx-standby');
  });

  after(async () => {
    await standby?.cleanup();
    await primary?.cleanup();
  });

  test('a savepoint undoes only its own work; nested savepoints commit with the transaction', async () => {
    await primary.query(`SELECT tsworker.launch('txfeatures', $1)`, [`${dir}/txfeatures.ts`]);
    await primary.pollQueryUntil(`SELECT status ? 'rows' FROM tsworker.workers WHERE name = 'txfeatures'`);
    const st = (await primary.query(`SELECT status FROM tsworker.workers WHERE name = 'txfeatures'`))[0].status;
    assert.match(st.inner, /^23505: duplicate key value violates unique constraint "sp_t_pkey"/);
    assert.deepEqual(st.rows, [1, 3, 4]);
    assert.equal(st.readOnlyWrite, '25006: cannot execute INSERT in a read-only transaction');
    assert.equal(st.readOnlyRead, 'ok');
    assert.equal(st.afterReadOnly, 'ok', 'read-only ends with its transaction');
  });

  test('on a hot standby a launched worker runs, and a write is a clear PgError', async () => {
    await standby.pollQueryUntil(`SELECT count(*) = 1 FROM pg_extension WHERE extname = 'pg_tsworker'`);
    const pid = await standby.queryOne(`SELECT tsworker.launch('txfeatures', $1)`, [`${dir}/txfeatures.ts`]);
    assert.ok(pid > 0);
    await standby.pollQueryUntil(`SELECT status ? 'standbyWrite' FROM tsworker.workers WHERE name = 'txfeatures'`);
    const st = (await standby.query(`SELECT status FROM tsworker.workers WHERE name = 'txfeatures'`))[0].status;
    assert.equal(st.standby, true);
    assert.equal(st.standbyWrite, '25006: cannot execute CREATE TABLE in a read-only transaction');
    assert.equal(st.standbyRead, 'ok');
  });
});

describe('prepared statements, cursors, statement savepoints', () => {
  let c: Cluster;
  let rows: Record<string, any>;
  const BIG = 10_000_000;

  before(async () => {
    c = await Cluster.create('spi-stmts', { start: false });
    const dir = installFixtures(c, 'spi');
    c.appendConf({ shared_preload_libraries: 'pg_tsworker', 'tsworker.restart_interval': -1 });
    await c.start();
    await c.query('CREATE EXTENSION pg_tsworker; CREATE TABLE spi_report(step text, value text); CREATE TABLE stmt_t(id int PRIMARY KEY, v text)');
    await c.query(`SELECT tsworker.launch('stmts', $1, $2)`, [`${dir}/stmts.ts`, JSON.stringify({ rows: BIG })]);
    await c.pollQueryUntil(`SELECT count(*) = 1 FROM spi_report WHERE step = 'done'`, 't', { timeoutMs: 180_000 });
    rows = Object.fromEntries((await c.query('SELECT step, value FROM spi_report')).map((r) => [r.step, JSON.parse(r.value)]));
  });

  after(async () => {
    await c?.cleanup();
  });

  test('tx.prepare: typed and inferred parameters, reused across transactions, free()', () => {
    assert.deepEqual(rows.prepared_params, [[23, 'scalar'], [23, 'scalar']]);
    assert.deepEqual(rows.prepared_runs, [3, 42]);
    assert.equal(rows.prepared_outside.code, '25P01', 'outside a transaction');
    assert.match(rows.prepared_arity.error, /RangeError: the statement takes 2 parameters, 1 were given/);
    assert.match(rows.prepared_freed.error, /the statement has been freed/);
    assert.deepEqual(rows.prepare_error.ok, [{ code: '42601', message: 'syntax error at or near "SELEC"' }, 1], 'a failed prepare leaves the transaction usable');
    assert.deepEqual(rows.prepared_insert, [1, { id: 2 }]);
    assert.equal(rows.prepared_insert_dup.code, '23505');
  });

  test('parameter lists, short (one argument each) and long (one array), are converted and counted alike', () => {
    const p = rows.param_lists;
    assert.equal(p.query32, (32 * 33) / 2);
    assert.equal(p.query33, (33 * 34) / 2);
    assert.equal(p.tx300, (300 * 301) / 2);
    assert.equal(p.prepared40, (40 * 41) / 2);
    assert.equal(p.nulls, null, 'a null parameter is SQL NULL');
    assert.equal(p.shortArity.code, '42P18', 'an inferred statement given too many parameters');
    assert.match(p.longArity.error, /RangeError: the statement takes 40 parameters, 41 were given/);
    assert.match(p.longArityShort.error, /RangeError: the statement takes 40 parameters, 2 were given/);
    assert.equal(p.refused.code, '22P02', 'a value int4in refuses');
    assert.equal(p.refusedPrepared.code, '22P02', 'a value int4in refuses, prepared');
    assert.deepEqual(p.afterRefused, [(40 * 41) / 2, (40 * 41) / 2], 'parameters work after a refused one');
  });

  test('tx.cursor: fetch, move, close, scroll, batches, sync and async iteration', () => {
    assert.deepEqual(rows.cursor_ops.ok ?? rows.cursor_ops, { a: [3, 4, 5], moved: 2, b: [8], rest: [9, 10], end: 0, closed: { error: 'Error: cursor.fetch(): the cursor is closed' } });
    assert.deepEqual(rows.cursor_scroll, { back: 3, next: 3 });
    assert.equal(rows.cursor_noscroll.code, '55000', 'moving backward needs scroll');
    assert.deepEqual(rows.cursor_iterate, { sum: 2500 * 2501 / 2, n: 2500, sizes: [100, 100, 50] });
    assert.deepEqual(rows.cursor_async, { n: 3000, batches: 3, m: 1234 });
    assert.equal(rows.cursor_after_tx.code, '34000', 'a cursor ends with its transaction');
    assert.equal(rows.cursor_error.ok[0].code, '22012');
    assert.equal(rows.cursor_error.ok[1], 1, 'an error in a fetch undoes only the fetch');
    assert.deepEqual(rows.prepared_cursor, [1, 2, 3, 4, 5]);
  });

  test('statementSavepoints: false: a failed statement fails the transaction, or only the innermost savepoint', () => {
    assert.equal(rows.nosp_commit, 'ok');
    assert.equal(rows.nosp_failed.first.code, '23505');
    assert.equal(rows.nosp_failed.next.code, '25P02', 'later statements are refused');
    assert.equal(rows.nosp_failed.end.code, '40000', 'the end of the transaction reports the rollback');
    assert.equal(rows.nosp_failed.kept, 0, 'nothing of the failed transaction is kept');
    assert.equal(rows.nosp_savepoint.inner.code, '23505');
    assert.deepEqual(rows.nosp_savepoint.ids, [300, 302]);
  });

  test(`a ${BIG / 1e6}M-row cursor is read in constant memory`, (t) => {
    const big = rows.big_cursor;
    assert.equal(big.n, BIG);
    const mb = (kb: number) => Math.round(kb / 1024);
    t.diagnostic(`${BIG} rows in ${big.ms} ms; resident ${mb(big.rssAtMillionKb)} MB after 1M rows, ${mb(big.rssEndKb)} MB at the end; peak ${mb(big.hwmKb)} MB`);
    assert.ok(big.rssAtMillionKb > 0);
    assert.ok(big.rssEndKb - big.rssAtMillionKb < 16 * 1024, 'resident size does not grow with the rows read');
    assert.ok(big.hwmKb < 400 * 1024, 'peak resident size stays small');
    assert.deepEqual(logLines(c, /leak|still referenced|non-empty SPI stack|snapshot still active/i), []);
  });
});

