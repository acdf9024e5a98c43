/**
 * Worker settings declared in TypeScript.
 *
 * A worker named `cleanup` declaring `naptime` reads the configuration
 * parameter `tsworker_cleanup.naptime` (PostgreSQL's configuration files
 * accept only two-part names, so the worker's name is part of the prefix).
 * Each declared setting is a real parameter (native/shim/worker_settings.c:
 * in the postmaster for configured workers, in the worker's own process and
 * in the backend that calls tsworker.launch() otherwise), so PostgreSQL
 * checks every value (syntax, units, rounding, bounds), from
 * postgresql.conf or from tsworker.launch(); this file holds the
 * declarations, their checks, and the conversion of PostgreSQL's answer.
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

/**
 * One declared setting as PostgreSQL defines it (DefineCustom*Variable in
 * native/shim/worker_settings.c): the manifest child prints these for the
 * postmaster and tsworker.launch(), and a worker passes its own to the
 * addon, which defines the ones its process does not have yet.
 */
export interface ManifestSetting {
  name: string;
  type: SettingSpec['type'];
  /** The default as PostgreSQL's text for it: a number, `on`/`off`, a value. */
  default: string;
  /** Bounds of int/real settings, absent when unbounded. */
  min?: number;
  max?: number;
  /** Base unit of int/real settings (ms, s, min, B, kB, MB). */
  unit?: string;
  /** The values of an enum setting. */
  values?: string[];
  description: string;
  context: 'sighup' | 'postmaster';
  /** Readable by superusers only (GUC_SUPERUSER_ONLY); absent when not. */
  superuser_only?: boolean;
}

/** The declarations of `spec` as PostgreSQL defines them, in declaration order. */
export function manifestSettings(spec: SettingsSpec): ManifestSetting[] {
  return Object.entries(spec).map(([name, s]) => {
    const out: ManifestSetting = {
      name,
      type: s.type,
      default: s.type === 'bool' ? (s.default ? 'on' : 'off') : String(s.default),
      description: s.description ?? '',
      context: s.context ?? 'sighup',
    };
    if (s.type === 'int' || s.type === 'real') {
      if (s.min !== undefined) out.min = s.min;
      if (s.max !== undefined) out.max = s.max;
      if (s.unit) out.unit = s.unit;
    }
    if (s.type === 'enum') out.values = [...s.values];
    if (s.superuserOnly) out.superuser_only = true;
    return out;
  });
}
