/**
 * Worker settings declared in TypeScript.
 *
 * A worker named `cleanup` declaring `naptime` reads the configuration
 * parameter `tsworker_cleanup.naptime` (PostgreSQL's configuration files
 * accept only two-part names, so the worker's name is part of the prefix). Values are parsed and checked here
 * against the declaration (type, bounds, unit); a bad value is reported and
 * the previous value (at start: the default) is kept, as PostgreSQL does for
 * a bad value in postgresql.conf at reload.
 */

/**
 * Units an integer or real setting may be declared in: PostgreSQL's own
 * base units, so that the setting is a real configuration parameter with
 * that unit. postgresql.conf may use any unit of the same kind
 * (h, d, GB, TB ... too).
 */
export type SettingUnit = 'ms' | 's' | 'min' | 'B' | 'kB' | 'MB';

const DECLARABLE_UNITS: readonly string[] = ['ms', 's', 'min', 'B', 'kB', 'MB'];

interface BaseSpec {
  /** One line shown to operators. */
  description?: string;
  /**
   * When a new value takes effect: `sighup` (default) at a configuration
   * reload; `postmaster` only at server start (for settings that decide
   * which processes run, such as a number of instances).
   */
  context?: 'sighup' | 'postmaster';
  /**
   * Only superusers (and roles with pg_read_all_settings) may read it, as
   * PostgreSQL's primary_conninfo: for a setting that can hold a password
   * (a connection string). Default false.
   */
  superuserOnly?: boolean;
}

/** An integer setting. */
export interface IntSetting extends BaseSpec {
  type: 'int';
  default: number;
  min?: number;
  max?: number;
  /** Unit of the value the worker sees; postgresql.conf may use another unit of the same kind. */
  unit?: SettingUnit;
}

/** A floating-point setting. */
export interface RealSetting extends BaseSpec {
  type: 'real';
  default: number;
  min?: number;
  max?: number;
  unit?: SettingUnit;
}

/** A boolean setting (on/off, true/false, yes/no, 1/0). */
export interface BoolSetting extends BaseSpec {
  type: 'bool';
  default: boolean;
}

/** A string setting. */
export interface StringSetting extends BaseSpec {
  type: 'string';
  default: string;
}

/** One value out of a fixed list. */
export interface EnumSetting<V extends string = string> extends BaseSpec {
  type: 'enum';
  values: readonly V[];
  default: V;
}

export type SettingSpec = IntSetting | RealSetting | BoolSetting | StringSetting | EnumSetting;

/** Declarations of a worker's settings, by name. */
export type SettingsSpec = Record<string, SettingSpec>;

/** The value type a declaration produces. */
export type SettingValue<S extends SettingSpec> = S extends IntSetting | RealSetting
  ? number
  : S extends BoolSetting
    ? boolean
    : S extends EnumSetting<infer V>
      ? V
      : string;

/** The values of all declared settings. */
export type SettingValues<S extends SettingsSpec> = { [K in keyof S]: SettingValue<S[K]> };

const TIME_UNITS: Record<string, number> = { ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000 };
const MEMORY_UNITS: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function unitTable(unit: SettingUnit): Record<string, number> {
  return unit in TIME_UNITS ? TIME_UNITS : MEMORY_UNITS;
}

function parseNumber(spec: IntSetting | RealSetting, text: string): number {
  const m = /^\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)\s*$/.exec(text);
  if (!m) throw new Error(`"${text}" is not a number`);
  let value = Number(m[1]);
  const suffix = m[2];
  if (suffix) {
    if (!spec.unit) throw new Error(`"${text}" has a unit but the setting takes none`);
    const table = unitTable(spec.unit);
    if (!(suffix in table)) {
      throw new Error(`unit "${suffix}" is not valid here; use ${Object.keys(table).join(', ')}`);
    }
    value = (value * table[suffix]) / table[spec.unit];
  }
  if (spec.type === 'int') {
    if (!Number.isInteger(value)) throw new Error(`"${text}" is not an integer${spec.unit ? ` number of ${spec.unit}` : ''}`);
    if (!Number.isSafeInteger(value)) throw new Error(`"${text}" is out of range`);
  }
  if (spec.min !== undefined && value < spec.min) throw new Error(`${value} is below the minimum ${spec.min}`);
  if (spec.max !== undefined && value > spec.max) throw new Error(`${value} is above the maximum ${spec.max}`);
  return value;
}

const TRUE_WORDS = ['on', 'true', 'yes', '1', 't', 'y'];
const FALSE_WORDS = ['off', 'false', 'no', '0', 'f', 'n'];

/** Parse `text` according to `spec`; throws an Error saying why on a bad value. */
export function parseSetting(spec: SettingSpec, text: string): number | boolean | string {
  switch (spec.type) {
    case 'int':
    case 'real':
      return parseNumber(spec, text);
    case 'bool': {
      const t = text.trim().toLowerCase();
      if (TRUE_WORDS.includes(t)) return true;
      if (FALSE_WORDS.includes(t)) return false;
      throw new Error(`"${text}" is not a boolean`);
    }
    case 'enum':
      if (!spec.values.includes(text)) throw new Error(`"${text}" is not one of ${spec.values.join(', ')}`);
      return text;
    case 'string':
      return text;
  }
}

/**
 * The value of a declared setting as PostgreSQL gives it once it has
 * checked it against the declaration (a defined parameter): a number in
 * the declared unit, `on`/`off`, an enum value, a string. Only converted.
 */
export function settingFromPostgres(spec: SettingSpec, text: string): number | boolean | string {
  switch (spec.type) {
    case 'int':
    case 'real':
      return Number(text);
    case 'bool':
      return text === 'on';
    default:
      return text;
  }
}

