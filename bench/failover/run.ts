/**
 * bench/failover/run.ts — the failover benchmark driver (started by bench/failover/run).
 *
 * For each system (repmgrd, pg_auto_failover, pg_tsworker's promoter)
 * and each trial: build fresh nodes, wait until they are healthy and
 * streaming, SIGKILL the primary host's processes (t0), then try an
 * autocommit INSERT on the standby every ~20 ms until one commits. The time
 * from t0 to that commit is the trial's result. Trials of the systems are
 * interleaved (trial 1 of each system, then trial 2, ...) so that they share
 * the machine's conditions. Prints medians, min/max and ratios vs repmgrd.
 *
 * A system is an object implementing FailoverSystem (common.ts), one per
 * file; add one to SYSTEMS below.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { AutoFailover } from './autofailover';
import { TsCluster } from './cluster';
import { type FailoverSystem, type Scenario, sleep } from './common';
import { median } from '../report';
import { ATTEMPT_INTERVAL_MS, MemberWriters, timeToFirstWrite, type WriteResult } from './measure';
import { Patroni } from './patroni';
import { PG_BIN, PG_CONFIG } from '../../test/harness/pg-config';
import { Repmgr } from './repmgr';
import { syncLossTrials } from './sync-loss';
import { TsWorker } from './tsworker';

const HERE = __dirname;

/** Every system the benchmark knows, in table order; the first is the ratio baseline. */
/**
 * Why a system cannot run against the PostgreSQL in use (PG_CONFIG), or
 * null: repmgr and pg_auto_failover are extensions of that server, and
 * Debian packages them here for its PostgreSQL 15 only.
 */
function missingExtension(what: string, file: string): string | null {
  return fs.existsSync(file) ? null : `${what} is not installed for the PostgreSQL of ${PG_CONFIG} (no ${file}; Debian packages it for PostgreSQL 15)`;
}
const pgShareDir = (): string => execFileSync(PG_CONFIG, ['--sharedir'], { encoding: 'utf8' }).trim();

const SYSTEMS: { id: string; make: () => FailoverSystem; unavailable?: () => string | null }[] = [
  { id: 'repmgr', make: () => new Repmgr(), unavailable: () => missingExtension('repmgr', path.join(PG_BIN, 'repmgr')) },
  {
    id: 'autofailover',
    make: () => new AutoFailover(),
    unavailable: () => missingExtension('pg_auto_failover', path.join(pgShareDir(), 'extension', 'pgautofailover.control')),
  },
  { id: 'tsworker', make: () => new TsWorker() },
  { id: 'patroni', make: () => new Patroni() },
  { id: 'cluster', make: () => new TsCluster(clusterSet) },
];

/** --cluster-set name=value: promoter settings of the cluster mode other than the defaults. */
const clusterSet: Record<string, string> = {};
const BASELINE = 'repmgr';

