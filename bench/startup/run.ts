/**
 * bench/startup/run.ts — the start-up benchmark driver (started by
 * bench/startup/run).
 *
 * One temporary cluster; the same worker module (worker.ts) launched with
 * tsworker.launch() three ways, interleaved, several times:
 *   ts cold    a .ts copy whose content no cache has seen (a new marker):
 *              compiled from TypeScript
 *   ts cached  a .ts file launched before: compiled code comes from the
 *              compile cache ($PGDATA/pg_tsworker/cache)
 *   js         the same module compiled to CommonJS beforehand
 * For each launch: wall time from the launch() call to the worker's first
 * line (the worker writes Date.now() in it), the launch() call alone (it
 * loads the module in a child process first), the CPU time of that child
 * (from the calling backend's cutime) and of the worker up to its first
 * line (process.cpuUsage()), and the worker's RSS and PSS
 * (/proc/<pid>/smaps_rollup) once it waits. Medians are shown, with the
 * ratio of each to the 100 ms target, and, for scale, how long the Node.js
 * the workers embed takes to start and exit with nothing to run.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import type pg from 'pg';
import ts from 'typescript';

import { Cluster, pidAlive, waitFor } from '../../test/harness/cluster';
import { PG_CONFIG } from '../../test/harness/pg-config';
import { cpuBusy, fmtRatio, median, sh, table, usageError } from '../report';

const HERE = __dirname;
/** The target for a cached .ts worker: launch to first line. */
const TARGET_MS = 100;

type Kind = 'ts cold' | 'ts cached' | 'js';
const KINDS: Kind[] = ['ts cold', 'ts cached', 'js'];

const USAGE = `usage: bench/startup/run [--trials N] [--check] [--help]

Launches the same worker module as a .ts never compiled before ("ts cold"),
as a .ts launched before ("ts cached") and compiled to .js, interleaved, in a
temporary cluster, and prints the medians: launch() to the worker's first
line, the launch() call alone, CPU time of the module-loading child and of
the worker, and the worker's RSS and PSS.

  --trials N   launches of each kind (default 7; the median is shown)
  --check      exit with status 2 when "ts cached" misses the ${TARGET_MS} ms target
  --help       this text

Needs root (the server runs as the postgres OS user). Builds and installs
pg_tsworker first (scripts/setup) into the PostgreSQL that PG_CONFIG names.
PG_TSWORKER_KEEP_TMP=1 keeps the cluster's directory and its log.
`;

interface Options {
  trials: number;
  check: boolean;
}

function parseOptions(argv: string[]): Options {
  const o: Options = { trials: 7, check: false };
  for (let i = 0; i < argv.length; i++) {
    const [a, inline] = argv[i].split(/=(.*)/s, 2);
    if (inline !== undefined && a !== '--trials') usageError(`${a} takes no value ("${argv[i]}")`, USAGE);
    if (a === '--trials') {
      const v = inline ?? argv[++i] ?? '';
      if (!/^[1-9][0-9]*$/.test(v)) usageError('--trials needs a positive integer', USAGE);
      o.trials = Number(v);
    } else if (a === '--check') o.check = true;
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else usageError(`unknown argument "${a}"`, USAGE);
  }
  return o;
}

/** One launch, measured. Times in ms, memory in kB. */
interface Launch {
  firstLineMs: number;
  launchCallMs: number;
  /** Process start (fork by the postmaster) after the launch() call began: 10 ms resolution. */
  forkMs: number;
  workerCpuMs: number;
  loaderCpuMs: number;
  rssKb: number;
  pssKb: number;
}

/** Clock ticks per second (/proc times are in ticks). */
let clkTck = 100;
/** Boot time, ms since the epoch (/proc/stat btime). */
let bootMs = 0;

/** Fields of /proc/<pid>/stat after the command (field 3 onwards, so index 0 is field 3). */
function procStat(pid: number): string[] {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ');
}

/** CPU time of the waited-for children of `pid` (cutime + cstime), ms. */
function childrenCpuMs(pid: number): number {
  const f = procStat(pid);
  return ((Number(f[13]) + Number(f[14])) * 1000) / clkTck;
}

