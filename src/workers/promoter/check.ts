/**
 * One health check of the primary, and what its outcome means.
 *
 * Only a primary that does not answer is a failure. A primary that refuses
 * for too many connections answers (busy); an authentication or
 * configuration error is the operator's to fix (config) and never a reason
 * to promote.
 */
import pg from 'pg';

import { clientConfig, parseConninfo } from './conninfo';

export type CheckOutcome =
  | { kind: 'ok'; flushLsn: string; ms: number }
  | { kind: 'failed'; reason: string }
  | { kind: 'busy'; reason: string }
  | { kind: 'config'; reason: string };

/** SQLSTATE classes and codes that mean "configuration error", not "down". */
const CONFIG_CODES = /^(28|3D|42|08P01)/;

/** Classify an error of connecting to or querying the primary. */
export function classify(err: unknown): CheckOutcome {
  const e = err as { code?: string; message?: string };
  const reason = e?.message ?? String(err);
  const code = e?.code;
  if (code === '53300') return { kind: 'busy', reason: `too many connections (${code}): ${reason}` };
  if (code && /^[0-9A-Z]{5}$/.test(code) && CONFIG_CODES.test(code)) {
    return { kind: 'config', reason: `${reason} (SQLSTATE ${code})` };
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return { kind: 'failed', reason: `${reason} (host name not resolved)` };
  return { kind: 'failed', reason: code ? `${reason} (${code})` : reason };
}

/** Resolves after ms, or rejects with a timeout error. */
function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * The monitoring connection to the primary: kept between checks and opened
 * again when it is lost. `onLost` is called when a kept connection drops
 * between checks, so that the next check can run at once.
 */
export class PrimaryMonitor {
  private client: pg.Client | undefined;
  private checking = false;

  constructor(
    private conninfo: string,
    private timeoutMs: number,
    private readonly keep: boolean,
    private readonly onLost: (why: string) => void,
  ) {}

  configure(conninfo: string, timeoutMs: number): void {
    if (conninfo !== this.conninfo) this.close();
    this.conninfo = conninfo;
    this.timeoutMs = timeoutMs;
  }

  close(): void {
    const c = this.client;
    this.client = undefined;
    if (c) c.end().catch(() => undefined);
  }

  private async connect(): Promise<pg.Client> {
    const client = new pg.Client(clientConfig(this.conninfo, this.timeoutMs, 'pg_tsworker promoter'));
    client.on('error', () => undefined);
    await deadline(client.connect(), this.timeoutMs + 100, 'connecting to the primary').catch((e) => {
      client.end().catch(() => undefined);
      throw e;
    });
    client.on('end', () => {
      if (this.client === client) {
        this.client = undefined;
        if (!this.checking) this.onLost('the monitoring connection to the primary was lost');
      }
    });
    return client;
  }

  /** Check the primary: connect if needed, then read its WAL flush position, within the timeout. */
  async check(): Promise<CheckOutcome> {
    try {
      parseConninfo(this.conninfo);
    } catch (err) {
      return { kind: 'config', reason: `invalid primary conninfo: ${(err as Error).message}` };
    }
    const t0 = Date.now();
    this.checking = true;
    try {
      const client = this.client ?? (await this.connect());
      if (this.keep) this.client = client;
      try {
        const res = await deadline(
          client.query<{ lsn: string; recovery: boolean }>('SELECT pg_current_wal_flush_lsn()::text AS lsn'),
          this.timeoutMs,
          'the check query',
        );
        return { kind: 'ok', flushLsn: res.rows[0].lsn, ms: Date.now() - t0 };
      } finally {
        if (!this.keep) client.end().catch(() => undefined);
      }
    } catch (err) {
      this.close();
      const e = err as { code?: string };
      // A primary in recovery has no current WAL position: not a primary.
      if (e.code === '55000') return { kind: 'config', reason: 'the server primary_conninfo points at is in recovery, not a primary' };
      return classify(err);
    } finally {
      this.checking = false;
    }
  }
}

/** What IDENTIFY_SYSTEM reports over a replication connection. */
export interface Identity {
  systemId: string;
  timeline: number;
  xlogpos: string;
}

/** IDENTIFY_SYSTEM over a physical replication connection, within the timeout. */
export async function identify(conninfo: string, timeoutMs: number): Promise<Identity> {
  const client = new pg.Client({ ...clientConfig(conninfo, timeoutMs, 'pg_tsworker promoter identity'), replication: true } as pg.ClientConfig);
  client.on('error', () => undefined);
  try {
    await deadline(client.connect(), timeoutMs + 100, 'the replication connection');
    const res = await deadline(client.query('IDENTIFY_SYSTEM'), timeoutMs, 'IDENTIFY_SYSTEM');
    const row = res.rows[0] as { systemid: string; timeline: string | number; xlogpos: string };
    return { systemId: String(row.systemid), timeline: Number(row.timeline), xlogpos: row.xlogpos };
  } finally {
    client.end().catch(() => undefined);
  }
}