const USAGE = `usage: bench/failover/run [--trials N] [--only ${SYSTEMS.map((s) => s.id).join('|')}[,...]] [--timeout S] [--help]

Measures, for each failover system, the time from losing the primary host
(SIGKILL of the primary's postmaster with all its children, and of the
primary's local agent: repmgrd, or pg_autoctl's keeper tree; the promoter
has none there) to the first INSERT that commits on the standby, tried
every ${ATTEMPT_INTERVAL_MS} ms. Every trial builds fresh nodes in temporary directories on
127.0.0.1. Prints per-system median, min and max, and ratios vs repmgrd.

  --trials N     trials per system (default 5)
  --only LIST    run only these systems (comma-separated: ${SYSTEMS.map((s) => s.id).join(',')})
  --timeout S    seconds allowed from the kill to the first committed write
                 before the trial fails (default 180); setting up a trial's
                 nodes is allowed 240 s
  --jitter S     wait a random 0..S seconds (uniform, default 5) between
                 "ready" and the kill, so that the kill falls at a random
                 phase of the managers' check intervals (repmgrd 1 s,
                 pg_auto_failover's monitor 5 s, the promoter 1 s); 0 kills
                 at once
  --help         this text

Systems:
  repmgr         repmgr 5 + repmgrd on both nodes: monitor_interval_secs=1,
                 reconnect_attempts=3, reconnect_interval=1, failover=automatic
  autofailover   pg_auto_failover 2.0 (pg_autoctl) with its defaults: monitor,
                 primary, secondary
  tsworker       pg_tsworker's promoter worker on the standby: interval=1s,
                 timeout=1s, failures=3 (as repmgrd's 1 s x 3), no witnesses
  patroni        Patroni 3.0.2 + etcd, 1 primary + 2 replicas: ttl 5, loop_wait 1,
                 retry_timeout 2 (the fastest that fails over on 3.0.2)
  cluster        pg_tsworker's promoter in cluster mode + etcd, 1 primary + 2
                 standbys, default timing (ttl 2 s, loop_wait 500 ms)

Scenarios (patroni and cluster run both; the two-node systems run host):
  host           every process of the primary's host frozen and killed
  postmaster     the primary's postmaster alone SIGKILLed (a manager on the
                 host sees it die)

  --scenario S   host, postmaster or all (default all)
  --cluster-set name=value  a tsworker_promoter setting of the cluster mode
                 other than its default (repeatable), e.g. loop_wait=1000
  --sync-trials N  also run N synchronous-mode trials of the cluster mode:
                 a client commits rows on the leader and records every
                 acknowledged id; after the postmaster's SIGKILL every one
                 must be on the new leader (default 0)

Needs root (servers run as the postgres OS user) and the Debian packages that
bench/failover/setup installs (it is run when they are missing).
PG_TSWORKER_KEEP_TMP=1 keeps the harness clusters' directories.
`;

interface Options {
  trials: number;
  only: string[];
  timeoutMs: number;
  jitterMs: number;
  scenarios: Scenario[];
  syncTrials: number;
}

const SETUP_TIMEOUT_MS = 240_000;

function parseOptions(argv: string[]): Options {
  const opts: Options = { trials: 5, only: SYSTEMS.map((s) => s.id), timeoutMs: 180_000, jitterMs: 5_000, scenarios: ['host', 'postmaster'], syncTrials: 0 };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s, 2);
    const value = () => inline ?? argv[++i] ?? '';
    switch (flag) {
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      case '--trials': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0) throw new Error('--trials needs an integer >= 0 (0: only the --sync-trials)');
        opts.trials = n;
        break;
      }
      case '--only': {
        const ids = value().split(',').map((s) => s.trim()).filter(Boolean);
        for (const id of ids) {
          if (!SYSTEMS.some((s) => s.id === id)) throw new Error(`unknown system "${id}" (known: ${SYSTEMS.map((s) => s.id).join(', ')})`);
        }
        if (ids.length === 0) throw new Error('--only needs a system');
        opts.only = SYSTEMS.map((s) => s.id).filter((id) => ids.includes(id));
        break;
      }
      case '--timeout': {
        const s = Number(value());
        if (!(s > 0)) throw new Error('--timeout needs a positive number of seconds');
        opts.timeoutMs = s * 1000;
        break;
      }
      case '--jitter': {
        const s = Number(value());
        if (!(s >= 0)) throw new Error('--jitter needs a number of seconds >= 0');
        opts.jitterMs = s * 1000;
        break;
      }
      case '--scenario': {
        const v = value();
        if (v === 'all') opts.scenarios = ['host', 'postmaster'];
        else if (v === 'host' || v === 'postmaster') opts.scenarios = [v];
        else throw new Error('--scenario is host, postmaster or all');
        break;
      }
      case '--cluster-set': {
        const m = /^([a-z_]+)=(.*)$/.exec(value());
        if (!m) throw new Error('--cluster-set takes name=value (a tsworker_promoter setting)');
        clusterSet[`tsworker_promoter.${m[1]}`] = m[2];
        break;
      }
      case '--sync-trials': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0) throw new Error('--sync-trials needs an integer >= 0');
        opts.syncTrials = n;
        break;
      }
      default:
        throw new Error(`unknown argument "${argv[i]}"\n\n${USAGE}`);
    }
  }
  return opts;
}

