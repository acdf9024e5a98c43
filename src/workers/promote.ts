/**
 * Promoting this standby, for both modes of the promoter.
 *
 * The request (`pg_promote(wait => false)`) is repeated every 200 ms until
 * the server has left recovery. In bench/failover one promotion took
 * 5045 ms (`promoteMs` of a `promoted` event) after a single request, as
 * the two-node promoter's 5.04 s trial did: 5 s is both how long
 * PostgreSQL 15's startup process sleeps waiting for streamed WAL
 * (`WaitLatch(..., 5000L, WAIT_EVENT_RECOVERY_WAL_STREAM)`) and the default
 * `wal_retrieve_retry_interval`, so the startup process evidently slept
 * through the request's wake-up. A repeated request signals it again;
 * repeating is harmless (it only signals the startup process once more).
 *
 * The promotion ends only once everything received is replayed. A session
 * on this standby that conflicts with a record still to replay (its
 * snapshot still sees rows the record removes, it holds a lock the record
 * takes, or it pins a page the record cleans up) holds the replay back
 * until PostgreSQL cancels it after `max_standby_streaming_delay` (30 s by
 * default; never with -1), and for that long no member accepts writes. So
 * once the promotion has waited CONFLICT_GRACE_MS, the sessions the startup
 * process waits for are ended at once (recovery-conflicts.ts), as
 * PostgreSQL would end them after the delay.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { WorkerContext } from '../runtime/index';
import { ReplayConflicts } from './recovery-conflicts';

const POLL_MS = 10;
/** The file pg_promote() writes in the data directory for the startup process (PostgreSQL's PROMOTE_SIGNAL_FILE). */
const PROMOTE_SIGNAL_FILE = 'promote';
const REPEAT_MS = 200;
/** How long a promotion waits for a recovery conflict to end by itself before it ends the sessions concerned. */
export const CONFLICT_GRACE_MS = 500;
/** How often the startup process's wait is looked at after that. */
const CONFLICT_CHECK_MS = 100;

/** How a promotion waits. */
export interface PromoteOptions {
  /**
   * Runs while waiting, at most every `everyMs`. When it throws (cluster
   * mode: the leader lease is lost), the promotion is withdrawn and
   * promoteAndWait returns with `withdrawn`.
   */
  between?: { everyMs: number; fn: () => Promise<void> };
  /** The backend that asked for this promotion (a switchover or failover called here): not ended for a buffer pin. */
  spare?: number | null;
}

/** How a promotion ended. */
export interface PromoteResult {
  ok: boolean;
  ms: number;
  requests: number;
  sessionsEnded: number;
  /** Why the request was withdrawn (not promoted), if it was. */
  withdrawn?: string;
}

/**
 * Promote and wait until out of recovery (or `limitMs` pass). A promotion
 * that does not end (too slow, shut down, the lease lost) is withdrawn: the
 * request PostgreSQL has not acted on yet (the `promote` signal file, which
 * the startup process reads only between records, so a recovery conflict
 * can hold it for long) is removed, so that it never completes later, when
 * another member may have promoted meanwhile and taken the same timeline ID.
 */
export async function promoteAndWait(w: WorkerContext<any>, limitMs: number, opts: PromoteOptions = {}): Promise<PromoteResult> {
  const t0 = Date.now();
  const between = opts.between;
  let requests = 0;
  const conflicts = new ReplayConflicts(w, opts.spare ?? null);
  let lastConflictCheck = -Infinity;
  let lastRequest = -Infinity;
  let lastBetween = t0;
  const result = (ok: boolean, withdrawn?: string): PromoteResult => {
    if (ok) conflicts.startEndedWorkers();
    return {
      ok,
      ms: Date.now() - t0,
      requests,
      sessionsEnded: conflicts.sessionsEnded,
      ...(withdrawn ? { withdrawn } : {}),
    };
  };
  for (;;) {
    if (!inRecovery(w)) return result(true);
    const now = Date.now();
    if (now - t0 > limitMs) return withdraw(w, result, `the server did not leave recovery within ${Math.round(limitMs / 1000)} s`);
    if (w.shutdownRequested) return withdraw(w, result, 'the worker was asked to stop');
    if (now - t0 >= CONFLICT_GRACE_MS && now - lastConflictCheck >= CONFLICT_CHECK_MS) {
      lastConflictCheck = now;
      conflicts.resolve();
    }
    if (now - lastRequest >= REPEAT_MS) {
      try {
        w.query('SELECT pg_promote(false)');
      } catch (err) {
        // promoted between the check above and this request: "recovery is not in progress" (55000)
        if (!inRecovery(w)) return result(true);
        throw err;
      }
      requests++;
      lastRequest = now;
    }
    if (between && now - lastBetween >= between.everyMs) {
      lastBetween = now;
      const lost = await between.fn().then(
        () => null,
        (err: Error) => err.message,
      );
      if (lost !== null) return withdraw(w, result, lost);
    }
    await w.wait({ timeout: POLL_MS });
  }
}

function inRecovery(w: WorkerContext<any>): boolean {
  return w.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')[0].r;
}

/** Remove the pending promote request; promoted meanwhile after all, the promotion stands (ok). */
function withdraw(w: WorkerContext<any>, result: (ok: boolean, withdrawn?: string) => PromoteResult, why: string): PromoteResult {
  const dir = w.query<{ d: string }>(`SELECT current_setting('data_directory') AS d`)[0].d;
  fs.rmSync(path.join(dir, PROMOTE_SIGNAL_FILE), { force: true });
  if (!inRecovery(w)) return result(true);
  return result(false, why);
}
