/**
 * What the server holds now, read in one read-only transaction: the roles
 * and databases a spec is compared with (compute_ctl's
 * `get_existing_roles_async` / `get_existing_dbs_async`, plus the role
 * attributes that options set), the values `ALTER SYSTEM` wrote, the known
 * configuration parameters and the installed extensions.
 */
import type { Transaction } from '../../runtime/index';

/** A role as pg_authid has it. */
export interface CatalogRole {
  name: string;
  /** `md5…` or `SCRAM-SHA-256$…`, or null. */
  password: string | null;
  superuser: boolean;
  inherit: boolean;
  createrole: boolean;
  createdb: boolean;
  login: boolean;
  replication: boolean;
  bypassrls: boolean;
  connlimit: number;
  /** `rolvaliduntil` as text, or null. */
  validUntil: string | null;
}

/** A database as pg_database has it (compute_ctl's `Database` with `restrict_conn` and `invalid`). */
export interface CatalogDatabase {
  /** pg_database's oid (0 for a database a plan creates). */
  oid: number;
  name: string;
  owner: string;
  restrictConn: boolean;
  /** Left invalid by an interrupted DROP DATABASE (`datconnlimit = -2`). */
  invalid: boolean;
  isTemplate: boolean;
}

export interface Catalog {
  roles: Map<string, CatalogRole>;
  databases: Map<string, CatalogDatabase>;
  /** Values in postgresql.auto.conf, by lower-case parameter name. */
  autoConf: Map<string, string>;
  /** Known parameters, by lower-case name. */
  parameters: Set<string>;
  /** Extensions of this database. */
  extensions: Set<string>;
  /** public.health_check exists in this database. */
  healthCheck: boolean;
  /** The role the worker runs as. */
  currentUser: string;
  /** The bootstrap superuser (the role of OID 10). */
  bootstrapUser: string;
  /** The database the worker is connected to. */
  currentDatabase: string;
  /** max_connections of the running server. */
  maxConnections: number;
  /** The server's $libdir (pg_config's PKGLIBDIR). */
  pkglibdir: string;
  /** dynamic_library_path. */
  dynamicLibraryPath: string;
  inRecovery: boolean;
}

/** The queries a catalog is read with, by part. */
export const CATALOG_SQL = {
  roles: `SELECT rolname, rolpassword, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin,
                 rolreplication, rolbypassrls, rolconnlimit, rolvaliduntil::text AS validuntil
            FROM pg_catalog.pg_authid`,
  databases: `SELECT oid::int8::float8 AS oid, datname AS name,
                     (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = datdba) AS owner,
                     NOT datallowconn AS restrict_conn,
                     datconnlimit = -2 AS invalid,
                     datistemplate AS istemplate
                FROM pg_catalog.pg_database`,
  autoConf: `SELECT name, setting FROM pg_catalog.pg_file_settings
              WHERE sourcefile LIKE '%/postgresql.auto.conf' ORDER BY seqno`,
  parameters: 'SELECT lower(name) AS name FROM pg_catalog.pg_settings',
  extensions: 'SELECT extname FROM pg_catalog.pg_extension',
  here: `SELECT current_user AS u, (SELECT rolname FROM pg_catalog.pg_authid WHERE oid = 10) AS b,
                current_database() AS d, pg_is_in_recovery() AS r, current_setting('max_connections')::int AS m,
                to_regclass('public.health_check') IS NOT NULL AS h,
                (SELECT setting FROM pg_catalog.pg_config WHERE name = 'PKGLIBDIR') AS libdir,
                current_setting('dynamic_library_path') AS dlp`,
} as const;

/**
 * A cheap fingerprint of what {@link CATALOG_SQL} reads, computed by the
 * server: when it has not changed, a catalog read before is still the
 * catalog, and a no-op re-apply reads one value instead of every role.
 * Rows of pg_authid, pg_database and pg_extension are counted and their
 * xmins summed (a committed change gives the rows it writes a new xmin;
 * VACUUM's freezing and in-place updates leave xmin alone);
 * postgresql.auto.conf is hashed. The known parameters are not in it (they
 * change only when a module defines new ones): a spec refused for an
 * unknown parameter is checked again against a fresh read.
 */
