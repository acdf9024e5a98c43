/**
 * Typed view of the N-API addon (native/addon). Each function makes one
 * PostgreSQL call; policy lives in the runtime.
 */
import * as path from 'path';

import type { ParamType } from './params';

/** A column of a result. */
export interface FieldInfo {
  /** Column name. */
  name: string;
  /** Type OID of the column (see pg_type). */
  dataTypeID: number;
}

/** What the addon returns for one statement: the rows, with non-enumerable metadata. */
export type RawResult = Record<string, unknown>[] & {
  readonly rowCount: number;
  readonly command: string;
  readonly fields: FieldInfo[];
};

/** Log levels understood by `Addon.log`. */
export const enum LogLevel {
  Debug = 0,
  Log = 1,
  Notice = 2,
  Warning = 3,
}

/** Worker states reported to the slot (`tsworker.workers.state`). */
export const enum SlotState {
  Running = 1,
  Waiting = 2,
  Stopping = 3,
}

/** Result options the addon understands. */
export interface ResultOptions {
  int8?: 'bigint' | 'string';
  dates?: 'date' | 'text';
}

/** A kept plan: an opaque handle and its parameters. */
export interface RawPrepared {
  handle: object;
  params: ParamType[];
}

/** Functions of the runtime the addon calls back. */
export interface AddonHelpers {
  makeInterval(months: number, days: number, microseconds: bigint): unknown;
  formatParam(value: unknown, type: ParamType): string | null;
}

export interface Addon {
  init(pgError: new (message: string, fields: never) => Error, helpers: AddonHelpers): void;
  /** statementSavepoints defaults to true. */
  begin(readOnly?: boolean, statementSavepoints?: boolean, synchronousCommit?: string): void;
  savepoint(): void;
  /** release: true releases the savepoint, false rolls back to it. */
  endSavepoint(release: boolean): void;
  commit(): void;
  rollback(): void;
  inTransaction(): boolean;
  /** timeoutMs: 0 no limit; -1 or absent: tsworker.statement_timeout. */
  query(sql: string, params?: readonly unknown[], timeoutMs?: number, options?: ResultOptions): RawResult;
  /** types: type names of the first parameters (null: inferred). */
  prepare(sql: string, types?: readonly (string | null)[]): RawPrepared;
  execute(handle: object, params?: readonly unknown[], timeoutMs?: number, options?: ResultOptions): RawResult;
  freePlan(handle: object): void;
  /** Opens a cursor for sql or a kept plan; returns its name. */
  openCursor(sqlOrHandle: string | object, params?: readonly unknown[], scroll?: boolean): string;
  fetchCursor(name: string, forward: boolean, count: number, options?: ResultOptions): RawResult;
  moveCursor(name: string, forward: boolean, count: number): number;
  closeCursor(name: string): void;
  shutdownRequested(): boolean;
  getSetting(name: string): string | null;
  log(level: LogLevel, message: string): void;
  setState(state: SlotState): void;
  noteLoop(): void;
  setError(message: string): void;
  requestRestart(): void;
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