/** When `pid` started, ms since the epoch (tick resolution). */
function startedAtMs(pid: number): number {
  return bootMs + (Number(procStat(pid)[19]) * 1000) / clkTck;
}

/** Rss and Pss of `pid` in kB, from /proc/<pid>/smaps_rollup. */
function memory(pid: number): { rssKb: number; pssKb: number } {
  const text = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssKb: field('Rss'), pssKb: field('Pss') };
}

class Bench {
  private seq = 0;

  constructor(
    private readonly cluster: Cluster,
    private readonly db: pg.Client,
    private readonly backendPid: number,
    private readonly dir: string,
  ) {}

  /** Write `text` as a module file the server's OS user can read. */
  write(name: string, text: string): string {
    const file = path.join(this.dir, name);
    fs.writeFileSync(file, text, { mode: 0o644 });
    return file;
  }

  /** Launch `file` as a new worker and measure it until its first line; stop it. */
  async launch(file: string, variant: string): Promise<Launch> {
    const name = `startup_${++this.seq}`;
    const children0 = childrenCpuMs(this.backendPid);
    const offset = this.cluster.logOffset();
    const t0 = Date.now();
    const h0 = performance.now();
    await this.db.query('SELECT tsworker.launch($1, $2)', [name, file]);
    const launchCallMs = performance.now() - h0;
    const loaderCpuMs = childrenCpuMs(this.backendPid) - children0;
    const line = await this.cluster.waitForLog(
      new RegExp(`startup-bench first line variant=${variant} pid=\\d+ at=\\d+ cpu_us=\\d+`),
      offset,
      120_000,
    );
    const [pid, at, cpuUs] = [/pid=(\d+)/, /at=(\d+)/, /cpu_us=(\d+)/].map((re) => Number(re.exec(line)![1]));
    const forkMs = startedAtMs(pid) - t0;
    const mem = memory(pid);
    await this.db.query('SELECT tsworker.stop($1)', [name]);
    await waitFor(() => !pidAlive(pid), { timeoutMs: 60_000 });
    return { firstLineMs: at - t0, launchCallMs, forkMs, workerCpuMs: cpuUs / 1000, loaderCpuMs, ...mem };
  }
}

/** Median wall time of `pg_tsworker_node -e 0` (the workers' libnode, nothing to run), ms. */
async function bareNodeMs(runs: number): Promise<number> {
  const exe = path.join((await sh(PG_CONFIG, ['--pkglibdir'])).trim(), 'pg_tsworker', 'pg_tsworker_node');
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await sh(exe, ['-e', '0']);
    times.push(performance.now() - t0);
  }
  return median(times);
}

