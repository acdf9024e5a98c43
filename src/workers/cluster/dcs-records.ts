/**
 * The records of a cluster in etcd, laid out as Patroni lays them out under
 * `<namespace>/<scope>/`, and the shape of each value (dcs.ts reads and
 * writes them):
 *
 *   initialize       the cluster's system identifier (created once)
 *   leader           the leading member's name, attached to its lease
 *   members/<name>   each member's state (JSON, MemberData), attached to its lease
 *   status           the leader's last WAL position and timeline (JSON)
 *   history          one line per promotion (JSON array of HistoryLine)
 *   sync             synchronous mode: the leader and its synchronous set (JSON, SyncState)
 *   failover         an operator's switchover or manual failover request (JSON,
 *                    FailoverRequest, attached to a lease that ends at the
 *                    request's deadline)
 *   config           cluster-wide state set by operators: {"pause": true} (JSON, ClusterConfig)
 *   operations       the last OPERATIONS_KEPT operator actions and their outcome (JSON array
 *                    of OperationLine): switchover, failover, pause, resume, rejoin
 */

/** What a member publishes about itself in `members/<name>`. */
export interface MemberData {
  /** How other members (and standbys following it) connect to this server. */
  conninfo: string;
  /** `primary` (not in recovery) or `replica`. */
  role: 'primary' | 'replica';
  /** `running`, or `fenced` for a primary that refuses writes. */
  state: string;
  timeline: number | null;
  /** WAL position in bytes: flushed on a primary, greatest of received and replayed on a standby. */
  lsn: number | null;
  /** Replayed position in bytes (standby). */
  replayed: number | null;
  /** Whom a standby streams from (`host:port`), or null. */
  streaming_from: string | null;
  priority: number;
  nofailover: boolean;
  nosync: boolean;
  /** The system identifier of this data directory. */
  sysid: string;
  /** URL of the health endpoints, if any. */
  api_url: string | null;
  /** What this member cannot do: its own conninfo does not reach it, or it cannot stream from the leader (null: nothing known). */
  error?: string | null;
  /** When the member last published (ISO 8601). */
  at: string;
}

/** A line of `history`: [parent timeline, switch LSN (bytes), reason, time, new leader], as Patroni writes it. */
export type HistoryLine = [number, number, string, string, string];

/** How many lines `operations` keeps (the oldest go first). */
export const OPERATIONS_KEPT = 100;

/**
 * A line of `operations`: one operator action and how it ended, written by
 * whoever ran it (the SQL function's helper or pg_tsworker_ctl, ctl.ts; a
 * rejoin, rejoin.ts). A promotion it caused is also a `history` line.
 */
export interface OperationLine {
  /** When it ended (ISO 8601). */
  at: string;
  op: 'switchover' | 'failover' | 'pause' | 'resume' | 'rejoin';
  /** The member it ran on (the caller's; for rejoin, the member rejoined). */
  member: string;
  /** The candidate asked for (switchover, failover). */
  candidate?: string | null;
  /** `done`, `unchanged` (pause/resume already in that state), `refused` (with a SQLSTATE), or rejoin's action (`standby`, `rewind`, `none`). */
  outcome: string;
  /** SQLSTATE of a refusal. */
  code?: string;
  /** A refusal's message, or what a rejoin did. */
  detail?: string;
  /** What the SQL function returned (switchover, failover), as it returned it. */
  result?: Record<string, unknown>;
}

/** `sync`: the leader and the members that may take its place without losing an acknowledged commit. */
export interface SyncState {
  leader: string;
  members: string[];
  /** k of `ANY k (members)`. */
  quorum: number;
}

/**
 * `failover`: a switchover or manual failover asked by an operator
 * (tsworker.switchover(), tsworker.failover(), pg_tsworker_ctl), as
 * Patroni's /failover key (`leader`, `member`), with the progress the
 * members write into it.
 */
export interface FailoverRequest {
  id: string;
  kind: 'switchover' | 'failover';
  /** Switchover: the leader to move away from. */
  leader: string | null;
  /** The candidate. */
  member: string | null;
  /** Failover: go ahead although another member holds more WAL. */
  force: boolean;
  /** The member whose SQL function (or the CLI) asked. */
  requested_by: string;
  /** The backend that asked there (a leader does not end that session when it stops writes). */
  pid?: number;
  requested_at: string;
  /** ISO 8601 time after which nobody starts acting on the request. */
  deadline: string;
  /**
   * requested → accepted (the leader checks the candidate, checkpoints) →
   * fenced (writes stopped at `lsn`) → handed_over (the candidate holds the
   * leader key) → done (the candidate accepts writes); or refused (`reason`).
   */
  state: 'requested' | 'accepted' | 'fenced' | 'handed_over' | 'done' | 'refused';
  reason?: string;
  /** Switchover: the old leader's last WAL position once writes stopped (bytes). */
  lsn?: number;
  /** When the old leader stopped accepting writes (ISO 8601). */
  fenced_at?: string;
  /** The new leader's timeline once promoted. */
  timeline?: number;
  /** When the new leader accepted writes (ISO 8601). */
  done_at?: string;
}

/** `config`: what operators set for the whole cluster. */
export interface ClusterConfig {
  /** Maintenance mode: no automatic failover, no fencing (Patroni's `pause`). */
  pause?: boolean;
  paused_at?: string;
  paused_by?: string;
}

/**
 * The `status` key (Patroni's `/status`: the leader's position), written by
 * the leader each loop under its leader key. `leader` and `conninfo` name
 * the member that wrote it: its key may be gone (its lease expired while it
 * could not reach etcd) while its server still accepts writes, as in
 * maintenance mode, so an operator's failover and resume ask it directly.
 */
export interface LeaderStatus {
  optime: number;
  timeline: number;
  leader?: string;
  conninfo?: string;
}

/** One read of the whole cluster. */
export interface ClusterView {
  initialize: string | null;
  leader: { name: string; lease: string } | null;
  members: Map<string, MemberData & { lease: string }>;
  status: LeaderStatus | null;
  /** `status`'s mod revision ('0': no such key); the leader writes it each loop (expiry.ts). */
  statusRevision: string;
  history: HistoryLine[];
  sync: (SyncState & { modRevision: string }) | null;
  failover: (FailoverRequest & { lease: string; modRevision: string }) | null;
  config: ClusterConfig | null;
  /** etcd's revision at the read. */
  revision: string;
}

/** The lease a member renews: its ID and the TTL etcd granted (seconds, at least the one asked for). */
export interface Lease {
  id: string;
  ttl: number;
}
