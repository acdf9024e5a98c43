/**
 * SQL text for a spec's roles, databases and settings (compute_ctl's
 * pg_helpers.rs: `RoleExt::to_pg_options`, `DatabaseExt::to_pg_options`),
 * with every identifier and literal quoted. Option names come only from
 * the lists the JSON Schema admits; integers only as the schema's digits.
 */
import { quoteIdent, quoteLiteral } from '../sql';
import type { CatalogRole } from './catalog';
import type { Database, GenericOption, Role } from './spec-schema';

/** Role attributes that options set, as pg_authid names them. */
export interface RoleAttributes {
  superuser?: boolean;
  inherit?: boolean;
  createrole?: boolean;
  createdb?: boolean;
  login?: boolean;
  replication?: boolean;
  bypassrls?: boolean;
  connlimit?: number;
  validUntil?: string;
}

const FLAG_ATTRIBUTE: Record<string, keyof RoleAttributes> = {
  SUPERUSER: 'superuser',
  CREATEDB: 'createdb',
  CREATEROLE: 'createrole',
  INHERIT: 'inherit',
  LOGIN: 'login',
  REPLICATION: 'replication',
  BYPASSRLS: 'bypassrls',
};

/**
 * Attributes named by a role's options (later options win, as in
 * PostgreSQL's grammar order). `validUntil` maps a VALID UNTIL value to the
 * server's text of it (as `rolvaliduntil::text` reads), so that an
 * unchanged value compares equal.
 */
export function optionAttributes(options: readonly GenericOption[] | null | undefined, validUntil: ReadonlyMap<string, string> = new Map()): RoleAttributes {
  const out: RoleAttributes = {};
  for (const o of options ?? []) {
    if (o.name === 'CONNECTION LIMIT') out.connlimit = Number(o.value);
    else if (o.name === 'VALID UNTIL' && o.value !== null) out.validUntil = validUntil.get(o.value) ?? o.value;
    else {
      const negated = o.name.startsWith('NO') && FLAG_ATTRIBUTE[o.name.slice(2)] !== undefined;
      const attr = FLAG_ATTRIBUTE[negated ? o.name.slice(2) : o.name];
      if (attr) (out as Record<string, boolean>)[attr] = !negated;
    }
  }
  return out;
}

/** The password as pg_authid stores it: compute_ctl treats a value not starting with SCRAM-SHA-256 as an MD5 hash without its prefix. */
export function storedPassword(role: Role): string | null {
  const p = role.encrypted_password ?? null;
  if (p === null) return null;
  return p.startsWith('SCRAM-SHA-256') ? p : `md5${p}`;
}

/** `CREATE ROLE`/`ALTER ROLE` options for these attributes, then the password. */
export function roleClause(attrs: RoleAttributes, password: string | null): string {
  const parts: string[] = [];
  for (const [flag, attr] of Object.entries(FLAG_ATTRIBUTE)) {
    const v = attrs[attr];
    if (v !== undefined) parts.push(v ? flag : `NO${flag}`);
  }
  if (attrs.connlimit !== undefined) parts.push(`CONNECTION LIMIT ${Math.trunc(attrs.connlimit)}`);
  if (attrs.validUntil !== undefined) parts.push(`VALID UNTIL ${quoteLiteral(attrs.validUntil)}`);
  parts.push(password === null ? 'PASSWORD NULL' : `PASSWORD ${quoteLiteral(password)}`);
  return parts.join(' ');
}

/** Whether `existing` already has every attribute of `wanted`. */
export function hasAttributes(existing: CatalogRole, wanted: RoleAttributes): boolean {
  for (const [key, value] of Object.entries(wanted) as [keyof RoleAttributes, unknown][]) {
    if (value === undefined) continue;
    if (key === 'validUntil') {
      if (existing.validUntil !== value) return false;
    } else if ((existing as unknown as Record<string, unknown>)[key] !== value) return false;
  }
  return true;
}

/** `CREATE DATABASE` options (compute_ctl: the options, then `OWNER`). */
export function databaseClause(db: Database): string {
  const parts = (db.options ?? []).map((o) =>
    o.name === 'CONNECTION LIMIT' ? `CONNECTION LIMIT ${Math.trunc(Number(o.value))}` : `${o.name} ${quoteLiteral(o.value ?? '')}`,
  );
  parts.push(`OWNER ${quoteIdent(db.owner)}`);
  return parts.join(' ');
}

/** A configuration parameter's name for ALTER SYSTEM, each part quoted (`"neon"."safekeepers"`). */
export function parameterName(name: string): string {
  return name.split('.').map(quoteIdent).join('.');
}

/** A statement for the log: passwords replaced by `'***'`. */
export function redact(sql: string): string {
  return sql.replace(/PASSWORD (E?'(?:[^']|'')*')/g, "PASSWORD '***'");
}
