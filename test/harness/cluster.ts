/**
 * Test harness: real PostgreSQL clusters for pg_tsworker tests, in the spirit
 * of PostgreSQL's `PostgreSQL::Test::Cluster` (src/test/perl).
 *
 * Each {@link Cluster} lives in its own world-traversable temporary base
 * directory (created with `fs.mkdtemp` under `os.tmpdir()`):
 *
 *     <baseDir>/data        the data directory (0700, owned by the OS user)
 *     <baseDir>/sock        unix_socket_directories (short path, < 107 bytes)
 *     <baseDir>/<name>.log  server log (pg_ctl -l, appended across restarts)
 *     <baseDir>/backup/<n>  base backups taken with {@link Cluster.backup}
 *
 * `initdb` and `postgres` refuse to run as root, so when the test process is
 * root every server-side command runs as the `postgres` OS user through
 * `runuser -u postgres --` (override the user with PG_TSWORKER_OSUSER). When
 * the test process is not root, commands run directly as the current user.
 *
 * A cluster can run inside a network namespace (option `netns`, e.g. a host
 * of test/harness/netns.ts): every server-side command then runs through
 * `ip netns exec <ns>`, the server listens on the namespace's IP (and on
 * 127.0.0.1 inside the namespace) besides its Unix socket, which the test
 * process keeps using (namespaces do not isolate the filesystem).
 *
 * Every child process call is bounded by a timeout. The harness keeps no
 * global state: each test file creates its own clusters and calls
 * {@link Cluster.cleanup} in an `after()` hook.
 *
 * Environment:
 *  - PG_CONFIG               pg_config of the PostgreSQL to test (default Debian's 15); see pg-config.ts
 *  - PG_BINDIR               PostgreSQL server binaries (default: PG_CONFIG's --bindir)
 *  - PG_TSWORKER_OSUSER      OS user that runs the server when we are root (default postgres)
 *  - PG_TSWORKER_KEEP_TMP    if set, cleanup() keeps the base directory and prints it
 *  - PG_TSWORKER_TIMEOUT_MS  default timeout for polling helpers (default 60000)
 */

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import pg from 'pg';

import { PG_BIN } from './pg-config';

/** Directory holding the PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup): see pg-config.ts. */
export { PG_BIN };

/** OS user that runs initdb/postgres when the test process is root. Overridable with env PG_TSWORKER_OSUSER. */
export const PG_OS_USER: string = process.env.PG_TSWORKER_OSUSER || 'postgres';

/** Default timeout (ms) for {@link waitFor} and {@link Cluster.pollQueryUntil}. Overridable with env PG_TSWORKER_TIMEOUT_MS. */
export const DEFAULT_TIMEOUT_MS: number = Number(process.env.PG_TSWORKER_TIMEOUT_MS) || 60_000;

/** Database superuser created by initdb (`-U postgres`). */
export const SUPERUSER = 'postgres';

/** Timeout handed to `pg_ctl -t`, in seconds. */
const PG_CTL_TIMEOUT_S = 60;
/** Hard bound on any child process we run, in ms (a bit more than pg_ctl's own timeout). */
const PROCESS_TIMEOUT_MS = (PG_CTL_TIMEOUT_S + 30) * 1000;
/** Maximum length of a Unix socket path (sun_path is 108 bytes including the NUL). */
const MAX_SOCKET_PATH = 107;

/** Settings accepted by {@link Cluster.create}'s `conf`: an object of GUCs, or raw text appended verbatim to postgresql.conf. */
export type ConfSettings = Record<string, string | number | boolean> | string;

/**
 * Where a cluster's server runs when it is inside a network namespace.
 * A `NetHost` of test/harness/netns.ts fits.
 */
export interface NetnsPlacement {
  /** Network namespace name (as in `ip netns list`). */
  netns: string;
  /** The server's IP address in that namespace (listen_addresses, and what standbys connect to). */
  ip: string;
  /** Client addresses trusted in pg_hba.conf for normal and replication connections (default 0.0.0.0/0). */
  cidr?: string;
}

