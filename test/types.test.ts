/**
 * [spi] Type mapping, both ways, value by value against what psql prints
 * (docs/types.md).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { Cluster, PG_OS_USER } from './harness/cluster';
import { installFixtures } from './helpers';

type Described = { t: string; v?: any };

/** psql's output for `SELECT expr` (unaligned, tuples only, UTC, ISO dates). */
async function psql(c: Cluster, expr: string, settings = ''): Promise<string> {
  const args = ['-X', '-A', '-t', '-q', '-h', c.host, '-p', String(c.port), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1',
    '-c', `SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; ${settings} SELECT ${expr}`];
  const cmd = process.getuid?.() === 0 ? ['runuser', ['-u', PG_OS_USER, '--', 'psql', ...args]] as const : ['psql', args] as const;
  const { stdout } = await promisify(execFile)(cmd[0], [...cmd[1]], { timeout: 30_000 });
  return stdout.replace(/\n$/, '');
}

/** Millisecond epoch of psql's timestamp text (UTC), truncated to the millisecond. */
function tsMillis(text: string): number {
  const m = /^(\d{4,}-\d\d-\d\d)(?: (\d\d:\d\d:\d\d)(?:\.(\d+))?)?(\+00)?( BC)?$/.exec(text);
  assert.ok(m && !m[5], `timestamp text ${text}`);
  const frac = (m[3] ?? '').padEnd(3, '0').slice(0, 3);
  return Date.parse(`${m[1]}T${m[2] ?? '00:00:00'}.${frac}Z`);
}

/** Back from the fixture's description to a plain value (for JSON comparison). */
function plain(d: Described): unknown {
  switch (d.t) {
    case 'null':
      return null;
    case 'number':
      return Number(d.v);
    case 'array':
      return d.v.map(plain);
    case 'object':
      return Object.fromEntries(d.v.map(([k, x]: [string, Described]) => [k, plain(x)]));
    default:
      return d.v;
  }
}

/** Quote an element of an array (in) or row (!in) literal the way PostgreSQL's output functions do. */
function pgQuote(s: string, array: boolean): string {
  const special = array ? /[{},"\\\s]/ : /[(),"\\\s]/;
  const needs = s === '' || special.test(s) || (array && s.toUpperCase() === 'NULL');
  return needs ? '"' + s.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"' : s;
}

/** The text PostgreSQL prints for a described array or row, given how scalars print. */
function render(d: Described, scalar: (d: Described) => string, array = true): string {
  if (d.t === 'array') return '{' + d.v.map((x: Described) => (x.t === 'null' ? 'NULL' : x.t === 'array' ? render(x, scalar) : pgQuote(render(x, scalar, true), true))).join(',') + '}';
  if (d.t === 'object') return '(' + d.v.map(([, x]: [string, Described]) => (x.t === 'null' ? '' : pgQuote(render(x, scalar, false), false))).join(',') + ')';
  return scalar(d);
}

/** How a scalar prints: numbers, strings, bigints as themselves; buffers as hex; Dates as UTC timestamps. */
function scalarText(d: Described): string {
  switch (d.t) {
    case 'buffer':
      return '\\x' + d.v;
    case 'date': {
      const iso = new Date(d.v).toISOString();
      return iso.replace('T', ' ').replace(/\.000Z$/, '+00').replace(/(\.\d*?)0*Z$/, '$1+00');
    }
    case 'boolean':
      return d.v ? 't' : 'f';
    default:
      return String(d.v);
  }
}

interface Case {
  name: string;
  expr: string;
  /** Check what JavaScript received against psql's text of the same expression. */
  check: (d: Described, text: string) => void;
  opts?: object;
  /** The value passed back as a parameter equals the original (false where the mapping is documented as lossy). */
  roundtrip?: boolean | string;
  cmp?: 'text' | 'jsonb';
}

