/**
 * Asking another member's PostgreSQL directly, within a timeout: is it in
 * recovery, does it accept writes, how far has it received WAL. An election
 * compares these answers (fresher than what the members published in etcd)
 * with the member keys.
 */
import type { ClusterView } from './dcs-records';
import type { Candidate } from './election';
import { lsnToNumber } from './local';
import { queryOnce } from './reach';

/** A member's answer. */
export interface PeerAnswer {
  recovery: boolean;
  /** Writes accepted: a primary whose fence is open (or that has no fence). */
  writable: boolean;
  /** Flushed position on a primary; the greater of received and replayed on a standby. */
  lsn: number | null;
  timeline: number | null;
  sysid: string;
  /** Its wal_receiver_status_interval in ms (0: no periodic replies). */
  statusIntervalMs: number;
}

/** Ask one member; rejects when it does not answer within `timeoutMs`. */
export async function askPeer(conninfo: string, timeoutMs: number): Promise<PeerAnswer> {
  const row = await queryOnce<{ recovery: boolean; lsn: string | null; fenced: string | null; tli: number | null; sysid: string; status_ms: number | null }>(
    conninfo,
    timeoutMs,
    `SELECT pg_is_in_recovery() AS recovery,
            CASE WHEN pg_is_in_recovery()
                 THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
                 ELSE pg_current_wal_flush_lsn() END::text AS lsn,
            current_setting('tsworker.fenced', true) AS fenced,
            CASE WHEN pg_is_in_recovery()
                 THEN coalesce((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
                 ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS tli,
            (SELECT system_identifier::text FROM pg_control_system()) AS sysid,
            (SELECT setting::int * CASE unit WHEN 's' THEN 1000 ELSE 1 END FROM pg_settings
              WHERE name = 'wal_receiver_status_interval') AS status_ms`,
    false,
  );
  return {
    recovery: row.recovery,
    writable: !row.recovery && row.fenced !== 'on',
    lsn: lsnToNumber(row.lsn),
    timeline: row.tli,
    sysid: row.sysid,
    statusIntervalMs: Number(row.status_ms ?? 10_000),
  };
}

/**
 * Every other member of the cluster as an election sees it: what it
 * published in etcd, replaced by its direct answer when it gives one within
 * `timeoutMs` (the members are asked at once).
 */
export function askMembers(view: ClusterView, me: string, timeoutMs: number): Promise<Candidate[]> {
  const peers = [...view.members.entries()].filter(([n]) => n !== me);
  return Promise.all(
    peers.map(async ([name, m]): Promise<Candidate> => {
      const published: Candidate = {
        name,
        lsn: m.lsn,
        timeline: m.timeline,
        priority: m.priority,
        nofailover: m.nofailover,
        sysid: m.sysid,
        recovery: m.role === 'replica',
        writable: m.role === 'primary' && m.state === 'running',
        source: 'etcd',
      };
      try {
        const a = await askPeer(m.conninfo, timeoutMs);
        // a standby whose WAL receiver stopped (its primary is gone) reads as on its last restartpoint's
        // timeline, which may be several switches old; the timeline it published is the one it streamed on
        const timeline = a.recovery && a.timeline !== null && m.timeline !== null ? Math.max(a.timeline, m.timeline) : a.timeline;
        return { ...published, lsn: a.lsn, timeline, recovery: a.recovery, writable: a.writable, sysid: a.sysid, source: 'direct' };
      } catch {
        return published;
      }
    }),
  );
}

/**
 * The member that last wrote `status` (the last leader), asked directly
 * when its member key is gone: a leader whose lease expired while it could
 * not reach etcd in maintenance mode still accepts writes (review 14b
 * findings 9 and 10). Null when it is in the view anyway, unknown, or does
 * not answer within `timeoutMs`.
 */
export async function askLastLeader(view: ClusterView, timeoutMs: number): Promise<Candidate | null> {
  const s = view.status;
  if (!s?.leader || !s.conninfo || view.members.has(s.leader)) return null;
  try {
    const a = await askPeer(s.conninfo, timeoutMs);
    return {
      name: s.leader,
      lsn: a.lsn,
      timeline: a.timeline,
      priority: 0,
      nofailover: true,
      sysid: a.sysid,
      recovery: a.recovery,
      writable: a.writable,
      source: 'direct',
    };
  } catch {
    return null;
  }
}
