/**
 * Who may take the leader key when nobody holds it: the rules of an
 * election, as a pure function of what this member knows.
 *
 * Each eligible member decides for itself; only the most advanced one (by
 * received WAL, then priority, then name) tries, and the atomic create in
 * etcd settles any race between members whose views differ. Rules follow
 * Patroni's `is_healthiest_node`: a member yields to a live primary, to a
 * fenced primary back in etcd that holds at least as much WAL, and to
 * a more advanced peer; it is not eligible with the `nofailover` tag, a
 * system identifier that is not the cluster's, a timeline behind the
 * cluster's, or a lag beyond `maximum_lag_on_failover` from the leader's
 * last published position. In synchronous mode only a member of the
 * synchronous set may take the key, and only once it has compared itself
 * with enough of that set to be sure it holds every acknowledged commit
 * (`ANY k` of `n` members: at least n − k + 1 of them, itself included);
 * with an empty set only the former leader, in recovery or not, and only
 * when no member holds more WAL.
 */
import { numberToLsn } from './local';
import type { SyncState } from './dcs-records';

/** A member as the election sees it. */
export interface Candidate {
  name: string;
  /** Greatest of received and replayed WAL (standby), or flushed WAL (primary), in bytes. */
  lsn: number | null;
  timeline: number | null;
  priority: number;
  nofailover: boolean;
  sysid: string;
  /** False for a server out of recovery. */
  recovery: boolean;
  /** A primary whose fence is open. */
  writable: boolean;
  /** Where the figures come from: a direct query, or only the member's key in etcd. */
  source: 'self' | 'direct' | 'etcd';
}

export interface ElectionInput {
  me: Candidate;
  peers: Candidate[];
  /** The cluster's system identifier (`initialize`). */
  initialize: string | null;
  /** The cluster's timeline as last published by a leader. */
  clusterTimeline: number | null;
  /** The leader's last published WAL position. */
  leaderOptime: number | null;
  maxLagBytes: number;
  /** The synchronous state when synchronous mode is active, else null. */
  sync: SyncState | null;
}

export type Verdict = { take: true; why: string } | { take: false; why: string };

/** Whether a ranks before b: more WAL, then higher priority, then the smaller name. */
export function ranksBefore(a: Candidate, b: Candidate): boolean {
  const la = a.lsn ?? -1;
  const lb = b.lsn ?? -1;
  if (la !== lb) return la > lb;
  if (a.priority !== b.priority) return a.priority > b.priority;
  return a.name < b.name;
}

function eligible(c: Candidate, input: ElectionInput): string | null {
  if (c.nofailover || c.priority <= 0) return 'the nofailover tag (or priority 0) is set';
  if (input.initialize !== null && c.sysid !== input.initialize) return `system identifier ${c.sysid} is not the cluster's (${input.initialize})`;
  if (c.lsn === null) return 'its WAL position is unknown';
  if (input.clusterTimeline !== null && c.timeline !== null && c.timeline < input.clusterTimeline) {
    return `timeline ${c.timeline} is behind the cluster's timeline ${input.clusterTimeline}`;
  }
  if (input.leaderOptime !== null && input.leaderOptime - c.lsn > input.maxLagBytes) {
    return `it is ${input.leaderOptime - c.lsn} bytes behind the leader's last position ${numberToLsn(input.leaderOptime)}, more than maximum_lag_on_failover (${input.maxLagBytes} bytes)`;
  }
  return null;
}

/** Decide whether this member takes the leader key now. */
export function elect(input: ElectionInput): Verdict {
  const { me } = input;
  const why = eligible(me, input);
  if (why) return { take: false, why: `not eligible: ${why}` };
  const live = input.peers.find((p) => p.source === 'direct' && !p.recovery && p.writable && p.sysid === me.sysid);
  if (live) return { take: false, why: `member "${live.name}" is a primary that accepts writes` };
  // a primary that lost the key (fenced: etcd was out of reach) but answers and is back in etcd (it is a
  // member there) takes the key back itself: promoting this member instead would drop what only it has
  const former = input.sync
    ? undefined
    : input.peers.find((p) => p.source === 'direct' && !p.recovery && p.sysid === me.sysid && eligible(p, input) === null && (p.lsn as number) >= (me.lsn as number));
  if (former && me.recovery) {
    return { take: false, why: `member "${former.name}" is a primary (fenced) at ${numberToLsn(former.lsn as number)}, not behind this member (${numberToLsn(me.lsn as number)}): it takes the leader key back` };
  }

  let compared = input.peers.filter((p) => p.recovery && eligible(p, input) === null);
  if (input.sync) {
    const set = new Set(input.sync.members);
    // the former leader (the primary every acknowledged commit was made on) may take the key back, as in Patroni
    if (input.sync.leader === me.name && !me.recovery) return { take: true, why: 'synchronous mode: the former leader takes the key back' };
    // with an empty set every acknowledged commit was made on the former leader alone: restarted (a server
    // start without the leader key is a standby), it takes the key back, unless a member holds more WAL
    if (input.sync.leader === me.name && set.size === 0) {
      const more = input.peers.find((p) => p.lsn !== null && p.lsn > (me.lsn as number) && p.sysid === me.sysid);
      if (more) return { take: false, why: `synchronous mode: the former leader, but member "${more.name}" holds more WAL (${numberToLsn(more.lsn as number)})` };
      return { take: true, why: 'synchronous mode: the former leader (the synchronous set was empty) takes the key back from recovery' };
    }
    if (set.size === 0) return { take: false, why: 'synchronous mode: no member is a synchronous standby, so none may take the leader key' };
    if (!set.has(me.name)) return { take: false, why: `synchronous mode: not in the synchronous set (${[...set].join(', ')})` };
    // only direct answers count: a published position may be older than what the member holds
    const known = 1 + input.peers.filter((p) => set.has(p.name) && p.source === 'direct' && p.lsn !== null && p.recovery).length;
    const needed = set.size - Math.min(input.sync.quorum, set.size) + 1;
    if (known < needed) {
      return { take: false, why: `synchronous mode: compared with ${known} of ${set.size} synchronous members, ${needed} needed to hold every acknowledged commit` };
    }
    compared = input.peers.filter((p) => set.has(p.name) && p.source === 'direct' && p.recovery && p.lsn !== null);
  }
  // a fenced former primary yields only to a standby with more WAL: the standbys yield to it at equal WAL
  // (above), so breaking that tie by priority or name here would leave nobody to take the key (review 14b
  // finding 12: an election deadlocked after etcd and the old leader's worker were frozen together)
  const formerPrimary = !me.recovery && !input.sync;
  const ahead = compared.find((p) => (formerPrimary ? (p.lsn ?? -1) > (me.lsn as number) : ranksBefore(p, me)));
  if (ahead) {
    return {
      take: false,
      why: `member "${ahead.name}" ranks before this one (WAL ${ahead.lsn === null ? '?' : numberToLsn(ahead.lsn)}, priority ${ahead.priority}; here ${numberToLsn(me.lsn as number)}, priority ${me.priority})`,
    };
  }
  return {
    take: true,
    why: `the most advanced of ${compared.length + 1} eligible member(s) at ${numberToLsn(me.lsn as number)}`,
  };
}