const is = (t: string) => (d: Described) => assert.equal(d.t, t);
const same = (t: string) => (d: Described, text: string) => {
  is(t)(d);
  assert.equal(String(d.v), text);
};
const float4 = (d: Described, text: string) => {
  is('number')(d);
  assert.equal(Number(d.v), Math.fround(Number(text)));
};
const dateDay = (d: Described, text: string) => {
  is('date')(d);
  assert.equal(new Date(d.v).toISOString().slice(0, 10), text);
  assert.equal(new Date(d.v).toISOString().slice(10), 'T00:00:00.000Z', 'a date is midnight UTC');
};
const ts = (d: Described, text: string) => {
  is('date')(d);
  assert.equal(d.v, tsMillis(text));
};
const infinity = (sign: string) => (d: Described, text: string) => {
  assert.deepEqual(d, { t: 'number', v: `${sign}Infinity` });
  assert.equal(text, `${sign === '-' ? '-' : ''}infinity`);
};
const json = (d: Described, text: string) => assert.deepEqual(plain(d), JSON.parse(text));
const rendered = (d: Described, text: string) => assert.equal(render(d, scalarText), text);

const CASES: Case[] = [
  { name: 'bool_true', expr: 'true', check: (d, t) => { assert.deepEqual(d, { t: 'boolean', v: true }); assert.equal(t, 't'); } },
  { name: 'bool_false', expr: 'false', check: (d, t) => { assert.deepEqual(d, { t: 'boolean', v: false }); assert.equal(t, 'f'); } },
  { name: 'int2', expr: '(-32768)::int2', check: same('number') },
  { name: 'int4', expr: '2147483647', check: same('number') },
  { name: 'int8_max', expr: '9223372036854775807::int8', check: same('bigint') },
  { name: 'int8_min', expr: '(-9223372036854775808)::int8', check: same('bigint') },
  { name: 'int8_as_string', expr: '9007199254740993::int8', opts: { int8: 'string' }, check: same('string') },
  { name: 'oid', expr: '4294967295::oid', check: same('number') },
  { name: 'float4', expr: '3.14::float4', check: float4 },
  { name: 'float8', expr: '0.1::float8', check: same('number') },
  { name: 'float8_big', expr: '1e300::float8', check: same('number') },
  { name: 'float8_nan', expr: `'NaN'::float8`, check: same('number') },
  { name: 'float8_inf', expr: `'Infinity'::float8`, check: same('number') },
  { name: 'float8_neginf', expr: `'-Infinity'::float8`, check: same('number') },
  { name: 'float8_negzero', expr: `'-0'::float8`, check: same('number') },
  { name: 'numeric', expr: '12345678901234567890.123456789012345::numeric', check: same('string') },
  { name: 'numeric_nan', expr: `'NaN'::numeric`, check: same('string') },
  { name: 'text', expr: `'héllo ☃ "q" \\ x'::text`, check: same('string') },
  { name: 'varchar', expr: `'abc'::varchar(10)`, check: same('string') },
  { name: 'char', expr: `'ab'::char(5)`, check: (d, t) => { same('string')(d, t); assert.equal(d.v, 'ab   '); } },
  { name: 'name', expr: `'pg_class'::name`, check: same('string') },
  { name: 'bytea', expr: `'\\x00ff10'::bytea`, check: (d, t) => { is('buffer')(d); assert.equal('\\x' + d.v, t); } },
  { name: 'bytea_empty', expr: `''::bytea`, check: (d, t) => { is('buffer')(d); assert.equal('\\x' + d.v, t); } },
  { name: 'date', expr: `'2024-02-29'::date`, check: dateDay },
  { name: 'date_old', expr: `'1900-01-01'::date`, check: dateDay },
  { name: 'date_inf', expr: `'infinity'::date`, check: infinity('') },
  { name: 'date_neginf', expr: `'-infinity'::date`, check: infinity('-') },
  { name: 'timestamp', expr: `'2024-02-29 12:34:56.789'::timestamp`, check: ts },
  { name: 'timestamp_pre_epoch', expr: `'1969-12-31 23:59:59.999'::timestamp`, check: ts },
  { name: 'timestamp_neginf', expr: `'-infinity'::timestamp`, check: infinity('-') },
  { name: 'timestamptz', expr: `'2024-02-29 12:34:56.789+02'::timestamptz`, check: ts },
  { name: 'timestamptz_inf', expr: `'infinity'::timestamptz`, check: infinity('') },
  { name: 'timestamptz_micro', expr: `'2024-01-01 00:00:00.123456+00'::timestamptz`, check: ts, roundtrip: false },
  { name: 'timestamptz_as_text', expr: `'2024-01-01 00:00:00.123456+00'::timestamptz`, opts: { dates: 'text' }, check: same('string') },
  { name: 'uuid', expr: `'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid`, check: same('string') },
  { name: 'json', expr: `'{"a": [1, 2.5, {"b": null}], "c": "x"}'::json`, check: json, cmp: 'jsonb' },
  { name: 'jsonb', expr: `'{"a": [1, 2.5, {"b": null}], "c": "\\u00e9"}'::jsonb`, check: json },
  { name: 'jsonb_scalar', expr: `'"x"'::jsonb`, check: json },
  { name: 'int4_array', expr: `'{1,NULL,3}'::int4[]`, check: rendered },
  { name: 'int4_array_2d', expr: `'{{1,2},{3,4},{5,6}}'::int4[]`, check: (d, t) => { rendered(d, t); assert.equal(d.v.length, 3); } },
  { name: 'array_empty', expr: `'{}'::int4[]`, check: (d, t) => { assert.deepEqual(d, { t: 'array', v: [] }); assert.equal(t, '{}'); } },
  { name: 'text_array', expr: `ARRAY['a b', NULL, 'q"uote', 'back\\slash', '', 'NULL', 'x,y']`, check: rendered },
  { name: 'int8_array', expr: `ARRAY[1, -9223372036854775808]::int8[]`, check: (d, t) => { rendered(d, t); assert.equal(d.v[1].t, 'bigint'); } },
  { name: 'float8_array', expr: `ARRAY[1.5, 'NaN', '-Infinity']::float8[]`, check: rendered },
  { name: 'bool_array', expr: `ARRAY[true, NULL, false]`, check: rendered },
  { name: 'timestamptz_array', expr: `ARRAY['2024-01-02 03:04:05.5+00', NULL]::timestamptz[]`, check: rendered },
  { name: 'bytea_array', expr: `ARRAY['\\x0102'::bytea, NULL]`, check: rendered },
  { name: 'jsonb_array', expr: `ARRAY['{"a":1}'::jsonb, '[2]'::jsonb]`, check: (d, t) => { assert.deepEqual(plain(d), [{ a: 1 }, [2]]); assert.equal(t, '{"{\\"a\\": 1}",[2]}'); } },
  { name: 'composite', expr: `ROW(7, 'a label', NULL, '2024-01-02 03:04:05+00')::types_pair`, check: (d, t) => { rendered(d, t); assert.deepEqual(d.v.map((e: [string]) => e[0]), ['id', 'label', 'note', 'at']); } },
  { name: 'record', expr: `ROW(1, 'x y', ARRAY[1,2])`, check: (d, t) => { rendered(d, t); assert.deepEqual(d.v.map((e: [string]) => e[0]), ['f1', 'f2', 'f3']); }, roundtrip: '0A000' /* PostgreSQL cannot read an anonymous record */ },
  { name: 'composite_array', expr: `ARRAY[ROW(1, 'a', NULL, NULL)::types_pair, NULL]`, check: rendered },
  { name: 'enum', expr: `'happy'::types_mood`, check: same('string') },
  { name: 'domain_int', expr: `5::types_posint`, check: same('number') },
  { name: 'domain_array', expr: `ARRAY['a','b']::types_tags`, check: rendered },
  { name: 'point', expr: `point(1.5, -2)`, check: same('string') },
  { name: 'inet', expr: `'192.168.0.1/24'::inet`, check: same('string') },
  { name: 'null_int', expr: `NULL::int4`, check: (d, t) => { assert.deepEqual(d, { t: 'null' }); assert.equal(t, ''); } },
  { name: 'null_jsonb', expr: `NULL::jsonb`, check: (d) => assert.deepEqual(d, { t: 'null' }) },
];