export const FINGERPRINT_SQL = `SELECT concat_ws('|',
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::int8), 0) FROM pg_catalog.pg_authid),
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::int8), 0) FROM pg_catalog.pg_database),
    (SELECT count(*) || ':' || coalesce(sum(xmin::text::int8), 0) FROM pg_catalog.pg_extension),
    md5(coalesce(pg_catalog.pg_read_file('postgresql.auto.conf', 0, 16777216, true), '')),
    current_user, current_database(), pg_is_in_recovery()::text, current_setting('max_connections'),
    coalesce(to_regclass('public.health_check')::oid::text, '-')) AS f`;

type Rows = Record<string, unknown>[];

/** A catalog from the rows of each of {@link CATALOG_SQL}'s queries. */
export function catalogFrom(rows: { [K in keyof typeof CATALOG_SQL]: Rows }): Catalog {
  const roles = new Map<string, CatalogRole>();
  for (const r of rows.roles as {
    rolname: string;
    rolpassword: string | null;
    rolsuper: boolean;
    rolinherit: boolean;
    rolcreaterole: boolean;
    rolcreatedb: boolean;
    rolcanlogin: boolean;
    rolreplication: boolean;
    rolbypassrls: boolean;
    rolconnlimit: number;
    validuntil: string | null;
  }[]) {
    roles.set(r.rolname, {
      name: r.rolname,
      password: r.rolpassword,
      superuser: r.rolsuper,
      inherit: r.rolinherit,
      createrole: r.rolcreaterole,
      createdb: r.rolcreatedb,
      login: r.rolcanlogin,
      replication: r.rolreplication,
      bypassrls: r.rolbypassrls,
      connlimit: r.rolconnlimit,
      validUntil: r.validuntil,
    });
  }
  const databases = new Map<string, CatalogDatabase>();
  for (const d of rows.databases as { oid: number; name: string; owner: string; restrict_conn: boolean; invalid: boolean; istemplate: boolean }[]) {
    databases.set(d.name, { oid: d.oid, name: d.name, owner: d.owner, restrictConn: d.restrict_conn, invalid: d.invalid, isTemplate: d.istemplate });
  }
  const autoConf = new Map<string, string>();
  for (const s of rows.autoConf as { name: string; setting: string | null }[]) {
    if (s.setting !== null) autoConf.set(s.name.toLowerCase(), s.setting);
  }
  const here = rows.here[0] as { u: string; b: string; d: string; r: boolean; h: boolean; m: number; libdir: string; dlp: string };
  return {
    roles,
    databases,
    autoConf,
    parameters: new Set((rows.parameters as { name: string }[]).map((r) => r.name)),
    extensions: new Set((rows.extensions as { extname: string }[]).map((r) => r.extname)),
    healthCheck: here.h,
    currentUser: here.u,
    bootstrapUser: here.b,
    currentDatabase: here.d,
    maxConnections: here.m,
    pkglibdir: here.libdir,
    dynamicLibraryPath: here.dlp,
    inRecovery: here.r,
  };
}

/** The catalog's fingerprint ({@link FINGERPRINT_SQL}); run it inside a transaction. */
export function catalogFingerprint(tx: Transaction): string {
  return tx.query<{ f: string }>(FINGERPRINT_SQL)[0].f;
}

/** Read the catalog; run it inside a transaction. */
export function readCatalog(tx: Transaction): Catalog {
  const run = (sql: string) => tx.query(sql) as Rows;
  return catalogFrom({
    roles: run(CATALOG_SQL.roles),
    databases: run(CATALOG_SQL.databases),
    autoConf: run(CATALOG_SQL.autoConf),
    parameters: run(CATALOG_SQL.parameters),
    extensions: run(CATALOG_SQL.extensions),
    here: run(CATALOG_SQL.here),
  });
}
