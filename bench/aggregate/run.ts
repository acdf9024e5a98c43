/**
 * bench/aggregate/run.ts — the aggregate benchmark driver (started by
 * bench/aggregate/run).
 *
 * The same worker_spi job done by two systems on one temporary cluster:
 *   c   tsw_bench_agg: PostgreSQL 15's worker_spi loop as a dynamic C
 *       background worker (tsw_bench_agg.c), schema1
 *   ts  pg_tsworker's built-in `aggregate` worker, launched with
 *       tsworker.launch('aggregate2', 'aggregate', '{"index": 2, ...}'), schema2
 *
 * Measures, with each system's worker running and woken through its latch:
 *   single   fold throughput: 8 clients insert D deltas as single-row INSERTs
 *            (waking the worker every 100 rows); time from the first insert
 *            until the total holds every delta and no delta row is left
 *   batch    the same with 10-row INSERTs (waking the worker after each)
 *   latency  fold latency: K deltas preloaded in one INSERT ... SELECT while
 *            the worker sleeps, then one wake; time until the total is folded
 * Systems alternate (rotating who goes first), R repetitions, medians shown.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import type pg from 'pg';

import { Cluster, pidAlive } from '../../test/harness/cluster';
import { cpuBusy, fmtRatio, fmtSeconds, median, sh, sleep, table } from '../report';

const HERE = __dirname;

type System = 'c' | 'ts';
type Measure = 'single' | 'batch' | 'latency';

const SYSTEMS: System[] = ['ts', 'c'];
const MEASURES: Measure[] = ['single', 'batch', 'latency'];
const SYSTEM_LABEL: Record<System, string> = { ts: 'TS worker', c: 'C worker' };

/** schema<index> each system folds in (the brief: C from 1, TS from 2). */
const INDEX: Record<System, number> = { c: 1, ts: 2 };
/** The TS worker's name in tsworker.workers. */
const TS_NAME = `aggregate${INDEX.ts}`;
/**
 * Naptime of both workers: long, so that only the runner's wakes start a
 * pass (a timer pass in the middle of a preload would split the latency
 * measurement). Seconds for the TS worker's settings, ms for tsw_bench_agg.
 */
const NAPTIME_S = 3600;
/** single: each client wakes the worker after this many single-row inserts. */
const WAKE_EVERY = 100;
/** batch: rows per INSERT (one wake after each), unless --batch. */
const BATCH_ROWS = 10;
/** Poll interval while waiting for the total (ms). */
const POLL_MS = 2;
const INT4_MAX = 2 ** 31 - 1;

interface Sizes {
  /** deltas inserted by the clients in single and batch */
  deltas: number;
  /** deltas preloaded for latency */
  preload: number;
}
const FULL: Sizes = { deltas: 100_000, preload: 1_000_000 };
const QUICK: Sizes = { deltas: 10_000, preload: 100_000 };

const USAGE = `usage: bench/aggregate/run [--quick] [--reps N] [--deltas N] [--preload N] [--clients N] [--batch N] [--only c|ts] [--ts-module F] [--help]

Runs the pg_tsworker aggregate benchmark in a temporary cluster: PostgreSQL
15's worker_spi loop as a C background worker (tsw_bench_agg) against
pg_tsworker's built-in TypeScript worker \`aggregate\`, on the same job
(fold the 'delta' rows of schemaN.counted into its 'total' row), and prints
the median times with the TS/C ratio.

  --quick        small sizes (deltas ${QUICK.deltas}, preload ${QUICK.preload}): a smoke run
  --reps N       measurements per system and measure (default 3; the median is shown)
  --deltas N     deltas the clients insert in the throughput measures (default ${FULL.deltas})
  --preload N    deltas preloaded for the latency measure (default ${FULL.preload})
  --clients N    client connections inserting in the throughput measures (default 8)
  --batch N      rows per INSERT in the batch measure (default ${BATCH_ROWS})
  --only c|ts    run one system only; --only c needs no pg_tsworker at all
                 (no shared_preload_libraries, no CREATE EXTENSION pg_tsworker)
  --ts-module F  launch the TypeScript module F (copied where the server can
                 read it) instead of the built-in \`aggregate\`: same settings
                 {"index": 2, "naptime": ${NAPTIME_S}}, same name ${TS_NAME}
  --help         this text

Builds and installs bench/aggregate (make -C bench/aggregate install) unless
--only ts; needs root or a user who may write PostgreSQL's directories, and
for the TS side pg_tsworker installed (make install). PG_TSWORKER_KEEP_TMP=1
keeps the cluster's directory (server stopped) for a look at its log.
`;

