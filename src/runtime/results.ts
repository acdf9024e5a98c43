/**
 * Result rows with their metadata, and the checks on per-statement options
 * shared by queries, prepared statements and cursors.
 */
import type { RawResult, ResultOptions } from './addon';
import type { QueryResult, Row } from './define';

/** The addon's result as a `QueryResult` (the addon puts the metadata on the rows, not enumerable). */
export function toResult<R extends Row>(raw: RawResult): QueryResult<R> {
  return raw as unknown as QueryResult<R>;
}

/** Check the result options of `options` and keep only them. */
export function resultOptions(options: ResultOptions | undefined, what: string): ResultOptions | undefined {
  if (options === undefined || options === null) return undefined;
  if (typeof options !== 'object') throw new TypeError(`${what}: options must be an object`);
  const { int8, dates } = options;
  if (int8 !== undefined && int8 !== 'bigint' && int8 !== 'string') {
    throw new TypeError(`${what}: options.int8 must be 'bigint' or 'string'`);
  }
  if (dates !== undefined && dates !== 'date' && dates !== 'text') {
    throw new TypeError(`${what}: options.dates must be 'date' or 'text'`);
  }
  return int8 === undefined && dates === undefined ? undefined : { int8, dates };
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
