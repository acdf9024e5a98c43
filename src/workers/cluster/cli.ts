/**
 * `pg_tsworker_ctl`: cluster mode from the shell, for what must run while
 * PostgreSQL is stopped (rejoin, systemd's `ExecStartPre=`) and for the
 * operations of the SQL functions (docs/failover.md).
 *
 *   pg_tsworker_ctl rejoin -D DATADIR
 *   pg_tsworker_ctl switchover -D DATADIR [--candidate NAME] [--leader NAME] [--timeout SECONDS]
 *   pg_tsworker_ctl failover -D DATADIR --candidate NAME [--force] [--timeout SECONDS]
 *   pg_tsworker_ctl pause|resume -D DATADIR
 *
 * The member's settings (etcd_hosts, scope, namespace, name, ...) are read
 * from its configuration with `postgres -D DATADIR -C <setting>` (run it
 * as the server's OS user); `--worker NAME` when the promoter runs under
 * another name in tsworker.workers. The installed wrapper passes
 * `--bindir` (PostgreSQL's programs) first.
 */
import { execFileSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { performance } from 'perf_hooks';
import { parseArgs } from 'util';

import { CtlError, run as runOp, withdrawOnSignals, type CtlOptions } from './ctl';
import { recordOperation, stopRequested } from './ctl-request';
import { rejoin } from './rejoin';
import { memberName } from './settings';

const USAGE = `usage: pg_tsworker_ctl rejoin -D DATADIR [--worker NAME]
       pg_tsworker_ctl switchover -D DATADIR [--candidate NAME] [--leader NAME] [--timeout SECONDS] [--worker NAME]
       pg_tsworker_ctl failover -D DATADIR --candidate NAME [--force] [--timeout SECONDS] [--worker NAME]
       pg_tsworker_ctl pause|resume -D DATADIR [--worker NAME]
DATADIR defaults to $PGDATA; --timeout is 1 to 3600 seconds (default 60);
--leader: refuse unless that member leads (nothing is requested otherwise).`;

const OPS = ['rejoin', 'switchover', 'failover', 'pause', 'resume'] as const;
type Op = (typeof OPS)[number];

/** Which options each operation takes: anything else is a usage error. */
const ALLOWED: Record<Op, string[]> = {
  rejoin: ['pgdata', 'worker'],
  switchover: ['pgdata', 'worker', 'candidate', 'leader', 'timeout'],
  failover: ['pgdata', 'worker', 'candidate', 'timeout', 'force'],
  pause: ['pgdata', 'worker'],
  resume: ['pgdata', 'worker'],
};

/** The command line, checked whole before anything is done; throws UsageError. */
interface Command {
  op: Op;
  dir: string;
  worker: string;
  candidate: string | null;
  leader: string | null;
  force: boolean;
  timeoutMs: number;
}

class UsageError extends Error {}

/** Parse and check every argument (as pg_ctl does): an unknown option, a missing value or a bad number is refused. */
export function parseCommand(argv: string[], env: NodeJS.ProcessEnv = process.env): Command {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      tokens: true,
      options: {
        pgdata: { type: 'string', short: 'D' },
        worker: { type: 'string' },
        candidate: { type: 'string' },
        leader: { type: 'string' },
        timeout: { type: 'string' },
        force: { type: 'boolean' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.split('. ')[0]);
  }
  const { values, positionals, tokens } = parsed;
  // an option given twice (-D a -D b: an ExecStartPre= line plus an override) is refused, not "last wins"
  const seen = new Set<string>();
  for (const t of tokens ?? []) {
    if (t.kind !== 'option') continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name === 'pgdata' ? 'pgdata (-D)' : t.name} given more than once`);
    seen.add(t.name);
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'no operation given' : `one operation expected, got: ${positionals.join(' ')}`);
  const op = positionals[0] as Op;
  if (!OPS.includes(op)) throw new UsageError(`unknown operation "${positionals[0]}"`);
  for (const k of Object.keys(values)) {
    if (!ALLOWED[op].includes(k)) throw new UsageError(`${op} does not take --${k}`);
  }
  const dir = values.pgdata ?? env.PGDATA ?? '';
  if (!dir) throw new UsageError('no data directory: give -D DATADIR or set PGDATA');
  if (values.worker !== undefined && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(values.worker)) throw new UsageError(`invalid worker name "${values.worker}"`);
  if (values.candidate !== undefined && values.candidate.trim() === '') throw new UsageError('--candidate must name a member');
  if (values.leader !== undefined && values.leader.trim() === '') throw new UsageError('--leader must name a member');
  if (op === 'failover' && values.candidate === undefined) throw new UsageError('failover needs --candidate NAME');
  let timeoutMs = 60_000;
  if (values.timeout !== undefined) {
    const secs = Number(values.timeout);
    if (!/^\d+(\.\d+)?$/.test(values.timeout.trim()) || !(secs >= 1 && secs <= 3600)) throw new UsageError(`--timeout must be a number of seconds from 1 to 3600, not "${values.timeout}"`);
    timeoutMs = Math.round(secs * 1000);
  }
  return { op, dir, worker: values.worker ?? 'promoter', candidate: values.candidate ?? null, leader: values.leader ?? null, force: values.force ?? false, timeoutMs };
}

/**
 * What makes `dir` unusable before `postgres -C` is asked (whose own
 * messages are raw), as pg_ctl words it; null when fine. A configuration
 * directory without PG_VERSION (Debian's /etc/postgresql/15/main) is fine.
 */
export function dataDirProblem(dir: string, uid = process.getuid?.()): string | null {
  if (uid === 0) return 'cannot be run as root; run it as the server\'s OS user (for example: runuser -u postgres -- pg_tsworker_ctl ...)';
  let st;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' ? `directory "${dir}" does not exist` : `could not access directory "${dir}": ${code ?? (err as Error).message}`;
  }
  if (!st.isDirectory()) return `"${dir}" is not a directory`;
  if (!fs.existsSync(path.join(dir, 'PG_VERSION')) && !fs.existsSync(path.join(dir, 'postgresql.conf'))) {
    return `directory "${dir}" is not a database cluster directory (neither PG_VERSION nor postgresql.conf in it)`;
  }
  return null;
}

/** A setting of this member's configuration (`postgres -C`): '' when unset. */
function setting(bindir: string, dataDir: string, name: string): string {
  try {
    return execFileSync(path.join(bindir, 'postgres'), ['-D', dataDir, '-C', name], {
      encoding: 'utf8',
      env: { ...process.env, LC_ALL: 'C' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    // a setting that is not in the configuration at all: "unrecognized configuration parameter"
    const stderr = String((err as { stderr?: string }).stderr ?? '').trim();
    if (/unrecognized configuration parameter/.test(stderr)) return '';
    // postgres's own words, without the command line
    throw new Error(`could not read ${name} from the configuration of "${dataDir}": ${stderr.replace(/^postgres: /, '') || (err as Error).message}`);
  }
}

async function main(argv: string[]): Promise<number> {
  const bindir = argv[0] === '--bindir' ? argv[1] ?? '' : '';
  const args = argv[0] === '--bindir' ? argv.slice(2) : argv;
  if (args.length === 1 && (args[0] === '--help' || args[0] === '-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let cmd: Command;
  try {
    cmd = parseCommand(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`pg_tsworker_ctl: ${err.message}\n${USAGE}\n`);
    return 2;
  }
  if (!bindir) {
    process.stderr.write('pg_tsworker_ctl: run it through the installed wrapper (it passes --bindir)\n');
    return 2;
  }
  const { op, dir, worker } = cmd;
  const problem = dataDirProblem(dir);
  if (problem) {
    process.stderr.write(`pg_tsworker_ctl: ${problem}\n`);
    return 1;
  }
  const get = (s: string) => setting(bindir, dir, `tsworker_${worker}.${s}`);
  const hosts = get('etcd_hosts');
  if (!hosts) {
    process.stderr.write(`pg_tsworker_ctl: tsworker_${worker}.etcd_hosts is not set in ${dir}'s configuration: cluster mode is off\n`);
    return 1;
  }
  const name = memberName(get('name'), setting(bindir, dir, 'cluster_name') || null);
  const base = {
    hosts,
    scope: get('scope'),
    namespace: get('namespace') || '/service/',
    citusGroup: Number(get('citus_group') || -1),
    name,
    retryTimeoutMs: Number(get('retry_timeout')) || 750,
  };
  if (op === 'rejoin') {
    const dataDir = setting(bindir, dir, 'data_directory') || dir;
    let r;
    try {
      r = await rejoin({ ...base, dataDir: path.resolve(dataDir), bindir });
    } catch (err) {
      await recordOperation(base, { op: 'rejoin', member: name, outcome: 'refused', detail: (err as Error).message });
      throw err;
    }
    // (a rejoin that changed nothing, as at every start under systemd's ExecStartPre=, is not an operation)
    if (r.action !== 'none') await recordOperation(base, { op: 'rejoin', member: name, outcome: r.action, detail: r.why });
    process.stdout.write(`pg_tsworker_ctl rejoin: member "${name}": ${r.action}: ${r.why}\n`);
    return 0;
  }
  const o: CtlOptions = {
    ...base,
    candidate: cmd.candidate,
    leader: cmd.leader,
    force: cmd.force,
    timeoutMs: cmd.timeoutMs,
    maxLagBytes: (Number(get('maximum_lag_on_failover')) || 1024) * 1024,
    pid: null,
    // the timeout counts from this command's start, its settings lookups included
    startedAt: Math.floor(performance.timeOrigin),
  };
  // Ctrl-C (or systemd stopping the command) calls a switchover off, as a cancelled SQL call does
  withdrawOnSignals(['SIGINT', 'SIGTERM'], 130);
  const res = await runOp(op, o);
  process.stdout.write(`${JSON.stringify(res)}\n`);
  return 0;
}

if (require.main === module) {
  // interrupted, the withdrawal exits (130) once it has withdrawn the request and written the line (within 1 s)
  main(process.argv.slice(2)).then(
    (code) => {
      if (!stopRequested()) process.exit(code);
    },
    (err: Error) => {
      const e = err as CtlError;
      process.stderr.write(`pg_tsworker_ctl: ${e.message}${e.detail ? `\nDETAIL: ${e.detail}` : ''}${e.hint ? `\nHINT: ${e.hint}` : ''}\n`);
      if (!stopRequested()) process.exit(1);
    },
  );
}
