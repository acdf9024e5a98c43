/**
 * This server's replication state, read through SPI in one statement, and
 * WAL positions (`X/Y`) as byte numbers.
 */
import type { WorkerContext } from '../../runtime/index';
import type { HistoryLine } from './dcs-records';

/** `X/Y` to bytes (null stays null). Exact up to 2^53 bytes. */
export function lsnToNumber(lsn: string | null | undefined): number | null {
  if (!lsn) return null;
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn);
  if (!m) return null;
  return parseInt(m[1], 16) * 2 ** 32 + parseInt(m[2], 16);
}

/** Bytes to `X/Y`. */
export function numberToLsn(n: number): string {
  const hi = Math.floor(n / 2 ** 32);
  const lo = n - hi * 2 ** 32;
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** What the cluster loop needs to know about this server, each run. */
export interface LocalState {
  recovery: boolean;
  /** Timeline: the current one on a primary; on a standby the WAL receiver's, else the last checkpoint's. */
  timeline: number;
  /** Flushed position on a primary; the greater of received and replayed on a standby. */
  lsn: number | null;
  replayed: number | null;
  /** The WAL receiver's status (`streaming`, `waiting`, ...) or null when none runs. */
  receiver: string | null;
  /** Whom the WAL receiver streams from (`host:port`), or null. */
  sender: string | null;
  primaryConninfo: string;
  synchronousStandbyNames: string;
  sysid: string;
}

/** Read the local state (one statement in a transaction of its own). */
export function readLocal(w: WorkerContext<any>): LocalState {
  const row = w.query<{
    recovery: boolean;
    flush: string | null;
    received: string | null;
    replayed: string | null;
    walfile: string | null;
    checkpoint_tli: number;
    status: string | null;
    received_tli: number | null;
    sender: string | null;
    primary_conninfo: string;
    ssn: string;
    sysid: string;
  }>(
    `SELECT pg_is_in_recovery() AS recovery,
            CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_flush_lsn()::text END AS flush,
            pg_last_wal_receive_lsn()::text AS received,
            pg_last_wal_replay_lsn()::text AS replayed,
            CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_lsn()) END AS walfile,
            (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
            r.status, r.received_tli,
            r.sender_host || ':' || r.sender_port AS sender,
            current_setting('primary_conninfo') AS primary_conninfo,
            current_setting('synchronous_standby_names') AS ssn,
            (SELECT system_identifier::text FROM pg_control_system()) AS sysid
       FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver r ON true`,
  )[0];
  const received = lsnToNumber(row.received);
  const replayed = lsnToNumber(row.replayed);
  const timeline = row.walfile ? parseInt(row.walfile.slice(0, 8), 16) : (row.received_tli ?? row.checkpoint_tli);
  return {
    recovery: row.recovery,
    timeline,
    lsn: row.recovery ? (received === null ? replayed : replayed === null ? received : Math.max(received, replayed)) : lsnToNumber(row.flush),
    replayed,
    receiver: row.status,
    sender: row.sender,
    primaryConninfo: row.primary_conninfo,
    synchronousStandbyNames: row.ssn,
    sysid: row.sysid,
  };
}

/** One walsender of pg_stat_replication. */
export interface Replica {
  name: string;
  state: string;
  syncState: string;
  flush: number | null;
  replay: number | null;
  /** Milliseconds since its WAL receiver last replied (null: never). */
  replyAgeMs: number | null;
}

/** The standbys streaming from this primary. */
export function readReplicas(w: WorkerContext<any>): Replica[] {
  return w
    .query<{ name: string; state: string; sync_state: string; flush: string | null; replay: string | null; reply_age: number | null }>(
      `SELECT application_name AS name, state, sync_state, flush_lsn::text AS flush, replay_lsn::text AS replay,
              (extract(epoch FROM clock_timestamp() - reply_time) * 1000)::float8 AS reply_age
         FROM pg_stat_replication`,
    )
    .map((r) => ({
      name: r.name,
      state: r.state,
      syncState: r.sync_state,
      flush: lsnToNumber(r.flush),
      replay: lsnToNumber(r.replay),
      replyAgeMs: r.reply_age === null ? null : Math.round(Number(r.reply_age)),
    }));
}

/**
 * The promotion's line of a new timeline's history file (pg_wal/<TLI>.history):
 * [parent timeline, switch LSN, reason, now, `leader`]; null (after a warning) when unreadable.
 */
export function readHistoryLine(w: WorkerContext<any>, timeline: number, leader: string): HistoryLine | null {
  try {
    const file = `pg_wal/${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
    const text = w.query<{ t: string }>('SELECT pg_read_file($1) AS t', [file])[0].t;
    const last = text.trim().split('\n').pop() ?? '';
    const [parent, lsn, ...reason] = last.split('\t');
    const at = lsnToNumber(lsn);
    if (!parent || at === null) return null;
    return [Number(parent), at, reason.join(' ').trim(), new Date().toISOString(), leader];
  } catch (err) {
    w.log.warning(`could not read the history of timeline ${timeline}: ${(err as Error).message}`);
    return null;
  }
}
