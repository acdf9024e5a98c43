/**
 * Checks of a spec that the JSON Schema cannot make: against itself
 * (duplicates, name lengths in bytes) and against the server (unknown
 * parameters, database owners that would not exist, operations that would
 * cut the worker off from its own database or role). Like the schema, they
 * run before anything is applied; a spec that fails them changes nothing.
 */
import type { Catalog } from './catalog';
import type { ComputeSpec } from './spec-schema';
import type { SpecProblem } from './spec-schema';

/** Parameters ALTER SYSTEM refuses (GUC_DISALLOW_IN_AUTO_FILE). */
const NOT_IN_AUTO_CONF = new Set(['config_file', 'data_directory', 'hba_file', 'ident_file', 'external_pid_file']);

/** Who must never be renamed or dropped by a spec. */
export interface Protected {
  /** Roles: the worker's own, the admin role, the privileged role. */
  roles: Set<string>;
  /** Databases: the worker's own and the templates. */
  databases: Set<string>;
}

/** Roles that will exist once the spec is applied. */
function rolesAfter(spec: ComputeSpec, catalog: Catalog): Set<string> {
  const roles = new Set(catalog.roles.keys());
  for (const op of spec.delta_operations ?? []) {
    if (op.action === 'rename_role' && op.new_name && roles.has(op.name)) {
      roles.delete(op.name);
      roles.add(op.new_name);
    } else if (op.action === 'delete_role') roles.delete(op.name);
  }
  for (const r of spec.cluster.roles) roles.add(r.name);
  return roles;
}

/**
 * Problems of `spec` (which passed the schema) against `catalog`, each with
 * a JSON Pointer prefixed by `base`. Empty when the spec can be applied.
 */
export function checkSpec(spec: ComputeSpec, catalog: Catalog, prot: Protected, base = ''): SpecProblem[] {
  const out: SpecProblem[] = [];
  const add = (path: string, message: string) => out.push({ path: `${base}${path}`, message });
  const longName = (name: string) => Buffer.byteLength(name) > 63;

  const roleNames = new Map<string, number>();
  spec.cluster.roles.forEach((r, i) => {
    if (longName(r.name)) add(`/cluster/roles/${i}/name`, 'must be at most 63 bytes long');
    if (r.name.startsWith('pg_')) add(`/cluster/roles/${i}/name`, 'role names starting with "pg_" are reserved');
    const prev = roleNames.get(r.name);
    if (prev !== undefined) add(`/cluster/roles/${i}/name`, `duplicate role "${r.name}" (also /cluster/roles/${prev})`);
    else roleNames.set(r.name, i);
  });

  const willExist = rolesAfter(spec, catalog);
  const dbNames = new Map<string, number>();
  spec.cluster.databases.forEach((d, i) => {
    if (longName(d.name)) add(`/cluster/databases/${i}/name`, 'must be at most 63 bytes long');
    if (longName(d.owner)) add(`/cluster/databases/${i}/owner`, 'must be at most 63 bytes long');
    const prev = dbNames.get(d.name);
    if (prev !== undefined) add(`/cluster/databases/${i}/name`, `duplicate database "${d.name}" (also /cluster/databases/${prev})`);
    else dbNames.set(d.name, i);
    if (!willExist.has(d.owner)) add(`/cluster/databases/${i}/owner`, `role "${d.owner}" does not exist and is not in cluster.roles`);
  });

  const settingNames = new Map<string, number>();
  (spec.cluster.settings ?? []).forEach((s, i) => {
    const key = s.name.toLowerCase();
    const prev = settingNames.get(key);
    if (prev !== undefined) add(`/cluster/settings/${i}/name`, `duplicate parameter "${s.name}" (also /cluster/settings/${prev})`);
    else settingNames.set(key, i);
    if (!key.includes('.') && !catalog.parameters.has(key)) add(`/cluster/settings/${i}/name`, `unrecognized configuration parameter "${s.name}"`);
    if (NOT_IN_AUTO_CONF.has(key)) add(`/cluster/settings/${i}/name`, `parameter "${s.name}" cannot be changed by ALTER SYSTEM`);
    if (key === 'shared_preload_libraries' && s.value !== null && !/(^|[\s,"])pg_tsworker($|[\s,"])/.test(s.value)) {
      add(`/cluster/settings/${i}/value`, 'must keep pg_tsworker, or this worker would not start again');
    }
    if (key.startsWith('tsworker')) add(`/cluster/settings/${i}/name`, 'pg_tsworker\'s own parameters are not set by a spec');
  });

  (spec.delta_operations ?? []).forEach((op, i) => {
    const at = `/delta_operations/${i}`;
    if (longName(op.name)) add(`${at}/name`, 'must be at most 63 bytes long');
    if (op.new_name && longName(op.new_name)) add(`${at}/new_name`, 'must be at most 63 bytes long');
    const isRole = op.action === 'rename_role' || op.action === 'delete_role';
    const guarded = isRole ? prot.roles : prot.databases;
    if (guarded.has(op.name)) {
      add(`${at}/name`, `${op.action} of ${isRole ? 'role' : 'database'} "${op.name}" is refused: this worker needs it`);
    }
    if (op.new_name && op.name !== op.new_name) {
      const taken = isRole ? catalog.roles.has(op.new_name) : catalog.databases.has(op.new_name);
      const from = isRole ? catalog.roles.has(op.name) : catalog.databases.has(op.name);
      if (taken && from) add(`${at}/new_name`, `"${op.new_name}" already exists`);
    }
    if (op.action === 'rename_role' && op.new_name?.startsWith('pg_')) add(`${at}/new_name`, 'role names starting with "pg_" are reserved');
  });
  return out;
}
