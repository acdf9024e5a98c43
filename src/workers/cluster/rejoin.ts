/**
 * Rejoining a member whose server is stopped (`pg_tsworker_ctl rejoin`,
 * run by an operator or by systemd's `ExecStartPre=`): ask etcd who leads;
 * on a member that does not lead, run `pg_rewind` against the leader when
 * this data directory's WAL went past where the leader's timeline forked
 * (pg_rewind itself decides: "no rewind required" otherwise), and write the
 * standby configuration (standby.signal, primary_conninfo). Nothing is done
 * on the leader, on a healthy standby, on a running server, or when no
 * member leads (the server then starts as a standby and takes part in the
 * election). Every connection to the leader is bounded (rejoinLimits): a
 * leader that does not answer leaves this member configured as its standby,
 * not rewound, and rejoin still succeeds (systemd then starts the server).
 */
import { execFile } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';

import pg from 'pg';

import { clientConfig } from '../promoter/conninfo';
import { setPrimaryConninfo } from './auto-conf';
import { Dcs, DcsError } from './dcs';
import { fitsTimeline, followConninfo } from './follow';
import { lsnToNumber } from './local';
import { clusterPrefix, parseHosts } from './settings';

export interface RejoinOptions {
  /** The data directory. */
  dataDir: string;
  /** PostgreSQL's programs (pg_controldata, pg_rewind). */
  bindir: string;
  hosts: string;
  scope: string;
  namespace: string;
  /** Citus group (docs/citus.md); absent or -1: no Citus formation. */
  citusGroup?: number;
  name: string;
  retryTimeoutMs: number;
}

/** What rejoin did: nothing, wrote the standby configuration, or rewound then wrote it. */
export interface RejoinResult {
  action: 'none' | 'standby' | 'rewind';
  why: string;
}

function run(file: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${path.basename(file)} failed: ${stderr.trim() || err.message}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** pg_controldata's fields by name. */
async function controlData(o: RejoinOptions): Promise<Map<string, string>> {
  const { stdout } = await run(path.join(o.bindir, 'pg_controldata'), ['-D', o.dataDir], 30_000);
  const out = new Map<string, string>();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return out;
}

/**
 * Whether a postmaster owns this data directory. Its postmaster.pid is
 * stale (a crash, a reboot) when no process has that PID, when the process
 * belongs to another user (EPERM: PostgreSQL's own rule, CreateLockFile;
 * after a reboot the number is often a root daemon's), or when the process
 * does not run in this directory (a postmaster's working directory is its
 * data directory).
 */
function serverRuns(dataDir: string): boolean {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return fs.realpathSync(`/proc/${pid}/cwd`) === fs.realpathSync(dataDir);
  } catch (err) {
    // no /proc to ask: the signal's answer stands; a process of another user's: not this server
    return (err as NodeJS.ErrnoException).code === 'ENOENT' && !fs.existsSync('/proc/self');
  }
}

/** The newest timeline of the WAL segment files in pg_wal (0 when there are none). */
function newestWalTimeline(dataDir: string): number {
  let newest = 0;
  for (const f of fs.readdirSync(path.join(dataDir, 'pg_wal'))) {
    if (/^[0-9A-F]{24}(\.partial)?$/.test(f)) newest = Math.max(newest, parseInt(f.slice(0, 8), 16));
  }
  return newest;
}

/** Point this data directory at the leader: primary_conninfo, and standby.signal. */
export function writeStandbyConfig(dataDir: string, conninfo: string): void {
  setPrimaryConninfo(dataDir, conninfo);
  fs.writeFileSync(path.join(dataDir, 'standby.signal'), '', { mode: 0o600 });
}

/** How long rejoin waits for the leader (milliseconds). */
export interface RejoinLimits {
  /** Each connection to the leader, startup included (libpq's connect_timeout for pg_rewind). */
  connectMs: number;
  /** The leader's CHECKPOINT. */
  checkpointMs: number;
  /** The whole pg_rewind run (it copies what changed: large on a big cluster). */
  rewindMs: number;
}

/** The limits, from the member's retry_timeout: a connection gets 10 s at least, or 4 × retry_timeout. */
export function rejoinLimits(retryTimeoutMs: number): RejoinLimits {
  const connectMs = Math.max(10_000, 4 * retryTimeoutMs);
  return { connectMs, checkpointMs: Math.max(120_000, 20 * retryTimeoutMs), rewindMs: 30 * 60_000 };
}

