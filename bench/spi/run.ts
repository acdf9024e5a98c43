/**
 * bench/spi/run.ts — the SPI benchmark driver (started by bench/spi/run).
 *
 * One temporary cluster, the same tables and statements, four systems side
 * by side, interleaved:
 *   ts        the TypeScript worker (worker.ts) through pg-tsworker's bindings
 *   c         a C dynamic background worker doing the same SPI calls (tsw_bench_c)
 *   external  a separate Node process using `pg` over the Unix socket (external.ts)
 *   plpgsql   the same loop in PL/pgSQL (plpgsql.sql), where it applies
 * Each measurement is repeated (3 times by default) and the median is shown.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type pg from 'pg';

import { Cluster, pidAlive } from '../../test/harness/cluster';
import { cpuBusy, fmtRatio, fmtSeconds, median, sh, sleep, table, usageError } from '../report';
import { BENCH_CONF, createTables, installWorker } from './setup';

const HERE = __dirname;
const TOP = path.resolve(HERE, '..', '..');

type System = 'ts' | 'c' | 'external' | 'plpgsql';
type Workload = 'select1' | 'insert' | 'read' | 'lookup';

const SYSTEMS: System[] = ['ts', 'c', 'external', 'plpgsql'];
const WORKLOADS: Workload[] = ['select1', 'insert', 'read', 'lookup'];
/** Workloads where each iteration is one statement: external/TS is judged on these. */
const PER_STATEMENT: Workload[] = ['select1', 'insert', 'lookup'];
/** TS/C targets (issue 11): one statement costs at most 1.3× C; reading a row at most 2×. */
const TARGET_TS_C: Record<Workload, number> = { select1: 1.3, insert: 1.3, lookup: 1.3, read: 2 };
const TARGET_EXT_TS = 15;

interface Sizes {
  select1: number;
  insert: number;
  /** rows of bench_read (the read workload reads them all) */
  read: number;
  lookup: number;
}
const FULL: Sizes = { select1: 20_000, insert: 100_000, read: 1_000_000, lookup: 100_000 };
const QUICK: Sizes = { select1: 2_000, insert: 10_000, read: 100_000, lookup: 10_000 };

const USAGE = `usage: bench/spi/run [--quick] [--reps N] [--only w1,w2] [--systems s1,s2] [--pin-external] [--c-read-only] [--check] [--help]

Runs the pg_tsworker SPI benchmark in a temporary cluster and prints a table:
the median seconds of each workload for the TypeScript worker, a C background
worker doing the same SPI calls, an external Node process using pg over the
Unix socket and PL/pgSQL, with the TS/C and external/TS ratios.

  --quick        small sizes (select1 ${QUICK.select1}, insert ${QUICK.insert}, read ${QUICK.read} rows, lookup ${QUICK.lookup}): a smoke run
  --reps N       measurements per system and workload (default 3; the median is shown)
  --only LIST    run only these workloads (comma-separated: ${WORKLOADS.join(',')})
  --systems LIST run only these systems (comma-separated: ${SYSTEMS.join(',')}); a
                 target whose systems were not run is not judged
  --pin-external put the external client and its backend on one CPU (taskset):
                 no cross-CPU wake-up per round trip, the client's best case
  --c-read-only  the C worker passes read_only = true to SPI for select1, read and
                 lookup (and count = 1 for lookup), which the bindings cannot: it
                 then reuses the transaction's snapshot. Default: read_only =
                 false, count = 0, the SPI calls the bindings (and worker_spi) make
  --check        exit with status 2 when a target is missed
  --help         this text

Default sizes: select1 ${FULL.select1}, insert ${FULL.insert}, read ${FULL.read} rows, lookup ${FULL.lookup}.
Builds and installs bench/spi (make -C bench/spi install) first; needs root
or a user who may write PostgreSQL's directories. PG_TSWORKER_KEEP_TMP=1 keeps
the cluster's directory (server stopped) for a look at its log.
`;