/** PostgreSQL's integer parameters are 32-bit. */
const INT_MIN = -2147483648;
const INT_MAX = 2147483647;

/**
 * min and max of a number setting: numbers (integers in PostgreSQL's
 * range for `int`), min <= max, the default between them; else PostgreSQL
 * could not define the parameter (native/shim/worker_settings.c).
 */
function checkBounds(name: string, spec: IntSetting | RealSetting): void {
  const fits = (v: number) =>
    spec.type === 'int' ? Number.isSafeInteger(v) && v >= INT_MIN && v <= INT_MAX : typeof v === 'number' && Number.isFinite(v);
  for (const bound of ['default', 'min', 'max'] as const) {
    const v = spec[bound];
    if (v !== undefined && !fits(v)) {
      const what = spec.type === 'int' ? `an integer from ${INT_MIN} to ${INT_MAX}` : 'a finite number';
      throw new TypeError(`setting "${name}": ${bound} ${JSON.stringify(v)} must be ${what}`);
    }
  }
  if (spec.min !== undefined && spec.max !== undefined && spec.min > spec.max) {
    throw new TypeError(`setting "${name}": min ${spec.min} is above max ${spec.max}`);
  }
  if ((spec.min !== undefined && spec.default < spec.min) || (spec.max !== undefined && spec.default > spec.max)) {
    throw new TypeError(`setting "${name}": default ${spec.default} is outside min ${spec.min ?? '-'} .. max ${spec.max ?? '-'}`);
  }
}

/** Check a declaration itself (called when the worker is defined). */
export function validateSpec(name: string, spec: SettingSpec): void {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
    throw new TypeError(`setting name "${name}" must be lower case letters, digits and _`);
  }
  if (name === 'index') throw new TypeError('setting name "index" is reserved for the instance number (w.index)');
  const ok: Record<SettingSpec['type'], (d: unknown) => boolean> = {
    int: (d) => Number.isSafeInteger(d),
    real: (d) => typeof d === 'number' && Number.isFinite(d),
    bool: (d) => typeof d === 'boolean',
    string: (d) => typeof d === 'string',
    enum: (d) => typeof d === 'string' && (spec as EnumSetting).values.includes(d as string),
  };
  if (!(spec.type in ok)) throw new TypeError(`setting "${name}" has unknown type "${String(spec.type)}"`);
  if (!ok[spec.type](spec.default)) {
    throw new TypeError(`setting "${name}": default ${JSON.stringify(spec.default)} does not fit type ${spec.type}`);
  }
  if ((spec.type === 'int' || spec.type === 'real') && spec.unit && !DECLARABLE_UNITS.includes(spec.unit)) {
    throw new TypeError(`setting "${name}": unit must be one of ${DECLARABLE_UNITS.join(', ')}, not "${spec.unit}"`);
  }
  if (spec.type === 'int' || spec.type === 'real') checkBounds(name, spec);
  if (spec.type === 'enum' && (!Array.isArray(spec.values) || spec.values.length === 0)) {
    throw new TypeError(`setting "${name}": an enum needs a non-empty values list`);
  }
  if (spec.context !== undefined && spec.context !== 'sighup' && spec.context !== 'postmaster') {
    throw new TypeError(`setting "${name}": context must be 'sighup' or 'postmaster'`);
  }
  if (spec.superuserOnly !== undefined && typeof spec.superuserOnly !== 'boolean') {
    throw new TypeError(`setting "${name}": superuserOnly must be true or false`);
  }
}

/** Settings given to `tsworker.launch()`, checked against a worker's declarations. */
export interface LaunchSettings {
  /** Parsed values of the declared settings that were given. */
  values: Record<string, number | boolean | string>;
  /** The `index` given (w.index), if any. */
  index: number | undefined;
  /** One message per bad setting; empty when all are good. */
  errors: string[];
}

/**
 * Check the JSON object given to `tsworker.launch()` against `spec`: every
 * key must be a declared setting (or `index`, an integer >= 0), every
 * value a string, number or boolean that the declaration accepts. Every
 * bad setting is reported, not only the first.
 */
export function checkLaunchSettings(worker: string, spec: SettingsSpec, json: string): LaunchSettings {
  const out: LaunchSettings = { values: {}, index: undefined, errors: [] };
  let given: unknown;
  try {
    given = JSON.parse(json || '{}');
  } catch (err) {
    out.errors.push(`settings are not valid JSON: ${(err as Error).message}`);
    return out;
  }
  if (typeof given !== 'object' || given === null || Array.isArray(given)) {
    out.errors.push('settings must be a JSON object');
    return out;
  }
  const known = Object.keys(spec);
  for (const [key, value] of Object.entries(given as Record<string, unknown>)) {
    if (key === 'index') {
      if (!Number.isSafeInteger(value) || (value as number) < 0) {
        out.errors.push(`setting "index" must be an integer >= 0, not ${JSON.stringify(value)}`);
      } else {
        out.index = value as number;
      }
      continue;
    }
    const declared = spec[key];
    if (!declared) {
      out.errors.push(
        `setting "${key}" is not declared by worker "${worker}"` +
          (known.length ? ` (it declares: ${known.join(', ')})` : ' (it declares none)'),
      );
      continue;
    }
    if (value === null || typeof value === 'object') {
      out.errors.push(`setting "${key}" must be a string, number or boolean, not ${JSON.stringify(value)}`);
      continue;
    }
    if (typeof value === 'number' && !Number.isFinite(value)) {
      out.errors.push(`setting "${key}": the number is out of range`);
      continue;
    }
    try {
      out.values[key] = parseSetting(declared, String(value));
    } catch (err) {
      out.errors.push(`setting "${key}": ${(err as Error).message}`);
    }
  }
  return out;
}
