/**
 * Checks of a spec that the JSON Schema cannot make: against itself
 * (duplicates, name lengths in bytes, delta operations that contradict
 * each other or the roles and databases listed) and against the server
 * (unknown parameters, list values and libraries, database owners that
 * would not exist, roles and databases the system needs). Like the schema,
 * they run before anything is applied; a spec that fails them changes
 * nothing. Values only PostgreSQL can judge (timestamps, parameter values)
 * are checked by the configurator with the server's help.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { Catalog } from './catalog';
import { LIBRARY_LISTS, LIST_QUOTE_PARAMETERS, parseOptionBool, splitGucList } from './pg-text';
import type { ComputeSpec, SpecProblem } from './spec-schema';

/** Parameters ALTER SYSTEM refuses (GUC_DISALLOW_IN_AUTO_FILE). */
const NOT_IN_AUTO_CONF = new Set(['config_file', 'data_directory', 'hba_file', 'ident_file', 'external_pid_file']);

/** Roles pg_tsworker's extension creates (sql/pg_tsworker--*.sql): never touched by a spec. */
export const EXTENSION_ROLES: ReadonlySet<string> = new Set(['tsworker_admin']);

/** Largest connection limit PostgreSQL takes (int4). */
const MAX_CONNECTION_LIMIT = 2147483647;

/** Who a spec must never list, alter, rename or drop. */
export interface Protected {
  /** Roles: the worker's own, the bootstrap superuser, the admin role, the privileged role. */
  roles: Set<string>;
  /** Databases: the worker's own and the templates. */
  databases: Set<string>;
}

/** Why `name` is a role a spec may not touch, or null. */
function systemRole(name: string, prot: Protected): string | null {
  if (name.startsWith('pg_')) return 'role names starting with "pg_" are reserved for PostgreSQL';
  if (EXTENSION_ROLES.has(name)) return `role "${name}" belongs to the pg_tsworker extension`;
  if (prot.roles.has(name)) return `role "${name}" is a system role this worker needs (the bootstrap superuser, the worker's own role, tsworker_compute.admin_role or tsworker_compute.privileged_role_name)`;
  return null;
}

/** Where the first of several rename/delete operations names a role or database. */
interface Touch {
  index: number;
  how: 'renamed' | 'deleted' | 'the new name';
}

/**
 * Problems of the delta operations: each name at most once among the
 * operations on roles (and on databases), so that applying the spec again
 * (from spec_path or the saved spec) does the same thing; a role or
 * database a delta deletes may not be listed in the cluster.
 */
function checkDeltas(spec: ComputeSpec, catalog: Catalog, prot: Protected, add: (path: string, message: string) => void): Map<string, Touch> {
  const touched = { role: new Map<string, Touch>(), database: new Map<string, Touch>() };
  const roleNames = new Set(spec.cluster.roles.map((r) => r.name));
  const dbNames = new Set(spec.cluster.databases.map((d) => d.name));
  (spec.delta_operations ?? []).forEach((op, i) => {
    const at = `/delta_operations/${i}`;
    const kind = op.action === 'rename_role' || op.action === 'delete_role' ? 'role' : 'database';
    if (Buffer.byteLength(op.name) > 63) add(`${at}/name`, 'must be at most 63 bytes long');
    if (op.new_name && Buffer.byteLength(op.new_name) > 63) add(`${at}/new_name`, 'must be at most 63 bytes long');
    if (kind === 'role') {
      const why = systemRole(op.name, prot);
      if (why) add(`${at}/name`, `${op.action} of "${op.name}" is refused: ${why}`);
      const whyNew = op.new_name ? systemRole(op.new_name, prot) : null;
      if (op.new_name && whyNew) add(`${at}/new_name`, `rename to "${op.new_name}" is refused: ${whyNew}`);
    } else if (prot.databases.has(op.name)) {
      add(`${at}/name`, `${op.action} of database "${op.name}" is refused: this worker needs it`);
    }
    const seen = touched[kind];
    const names: [string, 'name' | 'new_name', Touch['how']][] = [[op.name, 'name', op.action.startsWith('rename') ? 'renamed' : 'deleted']];
    if (op.new_name) names.push([op.new_name, 'new_name', 'the new name']);
    for (const [name, field, how] of names) {
      const prev = seen.get(name);
      if (prev) {
        add(
          `${at}/${field}`,
          `${kind} "${name}" is already ${prev.how === 'the new name' ? 'the new name of a rename' : prev.how} at /delta_operations/${prev.index}: ` +
            'each name may appear once in a spec\'s delta operations (send chained or swapping renames in separate specs)',
        );
      } else seen.set(name, { index: i, how });
    }
    if (op.new_name && op.name === op.new_name) add(`${at}/new_name`, 'is the same as name');
    if (op.new_name && op.name !== op.new_name) {
      const exists = kind === 'role' ? catalog.roles : catalog.databases;
      if (exists.has(op.name) && exists.has(op.new_name)) add(`${at}/new_name`, `${kind} "${op.new_name}" already exists`);
    }
    if (op.action === 'delete_role' && roleNames.has(op.name)) {
      add(`${at}/name`, `role "${op.name}" is also in cluster.roles: it would be created and dropped at every apply`);
    }
    if (op.action === 'delete_db' && dbNames.has(op.name)) {
      add(`${at}/name`, `database "${op.name}" is also in cluster.databases: it would be dropped and created at every apply`);
    }
  });
  return touched.role;
}

