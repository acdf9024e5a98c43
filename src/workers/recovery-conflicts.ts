/**
 * Ending the sessions that hold back a promoting standby's replay.
 *
 * While the startup process waits on a recovery conflict it shows it in
 * pg_stat_activity (PostgreSQL's standby.c):
 *
 * - wait event `RecoveryConflictSnapshot`: a snapshot still sees rows a
 *   cleanup record (VACUUM, pruning) removes: every client backend with a
 *   `backend_xmin` may be the one (PostgreSQL's own resolution signals those
 *   whose xmin is not past the record's, which SQL cannot see);
 * - wait event `RecoveryConflictTablespace`: temporary files in a
 *   tablespace being dropped: client backends in a transaction;
 * - wait event type `Lock`: a lock the record takes (an ACCESS EXCLUSIVE
 *   lock replayed): `pg_blocking_pids()` of the startup process;
 * - wait event `BufferPin`: a page pinned that the record cleans up: client
 *   backends in a transaction.
 *
 * A session running a query is cancelled (`pg_cancel_backend`: the query
 * ends with an error, its transaction's snapshot is released); one idle in
 * a transaction is terminated (`pg_terminate_backend`), as PostgreSQL itself
 * terminates an idle session that conflicts. Only client backends are
 * ended, never this worker or other background workers. Each session ended
 * is logged with what it was doing.
 */
import type { WorkerContext } from '../runtime/index';

/** A session is signalled again only after this long (the startup process re-checks at most every second). */
const RESIGNAL_MS = 2000;

type Blocker = {
  pid: number;
  usename: string | null;
  application_name: string | null;
  state: string | null;
  since: string | null;
  query: string | null;
};

/** What the startup process waits on, or null when it waits on no recovery conflict. */
type StartupWait = {
  pid: number;
  wait_event_type: string | null;
  wait_event: string | null;
};

const SELECT_SESSIONS = `SELECT pid, usename::text, application_name, state, coalesce(query_start, xact_start)::text AS since, left(query, 80) AS query
  FROM pg_stat_activity
 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()`;

/** Ends, during a promotion, the sessions a recovery conflict waits for; remembers whom it signalled. */
export class ReplayConflicts {
  private readonly signalled = new Map<number, number>();

  constructor(private readonly w: WorkerContext<any>) {}

  /** Look at the startup process once; end the sessions it waits for. Returns how many were signalled now. */
  resolve(): number {
    const wait = this.w.query<StartupWait>(
      `SELECT pid, wait_event_type, wait_event FROM pg_stat_activity WHERE backend_type = 'startup'`,
    )[0];
    if (!wait) return 0;
    const blockers = this.blockers(wait);
    if (blockers.length === 0) return 0;
    const now = Date.now();
    let n = 0;
    for (const b of blockers) {
      const last = this.signalled.get(b.pid);
      if (last !== undefined && now - last < RESIGNAL_MS) continue;
      this.signalled.set(b.pid, now);
      if (this.end(b, `${wait.wait_event_type}:${wait.wait_event}`)) n++;
    }
    return n;
  }

  private blockers(wait: StartupWait): Blocker[] {
    if (wait.wait_event_type === 'Lock') {
      return this.w.query<Blocker>(`${SELECT_SESSIONS} AND pid = ANY(pg_blocking_pids($1))`, [wait.pid]);
    }
    switch (wait.wait_event) {
      case 'RecoveryConflictSnapshot':
        return this.w.query<Blocker>(`${SELECT_SESSIONS} AND backend_xmin IS NOT NULL`);
      case 'RecoveryConflictTablespace':
      case 'BufferPin':
        return this.w.query<Blocker>(`${SELECT_SESSIONS} AND xact_start IS NOT NULL`);
      default:
        return [];
    }
  }

  private end(b: Blocker, conflict: string): boolean {
    const terminate = b.state !== 'active';
    try {
      const ok = this.w.query<{ ok: boolean }>(
        terminate ? 'SELECT pg_terminate_backend($1) AS ok' : 'SELECT pg_cancel_backend($1) AS ok',
        [b.pid],
      )[0].ok;
      if (ok) {
        this.w.log.warning(
          `${terminate ? 'terminated' : 'cancelled the query of'} session ${b.pid} (user ${b.usename ?? '?'}, application "${b.application_name ?? ''}", ` +
            `${b.state ?? 'unknown state'} since ${b.since ?? '?'}: ${JSON.stringify(b.query ?? '')}): ` +
            `it held back the replay this server must finish to promote (the startup process waited on ${conflict}); ` +
            'PostgreSQL would have ended it after max_standby_streaming_delay, with no member accepting writes meanwhile',
        );
      }
      return ok;
    } catch (err) {
      this.w.log.warning(`could not end session ${b.pid}, which holds back the replay this server must finish to promote: ${(err as Error).message}`);
      return false;
    }
  }
}
