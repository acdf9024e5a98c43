/**
 * Text that PostgreSQL parses, parsed here the same way before it is sent,
 * so that a spec is refused with its JSON path instead of being changed by
 * the server: password secrets (`get_password_type()`,
 * `parse_scram_secret()`, `pg_b64_decode()`), list-valued configuration
 * parameters (`SplitIdentifierString()`, `SplitDirectoriesString()`,
 * `flatten_set_variable_args()`) and boolean options (`defGetBoolean()`).
 */
import { quoteLiteral } from '../sql';

/** PostgreSQL's `pg_b64_decode()`: the decoded length, or -1 where PostgreSQL refuses the text. */
export function pgBase64DecodedLength(text: string): number {
  let pos = 0;
  let end = 0;
  let out = 0;
  for (const c of text) {
    if (c === '=') {
      if (!end) {
        if (pos === 2) end = 1;
        else if (pos === 3) end = 2;
        else return -1;
      }
    } else if (!/^[A-Za-z0-9+/]$/.test(c)) {
      return -1;
    }
    pos++;
    if (pos === 4) {
      out += end === 0 ? 3 : end === 1 ? 1 : 2;
      pos = 0;
    }
  }
  return pos === 0 ? out : -1;
}

/** SCRAM-SHA-256's key length (bytes). */
const SCRAM_KEY_LEN = 32;

/**
 * Why PostgreSQL would not take `secret` as a SCRAM-SHA-256 secret
 * (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64
 * parts, 32-byte keys), or null when it would. A string that fails is
 * stored by PostgreSQL as a clear-text password and hashed: never sent.
 */
export function scramSecretProblem(secret: string): string | null {
  const m = /^SCRAM-SHA-256\$([0-9]{1,9}):([^$:]+)\$([^$:]+):([^$:]+)$/.exec(secret);
  if (!m) return 'is not SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>';
  if (Number(m[1]) < 1) return 'has no iterations';
  if (pgBase64DecodedLength(m[2]) < 1) return 'has a salt that is not base64';
  if (pgBase64DecodedLength(m[3]) !== SCRAM_KEY_LEN) return `has a StoredKey that is not ${SCRAM_KEY_LEN} bytes of base64`;
  if (pgBase64DecodedLength(m[4]) !== SCRAM_KEY_LEN) return `has a ServerKey that is not ${SCRAM_KEY_LEN} bytes of base64`;
  return null;
}

/**
 * Why `value` is not a password secret compute_ctl sends (an MD5 hash
 * without its `md5` prefix: 32 lower-case hex digits, or a SCRAM-SHA-256
 * secret), or null when it is one.
 */
export function passwordSecretProblem(value: string): string | null {
  if (/^[0-9a-f]{32}$/.test(value)) return null;
  if (value.startsWith('SCRAM-SHA-256$')) return scramSecretProblem(value);
  return 'is neither an MD5 hash (32 lower-case hex digits, without "md5") nor a SCRAM-SHA-256 secret';
}

/**
 * Parameters that PostgreSQL flags GUC_LIST_INPUT | GUC_LIST_QUOTE
 * (guc_tables.c, 15 to 18): `ALTER SYSTEM SET p = 'a,b'` would store one
 * quoted element `"a,b"`, so their values are written as a list of
 * literals, one per element.
 */
export const LIST_QUOTE_PARAMETERS: ReadonlySet<string> = new Set([
  'search_path', 'temp_tablespaces', 'shared_preload_libraries', 'session_preload_libraries',
  'local_preload_libraries', 'unix_socket_directories',
]);

/** List parameters PostgreSQL splits with SplitDirectoriesString (no down-casing of unquoted elements). */
const DIRECTORY_LISTS: ReadonlySet<string> = new Set([
  'shared_preload_libraries', 'session_preload_libraries', 'local_preload_libraries', 'unix_socket_directories',
]);

/** Parameters whose elements are libraries the server loads. */
export const LIBRARY_LISTS: ReadonlySet<string> = new Set(['shared_preload_libraries', 'session_preload_libraries', 'local_preload_libraries']);

/**
 * Split a list parameter's value as PostgreSQL does (elements separated by
 * commas, `"double quoted"` with `""` inside, spaces around them dropped;
 * unquoted elements down-cased for identifier lists). Throws with
 * PostgreSQL's reason on a malformed list.
 */
export function splitGucList(name: string, value: string): string[] {
  const downcase = !DIRECTORY_LISTS.has(name.toLowerCase());
  const out: string[] = [];
  let i = 0;
  const space = (c: string | undefined) => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  while (space(value[i])) i++;
  if (i === value.length) return out;
  for (;;) {
    let element = '';
    if (value[i] === '"') {
      i++;
      for (;;) {
        const q = value.indexOf('"', i);
        if (q < 0) throw new Error('invalid list syntax: unterminated quoted element');
        element += value.slice(i, q);
        i = q + 1;
        if (value[i] === '"') {
          element += '"';
          i++;
        } else break;
      }
      if (element === '') throw new Error('invalid list syntax: empty quoted element');
    } else {
      const start = i;
      while (i < value.length && value[i] !== ',' && !space(value[i])) i++;
      element = value.slice(start, i);
      if (element === '') throw new Error('invalid list syntax: empty element');
      if (downcase) element = element.toLowerCase();
    }
    while (space(value[i])) i++;
    out.push(element);
    if (i === value.length) return out;
    if (value[i] !== ',') throw new Error('invalid list syntax: expected a comma');
    i++;
    while (space(value[i])) i++;
  }
}

/**
 * The right-hand side of `ALTER SYSTEM SET name = ...` for `value` (a
 * parameter's value in postgresql.conf form): one literal, or for a
 * GUC_LIST_QUOTE parameter one literal per element, which PostgreSQL
 * quotes itself when it writes postgresql.auto.conf.
 */
export function settingLiterals(name: string, value: string): string {
  if (!LIST_QUOTE_PARAMETERS.has(name.toLowerCase())) return quoteLiteral(value);
  return splitGucList(name, value).map(quoteLiteral).join(', ');
}

/**
 * Whether two values of parameter `name` say the same (elements compared
 * for list parameters: `a,b` and `a, "b"` are the same list).
 */
export function sameSetting(name: string, a: string, b: string): boolean {
  if (a === b) return true;
  if (!LIST_QUOTE_PARAMETERS.has(name.toLowerCase())) return false;
  try {
    return splitGucList(name, a).join('\u0000') === splitGucList(name, b).join('\u0000');
  } catch {
    return false;
  }
}

/**
 * A boolean option's value as `CREATE DATABASE` reads a quoted one
 * (`defGetBoolean()`: `true`, `false`, `on`, `off`, any case); null for
 * anything else, which PostgreSQL refuses.
 */
export function parseOptionBool(text: string): boolean | null {
  const v = text.toLowerCase();
  return v === 'true' || v === 'on' ? true : v === 'false' || v === 'off' ? false : null;
}
