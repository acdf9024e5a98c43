/**
 * libpq connection strings (`key=value ...`, as in primary_conninfo) to
 * node-postgres client configurations.
 */
import type { ClientConfig } from 'pg';

/** Parse `key=value` pairs; values may be single-quoted with `\'` and `\\` escapes. */
export function parseConninfo(conninfo: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const s = conninfo;
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= s.length) break;
    const keyStart = i;
    while (i < s.length && s[i] !== '=' && !/\s/.test(s[i])) i++;
    const key = s.slice(keyStart, i);
    skipSpace();
    if (s[i] !== '=') throw new Error(`conninfo: missing "=" after "${key}"`);
    i++;
    skipSpace();
    let value = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) throw new Error('conninfo: unterminated quoted string');
        if (s[i] === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else if (s[i] === "'") {
          i++;
          break;
        } else value += s[i++];
      }
    } else {
      while (i < s.length && !/\s/.test(s[i])) {
        if (s[i] === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else value += s[i++];
      }
    }
    if (!key) throw new Error('conninfo: empty key');
    out[key] = value;
  }
  return out;
}

/** Where a conninfo points, for logs and status (never the password). */
export function describeConninfo(conninfo: string): string {
  try {
    const c = parseConninfo(conninfo);
    const host = c.hostaddr || c.host || 'localhost';
    return `${host}:${c.port || '5432'}`;
  } catch {
    return '(invalid conninfo)';
  }
}

/**
 * A node-postgres configuration for a conninfo. The database defaults to
 * `postgres` (primary_conninfo usually names none); passfile is honoured
 * through PGPASSFILE, as libpq would.
 */
export function clientConfig(conninfo: string, timeoutMs: number, applicationName: string): ClientConfig {
  const c = parseConninfo(conninfo);
  if (c.passfile && !process.env.PGPASSFILE) process.env.PGPASSFILE = c.passfile;
  const sslmode = c.sslmode ?? 'disable';
  const host = c.hostaddr || c.host || '/var/run/postgresql';
  return {
    host: host.split(',')[0],
    port: c.port ? Number(c.port.split(',')[0]) : 5432,
    user: c.user || undefined,
    password: c.password || undefined,
    database: c.dbname || 'postgres',
    application_name: applicationName,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    keepAlive: true,
    ssl: sslmode === 'require' || sslmode.startsWith('verify') ? { rejectUnauthorized: sslmode !== 'require' } : false,
  };
}