/** Options for {@link Cluster.create}. */
export interface CreateOptions {
  /** Extra postgresql.conf settings, written after the harness defaults (so they override them). */
  conf?: ConfSettings;
  /** Extra arguments for initdb. */
  initdbArgs?: string[];
  /** Configure the cluster as a streaming replication primary (wal_level=replica, max_wal_senders, hot_standby, replication lines in pg_hba.conf). */
  allowStreaming?: boolean;
  /** Extra environment variables for the server process (passed to pg_ctl start). */
  env?: Record<string, string>;
  /** Start the server after creating it (default true). */
  start?: boolean;
  /** Run the server inside this network namespace, listening on its IP (needs root). */
  netns?: NetnsPlacement;
}

/** Options for {@link Cluster.createStandby}. */
export interface StandbyOptions {
  /** Extra postgresql.conf settings for the standby, written after the harness defaults. */
  conf?: ConfSettings;
  /** Restore from a backup previously taken with `primary.backup(name)` instead of running pg_basebackup now. */
  fromBackup?: string;
  /** Extra environment variables for the server process (passed to pg_ctl start). */
  env?: Record<string, string>;
  /** Start the standby after creating it (default true). */
  start?: boolean;
  /** Also set up the standby to accept replication connections itself (cascading). Default: inherited from the primary. */
  allowStreaming?: boolean;
  /**
   * Run the standby inside this network namespace. If the primary runs in a
   * namespace too, pg_basebackup runs inside the standby's namespace against
   * the primary's IP, so primary_conninfo (written by `-R`) names that IP and
   * replication crosses the test network. Otherwise it uses the primary's
   * Unix socket. With `fromBackup`, the backup's primary_conninfo (the
   * primary's Unix socket) is kept as is.
   */
  netns?: NetnsPlacement;
}

/** Per-connection options for {@link Cluster.query} and friends. */
export interface ConnectOptions {
  /** Database name (default `postgres`). */
  database?: string;
  /** Database user (default `postgres`). */
  user?: string;
  /** Connection timeout in ms (default 10000). */
  connectTimeoutMs?: number;
  /** `application_name` for the session. */
  applicationName?: string;
}

/** Options for {@link Cluster.pollQueryUntil}. */
export interface PollOptions {
  /** Give up after this many ms (default {@link DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Pause between attempts in ms (default 100). */
  intervalMs?: number;
  /** Database to query (default `postgres`). */
  database?: string;
  /** User to connect as (default `postgres`). */
  user?: string;
  /** Query parameters. */
  params?: unknown[];
}

/** Options for {@link waitFor}. */
export interface WaitForOptions {
  /** Give up after this many ms (default {@link DEFAULT_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Pause between attempts in ms (default 100). */
  intervalMs?: number;
  /** Description used in the timeout error message. */
  what?: string;
}

/** Shutdown modes understood by `pg_ctl stop -m`. */
export type StopMode = 'smart' | 'fast' | 'immediate';

/** Result of a finished child process. */
interface RunResult {
  stdout: string;
  stderr: string;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True when this process runs as root and must drop to {@link PG_OS_USER} for server commands. */
function needRunuser(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Environment for server-side commands: the caller's PATH, a C locale, no stray libpq PG* variables. */
function childEnv(extra?: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('PG') || k.startsWith('LC_') || k === 'LANG' || k === 'LANGUAGE') continue;
    env[k] = v;
  }
  env.PATH = process.env.PATH || '/usr/local/bin:/usr/bin:/bin';
  env.LC_ALL = 'C';
  env.LANG = 'C';
  env.TZ = process.env.TZ || 'UTC';
  return { ...env, ...(extra ?? {}) };
}

/**
 * Run a command (as {@link PG_OS_USER} when we are root), bounded by a timeout.
 * Rejects with an Error carrying the command line, exit status, stdout and stderr.
 */
