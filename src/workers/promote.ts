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
 */
import type { WorkerContext } from '../runtime/index';

const POLL_MS = 10;
const REPEAT_MS = 200;

/** Promote and wait until out of recovery (or `limitMs` pass); `between` runs while waiting (at most every `everyMs`). */
export async function promoteAndWait(
  w: WorkerContext<any>,
  limitMs: number,
  between?: { everyMs: number; fn: () => Promise<void> },
): Promise<{ ok: boolean; ms: number; requests: number }> {
  const t0 = Date.now();
  let requests = 0;
  let lastRequest = -Infinity;
  let lastBetween = t0;
  for (;;) {
    if (!w.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')[0].r) return { ok: true, ms: Date.now() - t0, requests };
    const now = Date.now();
    if (now - t0 > limitMs || w.shutdownRequested) return { ok: false, ms: now - t0, requests };
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