/** JavaScript values as parameters: [name, type, JavaScript expression, the SQL literal psql prints the same text for]. */
const PARAMS: [string, string, string, string][] = [
  ['bigint', 'int8', '-9223372036854775808n', `'-9223372036854775808'::int8`],
  ['number_int', 'int4', '42', '42'],
  ['number_float', 'float8', '0.1', '0.1::float8'],
  ['number_nan', 'float8', 'NaN', `'NaN'::float8`],
  ['number_to_numeric', 'numeric', '1.5e-7', '0.00000015::numeric'],
  ['string_numeric', 'numeric', `'12345678901234567890.5'`, `'12345678901234567890.5'::numeric`],
  ['boolean', 'bool', 'false', 'false'],
  ['date_tz', 'timestamptz', `new Date(Date.UTC(2024, 1, 29, 12, 0, 0, 5))`, `'2024-02-29 12:00:00.005+00'::timestamptz`],
  ['date_ts', 'timestamp', `new Date(Date.UTC(1969, 11, 31, 23, 59, 59, 999))`, `'1969-12-31 23:59:59.999'::timestamp`],
  ['date_date', 'date', `new Date(Date.UTC(2024, 1, 29))`, `'2024-02-29'::date`],
  ['buffer', 'bytea', `Buffer.from([0, 255, 16])`, `'\\x00ff10'::bytea`],
  ['uint8array', 'bytea', `new Uint8Array([1, 2])`, `'\\x0102'::bytea`],
  ['interval', 'interval', `new Interval(-14, 3, -3723000789n)`, `'-1 year -2 mons +3 days -01:02:03.000789'::interval`],
  ['interval_of', 'interval', `Interval.of({ days: 1, hours: 2, milliseconds: 3 })`, `'1 day 02:00:00.003'::interval`],
  ['int_array', 'int4[]', '[1, null, 3]', `'{1,NULL,3}'::int4[]`],
  ['int_array_2d', 'int4[]', '[[1, 2], [3, 4]]', `'{{1,2},{3,4}}'::int4[]`],
  ['text_array', 'text[]', `['a b', null, 'q"uote', 'back\\\\slash', '', 'NULL']`, `ARRAY['a b', NULL, 'q"uote', 'back\\slash', '', 'NULL']`],
  ['bigint_array', 'int8[]', '[1n, -2n]', `'{1,-2}'::int8[]`],
  ['date_array', 'timestamptz[]', `[new Date(0), null]`, `'{"1970-01-01 00:00:00+00",NULL}'::timestamptz[]`],
  ['bytea_array', 'bytea[]', `[Buffer.from([1]), null]`, `ARRAY['\\x01'::bytea, NULL]`],
  ['object_jsonb', 'jsonb', `{ a: [1, { b: null }], c: 'x' }`, `'{"a": [1, {"b": null}], "c": "x"}'::jsonb`],
  ['array_jsonb', 'jsonb', `[1, 'two', { three: 3 }]`, `'[1, "two", {"three": 3}]'::jsonb`],
  ['string_json', 'json', `'a "string"'`, `'"a \\"string\\""'::json`],
  ['json_text', 'text::jsonb', `'{"kept": "as is"}'`, `'{"kept": "as is"}'::jsonb`],
  ['jsonb_array', 'jsonb[]', `[{ a: 1 }, [2]]`, `ARRAY['{"a":1}'::jsonb, '[2]'::jsonb]`],
  ['composite_object', 'types_pair', `{ id: 1, label: 'x, "y"', at: new Date(0) }`, `ROW(1, 'x, "y"', NULL, '1970-01-01 00:00:00+00')::types_pair`],
  ['composite_array', 'types_pair', `[2, 'b', null, null]`, `ROW(2, 'b', NULL, NULL)::types_pair`],
  ['composite_list', 'types_pair[]', `[{ id: 3 }, null]`, `ARRAY[ROW(3, NULL, NULL, NULL)::types_pair, NULL]`],
  ['domain_array', 'types_tags', `['x', 'y']`, `ARRAY['x','y']::types_tags`],
  ['enum', 'types_mood', `'happy'`, `'happy'::types_mood`],
  ['to_postgres', 'text', `{ toPostgres: () => 'custom' }`, `'custom'`],
  ['null', 'int4', 'null', 'NULL::int4'],
];

