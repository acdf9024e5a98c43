/**
 * Following the leader: re-pointing this standby's primary_conninfo,
 * telling whether this server's WAL still fits the leader's timeline or
 * needs pg_rewind first, and saying so when the leader's conninfo does not
 * reach it (reach.ts).
 */
import { performance } from 'perf_hooks';

import type { WorkerContext } from '../../runtime/index';
import { alterSystem } from './alter-system';
import { parseConninfo } from '../promoter/conninfo';
import type { ClusterView, HistoryLine } from './dcs-records';
import { numberToLsn, type LocalState } from './local';
import { identifyStreaming, redact } from './reach';
import { startupWait } from '../recovery-conflicts';

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
      why: `this server's WAL reaches ${numberToLsn(lsn)} on timeline ${timeline}, past ${numberToLsn(at)} where the cluster's next timeline forked off it`,
    };
  }
  return { verdict: 'follow', why: `this server's WAL ends at ${numberToLsn(lsn)} on timeline ${timeline}, not past ${numberToLsn(at)} where the cluster's next timeline forked off it` };
}

type Emit = (kind: string, detail: Record<string, unknown>, level?: 'info' | 'warning') => void;

/** A standby that has not streamed for this long checks that the leader's conninfo reaches it... */
const CHECK_AFTER_MS = 3000;
/** ...and again this often while it does not stream. */
const CHECK_EVERY_MS = 5000;
/** A standby that has not streamed, nor replayed anything, for this long although the leader answers is stuck. */
export const STUCK_MS = 30_000;

/**
 * What this member does while another one leads: a standby re-points to
 * the leader and reports `following`, `streaming` or `needs_rewind`; a
 * primary (which can follow only after a restart) terminates its client
 * sessions and reports `needs_restart` or `needs_rewind`.
 */
export class Follower {
  /** The leader this member follows, if any. */
  following: string | null = null;
  /** `restart`, `rewind` or `rebuild` when this server cannot follow as it is. */
  needs: string | null = null;
  /** Why the leader's conninfo does not let this standby stream (null: not known to fail). */
  upstreamError: string | null = null;
  private streamingNoted = false;
  private clientsTerminatedFor: string | null = null;
  /** performance.now() since which this standby follows without streaming (0: it streams). */
  private notStreamingSince = 0;
  /** The WAL receiver was seen streaming at the last loop too (see follow()). */
  private sawStreaming = false;
  private lastCheckAt = 0;
  private checking = false;
  /** When the leader's conninfo last let this standby in (performance.now(); 0: not since it stopped streaming). */
  private upstreamOkAt = 0;
  /** The replay position last seen, and since when (performance.now()) it has not moved. */
  private replayMark: { pos: number | null; since: number } = { pos: null, since: 0 };

  constructor(
    private readonly w: WorkerContext<any>,
    private readonly name: string,
    private readonly emit: Emit,
    private readonly timeoutMs: () => number,
  ) {}

  /** This member leads (again). */
  reset(): void {
    this.following = null;
    this.needs = null;
    this.upstreamError = null;
    this.notStreamingSince = 0;
    this.sawStreaming = false;
    this.upstreamOkAt = 0;
    this.clientsTerminatedFor = null;
  }