interface Options {
  sizes: Sizes;
  quick: boolean;
  reps: number;
  only: Workload[];
  systems: System[];
  check: boolean;
  pinExternal: boolean;
  /** The C worker passes read_only = true to SPI (tsw_bench_c.c). */
  cReadOnly: boolean;
}

/**
 * A comma-separated list of known names (--only, --systems): refused when
 * empty (it would run nothing and judge nothing) or when a name is unknown.
 */
function list<T extends string>(flag: string, value: string, known: readonly T[]): T[] {
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) usageError(`${flag} needs at least one of ${known.join(',')}`, USAGE);
  for (const n of names) if (!known.includes(n as T)) usageError(`${flag}: unknown name "${n}" (known: ${known.join(',')})`, USAGE);
  return names as T[];
}

/** The options that take a value (`--reps 5` or `--reps=5`); the others are switches. */
const TAKES_VALUE = ['--reps', '--only', '--systems'];

function parseOptions(argv: string[]): Options {
  const opts: Options = { sizes: FULL, quick: false, reps: 3, only: WORKLOADS, systems: SYSTEMS, check: false, pinExternal: false, cReadOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? '';
    if (inline !== undefined && !TAKES_VALUE.includes(flag)) usageError(`${flag} takes no value ("${argv[i]}")`, USAGE);
    switch (flag) {
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      case '--quick':
        opts.quick = true;
        opts.sizes = QUICK;
        break;
      case '--reps': {
        const v = value();
        const r = Number(v);
        if (!/^[1-9][0-9]*$/.test(v)) usageError('--reps needs a positive integer', USAGE);
        opts.reps = r;
        break;
      }
      case '--only': {
        const ws = list('--only', value(), WORKLOADS);
        opts.only = WORKLOADS.filter((w) => ws.includes(w));
        break;
      }
      case '--systems': {
        const ss = list('--systems', value(), SYSTEMS);
        opts.systems = SYSTEMS.filter((x) => ss.includes(x));
        break;
      }
      case '--check':
        opts.check = true;
        break;
      case '--pin-external':
        opts.pinExternal = true;
        break;
      case '--c-read-only':
        opts.cReadOnly = true;
        break;
      default:
        usageError(`unknown argument "${argv[i]}"`, USAGE);
    }
  }
  return opts;
}

/** The lookup checksum every system must report: sum of length(t) over the PRNG's ids. */
function expectedLookupChecksum(n: number, rows: number): bigint {
  let x = 42;
  let total = 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    const id = 1 + (x % rows);
    total += `text-${id}`.length + (id % 23);
  }
  return BigInt(total);
}

interface Measurement {
  seconds: number;
  /** CPU time of the worker process during the workload (TS and C workers only). */
  cpuSeconds?: number;
  checksum: bigint;
}

class Bench {
  private workerDir = '';

  constructor(
    private readonly cluster: Cluster,
    private readonly db: pg.Client,
    private readonly opts: Options,
  ) {}

  static async setUp(cluster: Cluster, db: pg.Client, opts: Options): Promise<Bench> {
    const b = new Bench(cluster, db, opts);
    b.workerDir = installWorker(cluster);
    await createTables(db, opts.sizes.read, async () => {
      await db.query(fs.readFileSync(path.join(HERE, 'plpgsql.sql'), 'utf8'));
    });
    return b;
  }

  n(w: Workload): number {
    return this.opts.sizes[w];
  }

  expected(w: Workload): bigint {
    switch (w) {
      case 'select1':
      case 'insert':
        return BigInt(this.n(w));
      case 'read':
        return BigInt(this.opts.sizes.read);
      case 'lookup':
        return expectedLookupChecksum(this.n(w), this.opts.sizes.read);
    }
  }

  async prepare(w: Workload): Promise<void> {
    if (w === 'insert') await this.db.query('TRUNCATE bench_ins');
  }

