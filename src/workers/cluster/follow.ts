/**
 * Following the leader: re-pointing this standby's primary_conninfo, and
 * telling whether this server's WAL still fits the leader's timeline or
 * needs pg_rewind first.
 */
import type { WorkerContext } from '../../runtime/index';
import { alterSystem } from './alter-system';
import { parseConninfo } from '../promoter/conninfo';
import type { HistoryLine } from './dcs';
import { numberToLsn } from './local';

/** Quote a conninfo value when it needs it (libpq rules). */
function quoteValue(v: string): string {
  return v === '' || /[\s'\\]/.test(v) ? `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'` : v;
}

/**
 * The primary_conninfo with which this member follows a leader: the
 * leader's conninfo, with application_name set to this member's name (so
 * that the leader's pg_stat_replication and synchronous_standby_names name
 * it).
 */
export function followConninfo(leaderConninfo: string, memberName: string): string {
  const parts = parseConninfo(leaderConninfo);
  parts.application_name = memberName;
  return Object.entries(parts)
    .map(([k, v]) => `${k}=${quoteValue(v)}`)
    .join(' ');
}

/** Point primary_conninfo at `conninfo` (ALTER SYSTEM, then a reload: the WAL receiver restarts with it). */
export function repoint(w: WorkerContext<any>, conninfo: string, timeoutMs: number): Promise<void> {
  return alterSystem(w, { primary_conninfo: conninfo }, timeoutMs);
}

/** Whether this server can follow the leader's timeline as it is. */
export interface Fit {
  verdict: 'follow' | 'rewind' | 'unknown';
  why: string;
}

/**
 * Compare this server's end of WAL (`lsn` on `timeline`) with where the
 * cluster's history forked off that timeline. WAL past the fork point was
 * never on the new timeline: the server cannot stream from the leader
 * without pg_rewind (PostgreSQL itself refuses: "new timeline forked off
 * current database system timeline before current recovery point").
 */
export function fitsTimeline(timeline: number, lsn: number | null, leaderTimeline: number | null, history: HistoryLine[]): Fit {
  if (leaderTimeline === null || lsn === null) return { verdict: 'unknown', why: 'the leader\'s timeline or this server\'s position is not known yet' };
  if (timeline === leaderTimeline) return { verdict: 'follow', why: `same timeline ${timeline}` };
  if (timeline > leaderTimeline) {
    return { verdict: 'rewind', why: `this server is on timeline ${timeline}, ahead of the leader's timeline ${leaderTimeline}` };
  }
  const fork = history.find((h) => h[0] === timeline);
  if (!fork) return { verdict: 'unknown', why: `the cluster's history has no switch off timeline ${timeline}` };
  const at = fork[1];
  if (lsn > at) {
    return {
      verdict: 'rewind',
      why: `this server's WAL reaches ${numberToLsn(lsn)} on timeline ${timeline}, past ${numberToLsn(at)} where timeline ${timeline + 1} forked off`,
    };
  }
  return { verdict: 'follow', why: `this server's WAL ends at ${numberToLsn(lsn)}, not past the fork of timeline ${timeline} at ${numberToLsn(at)}` };
}
