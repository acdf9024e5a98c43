/**
 * bench/failover/common.ts — what every failover system shares: the system
 * interface, running programs as the server's OS user, process trees
 * (freeze + SIGKILL, as when a host is lost), temporary directories and an
 * emergency cleanup registry (Ctrl-C, timeouts).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';

import pg from 'pg';

import { PG_BIN } from '../../test/harness/pg-config';

/** PostgreSQL server binaries: PG_CONFIG's --bindir (test/harness/pg-config.ts). */
export { PG_BIN };
/** OS user that runs every server-side program (initdb and postgres refuse root). */
export const PG_OS_USER = process.env.PG_TSWORKER_OSUSER || 'postgres';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Progress lines go to stderr; the result table goes to stdout. */
export type Log = (msg: string) => void;

/** What a system's setup() hands back: where the client loop writes. */
export interface Nodes {
  /** Connection to the standby, which must become writable after the primary is killed. */
  standby: pg.ClientConfig;
  /**
   * Every member, the primary first (systems of N members): then one client
   * writes to each, the result is the first write committed on any member
   * after the kill, and the windows of the members' accepted writes are
   * compared.
   */
  members?: { name: string; conn: pg.ClientConfig }[];
  /** One line for the progress output, e.g. ports and pids. */
  describe: string;
}

/**
 * What is lost in a trial: `host`, every process of the primary's host
 * (frozen, then SIGKILLed: nothing there can react); `postmaster`, the
 * primary's postmaster alone (its children notice and exit; a manager on
 * the host stays).
 */
export type Scenario = 'host' | 'postmaster';

/**
 * One failover system under test. A trial is
 *   setup() -> killPrimary() -> (client loop on nodes.standby) -> teardown().
 * teardown() must be safe to call at any point, more than once, also after a
 * failed or interrupted setup(), and must leave no process behind.
 */
export interface FailoverSystem {
  /** Short id used by --only and in the table ('repmgr', 'autofailover', ...). */
  readonly id: string;
  /** Human-readable name for the table. */
  readonly label: string;
  /** The failure-detection settings in force, for the table's notes. */
  readonly settings: string;
  /** Build fresh nodes, wait until the primary is healthy, the standby streams and the manager watches. */
  setup(log: Log): Promise<Nodes>;
  /** The scenarios it runs (default: host only). */
  readonly scenarios?: readonly Scenario[];
  /**
   * Lose the primary host: SIGKILL the primary's postmaster and everything
   * else that lives on that host (its children, the manager's local agent);
   * or, in the `postmaster` scenario, the postmaster alone.
   * Returns t0 (performance.now()) taken right before the first signal;
   * resolves once every killed process is gone.
   */
  killPrimary(scenario?: Scenario): Promise<number>;
  /** Stop and remove everything setup() created. */
  teardown(): Promise<void>;
  /** After a trial, where the time went (the manager's own account), for the progress log. */
  explain?(): Promise<string>;
  /** Log tails and state for an error message when a trial fails. */
  diagnostics(): Promise<string>;
}

// ---------------------------------------------------------------- users, dirs

function osUserIds(): { uid: number; gid: number } {
  for (const line of fs.readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f[0] === PG_OS_USER) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`OS user ${PG_OS_USER} not found in /etc/passwd`);
}

const isRoot = (): boolean => typeof process.getuid === 'function' && process.getuid() === 0;

/** uid/gid options for spawn/execFile: the server's OS user when we are root, else nothing. */
function asServerUser(): { uid?: number; gid?: number } {
  return isRoot() ? osUserIds() : {};
}

/** Hand a path to the server's OS user (no-op when not root). */
export function chownToServerUser(p: string): void {
  if (!isRoot()) return;
  const { uid, gid } = osUserIds();
  fs.chownSync(p, uid, gid);
}

