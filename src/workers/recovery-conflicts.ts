/**
 * Ending the sessions that hold back a promoting standby's replay.
 *
 * While the startup process waits on a recovery conflict it shows it in
 * pg_stat_activity and pg_locks (PostgreSQL's standby.c):
 *
 * - wait event `RecoveryConflictSnapshot`: a snapshot still sees rows a
 *   cleanup record (VACUUM, pruning) removes: every session with a
 *   `backend_xmin` may be the one (PostgreSQL's own resolution signals those
 *   whose xmin is not past the record's, in the record's database, which
 *   SQL cannot see);
 * - wait event type `Lock`: a lock the record takes (an ACCESS EXCLUSIVE
 *   lock replayed for DROP, TRUNCATE, ALTER TABLE, a VACUUM truncating a
 *   table): the sessions holding a granted lock on the object of the
 *   startup process's ungranted one in `pg_locks` (pg_blocking_pids() does
 *   not see the startup process, an auxiliary process);
 * - wait event `BufferPin` (a page pinned that the record cleans up) or
 *   `RecoveryConflictTablespace` (temporary files in a tablespace being
 *   dropped): the sessions in a transaction, except the one that asked for
 *   this promotion (its call holds neither).
 *
 * Sessions are client backends and background workers, never this worker.
 * A session running a query is cancelled (`pg_cancel_backend`: the query
 * ends with an error, its transaction's snapshot and locks go); one idle in
 * a transaction, or one still in the way RESIGNAL_MS after its cancel (a
 * PL/pgSQL block can catch a cancel and go on), is terminated
 * (`pg_terminate_backend`), as PostgreSQL itself terminates what a cancel
 * cannot resolve. Each signal is logged with what the session was doing;
 * while the startup process waits on a conflict with no session to end,
 * that is logged every REPORT_MS.
 */
import type { WorkerContext } from '../runtime/index';

/** A session still in the way this long after its cancel is terminated (the startup process re-checks at most every second). */
const RESIGNAL_MS = 2000;
/** How often a conflict with no session to end is reported. */
const REPORT_MS = 5000;
/** After the promotion, how long a worker it terminated is waited for to exit before it is started again, and how often it is looked at. */
const RESTART_WAIT_MS = 60_000;
const RESTART_CHECK_MS = 500;

type Blocker = {
  pid: number;
  backend_type: string;
  usename: string | null;
  application_name: string | null;
  datname: string | null;
  state: string | null;
  since: string | null;
  query: string | null;
};

/** What the startup process waits on. */
export type StartupWait = {
  pid: number;
  wait_event_type: string | null;
  wait_event: string | null;
};

/** What this standby's startup process waits on now (pg_stat_activity); undefined when there is none. */
export function startupWait(w: WorkerContext<any>): StartupWait | undefined {
  return w.query<StartupWait>(`SELECT pid, wait_event_type, wait_event FROM pg_stat_activity WHERE backend_type = 'startup'`)[0];
}

const SESSIONS = `SELECT a.pid, a.backend_type, a.usename::text, a.application_name, a.datname::text, a.state,
       coalesce(a.query_start, a.xact_start)::text AS since, left(a.query, 80) AS query
  FROM pg_stat_activity a`;
/**
 * PostgreSQL's own processes (GetBackendTypeDesc, 15 to 18). Every other
 * backend_type is a client backend or a background worker, which shows its
 * bgw_type there ("background worker" only when it has none): pg_tsworker's
 * workers show their names.
 */
const AUXILIARY = [
  'archiver', 'autovacuum launcher', 'autovacuum worker', 'background writer', 'checkpointer', 'io worker', 'logger',
  'slotsync worker', 'standalone backend', 'startup', 'walreceiver', 'walsender', 'walsummarizer', 'walwriter',
];
const ENDABLE = `a.backend_type NOT IN (${AUXILIARY.map((t) => `'${t}'`).join(', ')}) AND a.pid <> pg_backend_pid()`;

