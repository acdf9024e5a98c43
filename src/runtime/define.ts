/**
 * `defineWorker` and the types a worker module is written against.
 */
import type { Param, ParamType } from './params';
import type { NotificationHandler } from './listen';
import type { Rows } from './results';
import { validateSpec, type SettingsSpec, type SettingValues } from './settings';

/** A row: column name to value. */
export type Row = Record<string, unknown>;

/**
 * @deprecated The name of node-postgres's `{ rows, rowCount, command,
 * fields }`, which this is not: use `Rows<R>` (an array of rows with
 * `rowCount`, `command`, `fields`, and `rows` for pg-style code). Kept for
 * one version.
 */
export type QueryResult<R extends Row = Row> = Rows<R>;

/** How results come back (see docs/types.md). */
export interface ResultOptions {
  /** int8 as `bigint` (default) or as its exact decimal `string`. Never a lossy Number. */
  int8?: 'bigint' | 'string';
  /** date, timestamp, timestamptz as `Date` (default; infinity is ±Infinity) or as PostgreSQL's `text`. */
  dates?: 'date' | 'text';
}

/** Options of one statement. */
export interface QueryOptions extends ResultOptions {
  /**
   * Milliseconds the statement may take; over it, it fails with a PgError of
   * code 57014. 0 is no limit. Default: tsworker.statement_timeout.
   */
  timeout?: number;
}

/** Options of a cursor. */
export interface CursorOptions extends ResultOptions {
  /** Allow moving and fetching backward (`SCROLL`); default false. */
  scroll?: boolean;
  /** Rows fetched at a time when iterating; default 1000. */
  batchSize?: number;
}

/**
 * A cursor over a statement's rows, open until `close()` or the end of its
 * transaction. Iterate it (`for (const row of cursor)`, or `for await` in
 * an async transaction) to read any number of rows in constant memory.
 */
export interface Cursor<R extends Row = Row> extends Iterable<R>, AsyncIterable<R> {
  /** The next `count` rows (default 1); fewer, or none, at the end. */
  fetch(count?: number): Rows<R>;
  /** Skip `count` rows (negative: back, with `scroll`); returns how many were skipped. */
  move(count: number): number;
  /** Close the cursor (idempotent). */
  close(): void;
  /** Rows in arrays of `size` (default `batchSize`); iterate with `for` or `for await`. */
  batches(size?: number): Iterable<Rows<R>> & AsyncIterable<Rows<R>>;
}

/**
 * A statement planned once and run many times, in this and later
 * transactions (SPI_keepplan). Run it inside a transaction; `free()` it
 * when done (garbage collection frees it too).
 */
export interface PreparedStatement<R extends Row = Row> {
  /** The statement's text. */
  readonly sql: string;
  /** Its parameters' types. */
  readonly params: readonly ParamType[];
  /** Run it in the current transaction. */
  query(params?: readonly Param[], options?: QueryOptions): Rows<R>;
  /** Open a cursor over its rows in the current transaction. */
  cursor(params?: readonly Param[], options?: CursorOptions): Cursor<R>;
  /** Release the plan; further use throws. */
  free(): void;
}

/** Runs statements inside one open transaction. */
export interface Transaction {
  /**
   * Run one statement (or several separated by `;` when there are no
   * parameters). `$1`, `$2` ... refer to `params`; their types are inferred
   * from the statement. A SQL error throws a `PgError` and undoes only this
   * statement: the transaction can go on (unless it was begun with
   * `statementSavepoints: false`).
   */
  query<R extends Row = Row>(sql: string, params?: readonly Param[], options?: QueryOptions): Rows<R>;
  /**
   * Plan a statement once for many runs, here and in later transactions.
   * `types` names the types of the first parameters (`'int4'`, `'text[]'`,
   * `null` to infer).
   */
  prepare<R extends Row = Row>(sql: string, types?: readonly (string | null)[]): PreparedStatement<R>;
  /** Open a cursor over a statement's rows. */
  cursor<R extends Row = Row>(sql: string, params?: readonly Param[], options?: CursorOptions): Cursor<R>;
  /**
   * Run `fn` in a savepoint (a subtransaction): when it throws, what it did
   * is undone and the error rethrown, and the transaction goes on. `fn`
   * must be synchronous.
   */
  savepoint<T>(fn: (tx: Transaction) => T): T;
}

