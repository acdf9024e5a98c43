/**
 * The one writer of `tsworker.events`, for every built-in worker.
 *
 * These are the product's own bookkeeping writes: they must never wait for
 * a standby. A server made by `pg_basebackup` inherits
 * `synchronous_standby_names`; once promoted, a COMMIT there would wait in
 * SyncRep for a standby that does not exist, and the worker would hang
 * (repmgr writes its events with `synchronous_commit = local` for the same
 * reason). So every event transaction runs with `synchronous_commit =
 * local`, and each event is also sent with `NOTIFY tsworker_events`.
 */
import type { Json, WorkerContext } from '../runtime/index';

/** One event, as stored in `tsworker.events` (`at`, `kind`, `detail`). */
export interface StoredEvent {
  /** ISO 8601 time the event happened (not when it was stored). */
  at: string;
  /** Short machine-readable name, such as `promoted` or `check_failed`. */
  kind: string;
  /** Free-form JSON object. */
  detail: { [key: string]: Json };
}

/** Channel of the NOTIFY sent for each stored event. */
export const EVENTS_CHANNEL = 'tsworker_events';

/** NOTIFY payloads must stay under 8000 bytes; larger events are only stored. */
const MAX_PAYLOAD = 7999;

/**
 * Store `events` in `tsworker.events` and NOTIFY each one, in one
 * transaction that commits without waiting for any standby. Returns
 * false (after a warning in the log) when the table does not exist (the
 * extension is not created in this database); the transaction still
 * writes (it takes a transaction id), so that the call proves the server
 * accepts writes either way. SQL errors are thrown as PgError.
 */
export function storeEvents(w: WorkerContext, events: readonly StoredEvent[]): boolean {
  let stored = false;
  w.transaction(
    (tx) => {
      stored = tx.query<{ t: boolean }>(`SELECT to_regclass('tsworker.events') IS NOT NULL AS t`)[0].t;
      if (!stored) {
        tx.query('SELECT pg_current_xact_id()');
        return;
      }
      const ins = tx.prepare('INSERT INTO tsworker.events(at, worker, kind, detail) VALUES ($1, $2, $3, $4)', [
        'timestamptz',
        'text',
        'text',
        'jsonb',
      ]);
      try {
        for (const e of events) {
          ins.query([e.at, w.name, e.kind, e.detail]);
          const payload = JSON.stringify({ ...e, worker: w.name });
          if (Buffer.byteLength(payload) <= MAX_PAYLOAD) tx.query('SELECT pg_notify($1, $2)', [EVENTS_CHANNEL, payload]);
        }
      } finally {
        ins.free();
      }
    },
    { synchronousCommit: 'local' },
  );
  if (!stored) w.log.warning('tsworker.events does not exist here (CREATE EXTENSION pg_tsworker): events are only in the log');
  return stored;
}
