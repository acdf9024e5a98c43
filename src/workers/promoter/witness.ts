/**
 * Asking witnesses whether they still reach the primary.
 *
 * A witness is a server running the promoter in `witness` mode: it checks
 * the primary on the same schedule and publishes, in its status in
 * tsworker.workers, when it last reached it. Durations are computed on the
 * witness itself (its now() minus its last contact), so clocks need not agree.
 */
import pg from 'pg';

import { clientConfig, describeConninfo } from './conninfo';

export interface WitnessView {
  witness: string;
  /** False when the witness could not be asked. */
  reached: boolean;
  /** Milliseconds since the witness last reached the primary (Infinity: never). */
  sinceContactMs?: number;
  /** The witness's consecutive failed checks. */
  failures?: number;
  error?: string;
}

/** Split `tsworker_promoter.witnesses`: conninfo strings separated by `;`. */
export function parseWitnesses(setting: string): string[] {
  return setting
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export async function askWitness(conninfo: string, timeoutMs: number): Promise<WitnessView> {
  const witness = describeConninfo(conninfo);
  let client: pg.Client;
  try {
    client = new pg.Client(clientConfig(conninfo, timeoutMs, 'pg_tsworker promoter'));
  } catch (err) {
    return { witness, reached: false, error: `invalid witness conninfo: ${(err as Error).message}` };
  }
  client.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs + 200);
  });
  try {
    const res = await Promise.race([
      (async () => {
        await client.connect();
        return client.query<{ since_ms: number | null; failures: number | null }>(
          `SELECT (extract(epoch FROM now() - (status->>'lastContactAt')::timestamptz) * 1000)::float8 AS since_ms,
                  (status->>'failures')::int AS failures
             FROM tsworker.worker_status() WHERE status->>'role' = 'witness' ORDER BY name LIMIT 1`,
        );
      })(),
      expired,
    ]);
    if (res.rows.length === 0) return { witness, reached: false, error: 'no promoter runs there in witness mode' };
    const row = res.rows[0];
    return { witness, reached: true, sinceContactMs: row.since_ms ?? Infinity, failures: row.failures ?? 0 };
  } catch (err) {
    return { witness, reached: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
    client.end().catch(() => undefined);
  }
}
