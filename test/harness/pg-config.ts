/**
 * Which PostgreSQL installation the tests and benchmarks use, PGXS's way:
 * `PG_CONFIG` names a `pg_config` (for instance
 * `/opt/pg17/bin/pg_config`), and its `--bindir` holds the server
 * binaries the harness starts. `PG_BINDIR` overrides the directory alone.
 * With neither, Debian's PostgreSQL 15 (`/usr/lib/postgresql/15/bin`),
 * which `scripts/setup` installs.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

/** The `pg_config` in use: `$PG_CONFIG`, else Debian's PostgreSQL 15. */
export const PG_CONFIG: string = process.env.PG_CONFIG || '/usr/lib/postgresql/15/bin/pg_config';

function bindir(): string {
  if (process.env.PG_BINDIR) return process.env.PG_BINDIR;
  try {
    return execFileSync(PG_CONFIG, ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    return path.dirname(PG_CONFIG);
  }
}

/** What `pg_config <flag>` prints for that installation (`--sharedir`, `--pkglibdir`, ...). */
export function pgConfigValue(flag: string): string {
  return execFileSync(PG_CONFIG, [flag], { encoding: 'utf8' }).trim();
}

/** Directory of the server binaries (initdb, pg_ctl, postgres, pg_basebackup, ...). */
export const PG_BIN: string = bindir();

/** Major version of that installation (15, 16, ...), from `pg_config --version`. */
export function pgMajor(): number {
  const out = execFileSync(path.join(PG_BIN, 'pg_config'), ['--version'], { encoding: 'utf8' });
  const m = /PostgreSQL (\d+)/.exec(out);
  if (!m) throw new Error(`cannot read the major version from "${out.trim()}"`);
  return Number(m[1]);
}