/** Options of `w.transaction()`. */
export interface TransactionOptions {
  /** A read-only transaction: writes fail with a PgError of code 25006. */
  readOnly?: boolean;
  /**
   * Run each statement in its own subtransaction (default true), so that a
   * failed statement undoes only itself. `false` saves that cost for bulk
   * writes: a failed statement then fails the innermost savepoint, or else
   * the whole transaction (every later statement throws 25P02, and the end
   * of the transaction rolls back and throws 40000), as in a psql session.
   */
  statementSavepoints?: boolean;
  /**
   * `synchronous_commit` for this transaction alone (`SET LOCAL`): `'local'`
   * makes its COMMIT wait only for the local WAL flush, never for a
   * standby named in `synchronous_standby_names`. Default: the session's
   * value. A value PostgreSQL does not accept fails with PgError 22023.
   */
  synchronousCommit?: SynchronousCommit;
}

/** Values of PostgreSQL's `synchronous_commit`. */
export type SynchronousCommit = 'on' | 'off' | 'local' | 'remote_write' | 'remote_apply';

/** Server log output of a worker; each line names the worker. */
export interface Logger {
  /** DEBUG1 */
  debug(...args: unknown[]): void;
  /** LOG: always written to the server log (PostgreSQL's LOG level). */
  log(...args: unknown[]): void;
  /**
   * @deprecated Writes at LOG, not at PostgreSQL's INFO level (which a
   * background worker's log would not show): use `log()`. Kept for one version.
   */
  info(...args: unknown[]): void;
  /** NOTICE */
  notice(...args: unknown[]): void;
  /** WARNING */
  warning(...args: unknown[]): void;
}

/** Options of `w.wait()`. */
export interface WaitOptions {
  /** Milliseconds to wait at most; without it, wait until woken. */
  timeout?: number;
}

/** Events a worker can listen to with `w.on()`. */
export interface WorkerEvents {
  /** The configuration was reloaded (SIGHUP); `w.settings` holds the new values. */
  reload: () => void;
  /** The server asked the worker to stop (SIGTERM); `w.wait()` now returns false. */
  shutdown: () => void;
  /**
   * The server began to shut down (`pg_ctl stop` in any mode), seen within
   * about 1 s, before it asks this worker to stop. Close here every client
   * connection the worker keeps to its own server (a `pg` Client or Pool):
   * a smart shutdown (`pg_ctl stop -m smart`) waits for client sessions to
   * end before it stops background workers, so a connection kept open
   * stops the server from shutting down. The runtime closes the
   * `w.listen()` connection itself. Called at most once.
   */
  serverStopping: () => void;
  /**
   * The postmaster is gone (it crashed or was killed). `shutdown` listeners
   * have run first. The process keeps serving its event loop (timers,
   * sockets) but runs no more SQL (it throws PgError 57P01), and exits once
   * the promises these listeners return have settled, or 1 s after the
   * postmaster's death, whichever comes first: time enough to give up a
   * lease or close a connection.
   */
  postmasterDeath: () => void | Promise<unknown>;
}

/** A JSON-serialisable value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The status a worker publishes in `tsworker.stat_workers.status`. */
export interface WorkerStatus {
  /** Replace the published status (at most 2047 bytes of JSON). */
  set(value: { [key: string]: Json }): void;
  /** Merge keys into the published status. */
  update(value: { [key: string]: Json }): void;
  /** The status as last published. */
  get(): { [key: string]: Json };
}

