/**
 * Query parameters: what may be passed, and what a parameter's type
 * expects. The addon formats every value for its parameter's type, by one
 * set of rules (native/addon/js_params.cc; docs/types.md).
 */
import type { Interval } from './interval';

/** A value that can be passed as a query parameter. */
export type Param =
  | null
  | undefined
  | string
  | number
  | bigint
  | boolean
  | Date
  | Uint8Array
  | Interval
  | { toPostgres(): unknown }
  | readonly Param[]
  | { [key: string]: unknown };

/** What a parameter's type expects, as the addon describes it. */
export interface ParamType {
  /** The parameter's type. */
  oid: number;
  /** The type with domains removed. */
  baseOid: number;
  kind: 'scalar' | 'json' | 'array' | 'composite';
  /** Arrays: the element type (domains removed) and what it expects. */
  elementOid?: number;
  elementKind?: 'scalar' | 'json' | 'composite';
  /** Composite types (or arrays of them): attribute names, in order. */
  attributes?: string[];
}