  async verify(w: Workload, system: System, m: Measurement): Promise<void> {
    const want = this.expected(w);
    if (m.checksum !== want) {
      throw new Error(`${system} ${w}: checksum ${m.checksum}, expected ${want}: the systems did not do the same work`);
    }
    if (w === 'insert') {
      const got = Number((await this.db.query('SELECT count(*) AS c FROM bench_ins')).rows[0].c);
      if (got !== this.n(w)) throw new Error(`${system} insert: bench_ins holds ${got} rows, expected ${this.n(w)}`);
    }
  }

  async run(system: System, w: Workload): Promise<Measurement> {
    await this.prepare(w);
    let m: Measurement;
    switch (system) {
      case 'ts':
        m = await this.runTs(w);
        break;
      case 'c':
        m = await this.runC(w);
        break;
      case 'external':
        m = await this.runExternal(w);
        break;
      case 'plpgsql':
        m = await this.runPlpgsql(w);
        break;
    }
    await this.verify(w, system, m);
    return m;
  }

  private async runTs(w: Workload): Promise<Measurement> {
    const before = (await this.db.query('SELECT coalesce(max(id), 0) AS m FROM tsw_bench_results')).rows[0].m as string;
    const logOffset = this.cluster.logOffset();
    const pid = Number(
      (
        await this.db.query(`SELECT tsworker.launch('bench_ts', $1, $2::jsonb) AS pid`, [
          path.join(this.workerDir, 'worker.ts'),
          JSON.stringify({ workload: w, n: this.n(w) }),
        ])
      ).rows[0].pid,
    );
    const deadline = Date.now() + 600_000;
    // While it runs, only its pid is watched (no query: the C worker's
    // measurement has no poller beside it either); then its state is read.
    while (pidAlive(pid) && Date.now() < deadline) await sleep(20);
    for (;;) {
      const st = (
        await this.db.query(`SELECT state, last_error FROM tsworker.stat_workers WHERE name = 'bench_ts'`)
      ).rows[0] as { state: string; last_error: string | null } | undefined;
      // Also wait for the process to be gone: a worker that read 1M rows
      // takes a moment to free its heap, which would slow the next system.
      if (st?.state === 'stopped' && !pidAlive(pid)) break;
      if (st?.state === 'failed') {
        throw new Error(
          `TypeScript worker failed on ${w}: ${st.last_error}\n--- server log ---\n` +
            this.cluster.readLog(logOffset).split('\n').slice(-30).join('\n'),
        );
      }
      if (Date.now() > deadline) throw new Error(`TypeScript worker did not finish ${w} within 600 s`);
      await sleep(20);
    }
    const row = (
      await this.db.query(
        `SELECT seconds, cpu_seconds, checksum FROM tsw_bench_results WHERE system = 'ts' AND workload = $1 AND id > $2
         ORDER BY id DESC LIMIT 1`,
        [w, before],
      )
    ).rows[0] as { seconds: number; cpu_seconds: number; checksum: string } | undefined;
    if (!row) {
      throw new Error(
        `TypeScript worker stopped without a result for ${w}\n--- server log ---\n` +
          this.cluster.readLog(logOffset).split('\n').slice(-30).join('\n'),
      );
    }
    return { seconds: row.seconds, cpuSeconds: row.cpu_seconds, checksum: BigInt(row.checksum) };
  }

  private async runC(w: Workload): Promise<Measurement> {
    const logOffset = this.cluster.logOffset();
    let seconds: number;
    try {
      seconds = (await this.db.query('SELECT tsw_bench_c.run($1, $2, $3) AS s', [w, this.n(w), this.opts.cReadOnly]))
        .rows[0].s as number;
    } catch (err) {
      throw new Error(
        `C worker failed on ${w}: ${(err as Error).message}\n--- server log ---\n` +
          this.cluster.readLog(logOffset).split('\n').slice(-30).join('\n'),
      );
    }
    const row = (
      await this.db.query(
        `SELECT cpu_seconds, checksum FROM tsw_bench_results WHERE system = 'c' AND workload = $1 ORDER BY id DESC LIMIT 1`,
        [w],
      )
    ).rows[0] as { cpu_seconds: number; checksum: string };
    return { seconds, cpuSeconds: row.cpu_seconds, checksum: BigInt(row.checksum) };
  }

