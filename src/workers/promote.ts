/**
 * Promoting this standby, for both modes of the promoter.
 *
 * The request (`pg_promote(wait => false)`) is repeated every 200 ms until
 * the server has left recovery: PostgreSQL 15's startup process can miss
 * the wake-up of a promotion request that arrives while it is between two
 * waits for WAL, and then sleeps `wal_retrieve_retry_interval` (5 s by
 * default) before it looks again. That was the 5 s tail of the failover
 * benchmark (a `promoted` event with `promoteMs` 5045); a repeated request
 * wakes it again. Repeating is harmless: a request made while one is
 * pending only signals the startup process once more.
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
