/**
 * bench/compute/run.ts — the compute benchmark driver (started by
 * bench/compute/run).
 *
 * The first apply of a spec of 1,000 roles and 100 databases (test/compute-client.ts
 * `bigSpec`), on a fresh cluster each time, by:
 *   worker       the built-in `compute` worker: POST /configure, timed by the
 *                client (JSON, validation, catalog read, plan and every
 *                statement), and the worker's own config_ms; on an empty
 *                compute (compute_ctl starts it: 10 databases at a time in
 *                RunInEachDatabase) and on a running one (a reconfiguration:
 *                reconfigure_concurrency, 1 at a time)
 *   psql         the same statements, planned by the worker's own planner
 *                (src/workers/compute/plan.ts) against the fresh catalog,
 *                written to a file and run by `psql -f`: autocommit (as a
 *                DBA's script runs), and with the worker's transaction
 *                grouping (consecutive statements of its database in one
 *                BEGIN/COMMIT); the faster of the two is the floor
 * then, on the worker's cluster, the no-op re-apply: POST /configure of the
 * same spec, repeated, client round trip and config_ms.
 *
 * Trials alternate who goes first; medians are shown with ratios.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { catalogFrom, CATALOG_SQL } from '../../src/workers/compute/catalog';
import { planApply, type Operation } from '../../src/workers/compute/plan';
import { quoteIdent } from '../../src/workers/sql';
import { Cluster, getFreePort, PG_OS_USER, waitFor } from '../../test/harness/cluster';
import { ApiClient, bigSpec } from '../../test/compute-client';
import { fmtRatio, fmtSeconds, median, table } from '../report';

interface Options {
  /** Where the clusters live (TMPDIR of the harness). */
  dir: string;
  trials: number;
  noops: number;
  roles: number;
  databases: number;
  fsync: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { dir: fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), trials: 5, noops: 20, roles: 1000, databases: 100, fsync: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => Number(argv[++i]);
    if (a === '--trials') o.trials = next();
    else if (a === '--noops') o.noops = next();
    else if (a === '--roles') o.roles = next();
    else if (a === '--databases') o.databases = next();
    else if (a === '--fsync') o.fsync = true;
    else if (a === '--dir') o.dir = argv[++i];
    else if (a === '-h' || a === '--help') {
      console.log('bench/compute/run [--trials N] [--noops N] [--roles N] [--databases N] [--fsync] [--dir DIR]');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const conf = (o: Options, extra: Record<string, string | number> = {}) => ({
  shared_preload_libraries: 'pg_tsworker',
  fsync: o.fsync ? 'on' : 'off',
  max_wal_size: '4GB',
  ...extra,
});

/** The statements the worker plans for `spec` on this (fresh) cluster. */
async function planFor(c: Cluster, spec: any): Promise<Operation[]> {
  const client = await c.connect();
  try {
    const rows: Record<string, Record<string, unknown>[]> = {};
    for (const [k, sql] of Object.entries(CATALOG_SQL)) rows[k] = (await client.query(sql)).rows;
    const catalog = catalogFrom(rows as Parameters<typeof catalogFrom>[0]);
    const plan = planApply(spec, catalog, {
      privilegedRole: 'neon_superuser',
      adminRole: 'postgres',
      managedSettings: new Set(),
      schemaPermsDone: new Map(),
      validUntil: new Map(),
    });
    // The worker writes the settings first (and checks them so), over its connection; then the rest, from the reload on.
    const settings: Operation[] = plan.settingWrites.map((s) => ({ phase: 'Settings', sql: s.sql, target: 'server' }));
    return [...settings, ...plan.operations];
  } finally {
    await client.end();
  }
}

/**
 * A psql script of `ops`: statements of other databases under one `\connect`
 * per run of them, as the worker uses one connection per database;
 * `grouped`: consecutive statements of the worker's database in one
 * transaction, as the worker runs them.
 */
function script(ops: Operation[], grouped: boolean): string {
  const out: string[] = ['\\set ON_ERROR_STOP on'];
  let inTx = false;
  let db = 'postgres';
  const close = () => {
    if (inTx) out.push('COMMIT;');
    inTx = false;
  };
  const connect = (to: string) => {
    if (db !== to) out.push(`\\connect ${quoteIdent(to)}`);
    db = to;
  };
  for (const op of ops) {
    if (typeof op.target === 'object') {
      close();
      connect(op.target.database);
      out.push(`${op.sql};`);
      continue;
    }
    connect('postgres');
    if (op.target === 'server') {
      close();
      out.push(`${op.sql};`);
    } else {
      if (grouped && !inTx) {
        out.push('BEGIN;');
        inTx = true;
      }
      out.push(`${op.sql};`);
    }
  }
  close();
  return out.join('\n') + '\n';
}

function runPsql(c: Cluster, file: string): Promise<number> {
  const args = ['-u', PG_OS_USER, '--', c.bin('psql'), '-X', '-q', '-h', c.host, '-p', String(c.port), '-U', 'postgres', '-d', 'postgres', '-f', file];
  const t0 = performance.now();
  return new Promise((resolve, reject) =>
    execFile('runuser', args, { maxBuffer: 64 << 20 }, (err, _out, stderr) => (err ? reject(new Error(`psql: ${err.message}\n${stderr}`)) : resolve(performance.now() - t0))),
  );
}

async function psqlTrial(o: Options, grouped: boolean): Promise<{ ms: number; statements: number }> {
  const c = await Cluster.create(grouped ? 'bench-psql-tx' : 'bench-psql', { conf: conf(o) });
  try {
    const ops = await planFor(c, bigSpec(o.roles, o.databases));
    const file = path.join(c.baseDir, 'apply.sql');
    fs.writeFileSync(file, script(ops, grouped));
    fs.chmodSync(file, 0o644);
    const ms = await runPsql(c, file);
    return { ms, statements: ops.length };
  } finally {
    await c.cleanup();
  }
}

/**
 * One worker trial. `running`: the compute first takes a one-role spec, so
 * that the big spec is a reconfiguration (compute_ctl's
 * reconfigure_concurrency, 1 database at a time) instead of the start of an
 * empty compute (compute_ctl's max_service_connections, 10 at a time).
 */
async function workerTrial(o: Options, running: boolean): Promise<{ ms: number; configMs: number; statements: number; noop: number[]; noopConfig: number[] }> {
  const port = await getFreePort();
  const c = await Cluster.create('bench-compute', { conf: conf(o, { 'tsworker.workers': 'compute', 'tsworker_compute.listen': `127.0.0.1:${port}` }) });
  try {
    const api = new ApiClient(`http://127.0.0.1:${port}`);
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.json?.status === 'empty', { what: 'the compute API' });
    if (running) {
      const small = await api.post('/configure', { body: { spec: { format_version: 1.0, cluster: { roles: [{ name: 'first' }], databases: [] } } } });
      if (small.status !== 200) throw new Error(`small spec: ${small.status} ${small.text}`);
    }
    const spec = bigSpec(o.roles, o.databases);
    const first = await api.post('/configure', { body: { spec } });
    if (first.status !== 200) throw new Error(`first apply: ${first.status} ${first.text}`);
    const m = (await api.get('/metrics.json')).json;
    const noop: number[] = [];
    const noopConfig: number[] = [];
    for (let i = 0; i < o.noops; i++) {
      const r = await api.post('/configure', { body: { spec } });
      if (r.status !== 200) throw new Error(`no-op apply: ${r.status} ${r.text}`);
      const mm = (await api.get('/metrics.json')).json;
      if (mm.last_apply_statements !== 0) throw new Error(`the re-apply ran ${mm.last_apply_statements} statements`);
      noop.push(r.ms);
      noopConfig.push(mm.config_ms);
    }
    return { ms: first.ms, configMs: m.config_ms, statements: m.last_apply_statements, noop, noopConfig };
  } finally {
    await c.cleanup();
  }
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  process.env.TMPDIR = o.dir; // the harness makes its clusters under os.tmpdir()
  console.log(
    `bench/compute: first apply of ${o.roles} roles and ${o.databases} databases, ${o.trials} trial(s) each, fsync=${o.fsync ? 'on' : 'off'}, clusters in ${o.dir}`,
  );
  const res = {
    worker: [] as number[],
    config: [] as number[],
    running: [] as number[],
    auto: [] as number[],
    tx: [] as number[],
    noop: [] as number[],
    noopConfig: [] as number[],
  };
  let statements = 0;
  let psqlStatements = 0;
  for (let t = 0; t < o.trials; t++) {
    const order = t % 2 === 0 ? ['worker', 'auto', 'running', 'tx'] : ['tx', 'running', 'auto', 'worker'];
    for (const who of order) {
      if (who === 'running') {
        const w = await workerTrial(o, true);
        res.running.push(w.ms);
        console.log(`  trial ${t + 1}: worker on a running compute ${fmtSeconds(w.ms / 1000)} (config_ms ${w.configMs}, ${w.statements} statements)`);
      } else if (who === 'worker') {
        const w = await workerTrial(o, false);
        res.worker.push(w.ms);
        res.config.push(w.configMs);
        res.noop.push(...w.noop);
        res.noopConfig.push(...w.noopConfig);
        statements = w.statements;
        console.log(`  trial ${t + 1}: worker ${fmtSeconds(w.ms / 1000)} (config_ms ${w.configMs}, ${w.statements} statements), no-op median ${median(w.noop).toFixed(1)} ms`);
      } else {
        const p = await psqlTrial(o, who === 'tx');
        (who === 'tx' ? res.tx : res.auto).push(p.ms);
        psqlStatements = p.statements;
        console.log(`  trial ${t + 1}: psql ${who === 'tx' ? 'grouped' : 'autocommit'} ${fmtSeconds(p.ms / 1000)} (${p.statements} statements)`);
      }
    }
  }
  if (statements !== psqlStatements) console.log(`WARNING: the worker ran ${statements} statements, the psql script has ${psqlStatements}`);
  const floor = Math.min(median(res.auto), median(res.tx));
  const best = (xs: number[]) => Math.min(...xs);
  const bestFloor = Math.min(best(res.auto), best(res.tx));
  const row = (name: string, xs: number[]) => [name, fmtSeconds(median(xs) / 1000), fmtRatio(median(xs) / floor), fmtSeconds(best(xs) / 1000), fmtRatio(best(xs) / bestFloor)];
  console.log('');
  console.log(
    table(
      ['first apply', 'median', 'ratio', 'best', 'ratio'],
      [
        row('psql -f, autocommit', res.auto),
        row('psql -f, transactions grouped as the worker', res.tx),
        row('worker, empty compute: POST /configure (round trip)', res.worker),
        row('worker, empty compute: config_ms (inside)', res.config),
        row('worker, running compute: POST /configure', res.running),
      ],
      [false, true, true, true, true],
    ),
  );
  const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
  const p90 = (xs: number[]) => sorted(xs)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];
  console.log('');
  console.log(
    table(
      [`no-op re-apply (${res.noop.length} requests)`, 'median', 'p90', 'target'],
      [
        ['POST /configure, same spec (round trip)', `${median(res.noop).toFixed(1)} ms`, `${p90(res.noop).toFixed(1)} ms`, '<= 50 ms'],
        ['config_ms (inside)', `${median(res.noopConfig).toFixed(0)} ms`, `${p90(res.noopConfig)} ms`, ''],
      ],
      [false, true, true, false],
    ),
  );
  // The machine is shared: load drifts between trials. Each trial runs the
  // systems back to back, so the ratio within a trial is the steadier figure.
  const paired = res.worker.map((w, i) => w / Math.min(res.auto[i], res.tx[i]));
  const pairedRunning = res.running.map((w, i) => w / Math.min(res.auto[i], res.tx[i]));
  console.log(`\nper trial, worker (empty compute) / faster psql of the same trial: ${paired.map((r) => fmtRatio(r)).join(', ')} (median ${fmtRatio(median(paired))})`);
  console.log(`per trial, worker (running compute) / faster psql of the same trial: ${pairedRunning.map((r) => fmtRatio(r)).join(', ')} (median ${fmtRatio(median(pairedRunning))})`);
  const verdict = (r: number, target: number) => (r <= target ? 'met' : 'NOT met');
  console.log(`\nfirst apply, empty compute: ${fmtRatio(median(paired))} the psql floor, median of trials (target <= 1.2x): ${verdict(median(paired), 1.2)}`);
  console.log(`first apply, running compute: ${fmtRatio(median(pairedRunning))} the psql floor, median of trials (target <= 1.2x): ${verdict(median(pairedRunning), 1.2)}`);
  console.log(`no-op re-apply: median ${median(res.noop).toFixed(1)} ms (target <= 50 ms): ${verdict(median(res.noop), 50)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
