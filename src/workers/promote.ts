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
import type { WorkerContext } from '../runtime/index';
import { ReplayConflicts } from './recovery-conflicts';

const POLL_MS = 10;
const REPEAT_MS = 200;
/** How long a promotion waits for a recovery conflict to end by itself before it ends the sessions concerned. */
export const CONFLICT_GRACE_MS = 500;
/** How often the startup process's wait is looked at after that. */
const CONFLICT_CHECK_MS = 100;

/** Promote and wait until out of recovery (or `limitMs` pass); `between` runs while waiting (at most every `everyMs`). */
export async function promoteAndWait(
  w: WorkerContext<any>,
  limitMs: number,
  between?: { everyMs: number; fn: () => Promise<void> },
): Promise<{ ok: boolean; ms: number; requests: number; sessionsEnded: number }> {
  const t0 = Date.now();
  let requests = 0;
  let sessionsEnded = 0;
  const conflicts = new ReplayConflicts(w);
  let lastConflictCheck = -Infinity;
  let lastRequest = -Infinity;
  let lastBetween = t0;
  for (;;) {
    if (!w.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')[0].r) return { ok: true, ms: Date.now() - t0, requests, sessionsEnded };
    const now = Date.now();
    if (now - t0 > limitMs || w.shutdownRequested) return { ok: false, ms: now - t0, requests, sessionsEnded };
    if (now - t0 >= CONFLICT_GRACE_MS && now - lastConflictCheck >= CONFLICT_CHECK_MS) {
      lastConflictCheck = now;
      sessionsEnded += conflicts.resolve();
    }
    if (now - lastRequest >= REPEAT_MS) {
      w.query('SELECT pg_promote(false)');
      requests++;
      lastRequest = now;
    }
    if (between && now - lastBetween >= between.everyMs) {
      lastBetween = now;
      await between.fn().catch(() => undefined);
    }
    await w.wait({ timeout: POLL_MS });
  }
}
