/**
 * From a spec and the catalog to the statements to run, in compute_ctl's
 * order (compute_tools/src/spec_apply.rs, `apply_spec_sql`): settings
 * first (compute_ctl writes postgresql.conf and reloads before applying),
 * then CreatePrivilegedRole, DropInvalidDatabases, RenameRoles,
 * CreateAndAlterRoles, RenameAndDeleteDatabases, CreateAndAlterDatabases,
 * RunInEachDatabase (DeleteDBRoleReferences, ChangeSchemaPerms),
 * HandleOtherExtensions, CreateAvailabilityCheck, DropRoles and the audit
 * phases.
 *
 * Only what differs from the catalog is planned, so applying the same spec
 * twice plans nothing the second time (compute_ctl re-runs some of these
 * statements on every apply; here they are skipped when the catalog shows
 * them done). Neon-only phases (schema and extension `neon`, subscriptions
 * of a new branch, Databricks) have no counterpart here.
 */
import { dollarQuote, quoteIdent } from '../sql';
import type { Catalog, CatalogDatabase, CatalogRole } from './catalog';
import { LIST_QUOTE_PARAMETERS, parseOptionBool, sameSetting, settingLiterals, splitGucList } from './pg-text';
import { databaseClause, hasAttributes, optionAttributes, parameterName, roleClause, storedPassword, type RoleAttributes } from './render';
import type { ComputeSpec } from './spec-schema';

/**
 * Where a statement runs: `spi` inside the worker's transaction, `server`
 * over a connection to the server itself (statements that cannot run in a
 * transaction block), or over a connection to `database`.
 */
export type Target = 'spi' | 'server' | { database: string };

/** One statement of an apply. */
export interface Operation {
  /** compute_ctl's phase name (`CreateAndAlterRoles` ...), or `Settings`. */
  phase: string;
  sql: string;
  target: Target;
}

/** What a plan needs besides the spec and the catalog. */
export interface PlanContext {
  /** compute_ctl's privileged role (`neon_superuser`); empty for none. */
  privilegedRole: string;
  /** New owner of objects of a dropped role in the worker's database; schema `public` owned by it goes to a database's owner. */
  adminRole: string;
  /** Parameters an earlier spec set, by lower-case name: reset when a spec no longer has them. */
  managedSettings: ReadonlySet<string>;
  /** Databases whose schema permissions were set, by name: `<owner>@<oid>` they were set for. */
  schemaPermsDone: ReadonlyMap<string, string>;
  /** Each VALID UNTIL value of the spec as the server prints it as a timestamptz (`infinity`, `2030-01-01 00:00:00+00`). */
  validUntil: ReadonlyMap<string, string>;
}

/** One `ALTER SYSTEM` of a spec, with the statement that undoes it. */
export interface SettingWrite {
  /** JSON Pointer of the setting in the spec (without the base). */
  path: string;
  sql: string;
  /** Puts back what postgresql.auto.conf had: `ALTER SYSTEM SET` the old value, or `RESET`. */
  undo: string;
}

export interface Plan {
  /** ALTER SYSTEM statements, written and checked before the operations run (which begin with the reload). */
  settingWrites: SettingWrite[];
  operations: Operation[];
  /** Parameters this spec sets (lower-case): the next plan's `managedSettings`. */
  settings: Set<string>;
  /** Databases whose schema permissions this plan sets, with their owner. */
  schemaPerms: Map<string, string>;
  /** Why catalog phases were skipped, if they were. */
  catalogSkipped: string | null;
}

/** compute_ctl's create_privileged_role.sql, without the DO block (the catalog says it is missing). */
function createPrivilegedRole(name: string): string {
  return `CREATE ROLE ${quoteIdent(name)} CREATEDB CREATEROLE NOLOGIN REPLICATION BYPASSRLS IN ROLE pg_read_all_data, pg_write_all_data`;
}

