/**
 * The activity monitor, with compute_ctl's rules (compute_tools/src/monitor.rs):
 * every tick (500 ms by default) the compute counts as active now when
 *
 * - the sessions or active time summed over pg_stat_database (all databases
 *   but postgres and the templates) changed since the last tick;
 * - a client backend is not idle (the worker's own connections and the
 *   admin role's excepted), or an idle one changed state later than the
 *   last activity (its `state_change` is then the activity's time);
 * - a walsender runs (pg_stat_replication);
 * - a subscription's apply worker runs (pg_stat_subscription);
 * - an autovacuum worker runs.
 *
 * `last_active` only moves forward. A tick that cannot query the server
 * counts as downtime (compute_pg_current_downtime_ms and
 * compute_pg_downtime_ms_total). Ticks are skipped while an apply holds
 * SPI, and the statistics are taken again as a new baseline after an apply,
 * whose own connections are not user activity.
 */
import type { WorkerContext } from '../../runtime/index';
import type { SpiGate } from './gate';
import type { ComputeMetrics } from './metrics';
import type { ComputeState } from './status';

/** Why the last tick saw activity (for logs and tests). */
export type ActivityKind = 'database_stats' | 'active_backend' | 'idle_backend' | 'walsender' | 'subscription' | 'autovacuum';

interface Snapshot {
  sessions: string;
  activeTime: number;
  nonIdle: number;
  lastIdleChange: Date | null;
  walsenders: number;
  subscriptions: number;
  autovacuum: number;
}

const QUERY = `
SELECT (SELECT coalesce(sum(sessions), 0)::text FROM pg_catalog.pg_stat_database
         WHERE datname NOT IN ('postgres', 'template0', 'template1')) AS sessions,
       (SELECT coalesce(sum(active_time), 0)::float8 FROM pg_catalog.pg_stat_database
         WHERE datname NOT IN ('postgres', 'template0', 'template1')) AS active_time,
       (SELECT count(*)::int FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type = 'client backend' AND a.pid <> ALL ($1::int[])
           AND a.usename IS DISTINCT FROM $2 AND a.state IS DISTINCT FROM 'idle') AS non_idle,
       (SELECT max(a.state_change) FROM pg_catalog.pg_stat_activity a
         WHERE a.backend_type = 'client backend' AND a.pid <> ALL ($1::int[])
           AND a.usename IS DISTINCT FROM $2 AND a.state = 'idle') AS last_idle_change,
       (SELECT count(*)::int FROM pg_catalog.pg_stat_replication WHERE application_name <> 'walproposer') AS walsenders,
       (SELECT count(*)::int FROM pg_catalog.pg_stat_subscription WHERE pid IS NOT NULL) AS subscriptions,
       (SELECT count(*)::int FROM pg_catalog.pg_stat_activity WHERE backend_type = 'autovacuum worker') AS autovacuum`;

export class ActivityMonitor {
  private previous: Snapshot | null = null;
  private lastChecked = Date.now();
  private lastUp = Date.now();
  private failing = false;
  /** Until this time (ms) statistics are taken as a baseline only. */
  private rebaselineUntil = 0;
  /** The kind of the last activity seen. */
  lastKind: ActivityKind | null = null;

  constructor(
    private readonly w: WorkerContext,
    private readonly gate: SpiGate,
    private readonly state: ComputeState,
    private readonly metrics: ComputeMetrics,
    /** Pids of the worker's own connections. */
    private readonly ownPids: () => ReadonlySet<number>,
    /** The role whose sessions are not user activity. */
    private readonly adminRole: () => string,
  ) {}

  /** The worker's own work just ended: take the next statistics as a new baseline. */
  rebaseline(ms = 1000): void {
    this.rebaselineUntil = Date.now() + ms;
  }

  private read(): Snapshot {
    const r = this.w.query<{
      sessions: string;
      active_time: number;
      non_idle: number;
      last_idle_change: Date | null;
      walsenders: number;
      subscriptions: number;
      autovacuum: number;
    }>(QUERY, [[...this.ownPids()], this.adminRole()], { timeout: 5000 })[0];
    return {
      sessions: r.sessions,
      activeTime: r.active_time,
      nonIdle: r.non_idle,
      lastIdleChange: r.last_idle_change,
      walsenders: r.walsenders,
      subscriptions: r.subscriptions,
      autovacuum: r.autovacuum,
    };
  }

  /** The activity in `now` against the previous tick, if any. */
  private judge(now: Snapshot, at: Date): { kind: ActivityKind; at: Date } | null {
    const prev = this.previous;
    const baseline = Date.now() < this.rebaselineUntil;
    if (prev && !baseline && (prev.sessions !== now.sessions || prev.activeTime !== now.activeTime)) return { kind: 'database_stats', at };
    if (now.nonIdle > 0) return { kind: 'active_backend', at };
    const last = this.state.lastActive;
    if (now.lastIdleChange && (!last || now.lastIdleChange.getTime() > last.getTime())) return { kind: 'idle_backend', at: now.lastIdleChange };
    if (now.walsenders > 0) return { kind: 'walsender', at };
    if (now.subscriptions > 0) return { kind: 'subscription', at };
    if (now.autovacuum > 0) return { kind: 'autovacuum', at };
    return null;
  }

  /**
   * One check. Returns false when the gate is busy (an apply runs) and the
   * tick was skipped. Never throws: a failed check is downtime.
   */
  async tick(): Promise<boolean> {
    if (this.gate.busy) return false;
    const started = Date.now();
    try {
      const snapshot = await this.gate.run(() => this.read());
      const seen = this.judge(snapshot, new Date());
      this.previous = snapshot;
      if (seen && this.state.noteActivity(seen.at)) this.lastKind = seen.kind;
      this.lastUp = Date.now();
      this.metrics.currentDowntime.set(0);
      if (this.failing) this.w.log.log('activity check works again');
      this.failing = false;
    } catch (err) {
      const now = Date.now();
      this.metrics.currentDowntime.set(now - this.lastUp);
      this.metrics.totalDowntime.inc(Math.max(0, now - this.lastChecked));
      if (!this.failing) this.w.log.warning(`could not check activity: ${(err as Error).message}`);
      this.failing = true;
    }
    this.lastChecked = started;
    return true;
  }
}
