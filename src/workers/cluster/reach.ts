/**
 * Whether a member's conninfo reaches the server it names, as the other
 * members use it: a normal session (an election asks each member directly,
 * peers.ts) and a physical replication session (standbys stream from the
 * leader with it as primary_conninfo). A member checks its own
 * `tsworker_promoter.conninfo` when it starts (it must reach this very
 * server: same system identifier and postmaster start time), and a standby
 * whose WAL receiver does not stream checks the leader's, so that a wrong
 * host, port, user or pg_hba.conf line is reported in the status, the
 * events and the log instead of only in the WAL receiver's FATALs.
 */
import pg from 'pg';

import { clientConfig } from '../promoter/conninfo';

/**
 * Run one query on a new session with `conninfo` within `timeoutMs`
 * (connection included) and resolve with its first row; `replication`: a
 * physical replication session. Rejects on any failure or timeout.
 */
export async function queryOnce<T extends pg.QueryResultRow>(conninfo: string, timeoutMs: number, sql: string, replication: boolean): Promise<T> {
  const cfg = clientConfig(conninfo, timeoutMs, 'pg_tsworker promoter');
  const client = new pg.Client(replication ? { ...cfg, replication: 'true' } as pg.ClientConfig : cfg);
  client.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  try {
    const res = await Promise.race([
      (async () => {
        await client.connect();
        return client.query<T>(sql);
      })(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return res.rows[0];
  } finally {
    clearTimeout(timer);
    client.end().catch(() => undefined);
  }
}

/** IDENTIFY_SYSTEM over a replication session: what a WAL receiver would get. */
export async function identifyStreaming(conninfo: string, timeoutMs: number): Promise<{ sysid: string; timeline: number }> {
  const row = await queryOnce<{ systemid: string; timeline: string }>(conninfo, timeoutMs, 'IDENTIFY_SYSTEM', true);
  return { sysid: String(row.systemid), timeline: Number(row.timeline) };
}

/** Strip a password from a conninfo, for messages. */
export function redact(conninfo: string): string {
  return conninfo.replace(/password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)/g, 'password=***');
}

/**
 * Check this member's own conninfo: null when it reaches this server for
 * a session and for streaming; otherwise what is wrong, for the operator.
 */
export async function checkOwnConninfo(conninfo: string, me: { sysid: string; postmasterStart: string }, timeoutMs: number): Promise<string | null> {
  const shown = redact(conninfo);
  let who: { sysid: string; started: string };
  try {
    who = await queryOnce<{ sysid: string; started: string }>(
      conninfo,
      timeoutMs,
      `SELECT (SELECT system_identifier::text FROM pg_control_system()) AS sysid, pg_postmaster_start_time()::text AS started`,
      false,
    );
  } catch (err) {
    return `tsworker_promoter.conninfo (${shown}) does not reach this server: ${(err as Error).message}; the other members ask this member and stream from it with it`;
  }
  if (who.sysid !== me.sysid || who.started !== me.postmasterStart) {
    return `tsworker_promoter.conninfo (${shown}) reaches another server (system identifier ${who.sysid}, started ${who.started}), not this one (${me.sysid}, started ${me.postmasterStart}): the other members would ask that server about this member and stream from it`;
  }
  try {
    await identifyStreaming(conninfo, timeoutMs);
  } catch (err) {
    return `tsworker_promoter.conninfo (${shown}) reaches this server, but a replication session with it fails: ${(err as Error).message}; standbys could not stream from this member (pg_hba.conf needs a "replication" line for them)`;
  }
  return null;
}