/** A new world-traversable temporary directory owned by the server's OS user (short: sockets live in it). */
export function makeTmpDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgfo-${prefix}-`));
  fs.chmodSync(dir, 0o755);
  chownToServerUser(dir);
  return dir;
}

/** mkdir (0700 unless told) owned by the server's OS user. */
export function makeDir(p: string, mode = 0o700): string {
  fs.mkdirSync(p, { recursive: true, mode });
  fs.chmodSync(p, mode);
  chownToServerUser(p);
  return p;
}

/** Write a file owned by the server's OS user. */
export function writeFile(p: string, text: string, mode = 0o644): void {
  fs.writeFileSync(p, text, { mode });
  fs.chmodSync(p, mode);
  chownToServerUser(p);
}

/** Environment for server-side programs: PATH with PostgreSQL's bindir first, C locale, no stray PG* variables. */
export function serverEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PG') || k.startsWith('LC_') || k.startsWith('XDG_') || k === 'LANG' || k === 'LANGUAGE') continue;
    env[k] = v;
  }
  env.PATH = `${PG_BIN}:${process.env.PATH || '/usr/local/bin:/usr/bin:/bin'}`;
  env.LC_ALL = 'C';
  env.LANG = 'C';
  env.TZ = process.env.TZ || 'UTC';
  env.USER = PG_OS_USER;
  env.LOGNAME = PG_OS_USER;
  return { ...env, ...extra };
}

// ---------------------------------------------------------------- programs

/** Run a program as the server's OS user to completion, bounded by a timeout; rejects with its output. */
export function runAsServer(
  file: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): Promise<string> {
  const timeout = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        cwd: opts.cwd,
        env: serverEnv(opts.env),
        timeout,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
        ...asServerUser(),
      },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string; code?: unknown };
          const how = e.killed ? `timed out after ${timeout} ms` : e.signal ? `killed by ${e.signal}` : `exit status ${String(e.code)}`;
          reject(new Error(`command failed (${how}): ${[file, ...args].join(' ')}\n${stdout}${stderr}`));
          return;
        }
        resolve(stdout + stderr);
      },
    );
  });
}

/** A long-running program (a daemon kept in the foreground) started as the server's OS user. */
export interface Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** Resolves with the exit code/signal once the process has exited. */
  readonly exited: Promise<string>;
  /** True until the process has exited. */
  running(): boolean;
}

/**
 * Start a daemon as the server's OS user, in its own process group (so a
 * terminal's Ctrl-C reaches only us and we decide the order of shutdown),
 * stdout and stderr appended to `logFile`.
 */
export function startDaemon(
  file: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; logFile: string },
): Daemon {
  const fd = fs.openSync(opts.logFile, 'a', 0o644);
  chownToServerUser(opts.logFile);
  const child = spawn(file, args, {
    cwd: opts.cwd,
    env: serverEnv(opts.env),
    stdio: ['ignore', fd, fd],
    detached: true,
    ...asServerUser(),
  });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${file}`);
  let alive = true;
  const exited = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => {
      alive = false;
      resolve(signal ? `killed by ${signal}` : `exit status ${code}`);
    });
    child.on('error', (e) => {
      alive = false;
      resolve(`spawn error: ${e.message}`);
    });
  });
  return { child, pid: child.pid, logFile: opts.logFile, exited, running: () => alive };
}

// ---------------------------------------------------------------- processes

function procStat(pid: number): { state: string; ppid: number } | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: rest[0], ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

/** True if the pid names a live process (not a zombie). */
export function pidAlive(pid: number): boolean {
  const st = procStat(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X';
}

/** `roots` and all their live descendants (one /proc scan). */
export function processTree(roots: number[]): number[] {
  const children = new Map<number, number[]>();
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    const st = procStat(Number(ent));
    if (!st || st.state === 'Z') continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(ent));
    children.set(st.ppid, list);
  }
  const out = new Set<number>();
  const todo = roots.filter(pidAlive);
  while (todo.length) {
    const p = todo.pop()!;
    if (out.has(p)) continue;
    out.add(p);
    todo.push(...(children.get(p) ?? []));
  }
  return [...out];
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Lose a host's processes at once: SIGSTOP `roots` and their descendants
 * (rescanning until no new child appears, so nothing forks past us), then
 * SIGKILL them all. Returns t0 = performance.now() right before the first
 * signal, and the pids killed.
 */
export function freezeAndKill(roots: number[]): { t0: number; pids: number[] } {
  const t0 = performance.now();
  const stopped = new Set<number>();
  for (let round = 0; round < 20; round++) {
    const tree = processTree(roots).filter((p) => !stopped.has(p));
    if (tree.length === 0) break;
    for (const p of tree) {
      signal(p, 'SIGSTOP');
      stopped.add(p);
    }
  }
  for (const p of stopped) signal(p, 'SIGKILL');
  return { t0, pids: [...stopped] };
}

/** Wait until none of `pids` is alive (zombies count as gone); throws naming survivors. */
export async function waitGone(pids: number[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const alive = pids.filter(pidAlive);
    if (alive.length === 0) return;
    if (Date.now() > deadline) throw new Error(`processes still alive after SIGKILL: ${alive.join(', ')}`);
    await sleep(5);
  }
}

/** Ask a process tree to stop (SIGTERM to `roots`), then SIGKILL whatever is left after `graceMs`. */
export async function stopTree(roots: number[], graceMs = 10_000): Promise<void> {
  const live = roots.filter(pidAlive);
  if (live.length === 0) return;
  const tree = processTree(live);
  for (const p of live) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && tree.some(pidAlive)) await sleep(50);
  const rest = processTree(tree.filter(pidAlive));
  for (const p of rest) signal(p, 'SIGKILL');
  await waitGone(rest, 10_000).catch(() => undefined);
}

/** Pid of the postmaster from <dataDir>/postmaster.pid (undefined if none). */
export function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Poll `fn` until it returns a truthy value; errors count as "not yet". */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt finished';
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as T;
      last = `last value: ${JSON.stringify(v)}`;
    } catch (e) {
      last = `last error: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what} (${last})`);
    await sleep(intervalMs);
  }
}

/** Last `n` lines of a file ('' if missing), indented, for diagnostics. */
export function tail(file: string, n = 25): string {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return `  (no ${file})`;
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  return `--- last ${Math.min(n, lines.length)} lines of ${file} ---\n` + lines.slice(-n).join('\n');
}

/** Run one statement on a fresh connection (short connect timeout) and return its rows. */
export async function queryOnce<R = Record<string, unknown>>(
  config: pg.ClientConfig,
  sql: string,
  params?: unknown[],
): Promise<R[]> {
  const client = new pg.Client({ connectionTimeoutMillis: 3000, ...config });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const res = await client.query(sql, params as unknown[] | undefined);
    return res.rows as R[];
  } finally {
    await client.end().catch(() => undefined);
  }
}
