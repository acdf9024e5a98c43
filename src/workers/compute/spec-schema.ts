/**
 * compute_ctl's `ComputeSpec` (libs/compute_api/src/spec.rs): its
 * TypeScript shape and the JSON Schema (ajv 8) that a spec must pass, whole,
 * before anything is applied.
 *
 * Fields about Neon's storage (pageservers, safekeepers, extensions
 * downloaded from S3, local_proxy, pgbouncer) concern what runs outside the
 * server: they are accepted and ignored. Fields this worker cannot honour
 * (`cluster.postgresql_conf`, `drop_subscriptions_before_start: true`) are
 * refused rather than silently dropped. Inside roles, databases, options,
 * settings and delta operations unknown fields are refused: a misspelt
 * field would otherwise change nothing without a word.
 */
import Ajv, { type ErrorObject } from 'ajv';

import { passwordSecretProblem } from './pg-text';

/** compute_ctl's `GenericOption`: a statement option or a configuration parameter. */
export interface GenericOption {
  name: string;
  value: string | null;
  vartype: string;
}

/** compute_ctl's `Role`. `encrypted_password`: an MD5 hash without its `md5` prefix, or a SCRAM-SHA-256 secret. */
export interface Role {
  name: string;
  encrypted_password?: string | null;
  options?: GenericOption[] | null;
}

/** compute_ctl's `Database`. */
export interface Database {
  name: string;
  owner: string;
  options?: GenericOption[] | null;
}

/** compute_ctl's `DeltaOp`. */
export interface DeltaOp {
  action: 'rename_role' | 'delete_role' | 'rename_db' | 'delete_db';
  name: string;
  new_name?: string | null;
}

/** The part of compute_ctl's `ComputeSpec` this worker applies. */
export interface ComputeSpec {
  format_version: number;
  operation_uuid?: string | null;
  features?: string[];
  cluster: {
    cluster_id?: string | null;
    name?: string | null;
    state?: string | null;
    roles: Role[];
    databases: Database[];
    postgresql_conf?: null;
    settings?: GenericOption[] | null;
  };
  delta_operations?: DeltaOp[] | null;
  skip_pg_catalog_updates?: boolean;
  reconfigure_concurrency?: number;
  tenant_id?: string | null;
  timeline_id?: string | null;
  mode?: 'Primary' | 'Replica' | { Static: string };
  audit_log_level?: 'Disabled' | 'Log' | 'Base' | 'Hipaa' | 'Extended' | 'Full';
  drop_subscriptions_before_start?: boolean;
  [other: string]: unknown;
}

/** Role options that take no value (`CREATE ROLE ... <option>`). */
export const ROLE_FLAGS = [
  'SUPERUSER', 'NOSUPERUSER', 'CREATEDB', 'NOCREATEDB', 'CREATEROLE', 'NOCREATEROLE', 'INHERIT', 'NOINHERIT',
  'LOGIN', 'NOLOGIN', 'REPLICATION', 'NOREPLICATION', 'BYPASSRLS', 'NOBYPASSRLS',
] as const;

/** Options of CREATE DATABASE whose value is written as a string literal. */
export const DATABASE_TEXT_OPTIONS = [
  'TEMPLATE', 'ENCODING', 'LOCALE', 'LC_COLLATE', 'LC_CTYPE', 'ICU_LOCALE', 'LOCALE_PROVIDER',
  'COLLATION_VERSION', 'TABLESPACE', 'STRATEGY', 'ALLOW_CONNECTIONS', 'IS_TEMPLATE',
] as const;

const nullable = (schema: object) => ({ anyOf: [schema, { type: 'null' }] });

/** A PostgreSQL identifier as compute_ctl's `PgIdent` (byte length is checked after the schema). */
const pgIdent = { type: 'string', minLength: 1, maxLength: 63, pattern: '^[^\\u0000]*$' };
/** A connection limit: -1 (none) or a count (at most 2^31-1, checked after the schema). */
const CONNECTION_LIMIT_PATTERN = '^(-1|[0-9]{1,10})$';
const connectionLimit = { type: 'string', pattern: CONNECTION_LIMIT_PATTERN };

