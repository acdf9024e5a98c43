/**
 * `pg_tsworker_ctl`: cluster mode from the shell, for what must run while
 * PostgreSQL is stopped (rejoin, systemd's `ExecStartPre=`) and for the
 * operations of the SQL functions (docs/failover.md).
 *
 *   pg_tsworker_ctl rejoin -D DATADIR
 *   pg_tsworker_ctl switchover -D DATADIR [--candidate NAME] [--timeout SECONDS]
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
import * as path from 'path';

import { CtlError, run as runOp, type CtlOptions } from './ctl';
import { rejoin } from './rejoin';
import { memberName } from './settings';

const USAGE = `usage: pg_tsworker_ctl rejoin|switchover|failover|pause|resume -D DATADIR
         [--candidate NAME] [--force] [--timeout SECONDS] [--worker NAME]`;

function flag(argv: string[], ...names: string[]): string | undefined {
  for (const n of names) {
    const i = argv.indexOf(n);
    if (i >= 0) return argv[i + 1];
  }
  return undefined;
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
    if (/unrecognized configuration parameter/.test(String((err as { stderr?: string }).stderr))) return '';
    throw err;
  }
}

async function main(argv: string[]): Promise<number> {
  const bindir = flag(argv, '--bindir') ?? '';
  const args = argv[0] === '--bindir' ? argv.slice(2) : argv;
  const op = args[0];
  const dir = flag(args, '-D', '--pgdata') ?? process.env.PGDATA;
  if (!op || !dir || !bindir) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const worker = flag(args, '--worker') ?? 'promoter';
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
    const r = await rejoin({ ...base, dataDir: path.resolve(dataDir), bindir });
    process.stdout.write(`pg_tsworker_ctl rejoin: member "${name}": ${r.action}: ${r.why}\n`);
    return 0;
  }
  const o: CtlOptions = {
    ...base,
    candidate: flag(args, '--candidate') ?? null,
    force: args.includes('--force'),
    timeoutMs: (Number(flag(args, '--timeout')) || 60) * 1000,
    maxLagBytes: (Number(get('maximum_lag_on_failover')) || 1024) * 1024,
    pid: null,
  };
  const res = await runOp(op, o);
  process.stdout.write(`${JSON.stringify(res)}\n`);
  return 0;
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: Error) => {
      const e = err as CtlError;
      process.stderr.write(`pg_tsworker_ctl: ${e.message}${e.detail ? `\nDETAIL: ${e.detail}` : ''}${e.hint ? `\nHINT: ${e.hint}` : ''}\n`);
      process.exit(1);
    },
  );
}