function run(
  file: string,
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number; asUser?: boolean; netns?: string },
): Promise<RunResult> {
  const asUser = opts.asUser ?? true;
  let cmd = file;
  let argv = args;
  if (asUser && needRunuser()) {
    cmd = 'runuser';
    argv = ['-u', PG_OS_USER, '--', file, ...args];
  }
  if (opts.netns !== undefined) {
    // `ip netns exec` execs the command (same pid), so the timeout's SIGTERM still reaches runuser.
    argv = ['netns', 'exec', opts.netns, cmd, ...argv];
    cmd = 'ip';
  }
  const timeout = opts.timeoutMs ?? PROCESS_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      argv,
      {
        cwd: opts.cwd,
        env: childEnv(opts.env),
        timeout,
        // runuser forwards SIGTERM to its child (and escalates to SIGKILL itself).
        killSignal: 'SIGTERM',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: unknown; killed?: boolean; signal?: string };
          const how = e.killed
            ? `timed out after ${timeout} ms`
            : e.signal
              ? `killed by ${e.signal}`
              : `exit status ${String(e.code)}`;
          const error = new Error(
            `command failed (${how}): ${[cmd, ...argv].join(' ')}\n` +
              (stdout ? `--- stdout ---\n${stdout}` : '') +
              (stderr ? `--- stderr ---\n${stderr}` : ''),
          ) as Error & { stdout?: string; stderr?: string };
          error.stdout = stdout;
          error.stderr = stderr;
          reject(error);
          return;
        }
        resolve({ stdout, stderr });
      },
    );
  });
}

/** Look up uid/gid of {@link PG_OS_USER} in /etc/passwd. */
function osUserIds(): { uid: number; gid: number } {
  const passwd = fs.readFileSync('/etc/passwd', 'utf8');
  for (const line of passwd.split('\n')) {
    const f = line.split(':');
    if (f[0] === PG_OS_USER) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`OS user ${PG_OS_USER} not found in /etc/passwd`);
}

/** Hand a path to the server's OS user (no-op when not root). */
export function chownToServerUser(p: string): void {
  if (!needRunuser()) return;
  const { uid, gid } = osUserIds();
  fs.chownSync(p, uid, gid);
}

/** Quote a value for postgresql.conf: `'...'` with embedded quotes doubled and backslashes escaped. */
function quoteConfValue(v: string | number | boolean): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v === 'number') return String(v);
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** Render {@link ConfSettings} as postgresql.conf lines. */
function renderConf(conf: ConfSettings | undefined): string {
  if (conf === undefined) return '';
  if (typeof conf === 'string') return conf.endsWith('\n') ? conf : conf + '\n';
  return Object.entries(conf)
    .map(([k, v]) => `${k} = ${quoteConfValue(v)}\n`)
    .join('');
}

/** Ask the kernel for a free TCP port on 127.0.0.1 (listen on port 0, close, return the port). */
export function getFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      if (addr === null || typeof addr === 'string') {
        srv.close();
        reject(new Error('could not determine a free port'));
        return;
      }
      const port = addr.port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Send `sig` to `pid`, which must be a process id: a pid read from a query
 * that found no row is 0 (Number('')), and process.kill(0, ...) would
 * signal this test's own process group (SIGSTOP froze a whole run once).
 */
export function signalPid(pid: number, sig: NodeJS.Signals): void {
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`refusing to send ${sig} to pid ${pid}: not a process id (did the query find the process?)`);
  process.kill(pid, sig);
}

/**
 * True if a process with this pid exists and is not a zombie.
 *
 * A SIGKILLed postmaster is reparented to PID 1 and may stay a zombie for a
 * while (or forever, if PID 1 does not reap); `kill(pid, 0)` succeeds on
 * zombies, so /proc/<pid>/stat is consulted as well.
 */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EPERM') return true;
    return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Format: pid (comm) state ...; comm may contain spaces/parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
  } catch {
    // No /proc (not Linux) or the process vanished meanwhile.
    return fs.existsSync('/proc') ? false : true;
  }
  return true;
}

/**
 * True if any process (including a zombie not yet reaped) holds this pid.
 * PostgreSQL's own stale-lock-file check uses kill(pid, 0), so a zombie
 * postmaster still blocks a restart.
 */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pids of the live direct children of `pid` (Linux /proc scan; empty elsewhere). */
function childPids(pid: number): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return out;
  }
  for (const ent of entries) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${ent}/stat`, 'utf8');
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // rest[0] = state, rest[1] = ppid
      if (Number(rest[1]) === pid && rest[0] !== 'Z') out.push(Number(ent));
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Short description of a process for error messages ("pid (cmdline)"). */
function describePid(pid: number): string {
  try {
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    return `${pid} (${cmd})`;
  } catch {
    return String(pid);
  }
}

/**
 * Poll `fn` until it returns something other than `undefined` or `false`, and
 * return that value. Errors thrown by `fn` are treated as "not yet" and
 * retried; on timeout the Error names `opts.what` and the last value or error seen.
 */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  opts: WaitForOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const intervalMs = opts.intervalMs ?? 100;
  const deadline = Date.now() + timeoutMs;
  let last: string = 'no attempt finished';
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
      last = `last value: ${String(v)}`;
    } catch (e) {
      last = `last error: ${e instanceof Error ? e.message : String(e)}`;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'} (${last})`);
    }
    await sleep(intervalMs);
  }
}

