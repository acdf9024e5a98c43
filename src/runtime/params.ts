/**
 * Query parameters: JavaScript values to PostgreSQL's text form.
 *
 * The server infers each parameter's type from the statement (as for the
 * extended query protocol) and parses the text with that type's input
 * function, so a string works for any type and the mapping below only has
 * to produce the canonical text of each JavaScript value.
 */

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
  | readonly Param[]
  | { [key: string]: unknown };

function dateText(d: Date): string {
  if (Number.isNaN(d.getTime())) {
    throw new TypeError('invalid Date passed as a query parameter');
  }
  return d.toISOString();
}

function byteaText(b: Uint8Array): string {
  return '\\x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Quote one element of an array literal. */
function arrayElement(v: Param): string {
  if (v === null || v === undefined) return 'NULL';
  if (Array.isArray(v)) return arrayText(v);
  const s = scalarText(v);
  return '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

function arrayText(a: readonly Param[]): string {
  return '{' + a.map(arrayElement).join(',') + '}';
}

function scalarText(v: Exclude<Param, null | undefined>): string {
  switch (typeof v) {
    case 'string':
      return v;
    case 'number':
      return String(v); // NaN, Infinity, -Infinity are valid float input
    case 'bigint':
      return v.toString();
    case 'boolean':
      return v ? 'true' : 'false';
    default:
      break;
  }
  if (v instanceof Date) return dateText(v);
  if (v instanceof Uint8Array) return byteaText(v);
  if (Array.isArray(v)) return arrayText(v);
  return JSON.stringify(v);
}

/** Convert parameters to their text form; `null`/`undefined` become SQL NULL. */
export function formatParams(params: readonly Param[]): (string | null)[] {
  return params.map((v) => (v === null || v === undefined ? null : scalarText(v)));
}
