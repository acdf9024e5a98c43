/**
 * SQL from a worker: `w.query()`, `w.transaction()` and the `Transaction`
 * its function is given (query, prepare, cursor, savepoint), on the addon's
 * synchronous SPI calls. A transaction commits when its function returns
 * (or its promise resolves) and rolls back when it throws; a failed
 * rollback is logged and never hides the error.
 */
import type { Addon } from './addon';
import { cursorBatch, PortalCursor } from './cursor';
import type {
  Cursor,
  CursorOptions,
  Logger,
  PreparedStatement,
  QueryOptions,
  Row,
  Transaction,
  TransactionOptions,
} from './define';
import { PgError } from './errors';
import type { Param } from './params';
import { checkParams, resultFlags, runStatement, timeoutArg, type Rows } from './results';
import { KeptStatement } from './statement';

function isThenable(v: unknown): boolean {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';
}

/** A worker's transactions and one-statement queries (Worker delegates to it). */
export class Transactions {
  /** What `transaction(fn)` gives `fn`. */
  readonly tx: Transaction;

  /**
   * @param log where a failed rollback is reported
   * @param postmasterGone true once the postmaster died: no SQL after that (57P01)
   */
  constructor(
    private readonly addon: Addon,
    private readonly log: Logger,
    private readonly postmasterGone: () => boolean,
  ) {
    this.tx = {
      query: <R extends Row = Row>(sql: string, params?: readonly Param[], options?: QueryOptions) =>
        this.runQuery<R>(sql, params, options),
      prepare: <R extends Row = Row>(sql: string, types?: readonly (string | null)[]) => this.prepare<R>(sql, types),
      cursor: <R extends Row = Row>(sql: string, params?: readonly Param[], options?: CursorOptions) =>
        this.openCursor<R>(sql, params, options),
      savepoint: <T>(fn: (tx: Transaction) => T): T => this.savepoint(fn),
    };
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  transaction<T>(fn: (tx: Transaction) => T, options?: TransactionOptions): T;
  transaction<T>(fn: (tx: Transaction) => T, options: TransactionOptions = {}): T {
    if (typeof fn !== 'function') throw new TypeError('transaction(fn): fn must be a function');
    if (typeof options !== 'object' || options === null) throw new TypeError('transaction(fn, options): options must be an object');
    const { readOnly, statementSavepoints, synchronousCommit } = options;
    if (readOnly !== undefined && typeof readOnly !== 'boolean') {
      throw new TypeError('transaction(): options.readOnly must be a boolean');
    }
    if (statementSavepoints !== undefined && typeof statementSavepoints !== 'boolean') {
      throw new TypeError('transaction(): options.statementSavepoints must be a boolean');
    }
    if (synchronousCommit !== undefined && typeof synchronousCommit !== 'string') {
      throw new TypeError('transaction(): options.synchronousCommit must be a string');
    }
    if (this.postmasterGone()) this.noSqlAfterPostmaster();
    this.addon.begin(readOnly === true, statementSavepoints !== false, synchronousCommit);
    const end = (commit: boolean) => (commit ? this.addon.commit() : this.addon.rollback());
    let result: T;
    try {
      result = fn(this.tx);
    } catch (err) {
      this.undo('transaction', end, err);
    }
    if (isThenable(result)) {
      // An async transaction stays open until its promise settles.
      return (result as unknown as Promise<unknown>).then(
        (value) => {
          end(true);
          return value;
        },
        (err: unknown) => this.undo('transaction', end, err),
      ) as unknown as T;
    }
    end(true);
    return result;
  }

  private noSqlAfterPostmaster(): never {
    throw new PgError('the postmaster is gone: no SQL after its death', { code: '57P01', severity: 'FATAL' });
  }

  /** Roll back after `err`, then rethrow it. A failure of the rollback is logged, never hides `err`. */
  private undo(what: string, end: (commit: boolean) => void, err: unknown): never {
    try {
      end(false);
    } catch (undoErr) {
      this.log.warning(`${what} rollback failed:`, undoErr);
    }
    throw err;
  }

  /**
   * Run `fn` synchronously, then `end(true)`; if it throws (or returns a
   * promise, which is refused), `end(false)` and rethrow.
   */
  private runThenEnd<T>(what: string, fn: (tx: Transaction) => T, end: (commit: boolean) => void): T {
    let result: T;
    try {
      result = fn(this.tx);
      if (isThenable(result)) {
        throw new TypeError(`${what}(fn): fn must be synchronous; it returned a promise (the ${what} was rolled back)`);
      }
    } catch (err) {
      this.undo(what, end, err);
    }
    end(true);
    return result;
  }

  query<R extends Row = Row>(sql: string, params?: readonly Param[], options?: QueryOptions): Rows<R> {
    if (typeof sql !== 'string') throw new TypeError('query(sql, params): sql must be a string');
    if (this.postmasterGone()) this.noSqlAfterPostmaster();
    // One call: begin, the statement (without a subtransaction: alone in its
    // transaction, a failure rolls everything back anyway), commit. Inside an
    // open transaction the addon refuses with PgError 25001.
    const result = this.addon.constants.result;
    return runStatement<R, string>(
      this.addon.queryOnce,
      sql,
      params === undefined ? undefined : checkParams(params, 'query(sql, params)'),
      options === undefined ? -1 : timeoutArg(options.timeout, 'query()'),
      options === undefined ? 0 : resultFlags(options, 'query()', result),
      result.paramsArray,
    );
  }

  private savepoint<T>(fn: (tx: Transaction) => T): T {
    if (typeof fn !== 'function') throw new TypeError('savepoint(fn): fn must be a function');
    if (!this.addon.inTransaction()) throw new Error('savepoint(): the transaction has ended');
    this.addon.savepoint();
    return this.runThenEnd('savepoint', fn, (release) => this.addon.endSavepoint(release));
  }

  private runQuery<R extends Row>(sql: string, params?: readonly Param[], options?: QueryOptions): Rows<R> {
    if (typeof sql !== 'string') throw new TypeError('query(sql, params): sql must be a string');
    // Outside a transaction the addon refuses with PgError 25P01.
    const result = this.addon.constants.result;
    return runStatement<R, string>(
      this.addon.query,
      sql,
      checkParams(params, 'query(sql, params)'),
      timeoutArg(options?.timeout, 'query()'),
      resultFlags(options, 'query()', result),
      result.paramsArray,
    );
  }

  private prepare<R extends Row>(sql: string, types?: readonly (string | null)[]): PreparedStatement<R> {
    if (typeof sql !== 'string') throw new TypeError('prepare(sql, types): sql must be a string');
    if (types !== undefined && !Array.isArray(types)) throw new TypeError('prepare(sql, types): types must be an array');
    return new KeptStatement<R>(this.addon, sql, this.addon.prepare(sql, types));
  }

  private openCursor<R extends Row>(sql: string, params?: readonly Param[], options?: CursorOptions): Cursor<R> {
    if (typeof sql !== 'string') throw new TypeError('cursor(sql, params): sql must be a string');
    const batch = cursorBatch(options);
    const scroll = options?.scroll;
    if (scroll !== undefined && typeof scroll !== 'boolean') throw new TypeError('cursor(): options.scroll must be a boolean');
    const name = this.addon.openCursor(sql, checkParams(params, 'cursor(sql, params)'), scroll === true);
    return new PortalCursor<R>(this.addon, name, batch, options);
  }
}