/** What happens to a database owner that is not in cluster.roles. */
function ownerProblem(owner: string, catalog: Catalog, roleTouch: Map<string, Touch>, listed: Set<string>): string | null {
  if (listed.has(owner)) return null;
  const touch = roleTouch.get(owner);
  if (touch?.how === 'the new name') return null;
  if (touch?.how === 'deleted') return `role "${owner}" is deleted by /delta_operations/${touch.index}`;
  if (touch?.how === 'renamed' && catalog.roles.has(owner)) return `role "${owner}" is renamed by /delta_operations/${touch.index}`;
  if (catalog.roles.has(owner)) return null;
  return `role "${owner}" does not exist and is not in cluster.roles`;
}

/** Whether a library the server loads can be found (`$libdir`, `dynamic_library_path`, with or without `.so`). */
function libraryExists(name: string, catalog: Catalog): boolean {
  const expand = (p: string) => p.replace(/^\$libdir/, catalog.pkglibdir);
  const candidates = (file: string) => [file, `${file}.so`];
  const files = name.includes('/')
    ? candidates(expand(name))
    : catalog.dynamicLibraryPath.split(':').filter(Boolean).flatMap((dir) => candidates(path.join(expand(dir), name)));
  return files.some((f) => {
    try {
      return fs.statSync(f).isFile();
    } catch {
      return false;
    }
  });
}

function checkSettings(spec: ComputeSpec, catalog: Catalog, add: (path: string, message: string) => void): void {
  const settingNames = new Map<string, number>();
  (spec.cluster.settings ?? []).forEach((s, i) => {
    const key = s.name.toLowerCase();
    const prev = settingNames.get(key);
    if (prev !== undefined) add(`/cluster/settings/${i}/name`, `duplicate parameter "${s.name}" (also /cluster/settings/${prev})`);
    else settingNames.set(key, i);
    if (!key.includes('.') && !catalog.parameters.has(key)) add(`/cluster/settings/${i}/name`, `unrecognized configuration parameter "${s.name}"`);
    if (NOT_IN_AUTO_CONF.has(key)) add(`/cluster/settings/${i}/name`, `parameter "${s.name}" cannot be changed by ALTER SYSTEM`);
    if (key.startsWith('tsworker')) add(`/cluster/settings/${i}/name`, 'pg_tsworker\'s own parameters are not set by a spec');
    if (s.value === null || !LIST_QUOTE_PARAMETERS.has(key)) return;
    let elements: string[];
    try {
      elements = splitGucList(key, s.value);
    } catch (err) {
      add(`/cluster/settings/${i}/value`, (err as Error).message);
      return;
    }
    if (elements.length === 0) {
      add(`/cluster/settings/${i}/value`, `an empty list cannot be written by ALTER SYSTEM (PostgreSQL would store the element ""): use value null to reset "${s.name}"`);
      return;
    }
    if (key === 'shared_preload_libraries' && !elements.some((e) => e === 'pg_tsworker' || /(^|\/)pg_tsworker(\.so)?$/.test(e))) {
      add(`/cluster/settings/${i}/value`, 'must keep pg_tsworker, or this worker would not start again');
    }
    if (LIBRARY_LISTS.has(key)) {
      for (const lib of elements) {
        if (!libraryExists(lib, catalog)) add(`/cluster/settings/${i}/value`, `library "${lib}" is not installed (looked in dynamic_library_path): the server would not start, or no session could`);
      }
    }
  });
}