/** Last `n` lines of a text. */
function tailLines(text: string, n: number): string {
  const lines = text.split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  return lines.slice(-n).join('\n');
}

/** Create a world-traversable base directory owned by the server's OS user. */
function makeBaseDir(name: string): string {
  const safe = name.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 16);
  const base = fs.mkdtempSync(path.join(os.tmpdir(), `pgtsw-${safe}-`));
  fs.chmodSync(base, 0o755);
  chownToServerUser(base);
  const sock = path.join(base, 'sock');
  fs.mkdirSync(sock, { mode: 0o755 });
  fs.chmodSync(sock, 0o755);
  chownToServerUser(sock);
  return base;
}

/**
 * A PostgreSQL cluster (data directory + server) for tests.
 *
 * Create one with {@link Cluster.create} or {@link Cluster.createStandby};
 * always call {@link Cluster.cleanup} (e.g. in `after()`).
 */
export class Cluster {
  /** Name given at creation; used in the log file name and messages. */
  readonly name: string;
  /** Temporary base directory holding data dir, socket dir, log and backups. */
  readonly baseDir: string;
  /** Data directory (PGDATA). */
  readonly dataDir: string;
  /** Unix socket directory; pass as `host` to libpq/pg. */
  readonly host: string;
  /** Server log file (pg_ctl -l); appended to across restarts. */
  readonly logFile: string;
  /** Directory with the PostgreSQL binaries used for this cluster. */
  readonly binDir: string;
  /** TCP port (also part of the Unix socket name). May change if start() had to retry on a port clash. */
  port: number;
  /** Extra environment for the server process, passed to every pg_ctl start. */
  env: Record<string, string>;
  /** The network namespace the server runs in (option `netns`), if any. */
  readonly netns?: NetnsPlacement;

  private constructor(
    name: string,
    baseDir: string,
    port: number,
    env: Record<string, string>,
    netns?: NetnsPlacement,
  ) {
    this.name = name;
    this.netns = netns;
    this.baseDir = baseDir;
    this.dataDir = path.join(baseDir, 'data');
    this.host = path.join(baseDir, 'sock');
    this.logFile = path.join(baseDir, `${name.replace(/[^A-Za-z0-9_.-]/g, '_')}.log`);
    this.binDir = PG_BIN;
    this.port = port;
    this.env = env;
    const sockPath = path.join(this.host, `.s.PGSQL.${port}.lock`);
    if (Buffer.byteLength(sockPath) > MAX_SOCKET_PATH) {
      throw new Error(`socket path too long (${Buffer.byteLength(sockPath)} > ${MAX_SOCKET_PATH}): ${sockPath}`);
    }
  }

  /** Absolute path of a PostgreSQL binary in {@link binDir}. */
  bin(prog: string): string {
    return path.join(this.binDir, prog);
  }

  /** Run a PostgreSQL program (as the server OS user when root) with cwd = baseDir. */
  private runPg(prog: string, args: string[], env?: Record<string, string>): Promise<RunResult> {
    return run(this.bin(prog), args, { cwd: this.baseDir, env, netns: this.netns?.netns });
  }

  /** Path of the file holding the harness's `port` setting (included from postgresql.conf). */
  private get portConfFile(): string {
    return path.join(this.dataDir, 'pg_tsworker_port.conf');
  }

  /** (Re)write the included port file. */
  private writePortConf(): void {
    fs.writeFileSync(this.portConfFile, `port = ${this.port}\n`);
    chownToServerUser(this.portConfFile);
  }

  /** Append text to postgresql.conf (keeps ownership with the server user). */
  appendConf(text: string | ConfSettings, file = 'postgresql.conf'): void {
    const p = path.join(this.dataDir, file);
    fs.appendFileSync(p, renderConf(text));
    chownToServerUser(p);
  }

