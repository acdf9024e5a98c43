/**
 * The source server, over a physical replication connection
 * (node-postgres with `replication: true`): connecting (to each host of a
 * multi-host conninfo in turn, as libpq does), and the replication
 * commands other than START_REPLICATION: IDENTIFY_SYSTEM, SHOW,
 * READ_REPLICATION_SLOT, CREATE_REPLICATION_SLOT, TIMELINE_HISTORY.
 */
import pg from 'pg';

import { clientConfig, parseConninfo } from '../promoter/conninfo';
import { parseLsn, parseSize } from './lsn';
import { STREAM_BUFFER } from './replication';
import { streamSocket } from './stream-socket';

/** What IDENTIFY_SYSTEM reports. */
export interface SystemIdentity {
  systemId: string;
  timeline: number;
  /** The source's current flush (primary) or replay (standby) position. */
  xlogpos: bigint;
}

/** A physical replication slot as READ_REPLICATION_SLOT reports it. */
export interface SlotInfo {
  exists: boolean;
  type: string | null;
  restartLsn: bigint | null;
  restartTli: number | null;
}

/** A connected replication client and which host of the conninfo it reached. */
export interface SourceConnection {
  client: pg.Client;
  /** `host:port` reached. */
  where: string;
}

/** Text results as sent (bytea history content included), never parsed by type. */
const RAW_TYPES = { getTypeParser: () => (v: string) => v } as unknown as pg.CustomTypesConfig;

/** Resolves or rejects within ms. */
export function deadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The hosts of a conninfo (`host=a,b port=1,2`), each as one client configuration. */
export function hostConfigs(conninfo: string, timeoutMs: number, applicationName: string): pg.ClientConfig[] {
  const c = parseConninfo(conninfo);
  const hosts = (c.hostaddr || c.host || '/var/run/postgresql').split(',');
  const ports = (c.port || '5432').split(',');
  if (ports.length !== 1 && ports.length !== hosts.length) {
    throw new Error(`conninfo names ${hosts.length} hosts and ${ports.length} ports`);
  }
  const base = clientConfig(conninfo, timeoutMs, applicationName);
  return hosts.map((host, i) => ({
    ...base,
    host: host || '/var/run/postgresql',
    port: Number(ports.length === 1 ? ports[0] : ports[i]) || 5432,
    // START_REPLICATION runs for as long as the stream lasts.
    query_timeout: undefined,
    replication: true,
    // read the WAL stream in large slices (TLS, when asked, wraps this socket)
    stream: () => streamSocket(STREAM_BUFFER),
  }) as pg.ClientConfig);
}

/** Connect to the first host of the conninfo that accepts a replication connection. */
export async function connectSource(conninfo: string, timeoutMs: number, applicationName: string): Promise<SourceConnection> {
  const errors: string[] = [];
  let last: unknown;
  for (const cfg of hostConfigs(conninfo, timeoutMs, applicationName)) {
    const client = new pg.Client(cfg);
    client.on('error', () => undefined);
    const where = `${cfg.host}:${cfg.port}`;
    try {
      await deadline(client.connect(), timeoutMs + 100, `connecting to ${where}`);
      return { client, where };
    } catch (err) {
      client.end().catch(() => undefined);
      last = err;
      errors.push(`${where}: ${(err as Error).message}`);
    }
  }
  if (errors.length === 1) throw last;
  throw Object.assign(new Error(`no host of the source accepted a replication connection (${errors.join('; ')})`), {
    code: (last as { code?: string })?.code,
  });
}

async function command(client: pg.Client, text: string, timeoutMs: number): Promise<Record<string, string | null>[]> {
  const res = await deadline(client.query({ text, types: RAW_TYPES }), timeoutMs, text.split(' ')[0]);
  return res.rows as Record<string, string | null>[];
}

/** IDENTIFY_SYSTEM. */
export async function identifySystem(client: pg.Client, timeoutMs: number): Promise<SystemIdentity> {
  const row = (await command(client, 'IDENTIFY_SYSTEM', timeoutMs))[0];
  return { systemId: String(row.systemid), timeline: Number(row.timeline), xlogpos: parseLsn(String(row.xlogpos)) };
}

/** `SHOW wal_segment_size`, in bytes (pg_receivewal's RetrieveWalSegSize). */
export async function walSegmentSize(client: pg.Client, timeoutMs: number): Promise<number> {
  const row = (await command(client, 'SHOW wal_segment_size', timeoutMs))[0];
  const size = parseSize(String(Object.values(row)[0]));
  if (size < 1024 * 1024 || size > 1024 ** 3 || (size & (size - 1)) !== 0) {
    throw new Error(`the source's WAL segment size ${size} is not a power of two between 1 MB and 1 GB`);
  }
  return size;
}

/** READ_REPLICATION_SLOT (PostgreSQL 15): whether the slot exists, its restart position and timeline. */
export async function readSlot(client: pg.Client, slot: string, timeoutMs: number): Promise<SlotInfo> {
  const row = (await command(client, `READ_REPLICATION_SLOT "${slot}"`, timeoutMs))[0];
  if (!row || row.slot_type === null) return { exists: false, type: null, restartLsn: null, restartTli: null };
  return {
    exists: true,
    type: row.slot_type,
    restartLsn: row.restart_lsn ? parseLsn(row.restart_lsn) : null,
    restartTli: row.restart_tli ? Number(row.restart_tli) : null,
  };
}

/** CREATE_REPLICATION_SLOT "slot" PHYSICAL RESERVE_WAL; false when it already existed. */
export async function createSlot(client: pg.Client, slot: string, timeoutMs: number): Promise<boolean> {
  try {
    await command(client, `CREATE_REPLICATION_SLOT "${slot}" PHYSICAL RESERVE_WAL`, timeoutMs);
    return true;
  } catch (err) {
    if ((err as { code?: string }).code === '42710') return false; // duplicate_object
    throw err;
  }
}

/** TIMELINE_HISTORY: the history file of a timeline (> 1), name and content as the source has them. */
export async function timelineHistory(client: pg.Client, timeline: number, timeoutMs: number): Promise<{ name: string; content: string }> {
  const row = (await command(client, `TIMELINE_HISTORY ${timeline}`, timeoutMs))[0];
  return { name: String(row.filename), content: String(row.content) };
}