/** Make sure repmgr and pg_autoctl are installed: bench/failover/setup --check, else run it (root). */
function ensurePrerequisites(): void {
  const setup = path.join(HERE, 'setup');
  try {
    execFileSync(setup, ['--check'], { stdio: 'pipe' });
    return;
  } catch {
    // missing: install below
  }
  if (process.getuid?.() !== 0) {
    throw new Error('repmgr / pg_auto_failover are not installed; run bench/failover/setup as root first (and this benchmark as root)');
  }
  process.stderr.write('installing repmgr and pg_auto_failover (bench/failover/setup) ...\n');
  execFileSync(setup, [], { stdio: ['ignore', 2, 2] });
}

const log = (msg: string) => process.stderr.write(msg + '\n');

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms / 1000} s`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function table(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('-|-'), ...rows.map(line)].join('\n');
}

interface Outcome {
  system: FailoverSystem;
  scenario: Scenario;
  results: (WriteResult & { overlapMs?: number; member?: string })[];
  errors: string[];
}

let current: FailoverSystem | undefined;

async function trial(sys: FailoverSystem, scenario: Scenario, n: number, total: number, opts: Options): Promise<Outcome['results'][number]> {
  current = sys;
  const tag = `${sys.id} ${scenario} trial ${n}/${total}`;
  const started = performance.now();
  try {
    const nodes = await withTimeout(sys.setup(log), SETUP_TIMEOUT_MS, `${tag}: setup`);
    const jitter = Math.random() * opts.jitterMs;
    log(
      `${tag}: ready after ${((performance.now() - started) / 1000).toFixed(1)} s: ${nodes.describe}; ` +
        `killing the primary in ${(jitter / 1000).toFixed(2)} s`,
    );
    if (nodes.members) {
      const writers = new MemberWriters(nodes.members);
      await sleep(jitter);
      const t0 = await withTimeout(sys.killPrimary(scenario), 30_000, `${tag}: killing the primary`);
      const r = await writers.firstAfter(t0, opts.timeoutMs, nodes.members[0].name);
      log(`${tag}: first committed INSERT ${(r.ms / 1000).toFixed(3)} s after the kill, on ${r.member}; members accepting writes at once: ${r.overlapMs.toFixed(0)} ms`);
      if (sys.explain) log(`${tag}: ${await sys.explain().catch((e: Error) => `(no account: ${e.message})`)}`);
      return r;
    }
    await sleep(jitter);
    const t0 = await withTimeout(sys.killPrimary(scenario), 30_000, `${tag}: killing the primary`);
    const r = await timeToFirstWrite(nodes.standby, t0, opts.timeoutMs);
    log(`${tag}: first committed INSERT ${(r.ms / 1000).toFixed(3)} s after the kill (${r.attempts} attempts: ${JSON.stringify(r.failures)})`);
    if (sys.explain) log(`${tag}: ${await sys.explain().catch((e: Error) => `(no account: ${e.message})`)}`);
    return r;
  } catch (e) {
    let diag = '';
    try {
      diag = await withTimeout(sys.diagnostics(), 15_000, 'diagnostics');
    } catch (d) {
      diag = `(no diagnostics: ${(d as Error).message})`;
    }
    throw new Error(`${tag} failed: ${(e as Error).message}\n${diag}`);
  } finally {
    await withTimeout(sys.teardown(), 60_000, `${tag}: teardown`).catch((e) => log(`warning: ${(e as Error).message}`));
    current = undefined;
  }
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('run bench/failover/run as root: it runs the servers as the postgres OS user');
  ensurePrerequisites();

  let stopping = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    log(`\n${sig}: tearing down ...`);
    const sys = current;
    void (sys ? withTimeout(sys.teardown(), 60_000, 'teardown') : Promise.resolve())
      .catch((e) => log(`warning: ${(e as Error).message}`))
      .finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const wall = performance.now();
  const outcomes: Outcome[] = [];
  for (const s of SYSTEMS.filter((x) => opts.only.includes(x.id))) {
    const why = s.unavailable?.() ?? null;
    if (why) {
      log(`skipping ${s.id}: ${why}`);
      continue;
    }
    const system = s.make();
    for (const scenario of system.scenarios ?? ['host']) {
      if (opts.scenarios.includes(scenario)) outcomes.push({ system, scenario, results: [], errors: [] });
    }
  }
  for (let t = 1; t <= opts.trials; t++) {
    for (const o of outcomes) {
      if (stopping) return;
      try {
        o.results.push(await trial(o.system, o.scenario, t, opts.trials, opts));
      } catch (e) {
        if (stopping) return;
        o.errors.push((e as Error).message.split('\n')[0]);
        log(`ERROR: ${(e as Error).message}`);
      }
    }
  }
  const sync = opts.syncTrials > 0 && opts.only.includes('cluster') ? await syncLossTrials(opts.syncTrials, opts.timeoutMs, log) : null;
  const wallS = (performance.now() - wall) / 1000;

  const base = outcomes.find((o) => o.system.id === BASELINE && o.results.length > 0);
  const baseMed = base ? median(base.results.map((r) => r.ms)) : undefined;
  const fmt = (ms: number) => (ms / 1000).toFixed(2);
  const patroniMed = (sc: Scenario) => {
    const p = outcomes.find((o) => o.system.id === 'patroni' && o.scenario === sc && o.results.length > 0);
    return p ? { median: median(p.results.map((r) => r.ms)), fastest: Math.min(...p.results.map((r) => r.ms)) } : undefined;
  };
  const rows = outcomes.map((o) => {
    const ms = o.results.map((r) => r.ms);
    const ok = ms.length > 0;
    const med = ok ? median(ms) : undefined;
    const overlaps = o.results.filter((r) => r.overlapMs !== undefined).map((r) => r.overlapMs as number);
    const pat = patroniMed(o.scenario);
    return [
      o.system.label,
      o.scenario,
      `${ms.length}/${ms.length + o.errors.length}`,
      med !== undefined ? fmt(med) : '-',
      ok ? fmt(Math.min(...ms)) : '-',
      ok ? fmt(Math.max(...ms)) : '-',
      overlaps.length ? `${Math.max(...overlaps).toFixed(0)}` : '-',
      med !== undefined && baseMed !== undefined ? `${(med / baseMed).toFixed(2)}x` : '-',
      med !== undefined && pat ? `${(med / pat.median).toFixed(2)}x / ${(med / pat.fastest).toFixed(2)}x` : '-',
      ms.map(fmt).join(' '),
    ];
  });
  const out: string[] = [];
  out.push('');
  out.push(`Failover: primary lost (SIGKILL) -> first committed INSERT, seconds`);
  out.push(
    `(${opts.trials} trial(s) per system and scenario, fresh nodes each, kill at a random 0-${opts.jitterMs / 1000} s after ready, ` +
      `INSERT tried every ${ATTEMPT_INTERVAL_MS} ms; N-member systems: one client per member, first commit on any member)`,
  );
  out.push('');
  out.push(
    table(
      ['system', 'scenario', 'ok', 'median s', 'min s', 'max s', 'two writable ms', 'vs repmgrd', 'vs Patroni median / fastest', 'trials (s, in order)'],
      rows,
      [false, false, true, true, true, true, true, true, true, false],
    ),
  );
  out.push('');
  out.push('  host: every process of the primary\'s host frozen and SIGKILLed; postmaster: the postmaster alone SIGKILLed');
  out.push('  two writable ms: longest time in which two members both acknowledged writes (one client per member)');
  for (const s2 of new Set(outcomes.map((o) => o.system))) out.push(`  ${s2.label}: ${s2.settings}`);
  for (const o of outcomes) for (const e of o.errors) out.push(`  FAILED ${o.system.id} ${o.scenario}: ${e}`);
  if (sync) {
    out.push('');
    out.push(sync.table);
  }
  out.push('');
  out.push(`total wall time ${wallS.toFixed(0)} s`);
  process.stdout.write(out.join('\n') + '\n');
  if (outcomes.some((o) => o.errors.length > 0) || (sync && !sync.ok)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`bench/failover/run: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