  /** Write the harness's settings (port, sockets, logging, replication) plus user settings. */
  private writeHarnessConf(opts: { conf?: ConfSettings; allowStreaming?: boolean }): void {
    this.writePortConf();
    let text =
      '\n# --- added by pg_tsworker test harness ---\n' +
      `include '${path.basename(this.portConfFile)}'\n` +
      `listen_addresses = '${this.netns ? `${this.netns.ip},127.0.0.1` : '127.0.0.1'}'\n` +
      `unix_socket_directories = ${quoteConfValue(this.host)}\n` +
      'logging_collector = off\n' +
      'fsync = off\n' +
      "log_line_prefix = '%m [%p] %b '\n" +
      "lc_messages = 'C'\n";
    if (opts.allowStreaming) {
      text += 'wal_level = replica\nmax_wal_senders = 10\nmax_replication_slots = 10\nhot_standby = on\nwal_keep_size = 128MB\n';
    }
    const user = renderConf(opts.conf);
    if (user) text += '# --- test-specific settings ---\n' + user;
    this.appendConf(text);
    if (opts.allowStreaming) {
      this.appendConf(
        '\n# added by pg_tsworker test harness\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n',
        'pg_hba.conf',
      );
    }
    if (this.netns) {
      const cidr = this.netns.cidr ?? '0.0.0.0/0';
      this.appendConf(
        `\n# added by pg_tsworker test harness (network namespace ${this.netns.netns})\n` +
          `host all all ${cidr} trust\nhost replication all ${cidr} trust\n`,
        'pg_hba.conf',
      );
    }
    // If the user overrode the port, track it.
    if (opts.conf && typeof opts.conf === 'object' && opts.conf.port !== undefined) {
      this.port = Number(opts.conf.port);
    }
  }