  private async runExternal(w: Workload): Promise<Measurement> {
    const out = await sh(process.execPath, [
      '--import',
      'tsx',
      path.join(HERE, 'external.ts'),
      '--host',
      this.cluster.host,
      '--port',
      String(this.cluster.port),
      '--workload',
      w,
      '--n',
      String(this.n(w)),
      ...(this.opts.pinExternal ? ['--pin', '0'] : []),
    ], { cwd: TOP });
    const r = JSON.parse(out.trim().split('\n').pop() ?? '') as { seconds: number; checksum: string };
    const m = { seconds: r.seconds, checksum: BigInt(r.checksum) };
    await this.record('external', w, m);
    return m;
  }

  private async runPlpgsql(w: Workload): Promise<Measurement> {
    const sql =
      w === 'read' ? 'SELECT seconds, checksum FROM bench_pl_read()' : `SELECT seconds, checksum FROM bench_pl_${w}($1)`;
    const r = (await this.db.query(sql, w === 'read' ? [] : [this.n(w)])).rows[0] as { seconds: number; checksum: string };
    const m = { seconds: r.seconds, checksum: BigInt(r.checksum) };
    await this.record('plpgsql', w, m);
    return m;
  }

  /** Keep every measurement in tsw_bench_results (the workers write their own rows). */
  private async record(system: System, w: Workload, m: Measurement): Promise<void> {
    await this.db.query(
      'INSERT INTO tsw_bench_results(system, workload, n, seconds, checksum) VALUES ($1, $2, $3, $4, $5)',
      [system, w, this.n(w), m.seconds, m.checksum.toString()],
    );
  }
}

// ---------------------------------------------------------------- output