/**
 * When a worker is started again after it ends:
 * - `on-failure` (default): after a failure (exit 1), not after `main` returns (exit 0);
 * - `always`: also after `main` returns;
 * - `never`: never (it exits 0 even on failure, and shows as failed).
 */
export type RestartPolicy = 'always' | 'on-failure' | 'never';

/**
 * When the server starts a worker listed in tsworker.workers:
 * - `primary` (default): once recovery has finished, so never on a standby;
 * - `standby`: as soon as a standby is consistent (hot standby), and on a primary.
 */
export type StartWhen = 'primary' | 'standby';

/** What a worker's `main` receives. */
export interface WorkerContext<S extends SettingsSpec = SettingsSpec> {
  /** The worker's name, as registered in tsworker.workers. */
  readonly name: string;
  /**
   * The instance number: 1..N for the instances of a worker declaring
   * `instances`, or the `index` given to `tsworker.launch()`; else undefined.
   */
  readonly index: number | undefined;
  /** Current values of the declared settings; updated on reload. */
  readonly settings: Readonly<SettingValues<S>>;
  /** Logging to the server log. */
  readonly log: Logger;
  /**
   * True once the server has asked the worker to stop (SIGTERM). A statement
   * running at that moment is cancelled (PgError 57014); if main() then
   * ends with that error, the worker still stops cleanly.
   */
  readonly shutdownRequested: boolean;
  /**
   * Wait until the worker's latch is set (`tsworker.wake()`, a signal), the
   * timeout passes, or shutdown is asked. Resolves `false` once shutdown is
   * asked, `true` otherwise. A wake-up that arrives while the worker is busy
   * is kept: the next `wait()` returns at once.
   */
  wait(options?: WaitOptions): Promise<boolean>;
  /**
   * Run `fn` in a transaction: committed when `fn` returns, rolled back when
   * it throws (the error is rethrown). When `fn` is async, the transaction
   * stays open until its promise settles (so that a cursor can be read with
   * `for await`); no other transaction can begin meanwhile.
   */
  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  transaction<T>(fn: (tx: Transaction) => T, options?: TransactionOptions): T;
  /** Run one statement in a transaction of its own. */
  query<R extends Row = Row>(sql: string, params?: readonly Param[], options?: QueryOptions): Rows<R>;
  /** The JSON status shown in `tsworker.stat_workers.status`. */
  readonly status: WorkerStatus;
  /** Current value of any configuration parameter, or null if it does not exist. */
  setting(name: string): string | null;
  /** Listen to a worker event. */
  on<E extends keyof WorkerEvents>(event: E, listener: WorkerEvents[E]): void;
  /**
   * LISTEN on `channel` (exactly as given: case matters) through a
   * connection to the worker's own server kept by the runtime (its Unix
   * socket, the worker's role and database; pg_hba.conf must let that role
   * in over the socket). Resolves once notifications on the channel are
   * delivered; `handler` is then called with each one. If the connection is
   * lost it is made again, and `handler` is called once with
   * `reconnected: true`: notifications sent meanwhile are lost, so catch up
   * then. An error `handler` throws or rejects with ends the worker as an
   * error in main() would. Rejects with node-postgres's error when the
   * first connection fails.
   */
  listen(channel: string, handler: NotificationHandler): Promise<void>;
  /** UNLISTEN `channel`; the connection closes with the last channel. */
  unlisten(channel: string): Promise<void>;
}