  /**
   * Create a new cluster: initdb (trust auth, no sync, superuser `postgres`,
   * C locale, UTF8), pick a free port, write the harness settings and
   * `opts.conf`, and start it (unless `opts.start === false`).
   */
  static async create(name: string, opts: CreateOptions = {}): Promise<Cluster> {
    const baseDir = makeBaseDir(name);
    const node = new Cluster(name, baseDir, await getFreePort(), opts.env ?? {}, opts.netns);
    try {
      await node.runPg('initdb', [
        '-D',
        node.dataDir,
        '-A',
        'trust',
        '-U',
        SUPERUSER,
        '--no-sync',
        '--locale=C',
        '--encoding=UTF8',
        ...(opts.initdbArgs ?? []),
      ]);
      node.writeHarnessConf({ conf: opts.conf, allowStreaming: opts.allowStreaming });
      if (opts.start ?? true) await node.start();
      return node;
    } catch (e) {
      await node.cleanup().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Take a base backup of this (running) cluster into `<baseDir>/backup/<name>`
   * with `pg_basebackup -R -X stream -c fast`, for use with
   * {@link Cluster.createStandby}'s `fromBackup`.
   */
  async backup(name: string): Promise<void> {
    const dir = this.backupDir(name);
    const parent = path.dirname(dir);
    if (!fs.existsSync(parent)) {
      fs.mkdirSync(parent, { mode: 0o755 });
      chownToServerUser(parent);
    }
    await this.runPg('pg_basebackup', [
      '-D',
      dir,
      '-h',
      this.host,
      '-p',
      String(this.port),
      '-U',
      SUPERUSER,
      '-R',
      '-X',
      'stream',
      '-c',
      'fast',
      '--no-sync',
    ]);
  }

  /** Directory of the backup `name` taken with {@link backup}. */
  backupDir(name: string): string {
    return path.join(this.baseDir, 'backup', name);
  }

  /**
   * Create a streaming standby of `primary` in a new base directory: either
   * `pg_basebackup -R -X stream -c fast` from the primary (via its socket
   * directory) or a copy of `opts.fromBackup`; then write the standby's own
   * port/socket/log settings and start it (unless `opts.start === false`).
   * The primary must have been created with `allowStreaming: true`.
   */
  static async createStandby(primary: Cluster, name: string, opts: StandbyOptions = {}): Promise<Cluster> {
    const baseDir = makeBaseDir(name);
    const node = new Cluster(name, baseDir, await getFreePort(), opts.env ?? { ...primary.env }, opts.netns);
    try {
      if (opts.fromBackup !== undefined) {
        const src = primary.backupDir(opts.fromBackup);
        if (!fs.existsSync(src)) throw new Error(`backup ${opts.fromBackup} of ${primary.name} not found at ${src}`);
        await run('cp', ['-a', src, node.dataDir], { cwd: baseDir });
      } else {
        // Across namespaces: connect to the primary's IP from inside the
        // standby's namespace, so that primary_conninfo names that IP.
        const viaIp = node.netns !== undefined && primary.netns !== undefined;
        await node.runPg('pg_basebackup', [
          '-D',
          node.dataDir,
          '-h',
          viaIp ? primary.netns!.ip : primary.host,
          '-p',
          String(primary.port),
          '-U',
          SUPERUSER,
          '-R',
          '-X',
          'stream',
          '-c',
          'fast',
          '--no-sync',
        ]);
      }
      fs.chmodSync(node.dataDir, 0o700);
      // The copied postgresql.conf carries the primary's settings; ours come later and win.
      node.writeHarnessConf({ conf: opts.conf, allowStreaming: opts.allowStreaming ?? false });
      if (opts.start ?? true) await node.start();
      return node;
    } catch (e) {
      await node.cleanup().catch(() => undefined);
      throw e;
    }
  }

  /** Pid of the postmaster from postmaster.pid's first line, or undefined if there is no pid file. */
  postmasterPid(): number | undefined {
    try {
      const first = fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
      const pid = Number(first);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  }

  /** True if postmaster.pid exists and names a live (non-zombie) process. */
  isRunning(): boolean {
    const pid = this.postmasterPid();
    return pid !== undefined && pidAlive(pid);
  }

  /**
   * Start the server with `pg_ctl start -w -t 60 -l <logFile>`. If the port
   * was taken meanwhile ("could not bind"), pick another free port and retry
   * (twice). On failure, throws an Error including the last 30 log lines.
   */
  async start(): Promise<void> {
    // A postmaster that died (kill9, crash) is reparented to PID 1 and stays a
    // zombie until PID 1 reaps it; some container inits reap only every few
    // seconds. postgres treats the zombie's pid as a live postmaster and
    // refuses to start, so wait for it to be reaped first.
    const stale = this.postmasterPid();
    if (stale !== undefined && !pidAlive(stale) && pidExists(stale)) {
      await waitFor(() => !pidExists(stale), {
        timeoutMs: 30_000,
        intervalMs: 50,
        what: `dead postmaster ${stale} to be reaped by its parent (PID 1)`,
      });
    }
    const maxAttempts = 3;
    for (let attempt = 1; ; attempt++) {
      const offset = this.logOffset();
      try {
        await this.runPg(
          'pg_ctl',
          ['start', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-D', this.dataDir, '-l', this.logFile],
          this.env,
        );
        return;
      } catch (e) {
        const log = this.readLog(offset);
        const bindFailure = /could not bind|could not create any TCP\/IP sockets|Address already in use/.test(log);
        if (bindFailure && attempt < maxAttempts) {
          this.port = await getFreePort();
          this.writePortConf();
          continue;
        }
        throw new Error(
          `failed to start cluster "${this.name}" (port ${this.port}, data ${this.dataDir}): ` +
            `${e instanceof Error ? e.message : String(e)}\n` +
            `--- last 30 lines of ${this.logFile} ---\n${tailLines(this.readLog(), 30)}`,
        );
      }
    }
  }

  /** Stop the server with `pg_ctl stop -w -t 60 -m <mode>` (default fast). */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    await this.runPg('pg_ctl', ['stop', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-D', this.dataDir, '-m', mode]);
  }

  /** Restart the server: stop (fast, if running) then start (with the port-clash retry of {@link start}). */
  async restart(mode: StopMode = 'fast'): Promise<void> {
    if (this.isRunning()) await this.stop(mode);
    await this.start();
  }

  /** Reload the configuration (`pg_ctl reload`, i.e. SIGHUP to the postmaster). */
  async reload(): Promise<void> {
    await this.runPg('pg_ctl', ['reload', '-D', this.dataDir]);
  }

  /** Promote a standby (`pg_ctl promote -w -t 60`); resolves once it accepts writes. */
  async promote(): Promise<void> {
    await this.runPg('pg_ctl', ['promote', '-w', '-t', String(PG_CTL_TIMEOUT_S), '-D', this.dataDir]);
  }

  /**
   * SIGKILL the postmaster (pid from postmaster.pid). Waits until the
   * postmaster is gone (reaped, not just a zombie) and, unless `waitChildren` is false, until its child
   * processes (backends, background workers) have exited on their own after
   * noticing postmaster death — otherwise a following start() fails because
   * the old shared memory segment is still attached. Throws (naming the
   * survivors) if they have not exited within `timeoutMs` (default 30000).
   */
  async kill9(opts: { waitChildren?: boolean; timeoutMs?: number } = {}): Promise<void> {
    const pid = this.postmasterPid();
    if (pid === undefined || !pidAlive(pid)) throw new Error(`kill9: cluster "${this.name}" is not running`);
    const children = childPids(pid);
    process.kill(pid, 'SIGKILL');
    const timeoutMs = opts.timeoutMs ?? 30_000;
    // Wait until the pid is gone, not merely a zombie: PostgreSQL's stale
    // lock file check (kill(pid, 0)) treats a zombie as a running postmaster.
    await waitFor(() => !pidExists(pid), {
      timeoutMs,
      intervalMs: 20,
      what: `killed postmaster ${pid} to be reaped`,
    });
    if (opts.waitChildren ?? true) {
      try {
        await waitFor(() => children.every((c) => !pidAlive(c)), {
          timeoutMs,
          intervalMs: 50,
          what: `children of killed postmaster ${pid} to exit`,
        });
      } catch {
        const alive = children.filter((c) => pidAlive(c));
        throw new Error(
          `kill9: children of postmaster ${pid} still alive after ${timeoutMs} ms: ${alive.map(describePid).join(', ')}`,
        );
      }
    }
  }

  /**
   * libpq connection string reaching this cluster over TCP on its namespace
   * IP (usable only from inside the test network, e.g. by another server's
   * worker or `primary_conninfo`). Throws if the cluster is not in a namespace.
   */
  tcpConnectionString(database = 'postgres', user = SUPERUSER): string {
    if (!this.netns) throw new Error(`cluster "${this.name}" does not run in a network namespace`);
    return `host=${this.netns.ip} port=${this.port} user=${user} dbname=${database}`;
  }

  /** libpq connection string for this cluster (Unix socket). */
  connectionString(database = 'postgres', user = SUPERUSER): string {
    return `host=${this.host} port=${this.port} user=${user} dbname=${database}`;
  }

  /** pg.Client configuration for this cluster. */
  clientConfig(opts: ConnectOptions = {}): pg.ClientConfig {
    return {
      host: this.host,
      port: this.port,
      user: opts.user ?? SUPERUSER,
      database: opts.database ?? 'postgres',
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      application_name: opts.applicationName ?? 'pg_tsworker_test',
    };
  }

  /**
   * Open a persistent session (pg.Client, already connected). The caller must
   * `end()` it. An 'error' listener is attached so that a server crash (e.g.
   * {@link kill9}) does not crash the test process; the error surfaces on the
   * next query instead.
   */
  async connect(opts: ConnectOptions = {}): Promise<pg.Client> {
    const client = new pg.Client(this.clientConfig(opts));
    client.on('error', () => undefined);
    try {
      await client.connect();
    } catch (e) {
      await client.end().catch(() => undefined);
      throw e;
    }
    return client;
  }

  /** Run one statement on a fresh connection and return its rows (parsed by pg's default type parsers). */
  async query<R = any>(sql: string, params?: unknown[], opts: ConnectOptions = {}): Promise<R[]> {
    const client = await this.connect(opts);
    try {
      const res = await client.query(sql, params as any[] | undefined);
      // A multi-statement simple query returns an array of results: use the last one.
      const last = Array.isArray(res) ? (res as pg.QueryResult[])[(res as pg.QueryResult[]).length - 1] : res;
      return (last?.rows ?? []) as R[];
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /** First column of the first row of {@link query}'s result (undefined if no rows). */
  async queryOne<T = any>(sql: string, params?: unknown[], opts: ConnectOptions = {}): Promise<T> {
    const rows = await this.query<Record<string, unknown>>(sql, params, opts);
    if (rows.length === 0) return undefined as T;
    const first = rows[0];
    const keys = Object.keys(first);
    return (keys.length ? first[keys[0]] : undefined) as T;
  }

  /**
   * Run one statement and return its rows as `psql -At` prints them:
   * PostgreSQL's text output of each value (booleans 't'/'f', NULL ''),
   * columns joined by `|`, rows by newlines ("no row" is ''). Used by
   * {@link pollQueryUntil}.
   */
  async queryText(sql: string, params?: unknown[], opts: ConnectOptions = {}): Promise<string> {
    const client = await this.connect(opts);
    try {
      const res = await client.query({
        text: sql,
        values: params as any[] | undefined,
        rowMode: 'array',
        types: { getTypeParser: () => (v: string) => v } as any,
      });
      // As psql -At prints it: columns joined by |, rows by newlines, NULL empty.
      const rows = (res as pg.QueryResult<unknown[]>).rows ?? [];
      return rows.map((r) => r.map((v) => (v === null ? '' : String(v))).join('|')).join('\n');
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  /**
   * Like Perl's poll_query_until: run `sql` repeatedly until its output as
   * `psql -At` prints it ({@link queryText}) equals `expected` (default 't'). Query and connection errors are retried
   * (the server may be starting or recovering). On timeout throws with the
   * last value or error seen.
   */
  async pollQueryUntil(sql: string, expected = 't', opts: PollOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const intervalMs = opts.intervalMs ?? 100;
    const deadline = Date.now() + timeoutMs;
    let last = 'no attempt finished';
    for (;;) {
      try {
        const v = await this.queryText(sql, opts.params, {
          database: opts.database,
          user: opts.user,
          connectTimeoutMs: Math.max(1000, Math.min(10_000, deadline - Date.now())),
        });
        if (v === expected) return;
        last = `last value: ${JSON.stringify(v)}`;
      } catch (e) {
        last = `last error: ${e instanceof Error ? e.message : String(e)}`;
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `pollQueryUntil on "${this.name}" timed out after ${timeoutMs} ms\n` +
            `query: ${sql}\nexpected: ${JSON.stringify(expected)}\n${last}`,
        );
      }
      await sleep(intervalMs);
    }
  }

  /** Current size of the log file in bytes (0 if it does not exist yet); pass to {@link waitForLog}. */
  logOffset(): number {
    try {
      return fs.statSync(this.logFile).size;
    } catch {
      return 0;
    }
  }

  /** Contents of the log file from byte `offset` ('' if the file does not exist). */
  readLog(offset = 0): string {
    let fd: number;
    try {
      fd = fs.openSync(this.logFile, 'r');
    } catch {
      return '';
    }
    try {
      const size = fs.fstatSync(fd).size;
      if (offset >= size) return '';
      const buf = Buffer.alloc(size - offset);
      let got = 0;
      while (got < buf.length) {
        const n = fs.readSync(fd, buf, got, buf.length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return buf.subarray(0, got).toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Poll the log file from byte `offset` until `re` matches; return the
   * matched text. On timeout (default 30000 ms) throws showing the tail of
   * the log after `offset`.
   */
  async waitForLog(re: RegExp, offset = 0, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    // Avoid stateful matching with /g or /y regexps.
    const pattern = new RegExp(re.source, re.flags.replace(/[gy]/g, ''));
    for (;;) {
      const m = pattern.exec(this.readLog(offset));
      if (m) return m[0];
      if (Date.now() >= deadline) {
        throw new Error(
          `waitForLog on "${this.name}" timed out after ${timeoutMs} ms waiting for ${String(re)} ` +
            `(from offset ${offset})\n--- last 30 lines of ${this.logFile} after offset ---\n` +
            tailLines(this.readLog(offset), 30),
        );
      }
      await sleep(100);
    }
  }

  /**
   * Stop the server if running (immediate mode, falling back to SIGKILL), and
   * remove the base directory unless env PG_TSWORKER_KEEP_TMP is set (then
   * print where it is). Safe to call more than once.
   */
  async cleanup(): Promise<void> {
    if (this.isRunning()) {
      try {
        await this.stop('immediate');
      } catch {
        const pid = this.postmasterPid();
        if (pid !== undefined && pidAlive(pid)) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // already gone
          }
        }
      }
    }
    if (process.env.PG_TSWORKER_KEEP_TMP) {
      if (fs.existsSync(this.baseDir)) {
        console.error(`pg_tsworker test harness: keeping cluster "${this.name}" in ${this.baseDir}`);
      }
      return;
    }
    fs.rmSync(this.baseDir, { recursive: true, force: true });
  }
}