function fmtMicros(s: number | undefined, n: number): string {
  if (s === undefined) return '-';
  const us = (s / n) * 1e6;
  return us >= 100 ? `${us.toFixed(0)} µs` : us >= 10 ? `${us.toFixed(1)} µs` : `${us.toFixed(2)} µs`;
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

  process.stderr.write('building and installing bench/spi (tsw_bench_c) ...\n');
  await sh('make', ['-s', '-C', HERE, 'install'], { cwd: TOP });

  process.stderr.write('creating the cluster ...\n');
  const cluster = await Cluster.create('spibench', { conf: BENCH_CONF });
  let db: pg.Client | undefined;
  const onSignal = () => {
    process.stderr.write('\ninterrupted: removing the cluster\n');
    void cluster.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let missed = false;
  try {
    db = await cluster.connect({ applicationName: 'tsw_bench_run' });
    const version = (await db.query('SHOW server_version')).rows[0].server_version as string;
    const bench = await Bench.setUp(cluster, db, opts);

    const results = new Map<string, number[]>();
    const cpuResults = new Map<string, number[]>();
    /** The checksum each system reported (every run's is verified equal to the expected one). */
    const checksums = new Map<string, bigint>();
    const key = (s: System, w: Workload) => `${s}/${w}`;
    for (const w of opts.only) {
      for (let rep = 0; rep < opts.reps; rep++) {
        // Interleave the systems and rotate who goes first in each round.
        const systems = opts.systems;
        const order = systems.map((_, i) => systems[(i + rep) % systems.length]);
        for (const s of order) {
          const m = await bench.run(s, w);
          const k = key(s, w);
          results.set(k, [...(results.get(k) ?? []), m.seconds]);
          checksums.set(k, m.checksum);
          if (m.cpuSeconds !== undefined) cpuResults.set(k, [...(cpuResults.get(k) ?? []), m.cpuSeconds]);
          process.stderr.write(`  ${w.padEnd(7)} ${s.padEnd(8)} run ${rep + 1}/${opts.reps}: ${fmtSeconds(m.seconds)}\n`);
        }
      }
    }

    const med = (s: System, w: Workload, from = results) => {
      const xs = from.get(key(s, w));
      return xs && xs.length ? median(xs) : undefined;
    };
    const sizes = opts.sizes;
    const nOf = (w: Workload) => sizes[w];
    const extName = opts.pinExternal ? 'external pg (pinned)' : 'external pg';
    const header = ['workload', 'N', 'TS worker', 'C worker', extName, 'PL/pgSQL', 'TS/C', 'external/TS'];
    const align = [false, true, true, true, true, true, true, true];
    const rows: string[][] = [];
    const perOp: string[][] = [];
    const spread: string[][] = [];
    const spreadOf = (s: System, w: Workload) => {
      const xs = results.get(key(s, w));
      return xs && xs.length > 1 ? `${fmtRatio(Math.max(...xs) / Math.min(...xs))}` : '-';
    };
    const verdicts: string[] = [];
    const sumRows: string[][] = [];
    const cpuRows: string[][] = [];
    for (const w of opts.only) {
      const ts = med('ts', w);
      const c = med('c', w);
      const ext = med('external', w);
      const pl = med('plpgsql', w);
      const tsC = ts !== undefined && c ? ts / c : undefined;
      const extTs = ext !== undefined && ts ? ext / ts : undefined;
      const plLabel = w === 'select1' ? ' (1 txn)' : '';
      const nLabel = w === 'read' ? `${nOf(w)} rows` : String(nOf(w));
      rows.push([w, nLabel, fmtSeconds(ts), fmtSeconds(c), fmtSeconds(ext), fmtSeconds(pl) + plLabel, fmtRatio(tsC), fmtRatio(extTs)]);
      perOp.push([
        w,
        w === 'read' ? 'per row' : 'per statement',
        fmtMicros(ts, nOf(w)),
        fmtMicros(c, nOf(w)),
        fmtMicros(ext, nOf(w)),
        fmtMicros(pl, nOf(w)) + plLabel,
      ]);
      const sumOf = (s: System) => checksums.get(key(s, w))?.toString() ?? '-';
      sumRows.push([w, bench.expected(w).toString(), sumOf('ts'), sumOf('c'), sumOf('external'), sumOf('plpgsql')]);
      spread.push([w, spreadOf('ts', w), spreadOf('c', w), spreadOf('external', w), spreadOf('plpgsql', w)]);
      // TS/C is judged on CPU time (the cost of a statement): on a shared
      // machine, wall time also counts waiting for a CPU. Both are shown.
      const tsCpu = med('ts', w, cpuResults);
      const cCpu = med('c', w, cpuResults);
      const tsCCpu = tsCpu !== undefined && cCpu ? tsCpu / cCpu : undefined;
      // The fastest run of each: what a statement costs when the other
      // core's load disturbs it least (a loaded 2-core VM slows both).
      const best = (s: System) => {
        const xs = cpuResults.get(key(s, w));
        return xs && xs.length ? Math.min(...xs) : undefined;
      };
      const tsBest = best('ts');
      const cBest = best('c');
      cpuRows.push([
        w,
        fmtSeconds(tsCpu),
        fmtSeconds(cCpu),
        fmtMicros(tsCpu, nOf(w)),
        fmtMicros(cCpu, nOf(w)),
        fmtRatio(tsCCpu),
        fmtRatio(tsBest !== undefined && cBest ? tsBest / cBest : undefined),
        fmtRatio(tsC),
      ]);
      const ran = (...xs: System[]) => xs.every((x) => opts.systems.includes(x));
      if (ran('ts', 'c')) {
        const okTsC = tsCCpu !== undefined && tsCCpu <= TARGET_TS_C[w];
        verdicts.push(
          `TS/C ${w} ${fmtRatio(tsCCpu)} CPU (${fmtRatio(tsC)} wall) ${okTsC ? 'ok' : `MISSED (> ${TARGET_TS_C[w]}x)`}`,
        );
        if (!okTsC) missed = true;
      }
      if (PER_STATEMENT.includes(w) && ran('ts', 'external')) {
        const okExt = extTs !== undefined && extTs >= TARGET_EXT_TS;
        verdicts.push(`external/TS ${w} ${fmtRatio(extTs)} ${okExt ? 'ok' : `MISSED (< ${TARGET_EXT_TS}x)`}`);
        if (!okExt) missed = true;
      }
    }

    const out: string[] = [];
    out.push('');
    out.push(
      `pg_tsworker SPI benchmark — PostgreSQL ${version}, ${os.cpus().length} CPUs, ` +
        `median of ${opts.reps} run${opts.reps === 1 ? '' : 's'}${opts.quick ? ' (--quick sizes)' : ''}`,
    );
    out.push('');
    out.push('Time for the whole workload (lower is better):');
    out.push(table(header, rows, align));
    out.push('');
    out.push('CPU time of the worker process during the workload (TS and C workers; medians, and the ratio of the fastest runs):');
    out.push(
      table(
        ['workload', 'TS worker', 'C worker', 'TS per op', 'C per op', 'TS/C CPU', 'TS/C CPU best', 'TS/C wall'],
        cpuRows,
        [false, true, true, true, true, true, true, true],
      ),
    );
    out.push('');
    out.push('Per statement (per row for read):');
    out.push(table(['workload', 'unit', 'TS worker', 'C worker', extName, 'PL/pgSQL'], perOp, [false, false, true, true, true, true]));
    out.push('');
    out.push(
      `Checksums (select1: sum of the values; insert: rows inserted; read: rows read; lookup: sum of length(t)), ` +
        `every run checked against the expected value:`,
    );
    out.push(table(['workload', 'expected', 'TS worker', 'C worker', extName, 'PL/pgSQL'], sumRows, [false, true, true, true, true, true]));
    out.push('');
    if (opts.reps > 1) {
      out.push(`Spread: slowest / fastest of the ${opts.reps} runs (large values: a noisy machine):`);
      out.push(table(['workload', 'TS worker', 'C worker', extName, 'PL/pgSQL'], spread, [false, true, true, true, true]));
      out.push('');
    }
    out.push('(1 txn): PL/pgSQL runs every SELECT 1 inside the one transaction of the function call,');
    out.push('         the other systems commit after each one: not comparable.');
    if (opts.pinExternal) {
      out.push('(pinned): the external client and its backend shared CPU 0 (--pin-external).');
    }
    if (opts.systems.includes('c')) {
      out.push(
        opts.cReadOnly
          ? 'C worker: SPI read_only = true for select1, read and lookup, count = 1 for lookup (--c-read-only).'
          : 'C worker: SPI read_only = false, count = 0, as the bindings (--c-read-only: true, and count = 1 for lookup).',
      );
    }
    out.push('');
    out.push(`Targets: TS/C (CPU) <= ${WORKLOADS.map((w) => `${TARGET_TS_C[w]}x ${w}`).join(', ')}; external/TS >= ${TARGET_EXT_TS}x on ${PER_STATEMENT.join(', ')}.`);
    for (const v of verdicts) out.push(`  ${v}`);
    const partial =
      opts.only.length !== WORKLOADS.length || opts.systems.length !== SYSTEMS.length ? ' (only the workloads and systems run)' : '';
    out.push(missed ? `Targets NOT met${partial}.` : `Targets met${partial}.`);
    out.push('');
    out.push(
      `Total run time ${((Date.now() - t0) / 1000).toFixed(0)} s; ` +
        `the CPUs were ${(busyBefore * 100).toFixed(0)}% busy in the second before it started.`,
    );
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    await db?.end().catch(() => undefined);
    await cluster.cleanup();
  }
  if (missed && opts.check) process.exit(2);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
