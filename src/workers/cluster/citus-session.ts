/**
 * The coordinator's sessions to its own Citus database, and the checks it
 * runs before it points pg_dist_node at a server (citus-coordinator.ts):
 *
 *   - every statement has a lock_timeout and a client-side deadline, so that
 *     a lock held by a backend that cannot end (a backend terminated by
 *     Citus's lock cooldown waits, in PQcancel, for an answer from a worker
 *     that froze) fails the update instead of holding it: the heartbeat
 *     tries again, and the other groups go on (each group has its session);
 *   - `readDistNodes()`: pg_dist_node's primary rows, read every heartbeat;
 *   - `verifyAddress()`: the server at the address a member published is
 *     that member (its system identifier) and a primary, before its group's
 *     row is moved there.
 */
import pg from 'pg';

import type { WorkerContext } from '../../runtime/index';
import { askPeer } from './peers';
import { redact } from './reach';

/** A group's primary as pg_dist_node holds it (or should hold it). */
export interface DistNode {
  host: string;
  port: number;
  /** '<host>-demoted' in pg_dist_node: the group is paused for a switchover. */
  demoted: boolean;
  nodeid: number | null;
}

/** An error of a statement on the coordinator, with its SQLSTATE when the server sent one. */
export type SqlError = Error & { code?: string };

/** A client session to this server's Citus database over its Unix socket, as the role the worker runs as. */
export function citusClient(w: WorkerContext<any>, database: string, options = '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0'): pg.Client {
  const who = w.query<{ u: string }>('SELECT current_user AS u')[0];
  const dirs = (w.setting('unix_socket_directories') ?? '').split(',').map((d) => d.trim()).filter(Boolean);
  const client = new pg.Client({
    host: dirs[0] ?? '127.0.0.1',
    port: Number(w.setting('port') ?? 5432),
    user: who.u,
    database,
    application_name: `pg_tsworker ${w.name} (citus)`,
    connectionTimeoutMillis: 10_000,
    options,
  });
  client.on('error', () => undefined);
  return client;
}

/**
 * One session of the coordinator to its Citus database. A statement that
 * does not answer within its deadline ends the session (its backend may be
 * stuck: a new session is opened for the next statement).
 */
export class CitusSession {
  private client: pg.Client | null = null;
  private pid = 0;

  constructor(
    private readonly w: WorkerContext<any>,
    private readonly database: string,
  ) {}

  /** The backend of this session (0: none yet). */
  get backendPid(): number {
    return this.pid;
  }

  get open(): boolean {
    return this.client !== null;
  }

  async query<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = [], deadlineMs = 30_000): Promise<R[]> {
    if (!this.client) {
      const c = citusClient(this.w, this.database);
      await c.connect();
      this.client = c;
      this.pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    }
    const c = this.client;
    let timer: NodeJS.Timeout | undefined;
    try {
      const res = await Promise.race([
        c.query<R>(sql, params),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${deadlineMs} ms: the session is abandoned`), { code: undefined })), deadlineMs);
        }),
      ]);
      return res.rows;
    } catch (err) {
      const e = err as SqlError;
      // a session error (or no answer) leaves no usable session: the next statement opens another
      if (!e.code || !/^[0-9A-Z]{5}$/.test(e.code)) this.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.client?.end().catch(() => undefined);
    this.client = null;
    this.pid = 0;
  }
}

/** pg_dist_node's primary rows, by group. */
export async function readDistNodes(s: CitusSession): Promise<Map<number, DistNode>> {
  const rows = await s.query<{ groupid: number; nodename: string; nodeport: number; nodeid: number }>(
    `SELECT groupid, nodename, nodeport, nodeid FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' ORDER BY nodeid`,
    [],
    10_000,
  );
  const out = new Map<number, DistNode>();
  for (const r of rows) out.set(r.groupid, distNodeOf(r.nodename, r.nodeport, r.nodeid));
  return out;
}

export function distNodeOf(nodename: string, port: number, nodeid: number | null): DistNode {
  const demoted = nodename.endsWith('-demoted');
  return { host: demoted ? nodename.slice(0, -'-demoted'.length) : nodename, port, demoted, nodeid };
}

export const nodeText = (n: { host: string; port: number; demoted?: boolean }) => `${n.host}${n.demoted ? '-demoted' : ''}:${n.port}`;

/**
 * The backends that hold the locks this session waits for, with what they
 * do, for the error of an update that timed out (read on another session).
 */
export async function blockers(reader: CitusSession, pids: number[]): Promise<string> {
  if (pids.length === 0) return '';
  const rows = await reader
    .query<{ pid: number; state: string | null; wait: string | null; age: string | null; query: string | null }>(
      `SELECT pid, state, wait_event_type || ':' || wait_event AS wait, (clock_timestamp() - query_start)::text AS age, left(query, 80) AS query
         FROM pg_catalog.pg_stat_activity WHERE pid = ANY ($1::int[])`,
      [pids],
      5000,
    )
    .catch(() => []);
  return rows.map((r) => `pid ${r.pid} (${r.state ?? '?'}${r.wait ? `, waiting ${r.wait}` : ''}, for ${r.age ?? '?'}: ${r.query ?? ''})`).join('; ');
}

/**
 * Does `conninfo` (a member's published tsworker_promoter.conninfo) reach
 * that member, as a primary? null when it does, else why not (naming the
 * setting). `sysid`: the member's system identifier as etcd has it;
 * `primary`: it must not be in recovery (a candidate about to promote is).
 */
export async function verifyAddress(member: string, conninfo: string, sysid: string | null, timeoutMs: number, primary = true): Promise<string | null> {
  const shown = redact(conninfo);
  let row: { sysid: string; recovery: boolean };
  try {
    row = await askPeer(conninfo, timeoutMs);
  } catch (err) {
    return `tsworker_promoter.conninfo of member "${member}" (${shown}) does not reach it: ${(err as Error).message}`;
  }
  if (sysid && row.sysid !== sysid) {
    return `tsworker_promoter.conninfo of member "${member}" (${shown}) reaches another server (system identifier ${row.sysid}, not the member's ${sysid})`;
  }
  if (primary && row.recovery) return `tsworker_promoter.conninfo of member "${member}" (${shown}) reaches a standby, not a primary`;
  return null;
}