  private terminateClients(why: string): void {
    if (this.clientsTerminatedFor === why) return;
    this.clientsTerminatedFor = why;
    const n = this.w.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`,
    )[0].n;
    if (n > 0) this.w.log.log(`terminated ${n} client session(s): ${why}`);
  }

  async step(local: LocalState, view: ClusterView, leader: string): Promise<void> {
    const m = view.members.get(leader);
    const leaderTimeline = view.status?.timeline ?? m?.timeline ?? null;
    const rewind = `stop this server, run pg_rewind --source-server='${m?.conninfo ?? ''}' on its data directory, then start it: it starts as a standby of "${leader}"`;
    if (!local.recovery) {
      // a primary that does not lead: fenced; only a restart (as a standby) lets it follow
      this.terminateClients(`member "${leader}" leads the cluster`);
      // until the new leader has promoted (its timeline past this server's), whether this server
      // can follow it or needs pg_rewind is not known: say nothing rather than change one's mind
      if (leaderTimeline === null || (leaderTimeline <= local.timeline && m?.role !== 'primary')) return;
      if (leaderTimeline === local.timeline) {
        // a new leader always promotes to a timeline past the old one's: a primary on the leader's own timeline
        // promoted to the same timeline ID (after it lost the key mid-promotion); pg_rewind cannot tell them apart
        if (this.needs !== 'rebuild') {
          this.needs = 'rebuild';
          this.emit(
            'needs_rebuild',
            {
              leader,
              why: `this server is a primary on timeline ${local.timeline}, the timeline member "${leader}" leads on: two promotions took the same timeline ID, and their WAL differs from the fork on (pg_rewind compares timeline IDs and cannot see it)`,
              what: `stop this server and rebuild it from "${leader}": move its data directory aside, pg_basebackup -R from "${leader}", start it (pg_tsworker_ctl rejoin refuses it)`,
            },
            'warning',
          );
        }
        return;
      }
      const fit = fitsTimeline(local.timeline, local.lsn, leaderTimeline, view.history);
      const needs = fit.verdict === 'rewind' ? 'rewind' : 'restart';
      if (this.needs !== needs) {
        this.needs = needs;
        // Not yet past the fork, but a primary can still write WAL by itself (a checkpoint, a
        // running-xacts record, hint bits with wal_log_hints), and a fast or smart stop writes a
        // shutdown checkpoint: either takes it past the fork (review 14b finding 8, review 15
        // finding 12). pg_tsworker_ctl rejoin rewinds it then, and only then.
        const what =
          needs === 'rewind'
            ? rewind
            : `stop this server, run pg_tsworker_ctl rejoin on its data directory, then start it: it starts as a standby and follows "${leader}" ` +
              '(this server can still write WAL past the fork by itself, and its stop writes a checkpoint: rejoin runs pg_rewind if it did)';
        this.emit(needs === 'rewind' ? 'needs_rewind' : 'needs_restart', { leader, why: fit.why, what }, 'warning');
      }
      return;
    }
    if (!m) return; // the leader has not published its member key yet
    const want = followConninfo(m.conninfo, this.name);
    this.following = leader;
    if (local.primaryConninfo !== want) {
      await repoint(this.w, want, this.timeoutMs());
      this.streamingNoted = false;
      this.notStreamingSince = performance.now();
      this.upstreamError = null;
      this.emit('following', { leader, primary: redact(m.conninfo) });
      return;
    }
    if (local.receiver === 'streaming' && leaderTimeline !== null && local.timeline >= leaderTimeline) {
      // A WAL receiver the leader refuses at once (it no longer has the WAL asked for: "requested WAL
      // segment ... has already been removed") shows "streaming" for moments at each of its retries
      // (every wal_retrieve_retry_interval): it streams once seen so at two loops in a row
      const steady = this.sawStreaming;
      this.sawStreaming = true;
      if (!steady && this.notStreamingSince !== 0) return;
      if (!this.streamingNoted) this.emit('streaming', { leader, timeline: local.timeline });
      this.streamingNoted = true;
      if (this.needs !== 'rebuild') this.needs = null;
      this.upstreamError = null;
      this.notStreamingSince = 0;
      this.upstreamOkAt = 0;
      this.checkStuck(leader, local, true);
      return;
    }
    this.streamingNoted = false;
    this.sawStreaming = false;
    if (local.receiver !== 'streaming') {
      this.checkUpstream(leader, want, local.sysid);
      this.checkStuck(leader, local, false);
    }
    const fit = fitsTimeline(local.timeline, local.replayed, leaderTimeline, view.history);
    if (fit.verdict === 'rewind' && this.needs !== 'rewind') {
      this.needs = 'rewind';
      this.emit('needs_rewind', { leader, why: fit.why, what: rewind }, 'warning');
    }
  }

  /**
   * A standby whose replay has not moved for STUCK_MS, either
   *
   * - not streaming although the leader's conninfo lets it in (the leader
   *   no longer has the WAL it asks for, or its startup process stops at
   *   WAL of its own), or
   * - streaming, with WAL received past the replay position, while its
   *   startup process waits for WAL (it rejected the next record:
   *   "invalid resource manager ID", "incorrect prev-link": WAL here that
   *   the leader does not have on the same timeline, review 14 finding 13
   *   and review 14c finding K).
   *
   * PostgreSQL retries for ever, and pg_rewind cannot see a divergence
   * without a timeline fork: the standby has to be rebuilt. Said once
   * (`replay_stuck`, `needs: rebuild`, which also makes the member
   * ineligible and its /replica answer 503) until it replays again.
   */
  private checkStuck(leader: string, local: LocalState, streaming: boolean): void {
    const now = performance.now();
    if (local.replayed !== this.replayMark.pos) {
      this.replayMark = { pos: local.replayed, since: now };
      if (this.needs === 'rebuild') this.needs = null;
      return;
    }
    if (this.needs === 'rebuild') return;
    const since = streaming ? this.replayMark.since : Math.max(this.notStreamingSince, this.replayMark.since);
    if (now - since < STUCK_MS) return;
    if (streaming) {
      if (local.lsn === null || local.replayed === null || local.lsn <= local.replayed) return;
      const wait = startupWait(this.w)?.wait_event;
      if (wait !== 'RecoveryWalStream' && wait !== 'RecoveryRetrieveRetryInterval') return; // paused, delayed, or in a conflict: not stuck
    } else if (this.upstreamOkAt === 0 || this.upstreamError !== null) return;
    this.needs = 'rebuild';
    const at = local.replayed !== null ? numberToLsn(local.replayed) : 'an unknown position';
    const state = streaming
      ? `streaming, WAL received up to ${local.lsn !== null ? numberToLsn(local.lsn) : '?'}, and none replayed for ${Math.round((now - since) / 1000)} s: the startup process waits for WAL at ${at}`
      : `not streaming and no WAL replayed for ${Math.round((now - since) / 1000)} s although member "${leader}" lets this standby in: its replay stops at ${at}`;
    this.emit(
      'replay_stuck',
      {
        leader,
        replayed: local.replayed !== null ? numberToLsn(local.replayed) : null,
        timeline: local.timeline,
        why: `${state} on timeline ${local.timeline}`,
        what:
          `the server log says why at ${at} ("invalid record length", "incorrect prev-link", "invalid resource manager ID": WAL here that "${leader}" does not have on the same timeline, which pg_rewind cannot see; ` +
          `"requested WAL segment ... has already been removed": "${leader}" recycled WAL this standby needs); ` +
          `rebuild this standby from "${leader}": stop it, move its data directory aside, pg_basebackup -R from "${leader}", start it`,
      },
      'warning',
    );
  }

  /**
   * A standby that does not stream: once in a while, in the background,
   * open a replication session with the leader's conninfo as its WAL
   * receiver would, and say why it fails (event `upstream_unreachable`,
   * the status's `upstream`), or that it works again (`upstream_reachable`).
   */
  private checkUpstream(leader: string, conninfo: string, sysid: string): void {
    const now = performance.now();
    if (this.notStreamingSince === 0) this.notStreamingSince = now;
    if (this.checking || now - this.notStreamingSince < CHECK_AFTER_MS || now - this.lastCheckAt < CHECK_EVERY_MS) return;
    this.checking = true;
    this.lastCheckAt = now;
    const shown = redact(conninfo);
    identifyStreaming(conninfo, Math.max(this.timeoutMs(), 2000))
      .then(
        (id) => (id.sysid === sysid ? null : `it reaches a server with system identifier ${id.sysid}, not this cluster's ${sysid}`),
        (err: Error) => err.message,
      )
      .then((problem) => {
        if (this.following !== leader) return;
        if (problem === null) {
          this.upstreamOkAt = performance.now();
          if (this.upstreamError !== null) this.emit('upstream_reachable', { leader, primary: shown });
          this.upstreamError = null;
          return;
        }
        const error = `cannot stream from member "${leader}" with its conninfo (${shown}): ${problem}`;
        if (error !== this.upstreamError) {
          this.emit(
            'upstream_unreachable',
            { leader, primary: shown, error: problem, what: `check tsworker_promoter.conninfo on member "${leader}" (host, port, user) and its pg_hba.conf "replication" line` },
            'warning',
          );
        }
        this.upstreamError = error;
      })
      .finally(() => {
        this.checking = false;
      });
  }
}