const roleOption = {
  type: 'object',
  required: ['name', 'vartype'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, value: nullable({ type: 'string' }), vartype: { type: 'string' } },
  discriminator: { propertyName: 'name' },
  oneOf: [
    { properties: { name: { enum: ROLE_FLAGS }, value: { type: 'null' } } },
    { properties: { name: { const: 'CONNECTION LIMIT' }, value: connectionLimit }, required: ['value'] },
    { properties: { name: { const: 'VALID UNTIL' }, value: { type: 'string', pattern: '^[0-9A-Za-z :.+-]{1,64}$' } }, required: ['value'] },
  ],
};

const databaseOption = {
  type: 'object',
  required: ['name', 'value', 'vartype'],
  additionalProperties: false,
  properties: { name: { type: 'string' }, value: { type: 'string' }, vartype: { type: 'string' } },
  discriminator: { propertyName: 'name' },
  oneOf: [
    { properties: { name: { enum: DATABASE_TEXT_OPTIONS }, value: { type: 'string', pattern: '^[^\\u0000]{0,255}$' } } },
    { properties: { name: { const: 'CONNECTION LIMIT' }, value: connectionLimit } },
  ],
};

const setting = {
  type: 'object',
  required: ['name', 'vartype'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', maxLength: 127, pattern: '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)*$' },
    value: nullable({ type: 'string', pattern: '^[^\\u0000\\n\\r]*$' }),
    vartype: { enum: ['bool', 'integer', 'real', 'string', 'enum'] },
  },
};

/** The JSON Schema of a spec (draft-07, as ajv's default). */
export const SPEC_SCHEMA = {
  $id: 'https://pg-tsworker/compute/spec.json',
  type: 'object',
  required: ['format_version', 'cluster'],
  properties: {
    format_version: { type: 'number', minimum: 1, maximum: 1 },
    operation_uuid: nullable({ type: 'string' }),
    features: { type: 'array', items: { type: 'string' } },
    cluster: {
      type: 'object',
      required: ['roles', 'databases'],
      properties: {
        cluster_id: nullable({ type: 'string' }),
        name: nullable({ type: 'string' }),
        state: nullable({ type: 'string' }),
        postgresql_conf: { type: 'null', description: 'not supported: settings go in cluster.settings' },
        roles: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name'],
            additionalProperties: false,
            properties: {
              name: pgIdent,
              encrypted_password: nullable({ type: 'string', format: 'pg-password-secret' }),
              options: nullable({ type: 'array', items: roleOption }),
            },
          },
        },
        databases: {
          type: 'array',
          items: {
            type: 'object',
            required: ['name', 'owner'],
            additionalProperties: false,
            properties: { name: pgIdent, owner: pgIdent, options: nullable({ type: 'array', items: databaseOption }) },
          },
        },
        settings: nullable({ type: 'array', items: setting }),
      },
    },
    delta_operations: nullable({
      type: 'array',
      items: {
        type: 'object',
        required: ['action', 'name'],
        additionalProperties: false,
        properties: {
          action: { enum: ['rename_role', 'delete_role', 'rename_db', 'delete_db'] },
          name: pgIdent,
          new_name: nullable(pgIdent),
        },
        if: { properties: { action: { enum: ['rename_role', 'rename_db'] } } },
        then: { required: ['new_name'], properties: { new_name: pgIdent } },
      },
    }),
    skip_pg_catalog_updates: { type: 'boolean' },
    reconfigure_concurrency: { type: 'integer', minimum: 1, maximum: 64 },
    tenant_id: nullable({ type: 'string', pattern: '^[0-9a-f]{32}$' }),
    timeline_id: nullable({ type: 'string', pattern: '^[0-9a-f]{32}$' }),
    mode: {
      anyOf: [
        { enum: ['Primary', 'Replica'] },
        { type: 'object', required: ['Static'], additionalProperties: false, properties: { Static: { type: 'string', pattern: '^[0-9A-F]{1,8}/[0-9A-F]{1,8}$' } } },
      ],
    },
    audit_log_level: { enum: ['Disabled', 'Log', 'Base', 'Hipaa', 'Extended', 'Full'] },
    drop_subscriptions_before_start: { const: false, description: 'not supported: dropping subscriptions on a new branch' },
    suspend_timeout_seconds: { type: 'integer' },
  },
} as const;