/** compute_ctl's set_public_schema_owner.sql: schema public owned by the admin goes to the database's owner. */
function setPublicSchemaOwner(owner: string, admin: string): string {
  const { quoted: o, outerTag: t1 } = dollarQuote(owner);
  const { quoted: a, outerTag: t2 } = dollarQuote(admin);
  const tag = t1.length > t2.length ? t1 : t2;
  return (
    `DO $${tag}$ BEGIN ` +
    `IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'public' AND nspowner = (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = ${a})) ` +
    `THEN EXECUTE pg_catalog.format('ALTER SCHEMA public OWNER TO %I', ${o}); END IF; END $${tag}$`
  );
}

/** compute_ctl's default_grants.sql for the privileged role. */
function defaultGrants(priv: string): string {
  const p = quoteIdent(priv);
  return (
    `DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'public') THEN ` +
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO ${p} WITH GRANT OPTION; ` +
    `ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO ${p} WITH GRANT OPTION; END IF; END $$`
  );
}

/** compute_ctl's pre_drop_role_revoke_privileges.sql: revoke what grantors gave the role on tables of schema public. */
function revokeBeforeDrop(role: string): string {
  const { quoted, outerTag } = dollarQuote(role);
  return (
    `DO $${outerTag}$ DECLARE grantor text; BEGIN ` +
    `IF EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = 'public') THEN ` +
    `FOR grantor IN SELECT DISTINCT rtg.grantor FROM information_schema.role_table_grants AS rtg WHERE rtg.grantee = ${quoted} LOOP ` +
    `EXECUTE pg_catalog.format('SET LOCAL ROLE %I', grantor); ` +
    `EXECUTE pg_catalog.format('REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM %I GRANTED BY %I', ${quoted}, grantor); ` +
    `END LOOP; RESET ROLE; END IF; END $${outerTag}$`
  );
}

/** compute_ctl's add_availabilitycheck_tables.sql. */
const CREATE_HEALTH_CHECK =
  'CREATE TABLE public.health_check (id pg_catalog.int4 PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY, ' +
  'updated_at pg_catalog.timestamptz DEFAULT pg_catalog.now()); ' +
  'INSERT INTO public.health_check VALUES (1, pg_catalog.now()) ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now()';

/** Attributes compute_ctl gives a role it creates (`INHERIT CREATEROLE CREATEDB BYPASSRLS REPLICATION`), and `LOGIN`. */
const CREATED_ROLE: RoleAttributes = { inherit: true, createrole: true, createdb: true, bypassrls: true, replication: true, login: true };

/** The ALTER SYSTEM that puts parameter `key` back as postgresql.auto.conf has it now. */
function undoSetting(key: string, catalog: Catalog): string {
  const previous = catalog.autoConf.get(key);
  if (previous === undefined) return `ALTER SYSTEM RESET ${parameterName(key)}`;
  return `ALTER SYSTEM SET ${parameterName(key)} = ${LIST_QUOTE_PARAMETERS.has(key) && previous === '' ? "''" : settingLiterals(key, previous)}`;
}

function settingsPhase(spec: ComputeSpec, catalog: Catalog, ctx: PlanContext, writes: SettingWrite[]): Set<string> {
  const wanted = new Set<string>();
  (spec.cluster.settings ?? []).forEach((s, i) => {
    const key = s.name.toLowerCase();
    wanted.add(key);
    const path = `/cluster/settings/${i}`;
    const current = catalog.autoConf.get(key);
    if (s.value === null) {
      if (current !== undefined) writes.push({ path, sql: `ALTER SYSTEM RESET ${parameterName(s.name)}`, undo: undoSetting(key, catalog) });
    } else if (current === undefined || !sameSetting(key, current, s.value)) {
      writes.push({ path, sql: `ALTER SYSTEM SET ${parameterName(s.name)} = ${settingLiterals(key, s.value)}`, undo: undoSetting(key, catalog) });
    }
  });
  for (const key of ctx.managedSettings) {
    if (!wanted.has(key) && catalog.autoConf.has(key)) {
      writes.push({ path: '/cluster/settings', sql: `ALTER SYSTEM RESET ${parameterName(key)}`, undo: undoSetting(key, catalog) });
    }
  }
  return wanted;
}

/** Plan the statements that bring the server to `spec`. */
export function planApply(spec: ComputeSpec, catalog: Catalog, ctx: PlanContext): Plan {
  const ops: Operation[] = [];
  const settingWrites: SettingWrite[] = [];
  const settings = settingsPhase(spec, catalog, ctx, settingWrites);
  if (settingWrites.length > 0) ops.push({ phase: 'Settings', sql: 'SELECT pg_catalog.pg_reload_conf()', target: 'spi' });
  const schemaPerms = new Map<string, string>();
  const mode = spec.mode ?? 'Primary';
  const catalogSkipped = spec.skip_pg_catalog_updates
    ? 'skip_pg_catalog_updates is set'
    : mode !== 'Primary'
      ? `mode is ${JSON.stringify(mode)}, not Primary`
      : catalog.inRecovery
        ? 'the server is in recovery'
        : null;
  if (catalogSkipped) return { settingWrites, operations: ops, settings, schemaPerms, catalogSkipped };

  const priv = ctx.privilegedRole;
  const roles = new Map<string, CatalogRole>(catalog.roles);
  const dbs = new Map<string, CatalogDatabase>(catalog.databases);
  const add = (phase: string, sql: string, target: Target = 'spi') => ops.push({ phase, sql, target });
  const deltas = spec.delta_operations ?? [];

  if (priv && !roles.has(priv)) add('CreatePrivilegedRole', createPrivilegedRole(priv));

  for (const db of [...dbs.values()]) {
    if (!db.invalid) continue;
    add('DropInvalidDatabases', `DROP DATABASE IF EXISTS ${quoteIdent(db.name)}`, 'server');
    dbs.delete(db.name);
  }

  for (const op of deltas) {
    if (op.action !== 'rename_role' || !op.new_name) continue;
    const role = roles.get(op.name);
    if (!role || roles.has(op.new_name)) continue; // already renamed: nothing to do
    add('RenameRoles', `ALTER ROLE ${quoteIdent(op.name)} RENAME TO ${quoteIdent(op.new_name)}`);
    roles.delete(op.name);
    // PostgreSQL clears an MD5 password on rename (its salt is the name).
    roles.set(op.new_name, { ...role, name: op.new_name, password: role.password?.startsWith('md5') ? null : role.password });
  }

  for (const r of spec.cluster.roles) {
    const existing = roles.get(r.name);
    const password = storedPassword(r);
    const attrs = optionAttributes(r.options, ctx.validUntil);
    if (existing) {
      // compute_ctl gives every role of a spec LOGIN; a NOLOGIN option wins.
      const wanted = { login: true, ...attrs };
      if (existing.password !== password || !hasAttributes(existing, wanted)) {
        add('CreateAndAlterRoles', `ALTER ROLE ${quoteIdent(r.name)} ${roleClause(wanted, password)}`);
      }
    } else {
      const inRole = priv ? ` IN ROLE ${quoteIdent(priv)}` : '';
      const clause = roleClause({ ...CREATED_ROLE, ...attrs }, password);
      add('CreateAndAlterRoles', `CREATE ROLE ${quoteIdent(r.name)}${inRole} ${clause}`);
    }
  }

  for (const op of deltas) {
    if (op.action === 'delete_db') {
      const db = dbs.get(op.name);
      if (!db) continue;
      if (db.isTemplate) add('RenameAndDeleteDatabases', `ALTER DATABASE ${quoteIdent(op.name)} IS_TEMPLATE false`);
      add('RenameAndDeleteDatabases', `DROP DATABASE IF EXISTS ${quoteIdent(op.name)} WITH (FORCE)`, 'server');
      dbs.delete(op.name);
    } else if (op.action === 'rename_db' && op.new_name) {
      const db = dbs.get(op.name);
      if (!db || dbs.has(op.new_name)) continue;
      add('RenameAndDeleteDatabases', `ALTER DATABASE ${quoteIdent(op.name)} RENAME TO ${quoteIdent(op.new_name)}`);
      dbs.delete(op.name);
      dbs.set(op.new_name, { ...db, name: op.new_name });
    }
  }

  const created = new Set<string>();
  for (const d of spec.cluster.databases) {
    const existing = dbs.get(d.name);
    if (existing) {
      if (existing.owner !== d.owner) {
        add('CreateAndAlterDatabases', `ALTER DATABASE ${quoteIdent(d.name)} OWNER TO ${quoteIdent(d.owner)}`);
        dbs.set(d.name, { ...existing, owner: d.owner });
      }
    } else {
      add('CreateAndAlterDatabases', `CREATE DATABASE ${quoteIdent(d.name)} ${databaseClause(d)}`, 'server');
      if (priv) add('CreateAndAlterDatabases', `GRANT ALL PRIVILEGES ON DATABASE ${quoteIdent(d.name)} TO ${quoteIdent(priv)}`);
      const option = (name: string) => parseOptionBool(d.options?.find((o) => o.name === name)?.value ?? '');
      dbs.set(d.name, { oid: 0, name: d.name, owner: d.owner, restrictConn: option('ALLOW_CONNECTIONS') === false, invalid: false, isTemplate: option('IS_TEMPLATE') === true });
      created.add(d.name);
    }
  }

  // RunInEachDatabase: the spec's databases, then the worker's own (compute_ctl's SystemDB).
  const dropped = deltas.filter((op) => op.action === 'delete_role' && roles.has(op.name)).map((op) => op.name);
  const targets = [...spec.cluster.databases.map((d) => ({ name: d.name, owner: d.owner, system: false })), { name: catalog.currentDatabase, owner: ctx.adminRole, system: true }];
  for (const t of targets) {
    const db = dbs.get(t.name);
    if (!db || db.restrictConn || db.invalid) continue;
    const target = t.name === catalog.currentDatabase ? 'spi' : { database: t.name };
    for (const role of dropped) {
      if (!t.system && t.owner === role) continue;
      add('RunInEachDatabase', `REASSIGN OWNED BY ${quoteIdent(role)} TO ${quoteIdent(t.owner)}`, target);
      add('RunInEachDatabase', revokeBeforeDrop(role), target);
      add('RunInEachDatabase', `DROP OWNED BY ${quoteIdent(role)}`, target);
    }
    if (!t.system && (created.has(t.name) || ctx.schemaPermsDone.get(t.name) !== `${t.owner}@${db.oid}`)) {
      add('RunInEachDatabase', setPublicSchemaOwner(t.owner, ctx.adminRole), target);
      if (priv) add('RunInEachDatabase', defaultGrants(priv), target);
      schemaPerms.set(t.name, t.owner);
    }
  }

  const preload = (spec.cluster.settings ?? []).find((s) => s.name.toLowerCase() === 'shared_preload_libraries')?.value ?? '';
  if (splitGucList('shared_preload_libraries', preload).includes('pg_stat_statements') && !catalog.extensions.has('pg_stat_statements')) {
    add('HandleOtherExtensions', 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements WITH SCHEMA public');
  }
  if (!catalog.healthCheck) add('CreateAvailabilityCheck', CREATE_HEALTH_CHECK);

  for (const role of dropped) add('DropRoles', `DROP ROLE IF EXISTS ${quoteIdent(role)}`);

  const audit = spec.audit_log_level ?? 'Disabled';
  if (audit !== 'Disabled' && !catalog.extensions.has('pgaudit')) {
    add('CreatePgauditExtension', 'CREATE EXTENSION IF NOT EXISTS pgaudit WITH SCHEMA public');
    if (['Hipaa', 'Extended', 'Full'].includes(audit) && !catalog.extensions.has('pgauditlogtofile')) {
      add('CreatePgauditlogtofileExtension', 'CREATE EXTENSION IF NOT EXISTS pgauditlogtofile WITH SCHEMA public');
    }
    if (dbs.has('postgres')) add('DisablePostgresDBPgAudit', `ALTER DATABASE postgres SET pgaudit.log TO 'none'`);
  }
  return { settingWrites, operations: ops, settings, schemaPerms, catalogSkipped: null };
}