interface Options {
  sizes: Sizes;
  quick: boolean;
  reps: number;
  clients: number;
  batchRows: number;
  systems: System[];
  /** a module file to launch instead of the built-in 'aggregate' */
  tsModule?: string;
}

function positiveInt(flag: string, v: string): number {
  const n = Number(v.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, not "${v}"`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { sizes: { ...FULL }, quick: false, reps: 3, clients: 8, batchRows: BATCH_ROWS, systems: SYSTEMS };
  let deltas: number | undefined;
  let preload: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? '';
    switch (flag) {
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      case '--quick':
        opts.quick = true;
        break;
      case '--reps':
        opts.reps = positiveInt(flag, value());
        break;
      case '--deltas':
        deltas = positiveInt(flag, value());
        break;
      case '--preload':
        preload = positiveInt(flag, value());
        break;
      case '--clients':
        opts.clients = positiveInt(flag, value());
        break;
      case '--batch':
        opts.batchRows = positiveInt(flag, value());
        break;
      case '--ts-module': {
        const f = path.resolve(value());
        if (!fs.existsSync(f)) throw new Error(`--ts-module: ${f} does not exist`);
        opts.tsModule = f;
        break;
      }
      case '--only': {
        const s = value().trim();
        if (s !== 'c' && s !== 'ts') throw new Error(`--only takes c or ts, not "${s}"`);
        opts.systems = [s];
        break;
      }
      default:
        throw new Error(`unknown argument "${argv[i]}"\n\n${USAGE}`);
    }
  }
  const base = opts.quick ? QUICK : FULL;
  opts.sizes = { deltas: deltas ?? base.deltas, preload: preload ?? base.preload };
  return opts;
}

/** Value of the j-th delta (0-based), everywhere: 1..7, so that a lost or doubled row changes the sum. */
const deltaValue = (j: number) => 1 + (j % 7);

/** Sum of deltaValue(j) for j in [0, n). */
function deltaSum(n: number): number {
  const full = Math.floor(n / 7);
  let s = full * 28;
  for (let j = full * 7; j < n; j++) s += deltaValue(j);
  return s;
}

interface Result {
  /** first insert (or the wake, for latency) until the total holds every delta */
  seconds: number;
  /** the clients' inserts alone (throughput measures) */
  loadSeconds?: number;
  /** passes that updated the total: worker_spi's LOG lines "count in schemaN.counted is now N" */
  passes: number;
  /** CPU time (user + system) the worker process used during the measurement */
  cpuSeconds: number;
}

/** utime + stime of a process (all its threads) from /proc/<pid>/stat, in clock ticks (1/100 s on Linux). */
function procCpuTicks(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // f[0] is field 3 (state)
  return Number(f[11]) + Number(f[12]);
}

/** One system under test: its worker, its schema and how to wake it. */
class Subject {
  pid = 0;

  constructor(
    readonly system: System,
    private readonly cluster: Cluster,
    private readonly db: pg.Client,
    /** what tsworker.launch runs: 'aggregate' or an absolute path */
    private readonly tsModule = 'aggregate',
  ) {}

  get index(): number {
    return INDEX[this.system];
  }

  get table(): string {
    return `schema${this.index}.counted`;
  }

  /** SQL that wakes this system's worker and returns true if it was running. */
  wakeQuery(): { name: string; text: string; values: unknown[] } {
    return this.system === 'c'
      ? { name: 'agg_wake_c', text: 'SELECT tsw_bench_agg_wake($1) AS ok', values: [this.pid] }
      : { name: 'agg_wake_ts', text: 'SELECT tsworker.wake($1) AS ok', values: [TS_NAME] };
  }

  async wake(client: pg.Client): Promise<void> {
    const r = await client.query(this.wakeQuery());
    if (r.rows[0].ok !== true) throw new Error(`${SYSTEM_LABEL[this.system]}: wake found no running worker\n${await this.diagnose()}`);
  }

  /** Launch the worker, wait for its schema, insert the total row. */
  async start(): Promise<void> {
    const logOffset = this.cluster.logOffset();
    if (this.system === 'c') {
      this.pid = Number(
        (await this.db.query('SELECT tsw_bench_agg_launch($1, $2) AS pid', [this.index, NAPTIME_S * 1000])).rows[0].pid,
      );
    } else {
      this.pid = Number(
        (
          await this.db.query(`SELECT tsworker.launch($1, $2, $3::jsonb) AS pid`, [
            TS_NAME,
            this.tsModule,
            JSON.stringify({ index: this.index, naptime: NAPTIME_S }),
          ])
        ).rows[0].pid,
      );
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = (await this.db.query(`SELECT to_regclass($1) IS NOT NULL AS ok`, [this.table])).rows[0].ok as boolean;
      if (ok) break;
      await this.checkAlive(logOffset);
      if (Date.now() > deadline) {
        throw new Error(`${SYSTEM_LABEL[this.system]} did not create ${this.table} within 60 s\n${await this.diagnose(logOffset)}`);
      }
      await sleep(20);
    }
    // worker_spi never creates the total row: without it a pass deletes the
    // deltas and adds them nowhere. (A port that creates it itself is fine too.)
    await this.db.query(`INSERT INTO ${this.table} VALUES ('total', 0) ON CONFLICT DO NOTHING`);
  }

  async stop(): Promise<void> {
    if (this.system === 'c') {
      if (this.pid) await this.db.query('SELECT pg_terminate_backend($1)', [this.pid]).catch(() => undefined);
    } else {
      await this.db.query('SELECT tsworker.stop($1)', [TS_NAME]).catch(() => undefined);
    }
  }

  async checkAlive(logOffset?: number): Promise<void> {
    let dead = false;
    if (this.system === 'c') {
      dead = !pidAlive(this.pid);
    } else {
      const st = (await this.db.query('SELECT pid, state FROM tsworker.stat_workers WHERE name = $1', [TS_NAME])).rows[0] as
        | { pid: number | null; state: string }
        | undefined;
      dead = !st || st.state === 'failed' || st.state === 'stopped' || st.state === 'stopping';
      if (st?.pid && st.pid !== this.pid) dead = true; // restarted: something went wrong
    }
    if (dead) throw new Error(`${SYSTEM_LABEL[this.system]} (pid ${this.pid}) is not running\n${await this.diagnose(logOffset)}`);
  }

  async diagnose(logOffset?: number): Promise<string> {
    let s = '';
    if (this.system === 'ts') {
      const st = await this.db
        .query('SELECT pid, state, restarts, last_error FROM tsworker.stat_workers WHERE name = $1', [TS_NAME])
        .catch(() => undefined);
      s += `tsworker.stat_workers: ${JSON.stringify(st?.rows[0] ?? null)}\n`;
    }
    const log = this.cluster.readLog(logOffset ?? Math.max(0, this.cluster.logOffset() - 8000));
    return `${s}--- server log ---\n${log.split('\n').slice(-30).join('\n')}`;
  }
}

class Bench {
  private subjects = new Map<System, Subject>();
  private clients: pg.Client[] = [];
  private poller!: pg.Client;

  constructor(
    private readonly cluster: Cluster,
    private readonly db: pg.Client,
    private readonly opts: Options,
  ) {}

  async setUp(): Promise<void> {
    if (this.opts.systems.includes('ts')) await this.db.query('CREATE EXTENSION pg_tsworker');
    if (this.opts.systems.includes('c')) await this.db.query('CREATE EXTENSION tsw_bench_agg');
    let tsModule = 'aggregate';
    if (this.opts.tsModule) {
      // Where the server's OS user can read it (the checkout may not be).
      const dir = path.join(this.cluster.baseDir, 'bench');
      fs.mkdirSync(dir, { mode: 0o755 });
      fs.chmodSync(dir, 0o755);
      tsModule = path.join(dir, path.basename(this.opts.tsModule));
      fs.copyFileSync(this.opts.tsModule, tsModule);
      fs.chmodSync(tsModule, 0o644);
    }
    for (const s of this.opts.systems) {
      const subject = new Subject(s, this.cluster, this.db, tsModule);
      process.stderr.write(`starting the ${SYSTEM_LABEL[s]} (schema${subject.index}) ...\n`);
      await subject.start();
      this.subjects.set(s, subject);
    }
    for (let i = 0; i < this.opts.clients; i++) {
      this.clients.push(await this.cluster.connect({ applicationName: `tsw_bench_agg_client${i}` }));
    }
    this.poller = await this.cluster.connect({ applicationName: 'tsw_bench_agg_poller' });
  }

  async tearDown(): Promise<void> {
    for (const s of this.subjects.values()) await s.stop();
    for (const c of [...this.clients, this.poller]) await c?.end().catch(() => undefined);
  }

  private async total(s: Subject): Promise<number> {
    const r = await this.poller.query({
      name: `agg_total_${s.index}`,
      text: `SELECT value FROM ${s.table} WHERE type = 'total'`,
      values: [],
    });
    if (r.rows.length !== 1) throw new Error(`${s.table} has ${r.rows.length} total rows, expected 1`);
    return Number(r.rows[0].value);
  }

  /**
   * Passes that updated the total since the log offset `from`: worker_spi
   * logs "<bgw_name>: count in schemaN.counted is now N" after each. (Table
   * stats, n_tup_upd, would do for the C worker, which flushes them after
   * every pass as worker_spi does, but a worker that flushes them lazily
   * would be undercounted.)
   */
  private passesSince(s: Subject, from: number): number {
    const re = new RegExp(`count in "?schema${s.index}"?\\."?counted"? is now -?\\d+`, 'g');
    return (this.cluster.readLog(from).match(re) ?? []).length;
  }

  /** Between measurements: no deltas left, the table rewritten, a checkpoint, the total reset if it might overflow. */
  private async prepare(s: Subject, willAdd: number): Promise<{ before: number; logOffset: number; cpu: number }> {
    const left = Number((await this.db.query(`SELECT count(*) AS n FROM ${s.table} WHERE type = 'delta'`)).rows[0].n);
    if (left !== 0) throw new Error(`${s.table} holds ${left} delta rows before a measurement`);
    let before = await this.total(s);
    if (before + willAdd > INT4_MAX) {
      await this.db.query(`UPDATE ${s.table} SET value = 0 WHERE type = 'total'`);
      before = 0;
    }
    // Same starting point for every measurement: a one-page table. (A plain
    // VACUUM leaves it as long as its longest past: the total row's newest
    // version often sits at its end, so it cannot be truncated, and every
    // pass's DELETE would then scan all those empty pages.)
    await this.db.query(`VACUUM (FULL, ANALYZE) ${s.table}`);
    await this.db.query('CHECKPOINT');
    await s.checkAlive();
    // Settle: one pass now, so that the worker reads the invalidations the
    // VACUUM sent. Otherwise the sinval catch-up signal (procsignal's SIGUSR1
    // handler sets the latch) may start a pass in the middle of what follows.
    await s.wake(this.db);
    await sleep(100);
    return { before, logOffset: this.cluster.logOffset(), cpu: procCpuTicks(s.pid) };
  }

  /** Poll until the total reaches `want`; fail on overshoot, a dead worker or a timeout. */
  private async waitForTotal(s: Subject, want: number, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastAliveCheck = Date.now();
    let got = NaN;
    for (;;) {
      got = await this.total(s);
      if (got === want) return;
      if (got > want) throw new Error(`${SYSTEM_LABEL[s.system]}: total ${got} overshot the expected ${want}`);
      if (Date.now() - lastAliveCheck > 1000) {
        await s.checkAlive();
        lastAliveCheck = Date.now();
      }
      if (Date.now() > deadline) {
        throw new Error(
          `${SYSTEM_LABEL[s.system]}: total is ${got} after ${timeoutMs / 1000} s, expected ${want}\n${await s.diagnose()}`,
        );
      }
      await sleep(POLL_MS);
    }
  }

  /** After a measurement: the total is exactly right and no delta row is left. */
  private async verify(s: Subject, want: number, what: string): Promise<void> {
    const r = (
      await this.db.query(
        `SELECT (SELECT value FROM ${s.table} WHERE type = 'total') AS total,
                (SELECT count(*) FROM ${s.table} WHERE type = 'delta') AS deltas,
                (SELECT count(*) FROM ${s.table} WHERE type = 'total') AS totals`,
      )
    ).rows[0];
    const total = Number(r.total);
    const deltas = Number(r.deltas);
    const totals = Number(r.totals);
    if (total !== want || deltas !== 0 || totals !== 1) {
      throw new Error(
        `${SYSTEM_LABEL[s.system]} ${what}: WRONG RESULT: total ${total} (expected ${want}), ` +
          `${deltas} delta rows left (expected 0), ${totals} total rows (expected 1)`,
      );
    }
  }

  /** One measurement; `sizes` overrides the options' (the warm-up uses smaller ones). */
  async run(system: System, m: Measure, sizes: Sizes = this.opts.sizes): Promise<Result> {
    const s = this.subjects.get(system)!;
    return m === 'latency' ? this.runLatency(s, sizes.preload) : this.runThroughput(s, m, sizes.deltas);
  }

  private async runThroughput(s: Subject, m: 'single' | 'batch', n: number): Promise<Result> {
    const sum = deltaSum(n);
    const { before, logOffset, cpu } = await this.prepare(s, sum);
    const want = before + sum;
    const k = this.clients.length;
    const insertOne = { name: `agg_ins1_${s.index}`, text: `INSERT INTO ${s.table} VALUES ('delta', $1)` };
    const insertMany = {
      name: `agg_insn_${s.index}`,
      text: `INSERT INTO ${s.table} SELECT 'delta', v FROM unnest($1::int4[]) AS v`,
    };

    const load = async (client: pg.Client, from: number, to: number): Promise<void> => {
      if (m === 'single') {
        for (let j = from; j < to; j++) {
          await client.query({ ...insertOne, values: [deltaValue(j)] });
          if ((j - from + 1) % WAKE_EVERY === 0) await s.wake(client);
        }
      } else {
        const b = this.opts.batchRows;
        for (let j = from; j < to; j += b) {
          const vals: number[] = [];
          for (let x = j; x < Math.min(to, j + b); x++) vals.push(deltaValue(x));
          await client.query({ ...insertMany, values: [vals] });
          await s.wake(client);
        }
      }
    };

    const t0 = performance.now();
    await Promise.all(
      this.clients.map((c, i) => load(c, Math.floor((n * i) / k), Math.floor((n * (i + 1)) / k))),
    );
    const tLoad = performance.now();
    await s.wake(this.poller); // the last rows committed after the worker's last wake
    await this.waitForTotal(s, want, 120_000 + n / 10);
    const tDone = performance.now();
    const cpuUsed = (procCpuTicks(s.pid) - cpu) / 100;

    await this.verify(s, want, m);
    await sleep(50); // the last pass's log line
    return {
      seconds: (tDone - t0) / 1000,
      loadSeconds: (tLoad - t0) / 1000,
      passes: this.passesSince(s, logOffset),
      cpuSeconds: cpuUsed,
    };
  }

  private async runLatency(s: Subject, n: number): Promise<Result> {
    const sum = deltaSum(n);
    for (let attempt = 1; ; attempt++) {
      const { before, logOffset, cpu } = await this.prepare(s, sum);
      const want = before + sum;
      // One transaction: the sleeping worker cannot see a part of it.
      await this.db.query(`INSERT INTO ${s.table} SELECT 'delta', 1 + (j % 7) FROM generate_series(0, $1::int - 1) AS j`, [n]);
      await this.db.query('CHECKPOINT'); // not in the middle of the fold
      if ((await this.total(s)) === before) return this.timeLatency(s, want, n, logOffset, cpu);
      // Something else set the worker's latch after the preload: not a measurement.
      process.stderr.write(`  (${SYSTEM_LABEL[s.system]} started a pass before it was woken: again)\n`);
      await this.waitForTotal(s, want, 120_000 + n / 100);
      if (attempt === 3) throw new Error(`${SYSTEM_LABEL[s.system]} folded before it was woken, 3 times`);
    }
  }

  private async timeLatency(s: Subject, want: number, n: number, logOffset: number, cpu: number): Promise<Result> {
    const t0 = performance.now();
    await s.wake(this.poller);
    await this.waitForTotal(s, want, 120_000 + n / 100);
    const tDone = performance.now();
    const cpuUsed = (procCpuTicks(s.pid) - cpu) / 100;

    await this.verify(s, want, 'latency');
    await sleep(50);
    return { seconds: (tDone - t0) / 1000, passes: this.passesSince(s, logOffset), cpuSeconds: cpuUsed };
  }
}

// ---------------------------------------------------------------- output

function fmtRate(perSecond: number | undefined): string {
  if (perSecond === undefined || !Number.isFinite(perSecond)) return '-';
  if (perSecond >= 1e6) return `${(perSecond / 1e6).toFixed(2)}M/s`;
  if (perSecond >= 1e3) return `${(perSecond / 1e3).toFixed(perSecond >= 1e5 ? 0 : 1)}k/s`;
  return `${perSecond.toFixed(0)}/s`;
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const t0 = Date.now();
  const busyBefore = await cpuBusy(1000);
  if (busyBefore > 0.2) {
    process.stderr.write(
      `warning: the CPUs were ${(busyBefore * 100).toFixed(0)}% busy before the run: ` +
        'other work on this machine makes the numbers noisy\n',
    );
  }
  for (const n of [deltaSum(opts.sizes.deltas), deltaSum(opts.sizes.preload)]) {
    if (n > INT4_MAX) throw new Error('too many deltas: their sum does not fit in the integer total');
  }

  const withTs = opts.systems.includes('ts');
  if (opts.systems.includes('c')) {
    process.stderr.write('building and installing bench/aggregate (tsw_bench_agg) ...\n');
    await sh('make', ['-s', '-C', HERE, 'install']);
  }

  process.stderr.write('creating the cluster ...\n');
  const cluster = await Cluster.create('aggbench', {
    conf: {
      ...(withTs ? { shared_preload_libraries: 'pg_tsworker', 'tsworker.restart_interval': -1 } : {}),
      max_worker_processes: 16,
      shared_buffers: '256MB',
      // Nothing runs beside a measurement: the runner vacuums between them.
      autovacuum: false,
      // No checkpoint in the middle of a measurement: the runner checkpoints between them.
      max_wal_size: '8GB',
      checkpoint_timeout: '1h',
    },
  });
  let db: pg.Client | undefined;
  let bench: Bench | undefined;
  const onSignal = () => {
    process.stderr.write('\ninterrupted: removing the cluster\n');
    void cluster.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    db = await cluster.connect({ applicationName: 'tsw_bench_agg_run' });
    const version = (await db.query('SHOW server_version')).rows[0].server_version as string;
    bench = new Bench(cluster, db, opts);
    await bench.setUp();

    // Warm-up, not counted: every system does every measure once at a tenth
    // of the sizes (caches, the TS worker's JIT, the clients' prepared statements).
    process.stderr.write('warm-up ...\n');
    const warm: Sizes = {
      deltas: Math.max(opts.clients, Math.ceil(opts.sizes.deltas / 10)),
      preload: Math.ceil(opts.sizes.preload / 10),
    };
    for (const m of MEASURES) for (const s of opts.systems) await bench.run(s, m, warm);

    const results = new Map<string, Result[]>();
    const key = (s: System, m: Measure) => `${s}/${m}`;
    for (let rep = 0; rep < opts.reps; rep++) {
      for (const m of MEASURES) {
        // Alternate the systems and rotate who goes first in each round.
        const order = opts.systems.map((_, i) => opts.systems[(i + rep) % opts.systems.length]);
        for (const s of order) {
          const r = await bench.run(s, m);
          const k = key(s, m);
          results.set(k, [...(results.get(k) ?? []), r]);
          process.stderr.write(
            `  ${m.padEnd(7)} ${s.padEnd(2)} run ${rep + 1}/${opts.reps}: ${fmtSeconds(r.seconds)}` +
              (r.loadSeconds !== undefined ? ` (load ${fmtSeconds(r.loadSeconds)})` : '') +
              `, ${r.passes} passes, worker CPU ${fmtSeconds(r.cpuSeconds)}\n`,
          );
        }
      }
    }

    const med = (s: System, m: Measure, f: (r: Result) => number | undefined) => {
      const xs = (results.get(key(s, m)) ?? []).map(f).filter((x): x is number => x !== undefined);
      return xs.length ? median(xs) : undefined;
    };
    const spread = (s: System, m: Measure) => {
      const xs = (results.get(key(s, m)) ?? []).map((r) => r.seconds);
      return xs.length > 1 ? fmtRatio(Math.max(...xs) / Math.min(...xs)) : '-';
    };
    const n = (m: Measure) => (m === 'latency' ? opts.sizes.preload : opts.sizes.deltas);
    const tsNote = opts.tsModule && withTs ? ` (TS worker: ${path.basename(opts.tsModule)}, not the built-in)` : '';
    const label: Record<Measure, string> = {
      single: `throughput, single-row INSERTs (${opts.clients} clients)`,
      batch: `throughput, ${opts.batchRows}-row INSERTs (${opts.clients} clients)`,
      latency: 'latency, preloaded, one wake',
    };
    const sys = SYSTEMS.filter((s) => opts.systems.includes(s)); // TS first, then C
    const rows: string[][] = [];
    const detail: string[][] = [];
    const spreadRows: string[][] = [];
    for (const m of MEASURES) {
      const sec = sys.map((s) => med(s, m, (r) => r.seconds));
      const ratio = (f: (r: Result) => number | undefined) => {
        const ts = med('ts', m, f);
        const c = med('c', m, f);
        return fmtRatio(ts !== undefined && c ? ts / c : undefined);
      };
      rows.push([
        label[m],
        String(n(m)),
        ...sec.map((x) => (x === undefined ? '-' : `${fmtSeconds(x)} (${fmtRate(n(m) / x)})`)),
        ...(sys.length > 1 ? [ratio((r) => r.seconds), ratio((r) => r.cpuSeconds)] : []),
      ]);
      for (const s of sys) {
        const load = med(s, m, (r) => r.loadSeconds);
        const total = med(s, m, (r) => r.seconds);
        detail.push([
          m,
          SYSTEM_LABEL[s],
          load === undefined ? '-' : fmtSeconds(load),
          load === undefined || total === undefined ? '-' : fmtSeconds(total - load),
          String(med(s, m, (r) => r.passes) ?? '-'),
          fmtSeconds(med(s, m, (r) => r.cpuSeconds)),
        ]);
      }
      spreadRows.push([m, ...sys.map((s) => spread(s, m))]);
    }

    const out: string[] = [];
    out.push('');
    out.push(
      `pg_tsworker aggregate benchmark (worker_spi's fold) — PostgreSQL ${version}, ${os.cpus().length} CPUs, ` +
        `median of ${opts.reps} run${opts.reps === 1 ? '' : 's'}${opts.quick ? ' (--quick sizes)' : ''}${tsNote}`,
    );
    out.push('');
    out.push('Time until the total holds every delta and none is left (lower is better; deltas per second in brackets):');
    out.push(
      table(
        ['measure', 'deltas', ...sys.map((s) => SYSTEM_LABEL[s]), ...(sys.length > 1 ? ['TS/C', 'worker CPU TS/C'] : [])],
        rows,
        [false, true, ...sys.map(() => true), ...(sys.length > 1 ? [true, true] : [])],
      ),
    );
    out.push('');
    out.push('Where the time goes (medians): load = the clients\' inserts, lag = last insert until folded,');
    out.push('passes = folds that updated the total (worker_spi\'s LOG line "count in schemaN.counted is now N"),');
    out.push('worker CPU = user + system time of the worker process (/proc, 10 ms ticks):');
    out.push(table(['measure', 'system', 'load', 'lag', 'passes', 'worker CPU'], detail, [false, false, true, true, true, true]));
    out.push('');
    if (opts.reps > 1) {
      out.push(`Spread: slowest / fastest of the ${opts.reps} runs (large values: a noisy machine):`);
      out.push(table(['measure', ...sys.map((s) => SYSTEM_LABEL[s])], spreadRows, [false, ...sys.map(() => true)]));
      out.push('');
    }
    out.push('Every run was checked: total = sum of the inserted deltas, no delta row left.');
    out.push(
      `Total run time ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
        `the CPUs were ${(busyBefore * 100).toFixed(0)}% busy in the second before it started.`,
    );
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await bench?.tearDown().catch(() => undefined);
    await db?.end().catch(() => undefined);
    await cluster.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