/** One reason a spec is refused: a JSON Pointer into the document and what is wrong there. */
export interface SpecProblem {
  path: string;
  message: string;
}

let compiled: ReturnType<Ajv['compile']> | undefined;

function validator(): ReturnType<Ajv['compile']> {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: false, discriminator: true, verbose: true });
    ajv.addFormat('pg-password-secret', { type: 'string', validate: (v: string) => passwordSecretProblem(v) === null });
    compiled = ajv.compile(SPEC_SCHEMA);
  }
  return compiled;
}

/** An error's message, in the spec's words where ajv's are vague. */
function messageOf(e: ErrorObject): string {
  const params = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown field "${String(params.additionalProperty)}"`;
    case 'enum':
      return `${e.message}: ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'const':
      return `${e.message}: ${JSON.stringify(params.allowedValue)}`;
    case 'pattern':
      if (params.pattern === CONNECTION_LIMIT_PATTERN) return 'must be -1 (no limit) or a number of connections';
      return e.message ?? 'is invalid';
    case 'format':
      if (params.format === 'pg-password-secret') return `${passwordSecretProblem(String(e.data))}: PostgreSQL would store it as a clear-text password`;
      return e.message ?? 'is invalid';
    case 'discriminator': {
      const names = Object.keys(((e.parentSchema as { oneOf?: { properties: { name: { enum?: string[]; const?: string } } }[] })?.oneOf ?? [])
        .reduce((acc: Record<string, true>, b) => {
          for (const n of b.properties.name.enum ?? [b.properties.name.const ?? '']) acc[n] = true;
          return acc;
        }, {}));
      return typeof params.tagValue === 'string'
        ? `unknown option ${JSON.stringify(params.tagValue)}: one of ${names.map((n) => JSON.stringify(n)).join(', ')}`
        : 'must be a string naming the option';
    }
    default:
      return e.message ?? 'is invalid';
  }
}

/**
 * The ajv errors worth showing, one reason per place: the lines of
 * `anyOf`/`oneOf` are dropped when a branch says more, and a value that
 * fits none of a nullable field's types reads `must be string or null`.
 */
function problems(errors: ErrorObject[], base: string): SpecProblem[] {
  const seen = new Set<string>();
  let out: (SpecProblem & { keyword: string; type?: string })[] = [];
  for (const e of errors) {
    if (e.keyword === 'if') continue;
    const path = e.keyword === 'discriminator' ? `${e.instancePath}/${String((e.params as { tag: string }).tag)}` : e.instancePath;
    const p = { path: base + path || '/', message: messageOf(e), keyword: e.keyword, type: e.keyword === 'type' ? String((e.params as { type: string }).type) : undefined };
    const key = `${p.path}\u0000${p.message}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(p);
    }
  }
  const combinator = (k: string) => k === 'anyOf' || k === 'oneOf';
  // A combinator's own line goes when another error is at its place or below it.
  out = out.filter((p) => !(combinator(p.keyword) && out.some((q) => q !== p && !combinator(q.keyword) && (q.path === p.path || q.path.startsWith(`${p.path}/`)))));
  // Type errors of the branches not taken go when a branch of the right type said more, at the same place or below.
  out = out.filter(
    (p) =>
      !(
        p.keyword === 'type' &&
        out.some((q) => !combinator(q.keyword) && ((q.path === p.path && q.keyword !== 'type') || q.path.startsWith(`${p.path}/`)))
      ),
  );
  // What is left of type errors at one place becomes one line.
  const merged: SpecProblem[] = [];
  for (const p of out) {
    if (p.keyword !== 'type') {
      merged.push({ path: p.path, message: p.message });
      continue;
    }
    const prev = merged.find((m) => m.path === p.path && m.message.startsWith('must be '));
    if (prev) prev.message += ` or ${p.type}`;
    else merged.push({ path: p.path, message: `must be ${p.type}` });
  }
  return merged;
}

/**
 * Check `doc` against the spec's JSON Schema. Returns the problems (empty
 * when valid), each with a JSON Pointer prefixed by `base` (for instance
 * `/spec` for the body of /configure).
 */
export function checkSpecSchema(doc: unknown, base = ''): SpecProblem[] {
  const validate = validator();
  if (validate(doc)) return [];
  return problems(validate.errors ?? [], base);
}
