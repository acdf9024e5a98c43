/**
 * Helpers of the walarchive tests and benchmark: archive directories the
 * server's OS user owns, PostgreSQL's client programs run as that user
 * (pg_receivewal, pg_waldump, pgbench), and reading an archive's WAL.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

import { Cluster, PG_BIN, PG_OS_USER, waitFor } from './harness/cluster';

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** uid and gid of the server's OS user when we are root (then programs run as that user, signalled directly). */
function serverUser(): { uid: number; gid: number } | Record<string, never> {
  if (!asRoot) return {};
  const line = fs.readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${PG_OS_USER}:`));
  if (!line) throw new Error(`OS user ${PG_OS_USER} not found`);
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

const ENV = { ...process.env, LC_ALL: 'C', HOME: '/tmp' };

/** Run a PostgreSQL program as the server's OS user; resolves with its output, rejects on failure unless `allowFail`. */
export function pgProgram(
  prog: string,
  args: string[],
  opts: { allowFail?: boolean; timeoutMs?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(path.resolve(PG_BIN, prog), args, { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 512 * 1024 * 1024, env: ENV, cwd: '/tmp', ...serverUser() }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      if (err && !opts.allowFail) reject(new Error(`${prog} ${args.join(' ')} failed (${code}): ${stderr || err.message}`));
      else resolve({ code, stdout, stderr });
    });
  });
}

/** Start a long-running PostgreSQL program (pg_receivewal) as the server's OS user. */
export function pgSpawn(prog: string, args: string[], logFile: string): ChildProcess {
  const out = fs.openSync(logFile, 'a');
  const child = spawn(path.resolve(PG_BIN, prog), args, { stdio: ['ignore', out, out], env: ENV, cwd: '/tmp', ...serverUser() });
  fs.closeSync(out);
  return child;
}

/** Stop a spawned program with SIGINT (pg_receivewal then flushes and exits) and wait for it. */
export async function stopProgram(child: ChildProcess, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  await Promise.race([done, new Promise((r) => setTimeout(r, 10_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** A new empty directory under the cluster's base directory, owned by the server's OS user, mode 0700. */
export function archiveDir(c: Cluster, name: string): string {
  const dir = path.join(c.baseDir, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  const u = serverUser();
  if ('uid' in u) fs.chownSync(dir, u.uid, u.gid);
  return dir;
}

/** Completed, uncompressed segment names in a directory, sorted. */
export function completedSegments(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n)).sort();
}

/** A segment name's segment number (for a given segment size). */
export function segno(name: string, segSize: number): bigint {
  const per = 0x100000000n / BigInt(segSize);
  return BigInt(`0x${name.slice(8, 16)}`) * per + BigInt(`0x${name.slice(16, 24)}`);
}

/** A segment file's content, decompressed by its name (`.gz`: gzip, `.lz4`: LZ4 frame). */
export function decompress(name: string, data: Buffer): Buffer {
  if (name.endsWith('.gz')) return zlib.gunzipSync(data);
  if (name.endsWith('.lz4')) return (require('lz4-napi') as { decompressFrameSync(b: Buffer): Buffer }).decompressFrameSync(data);
  return data;
}

/**
 * pg_waldump's error where the WAL it reads ends (zeros after the last
 * record): "invalid record length at X/Y: wanted N, got 0" before 16,
 * "expected at least N, got 0" from 16. Groups 1 and 2: the LSN.
 */
export const WALDUMP_END_RE = /error in WAL record at [0-9A-F]+\/[0-9A-F]+: invalid record length at ([0-9A-F]+)\/([0-9A-F]+): (?:wanted|expected at least) \d+, got 0/;

/**
 * pg_waldump over a copy of the archive in which `.partial` files take
 * their plain names (as an operator does before a restore), from
 * `startSeg` to the end of the valid WAL in the last segment of that
 * timeline. Returns its output and that last segment.
 */
export async function waldump(dir: string, startSeg: string, scratch: string, extra: string[] = []): Promise<{ out: string; err: string; code: number; endSeg: string }> {
  fs.rmSync(scratch, { recursive: true, force: true });
  fs.mkdirSync(scratch, { mode: 0o755 });
  // complete segments first, so that a .partial never hides a complete copy
  const names = fs.readdirSync(dir).sort((a, b) => Number(/partial/.test(a)) - Number(/partial/.test(b)));
  for (const n of names) {
    const plain = n.replace(/\.partial$/, '').replace(/\.(gz|lz4)$/, '');
    if (/^[0-9A-F]{24}$/.test(plain) && !fs.existsSync(path.join(scratch, plain))) {
      const data = fs.readFileSync(path.join(dir, n));
      fs.writeFileSync(path.join(scratch, plain), decompress(n, data));
    } else if (/\.history$/.test(n)) fs.copyFileSync(path.join(dir, n), path.join(scratch, n));
  }
  fs.chmodSync(scratch, 0o755);
  for (const n of fs.readdirSync(scratch)) fs.chmodSync(path.join(scratch, n), 0o644);
  // with a start segment alone, pg_waldump reads only that one: name the last as the end
  const endSeg = fs.readdirSync(scratch).filter((n) => /^[0-9A-F]{24}$/.test(n) && n.slice(0, 8) === startSeg.slice(0, 8)).sort().pop()!;
  const r = await pgProgram('pg_waldump', ['-p', scratch, ...extra, startSeg, endSeg], { allowFail: true });
  return { out: r.stdout, err: r.stderr, code: r.code, endSeg };
}

/** The worker's status object in tsworker.workers. */
export async function archiveStatus(c: Cluster, name = 'walarchive'): Promise<Record<string, any> | undefined> {
  const rows = await c.query(`SELECT status FROM tsworker.workers WHERE name = $1`, [name]);
  return rows[0]?.status;
}

/** Wait until the worker's flushed position reaches `lsn` (as pg_lsn text). */
export async function waitFlushed(c: Cluster, lsn: string, name = 'walarchive', timeoutMs = 60_000): Promise<void> {
  await waitFor(
    async () => {
      const s = await archiveStatus(c, name);
      if (!s?.flushed) return false;
      const r = await c.queryOne<boolean>(`SELECT $1::pg_lsn >= $2::pg_lsn`, [s.flushed, lsn]);
      return r === true;
    },
    { timeoutMs, what: `${name} to flush ${lsn}` },
  );
}

/** Transaction ids of the COMMIT records pg_waldump finds in an archive. */
async function archivedCommits(dir: string, scratch: string): Promise<Set<string>> {
  const segs = fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}/.test(n)).map((n) => n.slice(0, 24)).sort();
  const dump = await waldump(dir, segs[0], scratch, ['-r', 'Transaction']);
  const out = new Set<string>();
  for (const m of dump.out.matchAll(/tx:\s+(\d+),.*desc: COMMIT/g)) out.add(m[1]);
  return out;
}

/**
 * One trial: a client commits rows one at a time and records the
 * transaction id of each acknowledged commit; the source is SIGKILLed
 * mid-load; every acknowledged transaction must then be in the archive.
 * Returns how many were acknowledged; throws naming those that are not.
 */
export async function synchronousTrial(src: Cluster, dir: string, killAfterMs: number): Promise<number> {
  const client = await src.connect();
  const acked: string[] = [];
  const load = (async () => {
    for (let i = 0; ; i++) {
      try {
        const r = await client.query(`INSERT INTO acked(v) VALUES ($1) RETURNING pg_current_xact_id()::text AS xid`, [i]);
        acked.push(r.rows[0].xid);
      } catch {
        return;
      }
    }
  })();
  await new Promise((r) => setTimeout(r, killAfterMs));
  await src.kill9();
  await load;
  await client.end().catch(() => undefined);
  const committed = await archivedCommits(dir, path.join(src.baseDir, 'dump'));
  const missing = acked.filter((x) => !committed.has(x));
  if (missing.length > 0) throw new Error(`${missing.length} of ${acked.length} acknowledged commits are not in the archive (transactions ${missing.slice(0, 10).join(', ')}...)`);
  return acked.length;
}


/** A source server for the walarchive tests: streaming allowed, 1 MB WAL segments. Pushed on `clusters` for cleanup. */
export async function archiveSource(name: string, clusters: Cluster[], conf: Record<string, string | number> = {}): Promise<Cluster> {
  const c = await Cluster.create(name, { allowStreaming: true, initdbArgs: ['--wal-segsize=1'], conf: { max_wal_size: '64MB', ...conf } });
  clusters.push(c);
  return c;
}

/** A server running the walarchive worker (from postgresql.conf) against `src`, archiving into a new directory. */
export async function archiveHost(
  name: string,
  src: Cluster,
  settings: Record<string, string | number>,
  clusters: Cluster[],
): Promise<{ host: Cluster; dir: string }> {
  const host = await Cluster.create(name, { start: false });
  clusters.push(host);
  const dir = archiveDir(host, 'archive');
  host.appendConf({
    shared_preload_libraries: 'pg_tsworker',
    'tsworker.workers': 'walarchive',
    'tsworker_walarchive.source_conninfo': src.connectionString(),
    'tsworker_walarchive.directory': dir,
    'tsworker_walarchive.status_interval': '1s',
    ...settings,
  });
  await host.start();
  await host.query('CREATE EXTENSION pg_tsworker');
  return { host, dir };
}

/** Run pgbench against `c` as the server's OS user. */
export async function pgbench(c: Cluster, args: string[]): Promise<void> {
  await pgProgram('pgbench', ['-h', c.host, '-p', String(c.port), '-U', 'postgres', ...args, 'postgres'], { timeoutMs: 300_000 });
}

/** Switch WAL on `c`; returns the name of the segment the switch completed. */
export async function switchWal(c: Cluster): Promise<string> {
  const name = await c.queryText(`SELECT pg_walfile_name(pg_current_wal_lsn())`);
  await c.query('SELECT pg_switch_wal()');
  return name;
}

/** Wait until a completed segment named `name` (or a compressed form) is in `dir`. */
export async function segmentArchived(dir: string, name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(() => fs.existsSync(path.join(dir, name)) || fs.existsSync(path.join(dir, `${name}.gz`)) || fs.existsSync(path.join(dir, `${name}.lz4`)), {
    timeoutMs,
    what: `${name} in ${dir}`,
  });
}