/** CHECKPOINT on the leader, within the limits (connect, then the statement; the server cancels it too). */
async function checkpointLeader(source: string, limits: RejoinLimits): Promise<void> {
  const cfg = clientConfig(source, limits.checkpointMs, 'pg_tsworker_ctl rejoin');
  const client = new pg.Client({ ...cfg, connectionTimeoutMillis: limits.connectMs, query_timeout: limits.checkpointMs, statement_timeout: limits.checkpointMs });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('CHECKPOINT');
  } finally {
    // a leader that stopped answering would hold end() too: do not wait for it
    const ended = client.end().catch(() => undefined);
    await Promise.race([ended, new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}

/**
 * Crash recovery of a primary that did not shut down cleanly, in single-user
 * mode, as pg_rewind would run it but keeping the WAL: the shutdown checkpoint
 * that ends it removes (or recycles) every segment before its own, among them
 * the one holding the last checkpoint before the fork, which pg_rewind then
 * looks for ("could not find previous WAL record"): the member could only be
 * cloned again. As Patroni does, archive_mode = on with an archive_command
 * that never succeeds keeps every segment not yet archived; the `.done`
 * marks of segments already archived are set aside during the run (so those
 * are kept too) and put back after it, without the `.ready` the run gave them.
 */
async function recoverKeepingWal(o: RejoinOptions, timeoutMs: number): Promise<void> {
  const status = path.join(o.dataDir, 'pg_wal', 'archive_status');
  const aside = path.join(o.dataDir, 'pg_wal', 'archive_status.rejoin');
  // a run interrupted before it put the marks back: put them back first
  restoreDone(status, aside);
  fs.mkdirSync(aside, { mode: 0o700 });
  for (const f of fs.readdirSync(status)) if (f.endsWith('.done')) fs.renameSync(path.join(status, f), path.join(aside, f));
  try {
    const args = ['--single', '-F', '-D', o.dataDir, '-c', 'archive_mode=on', '-c', 'archive_command=false', 'template1'];
    await new Promise<void>((resolve, reject) => {
      const child = execFile(path.join(o.bindir, 'postgres'), args, { timeout: timeoutMs, env: { ...process.env, LC_ALL: 'C' }, maxBuffer: 16 << 20 }, (err, _stdout, stderr) => {
        if (err) reject(new Error(`crash recovery in single-user mode failed: ${stderr.trim() || err.message}`));
        else resolve();
      });
      child.stdin?.end();
    });
  } finally {
    restoreDone(status, aside);
  }
}

/** Put the `.done` marks set aside back, removing the `.ready` marks the recovery gave the same segments. */
function restoreDone(status: string, aside: string): void {
  if (!fs.existsSync(aside)) return;
  for (const f of fs.readdirSync(aside)) {
    fs.rmSync(path.join(status, f.replace(/\.done$/, '.ready')), { force: true });
    fs.renameSync(path.join(aside, f), path.join(status, f));
  }
  fs.rmdirSync(aside);
}

/** Rejoin this data directory to the cluster; see the file's comment. */
export async function rejoin(o: RejoinOptions): Promise<RejoinResult> {
  const dcs = new Dcs(parseHosts(o.hosts), clusterPrefix(o.namespace, o.scope, o.citusGroup), Math.max(o.retryTimeoutMs, 10_000));
  let view;
  try {
    view = await dcs.read();
  } catch (err) {
    if (err instanceof DcsError) return { action: 'none', why: `etcd did not answer (${err.message}): the server starts as a standby and waits for it` };
    throw err;
  } finally {
    dcs.close();
  }
  const leader = view.leader?.name ?? null;
  if (leader === o.name) return { action: 'none', why: 'this member leads' };
  if (serverRuns(o.dataDir)) return { action: 'none', why: 'the server runs: its promoter follows the leader, or says what it needs' };
  const cd = await controlData(o);
  const sysid = cd.get('Database system identifier') ?? '';
  if (view.initialize !== null && view.initialize !== sysid) {
    throw new Error(`this data directory (system identifier ${sysid}) is not cluster "${o.scope}"'s (${view.initialize})`);
  }
  if (leader === null) return { action: 'none', why: 'no member leads: the server starts as a standby and takes part in the election' };
  const m = view.members.get(leader);
  if (!m) return { action: 'none', why: `member "${leader}" leads but has not published its connection string yet` };

  const state = cd.get('Database cluster state') ?? '';
  const timeline = Number(cd.get("Latest checkpoint's TimeLineID") ?? 0);
  const leaderTimeline = view.status?.timeline ?? m.timeline ?? null;
  const isStandby = fs.existsSync(path.join(o.dataDir, 'standby.signal'));
  if (isStandby && state === 'shut down in recovery') {
    // a standby stopped cleanly: its WAL can only fork off if its end is past the leader's fork point
    const end = lsnToNumber(cd.get('Minimum recovery ending location')) ?? 0;
    const at = Math.max(end, lsnToNumber(cd.get('Latest checkpoint location')) ?? 0);
    const fit = fitsTimeline(timeline, at, leaderTimeline, view.history);
    if (fit.verdict !== 'rewind') return { action: 'none', why: `a standby (${fit.why}): it follows "${leader}" by itself` };
  }

  if (isStandby && !state.startsWith('shut down')) {
    // A standby that crashed: pg_rewind would first run crash recovery in single-user mode, which refuses
    // standby.signal; without it, that recovery ends with a checkpoint record written on the timeline it
    // shares with the leader, at a place where the leader wrote other WAL: a fork pg_rewind cannot see
    // (it compares timelines), and the standby could never stream again. So never rewind it here: it
    // starts as a standby of the leader; if its WAL did fork off, its promoter reports needs_rewind, and
    // a rejoin after a clean stop ("shut down in recovery") rewinds it.
    writeStandbyConfig(o.dataDir, followConninfo(m.conninfo, o.name));
    return {
      action: 'standby',
      why: `a standby that did not shut down cleanly (database state "${state}", timeline ${timeline}): standby of "${leader}" configured, no pg_rewind (if its WAL forked off, its promoter reports needs_rewind: stop it cleanly and rejoin again)`,
    };
  }

  if (!isStandby && leaderTimeline !== null && newestWalTimeline(o.dataDir) === leaderTimeline) {
    // a primary has WAL on the leader's own timeline only if it promoted to the same timeline ID (after it lost
    // the key mid-promotion), or left recovery without promoting: either way its WAL differs from the leader's
    // under one timeline ID, which pg_rewind (it compares timeline IDs) would take for "no rewind required"
    throw new Error(
      `this data directory was a primary with WAL on timeline ${leaderTimeline}, the timeline member "${leader}" leads on: ` +
        'two histories under one timeline ID, which pg_rewind cannot tell apart; rebuild it: move it aside, pg_basebackup -R from the leader',
    );
  }

  // pg_rewind decides whether the WAL diverged; it copies configuration files from the source, so keep ours
  const conf = fs.readdirSync(o.dataDir).filter((f) => f.endsWith('.conf') && fs.statSync(path.join(o.dataDir, f)).isFile());
  const saved = conf.map((f) => [f, fs.readFileSync(path.join(o.dataDir, f))] as const);
  const limits = rejoinLimits(o.retryTimeoutMs);
  // every connection to the leader is bounded: a leader host that accepts TCP but never answers
  // (a hung or SIGSTOPped postmaster) must not hold systemd's ExecStartPre= until its own timeout
  const source = `${m.conninfo} dbname=postgres connect_timeout=${Math.ceil(limits.connectMs / 1000)}`;
  const unanswered = (err: Error) => {
    writeStandbyConfig(o.dataDir, followConninfo(m.conninfo, o.name));
    return {
      action: 'standby' as const,
      why: `leader "${leader}" does not answer (${err.message.split('\n')[0]}): starting as a standby of "${leader}" (its promoter checks the WAL once the leader answers; the boot check keeps it read-only); no pg_rewind`,
    };
  };
  // a leader promoted moments ago may not have checkpointed yet: pg_rewind reads the source's timeline
  // from its control file, which only a checkpoint updates (Patroni checkpoints the leader first too)
  try {
    await checkpointLeader(source, limits);
  } catch (err) {
    return unanswered(err as Error);
  }
  if (!state.startsWith('shut down')) {
    // a primary that crashed: its crash recovery, done here rather than by pg_rewind, keeps the WAL
    // pg_rewind reads next (see recoverKeepingWal)
    await recoverKeepingWal(o, limits.rewindMs);
  }
  let out: string;
  try {
    const r = await run(path.join(o.bindir, 'pg_rewind'), ['-D', o.dataDir, '--no-ensure-shutdown', '--source-server', source], limits.rewindMs);
    out = `${r.stdout}\n${r.stderr}`;
  } catch (err) {
    // pg_rewind could not connect: it changed nothing in this data directory
    if (/could not connect|timeout expired|connection to server .* failed/.test((err as Error).message)) return unanswered(err as Error);
    throw err;
  } finally {
    for (const [f, data] of saved) fs.writeFileSync(path.join(o.dataDir, f), data);
  }
  writeStandbyConfig(o.dataDir, followConninfo(m.conninfo, o.name));
  if (/no rewind required/.test(out)) {
    return { action: 'standby', why: `no rewind required (database state "${state}", timeline ${timeline}): standby of "${leader}" configured` };
  }
  return { action: 'rewind', why: `pg_rewind from "${leader}" done (${out.trim().split('\n').pop()}): standby of "${leader}" configured` };
}
