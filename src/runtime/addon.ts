/**
 * Typed view of the N-API addon (native/addon). Each function makes one
 * PostgreSQL call, or one pass of them (`queryOnce`); policy lives in the
 * runtime.
 */
import * as path from 'path';

import type { ParamType } from './params';

/** A column of a result. */
export interface FieldInfo {
  /** Column name. */
  readonly name: string;
  /** Type OID of the column (see pg_type). */
  readonly dataTypeID: number;
}

/** Numbers of the shim's enums and flags, from their one definition (native/shim/slot.h, log_level.h; native/addon/pg_api.h). */
export interface Constants {
  /** Worker states (TswState), by the name the view shows. */
  state: { starting: number; running: number; waiting: number; stopping: number; stopped: number; failed: number };
  /** Restart policies (TswRestartPolicy). */
  restart: { 'on-failure': number; always: number; never: number };
  /** How a run ended (TswOutcome). */
  outcome: { finished: number; failed: number };
  /** Log levels (TswLogLevel). */
  log: { debug: number; log: number; notice: number; warning: number };
  /** Result flags (TSW_RESULT_*). */
  /** Flags of statement calls: result options, and paramsArray (see StatementCall). */
  result: { int8Text: number; timeText: number; paramsArray: number };
}

/** Who this worker is, from its slot in shared memory. */
export interface SlotInfo {
  /** Worker name. */
  name: string;
  /** Settings prefix: the worker reads tsworker_<configName>.* */
  configName: string;
  /** Absolute path of the worker module. */
  module: string;
  /** JSON object given to tsworker.launch() ('{}' for configured workers). */
  settings: string;
  /** Started by tsworker.launch(). */
  dynamic: boolean;
  /** Failures of this worker within tsworker.crash_loop_window, before this start. */
  recentFailures: number;
  /** tsworker.wake() count seen by earlier runs. */
  wakes: number;
}

/** A setting's value, and whether PostgreSQL knows its definition (then it checked it and gives it in its base unit). */
export interface SettingValue {
  value: string | null;
  defined: boolean;
}

/** A kept plan: an opaque handle and its parameters. */
export interface RawPrepared {
  handle: object;
  params: ParamType[];
}

/** Classes the addon creates values of. */
export interface AddonClasses {
  Interval: new (months: number, days: number, microseconds: bigint) => unknown;
}

/** Rows of one set of columns: their fields, and how to make them from a result's cells. */
export interface ResultShape {
  readonly fields: readonly FieldInfo[];
  /** Pushes `n` rows onto `rows`, made from `values` (row-major, one value per column). */
  build(rows: unknown[], values: readonly unknown[], n: number): void;
}

/**
 * Where the addon describes the result each statement call returns
 * (results.ts owns it; rowsOf reads it).
 */
export interface ResultChannel {
  /** [index in commands, rowCount, rows returned, index in shapes (-1: no rows at all), lone (1: the result is its one value)] */
  readonly info: Float64Array;
  /** Command tags (`SELECT`, `INSERT` ...), added to by the addon. */
  readonly commands: string[];
  /** Shapes, added to by the addon (and emptied when there are too many). */
  readonly shapes: ResultShape[];
}

/**
 * What a statement call returns: its rows' cells, row-major, or undefined,
 * or the value itself when it is one row of one column; read with rowsOf().
 */
export type RawResult = unknown;

/**
 * A statement call: `what` (sql or a plan's handle), timeoutMs (0 no limit,
 * -1 tsworker.statement_timeout), flags (constants.result), then the
 * parameters one argument each, or, with constants.result.paramsArray in
 * flags, one array of them (results.ts, runStatement, chooses).
 */
export type StatementCall<T> = (what: T, timeoutMs: number, flags: number, ...params: unknown[]) => RawResult;

export interface Addon {
  readonly constants: Constants;
  init(pgError: new (message: string, fields: never) => Error, classes: AddonClasses, results: ResultChannel): void;
  slot(): SlotInfo;
  /** statementSavepoints defaults to true. */
  begin(readOnly?: boolean, statementSavepoints?: boolean, synchronousCommit?: string): void;
  savepoint(): void;
  /** release: true releases the savepoint, false rolls back to it. */
  endSavepoint(release: boolean): void;
  commit(): void;
  rollback(): void;
  inTransaction(): boolean;
  /** In the open transaction. */
  query: StatementCall<string>;
  /** sql alone in a transaction of its own, in one call (w.query). */
  queryOnce: StatementCall<string>;
  /** types: type names of the first parameters (null: inferred). */
  prepare(sql: string, types?: readonly (string | null)[]): RawPrepared;
  /** A kept plan (prepare()'s handle). */
  execute: StatementCall<object>;
  freePlan(handle: object): void;
  /** Opens a cursor for sql or a kept plan; returns its name. */
  openCursor(sqlOrHandle: string | object, params?: readonly unknown[], scroll?: boolean): string;
  fetchCursor(name: string, forward: boolean, count: number, flags: number): RawResult;
  moveCursor(name: string, forward: boolean, count: number): number;
  closeCursor(name: string): void;
  shutdownRequested(): boolean;
  /** Whether tsworker.stop() or tsworker.restart() asked the worker to stop (not a server shutdown). */
  stopRequested(): boolean;
  getSetting(name: string): SettingValue;
  /**
   * Define the declared settings (ManifestSetting[] as JSON) that this
   * process does not have yet, as tsworker_<configName>.*, and set the
   * launch settings (a JSON object); null, or every refused setting.
   */
  defineSettings(worker: string, configName: string, declarations: string, settings: string): string | null;
  /** level: constants.log */
  log(level: number, message: string): void;
  /** state: constants.state */
  setState(state: number): void;
  /** policy: constants.restart */
  setPolicy(policy: number): void;
  /** outcome: constants.outcome */
  setOutcome(outcome: number): void;
  noteLoop(): void;
  setError(message: string): void;
  wakes(): number;
  setStatus(json: string): void;
  /** Cluster mode's write fence (native/shim/fence.c): allow writes for ms more milliseconds; <= 0 closes it. */
  fenceOpenFor(ms: number, reason?: string): void;
  /** null when the fence is not in use; else how many ms writes stay allowed (<= 0: closed). */
  fenceState(): number | null;
}

let loaded: Addon | undefined;

/** Load the addon from the installed native directory (once). */
export function loadAddon(nativeDir: string): Addon {
  if (!loaded) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    loaded = require(path.join(nativeDir, 'pg_tsworker_addon.node')) as Addon;
  }
  return loaded;
}

/** The addon, once the host has loaded it. */
export function addon(): Addon {
  if (!loaded) {
    throw new Error('pg-tsworker: the native addon is only available inside a PostgreSQL background worker');
  }
  return loaded;
}
