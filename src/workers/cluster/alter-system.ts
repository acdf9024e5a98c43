/**
 * ALTER SYSTEM from the worker. PostgreSQL runs ALTER SYSTEM only as a
 * top-level statement, which SPI is not ("ALTER SYSTEM cannot be executed
 * from a function"), so the worker opens a short client connection to its
 * own server over the Unix socket, as the role it runs as (peer or trust
 * authentication for local connections: Debian's default pg_hba.conf has
 * `local all postgres peer`), sets the parameters and reloads.
 */
import pg from 'pg';

import type { WorkerContext } from '../../runtime/index';

/**
 * A client connection to this server over its Unix socket, as the role the
 * worker runs as (not connected yet), with `timeoutMs` for the connection
 * and each query.
 */
export function localClient(w: WorkerContext<any>, timeoutMs: number): { client: pg.Client; user: string; database: string } {
  const who = w.query<{ u: string; d: string }>('SELECT current_user AS u, current_database() AS d')[0];
  const dirs = (w.setting('unix_socket_directories') ?? '').split(',').map((d) => d.trim()).filter(Boolean);
  const client = new pg.Client({
    host: dirs[0] ?? '127.0.0.1',
    port: Number(w.setting('port') ?? 5432),
    user: who.u,
    database: who.d,
    application_name: `pg_tsworker ${w.name}`,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  client.on('error', () => undefined);
  return { client, user: who.u, database: who.d };
}

/** Set these parameters in postgresql.auto.conf, then reload the configuration. */
export async function alterSystem(w: WorkerContext<any>, values: Record<string, string>, timeoutMs: number): Promise<void> {
  const { client, user, database } = localClient(w, timeoutMs);
  const who = { u: user, d: database };
  try {
    await client.connect();
    for (const [name, value] of Object.entries(values)) {
      if (!/^[a-z_][a-z0-9_.]*$/.test(name)) throw new Error(`bad parameter name ${name}`);
      await client.query(`ALTER SYSTEM SET ${name} = ${client.escapeLiteral(value)}`);
    }
    await client.query('SELECT pg_reload_conf()');
  } catch (err) {
    throw new Error(
      `could not run ALTER SYSTEM over a local connection as "${who.u}" (allow it in pg_hba.conf: local ${who.d} ${who.u} peer): ${(err as Error).message}`,
    );
  } finally {
    client.end().catch(() => undefined);
  }
}
