/**
 * bench/spi/setup.ts — the cluster, the tables and the worker module that
 * bench/spi/run and bench/spi/profile share.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type pg from 'pg';

import type { Cluster } from '../../test/harness/cluster';

/** postgresql.conf of the benchmark's cluster. */
export const BENCH_CONF = {
  shared_preload_libraries: 'pg_tsworker',
  max_worker_processes: 16,
  // The whole bench_read table (about 100 MB at 1M rows) stays in shared buffers.
  shared_buffers: '512MB',
  // No autovacuum or autoanalyze running beside a measurement on this 2-core machine.
  autovacuum: false,
  'tsworker.restart_interval': -1,
};

/** worker.ts copied where the server's OS user can read it (the checkout may not be); its directory. */
export function installWorker(cluster: Cluster): string {
  const dir = path.join(cluster.baseDir, 'bench');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chmodSync(dir, 0o755);
  fs.copyFileSync(path.join(__dirname, 'worker.ts'), path.join(dir, 'worker.ts'));
  fs.chmodSync(path.join(dir, 'worker.ts'), 0o644);
  return dir;
}

/**
 * The extensions and tables, bench_read filled with `rows` rows, frozen,
 * analysed and read once (so that no system pays for hint bits or for
 * reading it into shared buffers). `beforeWarm` runs before that read.
 */
export async function createTables(db: pg.Client, rows: number, beforeWarm?: () => Promise<void>): Promise<void> {
  await db.query('CREATE EXTENSION pg_tsworker');
  await db.query('CREATE EXTENSION tsw_bench_c');
  await db.query(`CREATE TABLE tsw_bench_results(
    id bigserial PRIMARY KEY, system text NOT NULL, workload text NOT NULL, n int NOT NULL,
    seconds float8 NOT NULL, checksum int8, token int8, cpu_seconds float8, at timestamptz NOT NULL DEFAULT clock_timestamp())`);
  await db.query('CREATE TABLE bench_ins(id int8, v text)');
  await db.query('CREATE TABLE bench_read(id int8, n numeric, f float8, t text, ts timestamptz, b bool)');
  process.stderr.write(`filling bench_read with ${rows} rows ...\n`);
  await db.query(
    `INSERT INTO bench_read
     SELECT i, round(i * 1.6180339887, 4), i / 7.0::float8, 'text-' || i || repeat('x', (i % 23)::int),
            timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second', i % 2 = 0
     FROM generate_series(1, $1::int8) AS i`,
    [rows],
  );
  await db.query('ALTER TABLE bench_read ADD PRIMARY KEY (id)');
  await db.query('VACUUM (FREEZE, ANALYZE) bench_read');
  await db.query('CHECKPOINT');
  await beforeWarm?.();
  // Warm shared buffers so that the first system does not pay for reading the table in.
  await db.query('SELECT count(*), sum(length(t)) FROM bench_read');
}
