/**
 * Query parameters: JavaScript values to PostgreSQL's text form.
 *
 * The server knows each parameter's type (given to `prepare`, or inferred
 * from the statement as the extended query protocol does) and parses the
 * text with that type's input function. The addon formats strings,
 * booleans and integral numbers itself; every other value comes here with
 * what its parameter's type expects (see docs/types.md).
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

function hasToPostgres(v: unknown): v is { toPostgres(): unknown } {
  return typeof v === 'object' && v !== null && typeof (v as { toPostgres?: unknown }).toPostgres === 'function';
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/**
 * A Date in PostgreSQL's ISO input form, in UTC, for every year a Date
 * holds: `YYYY-MM-DDTHH:MM:SS.mmmZ`, with ` BC` for years before 1 AD
 * (JavaScript's year 0 is 1 BC) and five or six digits after 9999.
 * (`toISOString()` writes `-000044` or `+010000`, which PostgreSQL reads
 * as a time zone.) Dates before 4713 BC fail in PostgreSQL with 22008.
 */
function dateText(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new TypeError('invalid Date passed as a query parameter');
  const year = d.getUTCFullYear();
  const text =
    `${pad(year > 0 ? year : 1 - year, 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}` +
    `T${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}.${pad(d.getUTCMilliseconds(), 3)}Z`;
  return year > 0 ? text : `${text} BC`;
}

function byteaText(b: Uint8Array): string {
  return '\\x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** JSON text of any value, strings included (to pass JSON text as is, write `$1::text::jsonb`). */
function jsonText(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    if (s === undefined) throw new TypeError(`${typeof v} has no JSON form`);
    return s;
  } catch (err) {
    throw new TypeError(`query parameter cannot be turned into JSON: ${(err as Error).message}`);
  }
}

/** Quote a value inside an array or row literal (backslash escapes). */
function quote(s: string): string {
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

/** Text of a value for a type that is neither JSON, an array nor a row. */
function scalarText(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return Object.is(v, -0) ? '-0' : String(v); // NaN, Infinity, -Infinity are valid float input
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      break;
  }
  if (v instanceof Date) return dateText(v);
  if (v instanceof Uint8Array) return byteaText(v);
  if (hasToPostgres(v)) return textOf(v.toPostgres(), undefined);
  if (Array.isArray(v)) return arrayText(v, undefined);
  return jsonText(v);
}

function elementText(v: unknown, kind: ParamType['elementKind'], attributes?: string[]): string {
  if (v === null || v === undefined) return 'NULL';
  if (Array.isArray(v) && kind !== 'json' && kind !== 'composite') return arrayText(v, kind, attributes);
  if (kind === 'json') return quote(jsonText(v));
  if (kind === 'composite') {
    if (Array.isArray(v) && v.length > 0 && Array.isArray(v[0])) return arrayText(v, kind, attributes);
    return quote(rowText(v, attributes));
  }
  return quote(scalarText(v));
}

/** An array literal; nested arrays are further dimensions. */
function arrayText(a: readonly unknown[], kind: ParamType['elementKind'], attributes?: string[]): string {
  return '{' + a.map((v) => elementText(v, kind, attributes)).join(',') + '}';
}

/** A row literal from an array (attribute order) or an object (attribute names). */
function rowText(v: unknown, attributes?: string[]): string {
  if (typeof v === 'string') return v;
  if (hasToPostgres(v)) return textOf(v.toPostgres(), undefined);
  let values: readonly unknown[];
  if (Array.isArray(v)) {
    values = v;
  } else if (typeof v === 'object' && v !== null && !attributes) {
    values = Object.values(v); // an anonymous record: the keys' order
  } else if (typeof v === 'object' && v !== null && attributes) {
    const obj = v as Record<string, unknown>;
    for (const key of Object.keys(obj)) {
      if (!attributes.includes(key)) {
        throw new TypeError(`row parameter has key "${key}", which is not an attribute of the type (${attributes.join(', ')})`);
      }
    }
    values = attributes.map((name) => obj[name]);
  } else {
    throw new TypeError('a row parameter must be an array of attribute values, an object, or a row literal string');
  }
  return (
    '(' +
    values
      .map((x) => {
        if (x === null || x === undefined) return '';
        if (Array.isArray(x)) return quote(arrayText(x, undefined));
        return quote(typeof x === 'object' && !(x instanceof Date) && !(x instanceof Uint8Array) && !hasToPostgres(x) ? jsonText(x) : scalarText(x));
      })
      .join(',') +
    ')'
  );
}

/** Text of a value for a parameter of type `type` (unknown: no type information). */
function textOf(v: unknown, type: ParamType | undefined): string {
  if (type?.kind === 'json') return jsonText(hasToPostgres(v) ? v.toPostgres() : v);
  if (hasToPostgres(v)) return textOf(v.toPostgres(), type);
  if (typeof v === 'string') return v;
  if (type?.kind === 'array' && Array.isArray(v)) return arrayText(v, type.elementKind, type.attributes);
  if (type?.kind === 'composite') return rowText(v, type.attributes);
  return scalarText(v);
}

/**
 * The text form of one non-null parameter value for its type; the addon
 * calls it for every value that is not a string, boolean or integral
 * number. `null`/`undefined` stay SQL NULL.
 */
export function formatParam(value: unknown, type: ParamType): string | null {
  if (value === null || value === undefined) return null;
  return textOf(value, type);
}