/** The granted locks on the object of each lock the startup process waits for. */
const LOCK_HOLDERS = `${SESSIONS}
  JOIN pg_locks h ON h.pid = a.pid AND h.granted
  JOIN pg_locks w ON w.pid = $1 AND NOT w.granted AND h.locktype = w.locktype
   AND h.database IS NOT DISTINCT FROM w.database AND h.relation IS NOT DISTINCT FROM w.relation
   AND h.page IS NOT DISTINCT FROM w.page AND h.tuple IS NOT DISTINCT FROM w.tuple
   AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid AND h.transactionid IS NOT DISTINCT FROM w.transactionid
   AND h.classid IS NOT DISTINCT FROM w.classid AND h.objid IS NOT DISTINCT FROM w.objid
   AND h.objsubid IS NOT DISTINCT FROM w.objsubid
 WHERE ${ENDABLE}`;

/** Ends, during a promotion, the sessions a recovery conflict waits for; remembers whom it signalled. */
export class ReplayConflicts {
  /** Sessions signalled: when, and whether they were terminated. */
  private readonly signalled = new Map<number, { at: number; terminated: boolean }>();
  /** Background workers terminated: their pid by backend_type (for pg_tsworker's workers, the worker's name). */
  private readonly endedWorkers = new Map<string, number>();
  private lastReport = 0;

  /**
   * @param spare the backend that asked for this promotion (a switchover or
   *   failover called on this member), never ended for a buffer pin or a
   *   tablespace; null for none.
   */
  constructor(
    private readonly w: WorkerContext<any>,
    private readonly spare: number | null = null,
  ) {}

  /** Sessions signalled so far (each counted once). */
  get sessionsEnded(): number {
    return this.signalled.size;
  }

  /** Look at the startup process once and end the sessions it waits for. */
  resolve(): void {
    const wait = startupWait(this.w);
    if (!wait) return;
    const conflict = `${wait.wait_event_type}:${wait.wait_event}`;
    const blockers = this.blockers(wait);
    if (blockers === null) return; // not a recovery conflict
    const now = Date.now();
    if (blockers.length === 0) {
      if (now - this.lastReport >= REPORT_MS) {
        this.lastReport = now;
        this.w.log.warning(
          `the promotion waits: the startup process waits on ${conflict}, and no client session or background worker that may hold it back was found; ` +
            'PostgreSQL ends what does after max_standby_streaming_delay (pg_stat_activity and pg_locks show the sessions)',
        );
      }
      return;
    }
    for (const b of blockers) {
      const last = this.signalled.get(b.pid);
      if (last && (last.terminated || now - last.at < RESIGNAL_MS)) continue;
      const terminate = last !== undefined || b.state !== 'active';
      if (this.signal(b, terminate, conflict, last !== undefined)) {
        this.signalled.set(b.pid, { at: now, terminated: terminate });
        if (terminate && b.backend_type !== 'client backend') this.endedWorkers.set(b.backend_type, b.pid);
      }
    }
  }