const ms = (x: number) => `${x.toFixed(0)} ms`;
const mb = (kb: number) => `${(kb / 1024).toFixed(1)} MB`;

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  // only once the arguments are good: --help or a typo installs nothing
  await sh(path.join(HERE, '..', '..', 'scripts', 'setup'), []);
  clkTck = Number((await sh('getconf', ['CLK_TCK'])).trim()) || 100;
  bootMs = Number(/^btime (\d+)/m.exec(fs.readFileSync('/proc/stat', 'utf8'))![1]) * 1000;
  const template = fs.readFileSync(path.join(HERE, 'worker.ts'), 'utf8');
  const variantOf = (v: string) => template.replace("'BENCH_VARIANT'", `'${v}'`);
  const toJs = (source: string) =>
    ts.transpileModule(source, { compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true } }).outputText;

  const cluster = await Cluster.create('startup', {
    conf: { shared_preload_libraries: 'pg_tsworker', max_worker_processes: 16, 'tsworker.max_workers': 16 },
  });
  const stopping = () => void cluster.cleanup().finally(() => process.exit(130));
  process.once('SIGINT', stopping);
  process.once('SIGTERM', stopping);
  const db = await cluster.connect();
  try {
    await db.query('CREATE EXTENSION pg_tsworker');
    const backendPid = Number((await db.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    const dir = path.join(cluster.baseDir, 'modules');
    fs.mkdirSync(dir, { mode: 0o755 });
    fs.chmodSync(dir, 0o755);
    const bench = new Bench(cluster, db, backendPid, dir);
    const cached = bench.write('cached.ts', variantOf('cached'));
    const js = bench.write('plain.js', toJs(variantOf('js')));

    const busyBefore = await cpuBusy(1000);
    const loadBefore = os.loadavg()[0];
    process.stderr.write(`machine busy ${(busyBefore * 100).toFixed(0)}% before the run, load average ${loadBefore.toFixed(2)}\n`);
    // Warm-up: the page cache, and the compile cache for cached.ts.
    await bench.launch(bench.write('warm.ts', variantOf('warm')), 'warm');
    await bench.launch(cached, 'cached');
    await bench.launch(js, 'js');

    const results: Record<Kind, Launch[]> = { 'ts cold': [], 'ts cached': [], js: [] };
    for (let t = 0; t < opts.trials; t++) {
      // Rotate who goes first: the machine's load drifts.
      const order = KINDS.map((_, i) => KINDS[(i + t) % KINDS.length]);
      for (const kind of order) {
        let m: Launch;
        if (kind === 'ts cold') {
          const variant = `cold${t}`;
          m = await bench.launch(bench.write(`${variant}.ts`, variantOf(variant)), variant);
        } else if (kind === 'ts cached') m = await bench.launch(cached, 'cached');
        else m = await bench.launch(js, 'js');
        results[kind].push(m);
        process.stderr.write(
          `trial ${t + 1}/${opts.trials} ${kind.padEnd(9)}: first line ${ms(m.firstLineMs)} (launch() ${ms(m.launchCallMs)}, ` +
            `fork +${ms(m.forkMs)}), CPU worker ${ms(m.workerCpuMs)} loader ${ms(m.loaderCpuMs)}, RSS ${mb(m.rssKb)} PSS ${mb(m.pssKb)}\n`,
        );
      }
    }
    const busyAfter = await cpuBusy(1000);
    const loadAfter = os.loadavg()[0];
    const bareMs = await bareNodeMs(5);

    const med = (k: Kind, f: (l: Launch) => number) => median(results[k].map(f));
    const rows = KINDS.map((k) => [
      k,
      ms(med(k, (l) => l.firstLineMs)),
      ms(Math.min(...results[k].map((l) => l.firstLineMs))),
      ms(med(k, (l) => l.launchCallMs)),
      ms(med(k, (l) => l.firstLineMs - l.forkMs)),
      ms(med(k, (l) => l.loaderCpuMs)),
      ms(med(k, (l) => l.workerCpuMs)),
      mb(med(k, (l) => l.rssKb)),
      mb(med(k, (l) => l.pssKb)),
      fmtRatio(med(k, (l) => l.firstLineMs) / TARGET_MS),
    ]);
    process.stdout.write(
      `\nbench/startup: tsworker.launch() to the worker's first line, median of ${opts.trials} (${os.cpus().length} CPUs busy ` +
        `${(busyBefore * 100).toFixed(0)}% before, ${(busyAfter * 100).toFixed(0)}% after; load average ` +
        `${loadBefore.toFixed(2)} before, ${loadAfter.toFixed(2)} after)\n\n` +
        table(
          ['worker', 'launch → first line', 'best', 'launch() call', 'fork → first line', 'loader CPU', 'worker CPU', 'RSS', 'PSS', `÷ ${TARGET_MS} ms`],
          rows,
          [false, true, true, true, true, true, true, true, true, true],
        ) +
        '\n\nlaunch() call: the SQL call, which loads the module in a child process (loader CPU) before it registers the worker.\n' +
        'fork → first line: from the start of the worker process (10 ms resolution) to its first line.\n' +
        'worker CPU: the worker process from its fork to its first line. Target: ts cached ≤ 100 ms.\n' +
        `For scale: the workers' Node.js (pg_tsworker_node -e 0) starts and exits in ${ms(bareMs)} (median of 5);\n` +
        'launch → first line starts it twice (the loader child, then the worker).\n',
    );
    const cachedMs = med('ts cached', (l) => l.firstLineMs);
    if (opts.check && cachedMs > TARGET_MS) process.exitCode = 2;
  } finally {
    await db.end();
    await cluster.cleanup();
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