describe('type mapping', () => {
  let c: Cluster;
  let report: Map<string, any>;
  let paramReport: Map<string, any>;

  before(async () => {
    c = await Cluster.create('types', { start: false });
    const dir = installFixtures(c, 'types');
    c.appendConf({ shared_preload_libraries: 'pg_tsworker', 'tsworker.restart_interval': -1 });
    await c.start();
    await c.query(`
      CREATE EXTENSION pg_tsworker;
      CREATE TYPE types_pair AS (id int, label text, note text, at timestamptz);
      CREATE TYPE types_mood AS ENUM ('sad', 'happy');
      CREATE DOMAIN types_posint AS int CHECK (VALUE > 0);
      CREATE DOMAIN types_tags AS text[];
      CREATE TABLE types_cases(name text PRIMARY KEY, expr text, opts jsonb, cmp text);
      CREATE TABLE types_report(name text, result jsonb);
      CREATE TABLE types_params(name text PRIMARY KEY, type text, js text);
      CREATE TABLE types_param_report(name text, result jsonb);`);
    for (const k of CASES) {
      await c.query('INSERT INTO types_cases VALUES ($1, $2, $3, $4)', [k.name, k.expr, k.opts ? JSON.stringify(k.opts) : null, k.cmp ?? 'text']);
    }
    for (const [name, type, js] of PARAMS) await c.query('INSERT INTO types_params VALUES ($1, $2, $3)', [name, type, js]);
    await c.query(`SELECT tsworker.launch('types', $1)`, [`${dir}/types.ts`]);
    await c.pollQueryUntil(`SELECT count(*) = 1 FROM types_report WHERE name = 'done'`, 't', { timeoutMs: 30_000 });
    report = new Map((await c.query('SELECT name, result FROM types_report')).map((r) => [r.name, r.result]));
    paramReport = new Map((await c.query('SELECT name, result FROM types_param_report')).map((r) => [r.name, r.result]));
  });

  after(async () => {
    await c?.cleanup();
  });

  test('results: each type arrives as documented, checked against psql', async () => {
    for (const k of CASES) {
      const r = report.get(k.name);
      assert.ok(r, `case ${k.name} reported`);
      assert.equal(r.error, undefined, `case ${k.name}: ${JSON.stringify(r.error)}`);
      const text = await psql(c, k.expr);
      try {
        k.check(r.value, text);
      } catch (e) {
        throw new Error(`case ${k.name} (${k.expr}): JavaScript got ${JSON.stringify(r.value)}, psql printed ${JSON.stringify(text)}: ${(e as Error).message}`);
      }
      assert.equal(r.roundtrip, k.roundtrip ?? true, `case ${k.name}: the value passed back as a parameter equals the original`);
    }
  });

  test('interval fields match psql in ISO 8601 style', async () => {
    const exprs = [`'1 year 2 months 3 days 04:05:06.789'::interval`, `'-1 day +02:03'::interval`, `'-00:00:01.5'::interval`, `'100 hours'::interval`];
    await c.query('TRUNCATE types_cases, types_report');
    for (const [i, e] of exprs.entries()) await c.query('INSERT INTO types_cases VALUES ($1, $2, NULL, $3)', [`iv${i}`, e, 'text']);
    await c.query(`SELECT tsworker.stop('types')`);
    await c.query(`SELECT tsworker.launch('types', $1)`, [`${c.baseDir}/types/types.ts`]);
    await c.pollQueryUntil(`SELECT count(*) = 1 FROM types_report WHERE name = 'done'`, 't', { timeoutMs: 30_000 });
    const rep = new Map((await c.query('SELECT name, result FROM types_report')).map((r) => [r.name, r.result]));
    for (const [i, e] of exprs.entries()) {
      const r = rep.get(`iv${i}`);
      assert.equal(r.value.t, 'interval', e);
      assert.equal(r.roundtrip, true, `${e} round trip`);
      const iso = await psql(c, e, `SET IntervalStyle = 'iso_8601';`);
      const m = /^P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+(?:\.\d+)?)S)?)?$/.exec(iso);
      assert.ok(m, `psql ISO interval ${iso}`);
      const [years, months, days, hours, minutes, secs] = m.slice(1).map((x) => Number(x ?? 0));
      const v = r.value.v;
      assert.deepEqual(
        { years: v.years, months: v.months, days: v.days, hours: v.hours, minutes: v.minutes },
        { years, months, days, hours, minutes },
        `${e}: psql ${iso}`,
      );
      assert.ok(Math.abs(v.seconds + v.milliseconds / 1000 - secs) < 1e-9, `${e}: seconds ${v.seconds}+${v.milliseconds}ms vs ${secs}`);
    }
  });

  test('a LATIN1 database: text, names, json and jsonb are converted to and from UTF-8 (docs/types.md)', async () => {
    await c.query(`CREATE DATABASE latin ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0`);
    await c.query('CREATE TABLE enc_report(name text, result text); CREATE TABLE enc_text(v text); CREATE TABLE enc_uniq(v text CONSTRAINT "unique_é" PRIMARY KEY)', [], { database: 'latin' });
    await c.query(`SELECT tsworker.launch('encoding', $1, '{}', 'latin')`, [`${c.baseDir}/types/encoding.ts`]);
    await c.pollQueryUntil(`SELECT count(*) = 1 FROM enc_report WHERE name = 'done'`, 't', { timeoutMs: 30_000, database: 'latin' });
    const rep = new Map((await c.query('SELECT name, result FROM enc_report', [], { database: 'latin' })).map((r) => [r.name, JSON.parse(r.result)]));
    const row = rep.get('row');
    assert.deepEqual(row.fields, ['café', 'latin1', 'lit', 'jb', 'js', 'rec', 'arr'], 'column names');
    assert.equal(row['café'], 'déjà vu', 'a text parameter and its result');
    assert.equal(row.latin1, Buffer.from('déjà vu', 'latin1').toString('hex'), 'the server holds the parameter as LATIN1');
    assert.equal(row.lit, 'naïve');
    assert.deepEqual(row.jb, { 'clé': 'été' });
    assert.deepEqual(row.js, { 'clé': 'été' });
    assert.deepEqual(row.rec, { f1: 'à' });
    assert.deepEqual(row.arr, ['ß']);
    assert.deepEqual(rep.get('untranslatable'), { code: '22P05' }, 'a character LATIN1 lacks fails as psql does');
    assert.deepEqual(rep.get('duplicate'), { code: '23505', detail: 'Key (v)=(é) already exists.', constraint: 'unique_é' }, 'error fields arrive in UTF-8');
    const stored = (await c.query('SELECT v, convert_to(v, \'LATIN1\') AS b FROM enc_text ORDER BY v', [], { database: 'latin' })).map((r) => [r.v, r.b.toString('hex')]);
    assert.deepEqual(stored, [['Ö', 'd6'], ['ÿ ü', 'ff20fc']]);
  });

  test('dates and times outside 1–9999 AD round-trip; what a Date cannot hold fails with 22008 (docs/types.md)', async () => {
    /** Milliseconds of a UTC time in the proleptic Gregorian calendar, astronomical year (0 is 1 BC). */
    const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0) =>
      new Date(0).setUTCFullYear(y, mo - 1, d) + ((h * 60 + mi) * 60 + s) * 1000 + ms;
    const inRange: [string, string, number][] = [];
    for (const type of ['date', 'timestamp', 'timestamptz']) {
      const time = type === 'date' ? '' : ' 12:34:56.789';
      const tz = type === 'timestamptz' ? '+00' : '';
      const t = type === 'date' ? [0, 0, 0, 0] as const : [12, 34, 56, 789] as const;
      inRange.push(
        [type, `'4713-11-24${time}${tz} BC'`, utc(-4712, 11, 24, ...t)], // PostgreSQL's first day
        [type, `'0044-03-15${time}${tz} BC'`, utc(-43, 3, 15, ...t)],
        [type, `'0001-12-31${time}${tz} BC'`, utc(0, 12, 31, ...t)], // 1 BC: year 0
        [type, `'0001-01-01${time}${tz}'`, utc(1, 1, 1, ...t)],
        [type, `'10000-01-01${time}${tz}'`, utc(10000, 1, 1, ...t)],
        [type, `'275760-09-13${tz ? ' 00:00:00+00' : type === 'date' ? '' : ' 00:00:00'}'`, utc(275760, 9, 13)], // a Date's last day
      );
    }
    const outOfRange: [string, string][] = [
      ['date', `'5874897-12-31'`],
      ['timestamp', `'294276-12-31 23:59:59'`],
      ['timestamptz', `'275760-09-13 00:00:00.001+00'`],
    ];
    await c.query('TRUNCATE types_cases, types_report, types_params, types_param_report');
    for (const [i, [type, lit]] of [...inRange, ...outOfRange].entries()) {
      await c.query('INSERT INTO types_cases VALUES ($1, $2, NULL, $3)', [`d${String(i).padStart(2, '0')}`, `${lit}::${type}`, 'text']);
    }
    // JavaScript Dates PostgreSQL cannot hold: before 4713 BC
    await c.query(`INSERT INTO types_params VALUES ('before_4713bc', 'date', 'new Date(-8.64e15)'), ('bc_ok', 'timestamptz', 'new Date(new Date(0).setUTCFullYear(-43, 2, 15))')`);
    await c.query(`SELECT tsworker.stop('types')`);
    await c.query(`SELECT tsworker.launch('types', $1)`, [`${c.baseDir}/types/types.ts`]);
    await c.pollQueryUntil(`SELECT count(*) = 1 FROM types_report WHERE name = 'done'`, 't', { timeoutMs: 30_000 });
    const rep = new Map((await c.query('SELECT name, result FROM types_report')).map((r) => [r.name, r.result]));
    for (const [i, [type, lit, ms]] of inRange.entries()) {
      const r = rep.get(`d${String(i).padStart(2, '0')}`);
      assert.equal(r.error, undefined, `${lit}::${type}: ${JSON.stringify(r.error)}`);
      assert.deepEqual(r.value, { t: 'date', v: ms }, `${lit}::${type} arrives as the Date ${new Date(ms).toISOString()}`);
      assert.equal(r.roundtrip, true, `${lit}::${type} passed back as a parameter is the same value`);
    }
    for (const [j, [type, lit]] of outOfRange.entries()) {
      const r = rep.get(`d${String(inRange.length + j).padStart(2, '0')}`);
      assert.deepEqual(r.error, { code: '22008', message: `${type === 'timestamptz' ? 'timestamp with time zone' : type === 'timestamp' ? 'timestamp without time zone' : 'date'} value is outside the range of a JavaScript Date` }, `${lit}::${type}`);
    }
    const params = new Map((await c.query('SELECT name, result FROM types_param_report')).map((r) => [r.name, r.result]));
    assert.equal(params.get('bc_ok').text, '0044-03-15 00:00:00+00 BC');
    assert.equal(params.get('before_4713bc').text.error.code, '22008');
    assert.match(params.get('before_4713bc').text.error.message, /^date out of range: "271822-04-20T00:00:00\.000Z BC"$/);
  });

  test('parameters: JavaScript values become the PostgreSQL values psql prints', async () => {
    for (const [name, type, js, literal] of PARAMS) {
      const r = paramReport.get(name);
      assert.ok(r, `param ${name} reported`);
      assert.equal(r.text?.error, undefined, `param ${name} (${js} as ${type}): ${JSON.stringify(r.text?.error)}`);
      const expected = await psql(c, `(${literal})::text`);
      if (literal.startsWith('NULL')) assert.equal(r.text, null);
      else assert.equal(r.text, expected, `param ${name}: ${js} as ${type}`);
    }
  });
});
