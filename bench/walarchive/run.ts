/**
 * bench/walarchive/run.ts — the walarchive benchmark driver (started by
 * bench/walarchive/run): pg_tsworker's `walarchive` worker next to
 * pg_receivewal, on one source, in one run.
 *
 *   throughput  a WAL backlog of --backlog MB is built (bulk inserts) on the
 *               source while both receivers are stopped (each holds its own
 *               slot); then each alone (order alternating by round, `sync`
 *               before each) catches up while pgbench keeps writing. Time
 *               from its slot turning active (START_REPLICATION) until the
 *               backlog's last segment is complete (fsynced and renamed)
 *               in its directory; MB/s = WAL from its slot's restart
 *               segment to the backlog's end / time. Start-up (launch or
 *               spawn to the slot turning active) is shown apart.
 *   latency     the source names one receiver in synchronous_standby_names
 *               (walarchive with synchronous = on, then pg_receivewal
 *               --synchronous, order alternating by round); pgbench runs
 *               single-row INSERTs (-c 4) for --seconds, after --warmup
 *               seconds of the same load that are not counted (a worker
 *               just launched runs unoptimized JavaScript at first); p50 and
 *               p99 of its per-transaction latencies (-l). Both start in a
 *               new segment (pg_switch_wal() once the receiver is a
 *               synchronous standby), made by each as a synchronous
 *               receiver, as for one that has run for long.
 *   floor       --floor: floor.js in the latency runs too, a minimal
 *               synchronous receiver on the worker's stack (the same
 *               Node.js, node-postgres, socket and pg-copy-streams; write,
 *               fdatasync, reply, nothing else): a reference point for what
 *               the stack costs apart from the worker's own code (not a
 *               lower bound: a round may find either one ahead).
 *   trials      --trials N: the durability check of test/walarchive.test.ts
 *               N times (acknowledged commits all in the archive after the
 *               source's SIGKILL), on a source of its own.
 * Medians over --rounds rounds. Both receivers fsync for real; the source
 * runs with the harness's fsync = off, the same for both.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import { Cluster, waitFor } from '../../test/harness/cluster';
import { pgConfigValue } from '../../test/harness/pg-config';
import { archiveDir, pgProgram, pgSpawn, stopProgram, synchronousTrial } from '../../test/walarchive-helpers';
import { fmtRatio, median, sleep, table } from '../report';

interface Options {
  rounds: number;
  backlogMb: number;
  seconds: number;
  trials: number;
  clients: number;
  /** pgbench -R: total commits per second in the latency runs (0: as fast as it goes). */
  rate: number;
  /** Seconds of the same load before each latency run, not counted. */
  warmup: number;
  /** Also measure floor.js, a minimal reference receiver on the worker's stack. */
  floor: boolean;
  /** A smoke run (--quick): the targets are not judged. */
  quick: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = { rounds: 3, backlogMb: 512, seconds: 10, trials: 20, clients: 4, rate: 0, warmup: 3, floor: false, quick: false };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(fs.readFileSync(path.join(__dirname, 'run'), 'utf8').split('\n').filter((l) => l.startsWith('#') && !l.startsWith('#!')).map((l) => l.slice(2)).join('\n') + '\n');
    process.exit(0);
  }
  // --quick sets defaults only: the options given with it win wherever they stand
  if (argv.includes('--quick')) Object.assign(o, { rounds: 1, backlogMb: 128, seconds: 4, trials: 3, warmup: 1, quick: true });
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    // A decimal number (pgbench -R takes fractions), at least `min`; no hex, exponent or empty string.
    const num = (min: number): number => {
      const text = argv[++i];
      if (text === undefined) throw new Error(`${a} needs a number >= ${min}`);
      if (!/^[0-9]+(\.[0-9]+)?$/.test(text)) throw new Error(`${a} needs a number >= ${min} in plain digits, not "${text}"`);
      const v = Number(text);
      if (v < min) throw new Error(`${a} needs a number >= ${min}`);
      return v;
    };
    // pgbench takes whole seconds and clients; megabytes are counted whole
    const int = (min: number): number => {
      const v = num(min);
      if (!Number.isInteger(v)) throw new Error(`${a} needs a whole number`);
      return v;
    };
    if (a === '--rounds') o.rounds = int(1);
    else if (a === '--backlog') o.backlogMb = int(16);
    else if (a === '--seconds') o.seconds = int(1);
    else if (a === '--trials') o.trials = int(0);
    else if (a === '--clients') o.clients = int(1);
    else if (a === '--rate') {
      o.rate = num(0);
      if (o.rate === 0) throw new Error('--rate needs a number > 0 (leave it out for no rate limit)');
    }
    else if (a === '--warmup') o.warmup = int(0);
    else if (a === '--floor') o.floor = true;
    else if (a !== '--quick') throw new Error(`unknown argument ${a} (see --help)`);
  }
  return o;
}