/**
 * Problems of `spec` (which passed the schema) against `catalog`, each with
 * a JSON Pointer prefixed by `base`. Empty when the spec can be applied.
 */
export function checkSpec(spec: ComputeSpec, catalog: Catalog, prot: Protected, base = ''): SpecProblem[] {
  const out: SpecProblem[] = [];
  const add = (p: string, message: string) => out.push({ path: `${base}${p}`, message });
  const longName = (name: string) => Buffer.byteLength(name) > 63;

  const roleNames = new Map<string, number>();
  spec.cluster.roles.forEach((r, i) => {
    if (longName(r.name)) add(`/cluster/roles/${i}/name`, 'must be at most 63 bytes long');
    const why = systemRole(r.name, prot);
    if (why) add(`/cluster/roles/${i}/name`, `refused: ${why}; a spec may not create or alter it`);
    const prev = roleNames.get(r.name);
    if (prev !== undefined) add(`/cluster/roles/${i}/name`, `duplicate role "${r.name}" (also /cluster/roles/${prev})`);
    else roleNames.set(r.name, i);
    (r.options ?? []).forEach((o, j) => {
      if (o.name === 'CONNECTION LIMIT' && Number(o.value) > MAX_CONNECTION_LIMIT) add(`/cluster/roles/${i}/options/${j}/value`, `must be at most ${MAX_CONNECTION_LIMIT}`);
      if (o.name === 'VALID UNTIL' && /^\s*(now|today|tomorrow|yesterday)\s*$/i.test(o.value ?? '')) {
        add(`/cluster/roles/${i}/options/${j}/value`, `"${o.value}" is relative to the time of the apply: every apply would change it; give a timestamp`);
      }
    });
  });

  const roleTouch = checkDeltas(spec, catalog, prot, add);
  const listed = new Set(roleNames.keys());
  const dbNames = new Map<string, number>();
  spec.cluster.databases.forEach((d, i) => {
    if (longName(d.name)) add(`/cluster/databases/${i}/name`, 'must be at most 63 bytes long');
    if (longName(d.owner)) add(`/cluster/databases/${i}/owner`, 'must be at most 63 bytes long');
    const prev = dbNames.get(d.name);
    if (prev !== undefined) add(`/cluster/databases/${i}/name`, `duplicate database "${d.name}" (also /cluster/databases/${prev})`);
    else dbNames.set(d.name, i);
    const owner = ownerProblem(d.owner, catalog, roleTouch, listed);
    if (owner) add(`/cluster/databases/${i}/owner`, owner);
    (d.options ?? []).forEach((o, j) => {
      if ((o.name === 'ALLOW_CONNECTIONS' || o.name === 'IS_TEMPLATE') && parseOptionBool(o.value ?? '') === null) {
        add(`/cluster/databases/${i}/options/${j}/value`, 'must be true, false, on or off');
      }
      if (o.name === 'CONNECTION LIMIT' && Number(o.value) > MAX_CONNECTION_LIMIT) add(`/cluster/databases/${i}/options/${j}/value`, `must be at most ${MAX_CONNECTION_LIMIT}`);
    });
  });

  checkSettings(spec, catalog, add);
  return out;
}
