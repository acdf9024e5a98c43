/**
 * `Rows`: what a statement returns. The checks on per-statement options
 * shared by queries, prepared statements and cursors.
 */
import type { Constants, FieldInfo, RawResult, ResultChannel, StatementCall } from './addon';
import type { ResultOptions } from './define';

/**
 * The rows a statement returned, an `Array` of row objects (one property
 * per column), with the statement's metadata:
 *
 * - `command`: `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `MERGE`, `UTILITY`, `FETCH` ...
 * - `rowCount`: rows processed (for INSERT/UPDATE/DELETE without RETURNING, the rows
 *   changed; for SELECT, the rows returned)
 * - `fields`: the columns, `{ name, dataTypeID }`
 * - `rows`: the rows themselves, for code written for node-postgres's `QueryResult`
 *
 * The metadata are getters, not own properties: `JSON.stringify`, spreading
 * and `Object.keys` see only the rows. `map`, `filter` and the like return
 * plain arrays.
 */
export class Rows<R> extends Array<R> {
  readonly #command: string;
  readonly #rowCount: number;
  readonly #fields: readonly FieldInfo[];

  /** Made by rowsOf(): an empty array the rows are then added to. */
  constructor(command: string, rowCount: number, fields: readonly FieldInfo[]) {
    super();
    this.#command = command;
    this.#rowCount = rowCount;
    this.#fields = fields;
  }

  /** The statement's command tag: `SELECT`, `INSERT` ... */
  get command(): string {
    return this.#command;
  }

  /** Rows processed by the statement. */
  get rowCount(): number {
    return this.#rowCount;
  }

  /** The result's columns. */
  get fields(): readonly FieldInfo[] {
    return this.#fields;
  }

  /** These rows (node-postgres's `result.rows`). */
  get rows(): R[] {
    return this;
  }

  static override get [Symbol.species](): ArrayConstructor {
    return Array;
  }
}

const NO_FIELDS: readonly FieldInfo[] = Object.freeze([]);

/** Where the addon describes each result (given to it at init). */
export const resultChannel: ResultChannel = { info: new Float64Array(5), commands: [], shapes: [] };

/**
 * The Rows of what a statement call just returned: read at once, before
 * the next call into the addon rewrites `resultChannel.info`.
 */
export function rowsOf<R>(values: RawResult): Rows<R> {
  const { info, commands, shapes } = resultChannel;
  const shape = info[3] >= 0 ? shapes[info[3]] : undefined;
  const rows = new Rows<R>(commands[info[0]], info[1], shape === undefined ? NO_FIELDS : shape.fields);
  if (shape !== undefined && values !== undefined) {
    shape.build(rows, info[4] === 1 ? [values] : (values as readonly unknown[]), info[2]);
  }
  return rows;
}

/**
 * Longer parameter lists go to the addon as one array: a call's arguments
 * are limited (V8: 65534), and reading them one by one only pays off for
 * short lists.
 */
const MAX_SPREAD_PARAMS = 32;

/**
 * The Rows of `call(what, ...)` with `params` (checked by checkParams):
 * short lists are passed one argument each, which the addon reads without
 * a property lookup per element (native/addon/js_common.h, CallArgs).
 */
export function runStatement<R, T>(
  call: StatementCall<T>,
  what: T,
  params: readonly unknown[] | undefined,
  timeoutMs: number,
  flags: number,
  paramsArray: number,
): Rows<R> {
  if (params === undefined) return rowsOf<R>(call(what, timeoutMs, flags));
  if (params.length <= MAX_SPREAD_PARAMS) return rowsOf<R>(call(what, timeoutMs, flags, ...params));
  return rowsOf<R>(call(what, timeoutMs, flags | paramsArray, params));
}

/** The addon's result flags for `options` (checked; 0 when none). */
export function resultFlags(options: ResultOptions | undefined, what: string, flags: Constants['result']): number {
  if (options === undefined || options === null) return 0;
  if (typeof options !== 'object') throw new TypeError(`${what}: options must be an object`);
  const { int8, dates } = options;
  if (int8 !== undefined && int8 !== 'bigint' && int8 !== 'string') {
    throw new TypeError(`${what}: options.int8 must be 'bigint' or 'string'`);
  }
  if (dates !== undefined && dates !== 'date' && dates !== 'text') {
    throw new TypeError(`${what}: options.dates must be 'date' or 'text'`);
  }
  return (int8 === 'string' ? flags.int8Text : 0) | (dates === 'text' ? flags.timeText : 0);
}

/** The addon's timeout argument for `options.timeout` (-1: tsworker.statement_timeout). */
export function timeoutArg(timeout: unknown, what: string): number {
  if (timeout === undefined) return -1;
  if (typeof timeout !== 'number' || !(timeout >= 0) || timeout > 2 ** 31 - 1) {
    throw new TypeError(`${what}: options.timeout must be a number of milliseconds >= 0`);
  }
  return Math.ceil(timeout);
}

/** Check a parameter list. */
export function checkParams(params: unknown, what: string): readonly unknown[] | undefined {
  if (params === undefined || params === null) return undefined;
  if (!Array.isArray(params)) throw new TypeError(`${what}: params must be an array`);
  return params.length > 0 ? params : undefined;
}