/** The definition of a worker, as returned by `defineWorker`. */
export interface WorkerDefinition<S extends SettingsSpec = SettingsSpec> {
  /**
   * Informative only: the worker runs under the name its entry gives
   * (`name=` in tsworker.workers, tsworker.launch()'s name), else the
   * module's file name without its extension.
   */
  readonly name: string;
  /** Settings, read from `tsworker_<worker>.<setting>`. */
  readonly settings: S;
  /** Restart policy; default `on-failure`. */
  readonly restart: RestartPolicy;
  /** When the server starts the worker; default `primary`. */
  readonly start: StartWhen;
  /**
   * The name of an `int` setting with `context: 'postmaster'` that says how
   * many processes of this worker run, named `<name>1` ... `<name>N`, each
   * with its `index`. Without it, one.
   */
  readonly instances: string | undefined;
  /**
   * Longest delay, in ms, before `main` runs again after repeated failures
   * (1 s, 2 s, 4 s ... up to this); default 60000. 0 disables the delay.
   */
  readonly backoffMax: number;
  /** The worker's body. When it returns, the worker exits cleanly (code 0) and is not restarted. */
  main(w: WorkerContext<S>): Promise<void> | void;
}

const DEFINITION = Symbol.for('pg-tsworker.definition');

/**
 * Define a worker. The module's default export must be the result.
 *
 * ```ts
 * export default defineWorker({
 *   name: 'cleanup',
 *   settings: { naptime: { type: 'int', default: 10, min: 1, unit: 's' } },
 *   async main(w) {
 *     while (await w.wait({ timeout: w.settings.naptime * 1000 })) {
 *       w.query('DELETE FROM jobs WHERE done');
 *     }
 *   },
 * });
 * ```
 *
 * The settings' types come from the declaration (`S`, inferred as
 * written: `const`): `w.settings.naptime` is a number, an enum setting the
 * union of its `values`, and a name that is not declared (`naptme`) is a
 * type error; without `settings`, `w.settings` has no keys.
 */
export function defineWorker<const S extends SettingsSpec = {}>(def: {
  name: string;
  settings?: S;
  restart?: RestartPolicy;
  start?: StartWhen;
  instances?: string & keyof S;
  backoffMax?: number;
  main(w: WorkerContext<S>): Promise<void> | void;
}): WorkerDefinition<S> {
  if (typeof def !== 'object' || def === null) throw new TypeError('defineWorker() expects an object');
  if (typeof def.name !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(def.name)) {
    throw new TypeError('defineWorker(): name must be 1 to 63 letters, digits or _, not starting with a digit');
  }
  if (typeof def.main !== 'function') throw new TypeError('defineWorker(): main must be a function');
  const settings = (def.settings ?? {}) as S;
  for (const [name, spec] of Object.entries(settings)) validateSpec(name, spec);
  const restart = def.restart ?? 'on-failure';
  if (!['always', 'on-failure', 'never'].includes(restart)) {
    throw new TypeError(`defineWorker(): restart must be 'always', 'on-failure' or 'never', not ${JSON.stringify(restart)}`);
  }
  const start = def.start ?? 'primary';
  if (start !== 'primary' && start !== 'standby') {
    throw new TypeError(`defineWorker(): start must be 'primary' or 'standby', not ${JSON.stringify(start)}`);
  }
  const instances = def.instances;
  if (instances !== undefined) {
    const spec = settings[instances] as SettingsSpec[string] | undefined;
    if (!spec || spec.type !== 'int' || spec.context !== 'postmaster') {
      throw new TypeError(`defineWorker(): instances must name an int setting with context 'postmaster'`);
    }
  }
  const backoffMax = def.backoffMax ?? 60_000;
  if (typeof backoffMax !== 'number' || !(backoffMax >= 0)) {
    throw new TypeError('defineWorker(): backoffMax must be a number of milliseconds >= 0');
  }
  const out: WorkerDefinition<S> = {
    name: def.name,
    settings: Object.freeze({ ...settings }),
    restart,
    start,
    instances,
    backoffMax,
    main: def.main,
  };
  Object.defineProperty(out, DEFINITION, { value: true });
  return Object.freeze(out);
}

/** True if `value` was made by `defineWorker`. */
export function isWorkerDefinition(value: unknown): value is WorkerDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[DEFINITION] === true;
}