  /**
   * Once the promotion is done: start again the pg_tsworker workers it
   * terminated. PostgreSQL ends a background worker in a recovery conflict
   * with FATAL, and the postmaster restarts it; a pg_tsworker worker takes
   * SIGTERM for a stop request (exit 0, not restarted), and would stay
   * stopped on the new primary. Each is started with tsworker.start() once
   * its process is gone (looked at every RESTART_CHECK_MS, in the
   * background, for up to RESTART_WAIT_MS), whatever its `restart` policy:
   * it ran before the promotion ended it. Without the extension in this
   * worker's database, a WARNING says what to run.
   */
  startEndedWorkers(): void {
    const left = new Map(this.endedWorkers);
    if (left.size === 0) return;
    const until = Date.now() + RESTART_WAIT_MS;
    let installed: boolean | null = null;
    const tick = (): void => {
      try {
        installed ??= this.w.query<{ ok: boolean }>(`SELECT to_regclass('tsworker.stat_workers') IS NOT NULL AND to_regprocedure('tsworker.start(text)') IS NOT NULL AS ok`)[0].ok;
        for (const [name, pid] of [...left]) {
          if (!installed) {
            this.w.log.warning(`background worker "${name}" (pid ${pid}) was terminated by the promotion: if it is a pg_tsworker worker, it stays stopped until SELECT tsworker.start('${name}') (the extension is not in this worker's database)`);
            left.delete(name);
            continue;
          }
          const row = this.w.query<{ pid: number | null; state: string }>('SELECT pid, state FROM tsworker.stat_workers WHERE name = $1', [name])[0];
          if (row?.state === 'stopped' && row.pid === null) {
            const n = this.w.query<{ n: number }>('SELECT tsworker.start($1) AS n', [name])[0].n;
            if (n > 0) this.w.log.log(`started worker "${name}" again (tsworker.start): the promotion had terminated it (pid ${pid}) because it held back the replay`);
            else this.w.log.warning(`could not start worker "${name}" again after the promotion terminated it (pid ${pid}): see its last_error in tsworker.stat_workers`);
            left.delete(name);
          } else if (!row || (row.pid !== null && row.pid !== pid) || (row.state !== 'stopping' && row.pid === null)) {
            left.delete(name); // not a pg_tsworker worker, started again already, or ended otherwise (failed, disabled: its policy decides)
          } else if (Date.now() > until) {
            this.w.log.warning(`worker "${name}" (pid ${pid}), terminated by the promotion, has not exited within ${RESTART_WAIT_MS / 1000} s: it is not started again`);
            left.delete(name);
          }
        }
      } catch (err) {
        this.w.log.warning(`could not start again the workers the promotion terminated (${[...left.keys()].join(', ')}): ${(err as Error).message}`);
        return;
      }
      if (left.size > 0) setTimeout(tick, RESTART_CHECK_MS);
    };
    setTimeout(tick, RESTART_CHECK_MS);
  }

  /** The sessions that may hold the replay back; null when the startup process waits on no recovery conflict. */
  private blockers(wait: StartupWait): Blocker[] | null {
    if (wait.wait_event_type === 'Lock') return this.w.query<Blocker>(LOCK_HOLDERS, [wait.pid]);
    switch (wait.wait_event) {
      case 'RecoveryConflictSnapshot':
        return this.w.query<Blocker>(`${SESSIONS} WHERE ${ENDABLE} AND a.backend_xmin IS NOT NULL`);
      case 'RecoveryConflictTablespace':
      case 'BufferPin':
        return this.w.query<Blocker>(`${SESSIONS} WHERE ${ENDABLE} AND a.xact_start IS NOT NULL AND a.pid <> $1`, [this.spare ?? 0]);
      default:
        return null;
    }
  }

  private signal(b: Blocker, terminate: boolean, conflict: string, again: boolean): boolean {
    try {
      const ok = this.w.query<{ ok: boolean }>(terminate ? 'SELECT pg_terminate_backend($1) AS ok' : 'SELECT pg_cancel_backend($1) AS ok', [b.pid])[0].ok;
      if (ok) {
        const who = `${b.backend_type} ${b.pid} (user ${b.usename ?? '?'}, database ${b.datname ?? '?'}, application "${b.application_name ?? ''}", ${b.state ?? 'no state'} since ${b.since ?? '?'}: ${JSON.stringify(b.query ?? '')})`;
        this.w.log.warning(
          `${terminate ? 'terminated' : 'cancelled the query of'} ${who}${again ? `, still in the way ${RESIGNAL_MS} ms after its cancel` : ''}: ` +
            `it may hold back the replay this server must finish to promote (the startup process waits on ${conflict}); ` +
            'PostgreSQL would end it after max_standby_streaming_delay, with no member accepting writes meanwhile',
        );
      }
      return ok;
    } catch (err) {
      this.w.log.warning(`could not end session ${b.pid}, which may hold back the replay this server must finish to promote: ${(err as Error).message}`);
      return false;
    }
  }
}