const log = (...a: unknown[]): void => {
  process.stderr.write(`${a.join(' ')}\n`);
};

const clusters: Cluster[] = [];

async function lsn(c: Cluster, sql = 'SELECT pg_current_wal_flush_lsn()'): Promise<bigint> {
  const [hi, lo] = (await c.queryText(sql)).split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

function pgbenchArgs(c: Cluster, args: string[]): string[] {
  return ['-h', c.host, '-p', String(c.port), '-U', 'postgres', ...args, 'postgres'];
}

/** Grow the source's WAL by `bytes`: bulk inserts (pgbench would take minutes on a busy machine). */
async function buildBacklog(src: Cluster, bytes: bigint): Promise<void> {
  const start = await lsn(src);
  await src.query('CREATE TABLE IF NOT EXISTS backlog(id int, pad text)');
  while ((await lsn(src)) - start < bytes) {
    await src.query(`INSERT INTO backlog SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g`);
    await src.query('TRUNCATE backlog');
  }
}

/** The name the last segment before `boundary` (a segment start) takes once complete. */
async function segBefore(src: Cluster, boundary: bigint): Promise<string> {
  const p = boundary - 1n;
  return src.queryText(`SELECT pg_walfile_name('${(p >> 32n).toString(16)}/${(p & 0xffffffffn).toString(16)}'::pg_lsn)`);
}

interface Throughput {
  /** MB/s from the slot turning active to the last segment complete. */
  wa: number;
  rw: number;
  mb: number;
  /** Seconds from the start command to the slot turning active. */
  waStart: number;
  rwStart: number;
  /** CPU seconds (user + system, all threads) per GB streamed. */
  waCpu: number;
  rwCpu: number;
}

/** CPU seconds (user + system, every thread) a process has used so far: /proc/<pid>/stat, in clock ticks of 10 ms. */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/**
 * With WALARCHIVE_PERF=<directory>: `perf record -g` of a receiver's
 * process while it is measured, into <directory>/<what>.data (for
 * `perf report -i`); a no-op otherwise. Returns the function that stops it.
 */
function perfRecord(pid: number, what: string): () => Promise<void> {
  const dir = process.env.WALARCHIVE_PERF;
  if (!dir) return async () => undefined;
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn('perf', ['record', '-q', '-g', '-p', String(pid), '-o', path.join(dir, `${what}.data`)], { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return async () => {
    child.kill('SIGINT');
    await exited;
  };
}

/** The walarchive worker's process id, once it runs. */
async function workerPid(r: Receivers): Promise<number> {
  let pid = 0;
  await waitFor(async () => {
    pid = Number(await r.host.queryText(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'walarchive' LIMIT 1`)) || 0;
    return pid > 0;
  }, { intervalMs: 5, what: 'the walarchive worker to run' });
  return pid;
}

interface Receivers {
  src: Cluster;
  host: Cluster;
  waDir: string;
  rwDir: string;
  /** floor.js's directory (--floor). */
  flDir: string;
}

async function startWalarchive(r: Receivers, settings: Record<string, string>): Promise<void> {
  await r.host.query(`SELECT tsworker.launch('walarchive', 'walarchive', $1::jsonb)`, [
    JSON.stringify({ source_conninfo: r.src.connectionString(), directory: r.waDir, slot: 'wa', status_interval: '10s', ...settings }),
  ]);
}

async function stopWalarchive(r: Receivers): Promise<void> {
  await r.host.query(`SELECT tsworker.stop('walarchive')`);
  await waitFor(async () => (await r.src.queryText(`SELECT active FROM pg_replication_slots WHERE slot_name = 'wa'`)) === 'f', { what: 'walarchive to stop' });
}

function startReceivewal(r: Receivers, extra: string[], appName = 'pg_receivewal') {
  return pgSpawn(
    'pg_receivewal',
    ['-d', `${r.src.connectionString()} application_name=${appName}`, '-S', 'rw', '-D', r.rwDir, '-n', ...extra],
    path.join(r.src.baseDir, 'receivewal.log'),
  );
}

/** Write back every dirty page of the machine, so that one system's measurement does not pay for the other's writes. */
async function settle(): Promise<void> {
  await new Promise<void>((resolve) => execFile('sync', () => resolve()));
  await sleep(500);
}

/**
 * One round: a backlog built while both receivers are stopped, then each
 * one alone (order alternating by round, the machine's dirty pages written
 * back before each) catches up from its own slot while pgbench writes.
 */
async function throughputRound(r: Receivers, o: Options, round: number): Promise<Throughput> {
  const from = await lsn(r.src, `SELECT min(restart_lsn) FROM pg_replication_slots WHERE slot_name IN ('wa', 'rw')`);
  await buildBacklog(r.src, BigInt(o.backlogMb) * 1024n * 1024n);
  await r.src.query('SELECT pg_switch_wal()');
  const target = await lsn(r.src, 'SELECT pg_current_wal_insert_lsn()');
  const last = await segBefore(r.src, target - (target % (16n * 1024n * 1024n)));
  const mb = Number(target - from) / 1024 / 1024;
  log(`  backlog ${mb.toFixed(0)} MB, up to ${last}`);
  const out: Record<'wa' | 'rw', number> = { wa: 0, rw: 0 };
  const startup: Record<'wa' | 'rw', number> = { wa: 0, rw: 0 };
  const cpu: Record<'wa' | 'rw', number> = { wa: 0, rw: 0 };
  const order: ('wa' | 'rw')[] = round % 2 === 0 ? ['wa', 'rw'] : ['rw', 'wa'];
  for (const system of order) {
    await settle();
    const logFrom = r.src.logOffset();
    const load = pgProgram('pgbench', pgbenchArgs(r.src, ['-c', '2', '-j', '1', '-T', '600', '-n']), { allowFail: true, timeoutMs: 700_000 });
    const t0 = performance.now();
    let rw = null;
    if (system === 'wa') await startWalarchive(r, { synchronous: 'off' });
    else rw = startReceivewal(r, []);
    const dir = system === 'wa' ? r.waDir : r.rwDir;
    // streaming starts when the slot turns active (START_REPLICATION); start-up is reported apart
    await waitFor(async () => (await r.src.queryText(`SELECT active FROM pg_replication_slots WHERE slot_name = '${system}'`)) === 't', { intervalMs: 5, what: `${system}'s slot to be active` });
    const tStream = performance.now();
    const pid = system === 'wa' ? await workerPid(r) : rw!.pid!;
    const cpu0 = cpuSeconds(pid);
    const perfStop = perfRecord(pid, `catchup-${system}-${round}`);
    await waitFor(() => fs.existsSync(path.join(dir, last)), { timeoutMs: 600_000, intervalMs: 5, what: `${system} to complete ${last}` });
    const secs = (performance.now() - tStream) / 1000;
    const cpuUsed = cpuSeconds(pid) - cpu0;
    await perfStop();
    // what it streamed: from where its START_REPLICATION asked (pg_receivewal restarts at the start of the
    // segment it was writing, the worker at its flush position), as the source logged it
    const bytes = Number(target - startedAt(r.src.readLog(logFrom), system));
    out[system] = bytes / 1024 / 1024 / secs;
    startup[system] = (tStream - t0) / 1000;
    cpu[system] = cpuUsed / (bytes / 1024 / 1024 / 1024);
    log(`  ${system === 'wa' ? 'walarchive' : 'pg_receivewal'}: ${(bytes / 1024 / 1024).toFixed(0)} MB in ${secs.toFixed(2)} s, ${out[system].toFixed(1)} MB/s, CPU ${cpuUsed.toFixed(2)} s (start-up ${(tStream - t0).toFixed(0)} ms)`);
    if (system === 'wa') await stopWalarchive(r);
    else await stopProgram(rw!);
    await r.src.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgbench'`);
    await load;
  }
  return { ...out, mb, waStart: startup.wa, rwStart: startup.rw, waCpu: cpu.wa, rwCpu: cpu.rw };
}

/** The position the last START_REPLICATION on `slot` asked for, from the source's log (log_replication_commands). */
function startedAt(log: string, slot: string): bigint {
  const re = new RegExp(`START_REPLICATION SLOT "${slot}" (?:PHYSICAL )?([0-9A-F]+)/([0-9A-F]+)`, 'g');
  const all = [...log.matchAll(re)];
  if (all.length === 0) throw new Error(`no START_REPLICATION of slot ${slot} in the source's log`);
  const [, hi, lo] = all[all.length - 1];
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

interface Latency {
  p50: number;
  p99: number;
  tps: number;
  /** CPU microseconds of the receiver (user + system, all threads) per commit. */
  cpuUs: number;
  /** p50 of the warm-up run (ms), NaN without one. */
  warmP50: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Run pgbench's INSERTs for `seconds` (-l into `prefix`*); its per-transaction latencies in ms, sorted. */
async function pgbenchLatencies(r: Receivers, o: Options, logDir: string, script: string, prefix: string, seconds: number): Promise<number[]> {
  await pgProgram('pgbench', pgbenchArgs(r.src, ['-c', String(o.clients), '-j', '2', '-T', String(seconds), ...(o.rate > 0 ? ['-R', String(o.rate)] : []), '-n', '-f', script, '-l', '--log-prefix', path.join(logDir, prefix)]), {
    timeoutMs: (seconds + 60) * 1000,
  });
  const lat: number[] = [];
  for (const f of fs.readdirSync(logDir).filter((n) => n.startsWith(`${prefix}.`))) {
    for (const line of fs.readFileSync(path.join(logDir, f), 'utf8').split('\n')) {
      const cols = line.split(' ');
      if (cols.length >= 3) lat.push(Number(cols[2]) / 1000);
    }
  }
  return lat.sort((a, b) => a - b);
}

/** The receivers of the latency runs: the worker, pg_receivewal, and with --floor floor.js. */
type Sync = 'wa' | 'rw' | 'fl';
const SYNC_NAMES: Record<Sync, string> = { wa: 'walarchive', rw: 'pg_receivewal', fl: 'floor.js' };

/** Start floor.js (a minimal reference receiver on the worker's stack) with the installed runtime, as the server's OS user. */
function startFloor(r: Receivers, app: string) {
  const runtime = path.join(pgConfigValue('--sharedir'), 'pg_tsworker');
  const node = path.join(pgConfigValue('--pkglibdir'), 'pg_tsworker', 'pg_tsworker_node');
  const script = path.join(r.flDir, 'floor.js'); // copied there by main(): readable by the server's OS user
  return pgSpawn(node, [script, runtime, r.src.host, String(r.src.port), 'postgres', 'fl', r.flDir, app], path.join(r.src.baseDir, 'floor.log'));
}

async function latencyOf(r: Receivers, o: Options, system: Sync): Promise<Latency> {
  const app = { wa: 'walarchive_sync', rw: 'receivewal_sync', fl: 'floor_sync' }[system];
  await r.src.query(`ALTER SYSTEM SET synchronous_standby_names = '${app}'`);
  await r.src.reload();
  let rw = null;
  if (system === 'wa') await startWalarchive(r, { synchronous: 'on', application_name: app });
  else if (system === 'fl') rw = startFloor(r, app);
  else rw = startReceivewal(r, ['--synchronous'], app);
  try {
    await r.src.pollQueryUntil(`SELECT sync_state FROM pg_stat_replication WHERE application_name = '${app}'`, 'sync', { timeoutMs: 300_000 });
    // The commits measured go into a segment the receiver made as a synchronous receiver, as those of
    // one that has run for long do, not into the one it resumed in (made by the catch-up before it:
    // the worker zero-fills a synchronous archive's segments in smaller writes, walfile.ts). A commit
    // after the switch returns once the receiver has flushed it, in the new segment.
    await r.src.query('SELECT pg_switch_wal()');
    await r.src.query('INSERT INTO sync_bench(v) VALUES (0)');
    await settle();
    const logDir = fs.mkdtempSync(path.join(r.src.baseDir, 'pgbench-'));
    fs.chmodSync(logDir, 0o777);
    const script = path.join(logDir, 'insert.sql');
    fs.writeFileSync(script, 'INSERT INTO sync_bench(v) VALUES (1);\n');
    fs.chmodSync(script, 0o644);
    const pid = system === 'wa' ? await workerPid(r) : rw!.pid!;
    // The same load first, not counted: a worker just launched runs its JavaScript unoptimized for its
    // first seconds (V8 compiles the hot functions as they run), pg_receivewal is machine code from the
    // start. Its p50 is reported apart, so that what a fresh start costs is seen too.
    const warm = o.warmup > 0 ? await pgbenchLatencies(r, o, logDir, script, 'warm', o.warmup) : null;
    const cpu0 = cpuSeconds(pid);
    const perfStop = perfRecord(pid, `sync-${system}-${pid}`);
    const t0 = performance.now();
    const lat = await pgbenchLatencies(r, o, logDir, script, 'tx', o.seconds);
    const secs = (performance.now() - t0) / 1000;
    const cpuUsed = cpuSeconds(pid) - cpu0;
    await perfStop();
    return { p50: percentile(lat, 50), p99: percentile(lat, 99), tps: lat.length / secs, cpuUs: (cpuUsed * 1e6) / lat.length, warmP50: warm ? percentile(warm, 50) : NaN };
  } finally {
    if (system === 'wa') await stopWalarchive(r);
    else await stopProgram(rw!);
    await r.src.query(`ALTER SYSTEM RESET synchronous_standby_names`);
    await r.src.reload();
  }
}

async function durabilityTrials(n: number): Promise<{ passed: number; acked: number; failures: string[] }> {
  const src = await Cluster.create('wa-trials-src', { allowStreaming: true, conf: { synchronous_standby_names: 'walarchive' } });
  clusters.push(src);
  const host = await Cluster.create('wa-trials-host', { conf: { shared_preload_libraries: 'pg_tsworker' } });
  clusters.push(host);
  await host.query('CREATE EXTENSION pg_tsworker');
  const dir = archiveDir(host, 'archive');
  await host.query(`SELECT tsworker.launch('walarchive', 'walarchive', $1::jsonb)`, [
    JSON.stringify({ source_conninfo: src.connectionString(), directory: dir, slot: 'wa', create_slot: 'on', synchronous: 'on', retry_interval: '200ms' }),
  ]);
  await src.query('CREATE TABLE acked(id bigserial PRIMARY KEY, v int)');
  let passed = 0;
  let acked = 0;
  const failures: string[] = [];
  for (let i = 0; i < n; i++) {
    await src.pollQueryUntil(`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walarchive'`, 'sync');
    try {
      const k = await synchronousTrial(src, dir, 300 + Math.floor(Math.random() * 1200));
      acked += k;
      passed++;
      log(`  trial ${i + 1}/${n}: ${k} acknowledged commits, all in the archive`);
    } catch (err) {
      failures.push(`trial ${i + 1}: ${(err as Error).message}`);
      log(`  trial ${i + 1}/${n}: FAILED ${(err as Error).message}`);
    }
    await src.start();
  }
  return { passed, acked, failures };
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench/walarchive: ${(err as Error).message}\n`);
    process.exit(2);
  }
  const stop = async (): Promise<void> => {
    for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
  };
  // Stopped by a signal (^C, kill, timeout, a closed terminal): the servers go with it.
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    process.on(sig, () => void stop().then(() => process.exit(code)));
  }
  try {
    log(`bench/walarchive: ${o.rounds} round${o.rounds === 1 ? '' : 's'}, backlog ${o.backlogMb} MB, latency ${o.seconds} s x ${o.clients} clients${o.rate > 0 ? ` at ${o.rate} tps` : ''} after ${o.warmup} s of warm-up, ${o.trials} durability trials`);
    const src = await Cluster.create('wa-bench-src', { allowStreaming: true, conf: { max_wal_size: '4GB', checkpoint_timeout: '30min', log_replication_commands: 'on' } });
    clusters.push(src);
    const host = await Cluster.create('wa-bench-host', { conf: { shared_preload_libraries: 'pg_tsworker' } });
    clusters.push(host);
    await host.query('CREATE EXTENSION pg_tsworker');
    const r: Receivers = { src, host, waDir: archiveDir(host, 'walarchive'), rwDir: archiveDir(src, 'receivewal'), flDir: archiveDir(src, 'floor') };
    await src.query(`SELECT pg_create_physical_replication_slot('wa', true), pg_create_physical_replication_slot('rw', true)`);
    if (o.floor) {
      await src.query(`SELECT pg_create_physical_replication_slot('fl', true)`);
      fs.copyFileSync(path.join(__dirname, 'floor.js'), path.join(r.flDir, 'floor.js'));
      fs.chmodSync(path.join(r.flDir, 'floor.js'), 0o644);
    }
    await pgProgram('pgbench', pgbenchArgs(src, ['-i', '-s', '10', '-q']));
    await src.query('CREATE TABLE sync_bench(id bigserial PRIMARY KEY, v int)');

    const tp: Throughput[] = [];
    const lat: Partial<Record<Sync, Latency>>[] = [];
    for (let i = 0; i < o.rounds; i++) {
      log(`round ${i + 1}/${o.rounds}: throughput`);
      tp.push(await throughputRound(r, o, i));
      log(`round ${i + 1}/${o.rounds}: synchronous commit latency`);
      const systems: Sync[] = o.floor ? ['wa', 'fl', 'rw'] : ['wa', 'rw'];
      const order = i % 2 === 0 ? systems : [...systems].reverse();
      const res: Partial<Record<Sync, Latency>> = {};
      for (const s of order) {
        res[s] = await latencyOf(r, o, s);
        log(`  ${SYNC_NAMES[s]}: p50 ${res[s]!.p50.toFixed(3)} ms, p99 ${res[s]!.p99.toFixed(3)} ms, ${res[s]!.tps.toFixed(0)} tps, CPU ${res[s]!.cpuUs.toFixed(0)} us/commit${o.warmup > 0 ? ` (warm-up p50 ${res[s]!.warmP50.toFixed(3)} ms)` : ''}`);
      }
      lat.push(res);
      await sleep(100);
    }
    const trials = o.trials > 0 ? await durabilityTrials(o.trials) : null;

    const m = (f: (x: (typeof tp)[number]) => number) => median(tp.map(f));
    const l = (s: Sync, k: keyof Latency) => median(lat.map((x) => x[s]![k]));
    const tpRatio = m((x) => x.wa) / m((x) => x.rw);
    const p50Ratio = l('wa', 'p50') / l('rw', 'p50');
    const p99Ratio = l('wa', 'p99') / l('rw', 'p99');
    const out: string[] = [];
    const overRounds = o.rounds === 1 ? 'one round' : `median of ${o.rounds}`;
    out.push(`\nArchive throughput: catching up a ${m((x) => x.mb).toFixed(0)} MB WAL backlog (16 MB segments) under pgbench, each alone; ${overRounds}`);
    out.push(
      table(
        ['system', 'MB/s', 'vs pg_receivewal', 'CPU s/GB', 'start-up'],
        [
          ['walarchive (pg_tsworker)', m((x) => x.wa).toFixed(1), fmtRatio(tpRatio), m((x) => x.waCpu).toFixed(2), `${(m((x) => x.waStart) * 1000).toFixed(0)} ms`],
          ['pg_receivewal', m((x) => x.rw).toFixed(1), '1.00x', m((x) => x.rwCpu).toFixed(2), `${(m((x) => x.rwStart) * 1000).toFixed(0)} ms`],
        ],
        [false, true, true, true, true],
      ),
    );
    out.push(o.quick ? 'target >= 0.90x: not judged (a --quick smoke run: one short round)' : `target >= 0.90x: ${tpRatio >= 0.9 ? 'met' : 'NOT met'}`);
    out.push(`\nSynchronous commit latency: pgbench -c ${o.clients}${o.rate > 0 ? ` -R ${o.rate}` : ''}, single-row INSERT, ${o.seconds} s, source names the receiver in synchronous_standby_names; ${overRounds}`);
    out.push(
      table(
        ['system', 'tps', 'p50 ms', 'p99 ms', 'p50 vs', 'p99 vs', 'CPU us/commit'],
        [
          ['walarchive synchronous = on', l('wa', 'tps').toFixed(0), l('wa', 'p50').toFixed(3), l('wa', 'p99').toFixed(3), fmtRatio(p50Ratio), fmtRatio(p99Ratio), l('wa', 'cpuUs').toFixed(0)],
          ['pg_receivewal --synchronous', l('rw', 'tps').toFixed(0), l('rw', 'p50').toFixed(3), l('rw', 'p99').toFixed(3), '1.00x', '1.00x', l('rw', 'cpuUs').toFixed(0)],
          ...(o.floor
            ? [['floor.js (same stack, minimal)', l('fl', 'tps').toFixed(0), l('fl', 'p50').toFixed(3), l('fl', 'p99').toFixed(3), fmtRatio(l('fl', 'p50') / l('rw', 'p50')), fmtRatio(l('fl', 'p99') / l('rw', 'p99')), l('fl', 'cpuUs').toFixed(0)]]
            : []),
        ],
        [false, true, true, true, true, true, true],
      ),
    );
    out.push(
      o.quick
        ? 'target <= 1.20x: not judged (a --quick smoke run: one short round)'
        : `target <= 1.20x: p50 ${p50Ratio <= 1.2 ? 'met' : 'NOT met'}, p99 ${p99Ratio <= 1.2 ? 'met' : 'NOT met'}`,
    );
    if (o.warmup > 0) {
      out.push(
        `(each run after ${o.warmup} s of the same load, not counted: a worker just launched runs unoptimized JavaScript at first; ` +
          `p50 during that warm-up: walarchive ${l('wa', 'warmP50').toFixed(3)} ms, pg_receivewal ${l('rw', 'warmP50').toFixed(3)} ms${o.floor ? `, floor.js ${l('fl', 'warmP50').toFixed(3)} ms` : ''})`,
      );
    }
    if (trials) {
      out.push(`\nDurability: ${trials.passed}/${o.trials} trials with every acknowledged commit in the archive after the source's SIGKILL (${trials.acked} acknowledged commits in all)`);
      for (const f of trials.failures) out.push(`  ${f}`);
    }
    process.stdout.write(out.join('\n') + '\n');
    if (trials && trials.failures.length > 0) process.exitCode = 1;
  } finally {
    await stop();
  }
}

main().catch((err) => {
  process.stderr.write(`bench/walarchive: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
