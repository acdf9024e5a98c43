/**
 * Citus in cluster mode (docs/citus.md): the settings, the key layout and
 * the rules between them, after Patroni's `citus` section (`group`,
 * `database`; patroni/postgresql/mpp/citus.py).
 *
 * A Citus formation is a set of cluster-mode clusters under one scope: the
 * coordinator is group 0, each worker group 1, 2, ... Each group is a
 * cluster of its own (its own leader key, members, history) under
 * `<namespace>/<scope>/<group>/`, so that the coordinator's leader reads
 * every group's leader in one request of the scope's prefix.
 */
import { parseConninfo } from '../promoter/conninfo';

/** The coordinator's group id (Citus's `COORDINATOR_GROUP_ID`). */
export const COORDINATOR_GROUP = 0;

export const citusSettings = {
  citus_group: {
    type: 'int',
    default: -1,
    min: -1,
    max: 2_147_483_647,
    context: 'postmaster',
    description: 'Citus group of this member (cluster mode): 0 the coordinator, 1, 2, ... a worker group; -1 not part of a Citus formation.',
  },
  citus_database: {
    type: 'string',
    default: 'citus',
    context: 'postmaster',
    description: 'Database holding the citus extension, the same on every member of the formation (cluster mode with citus_group set).',
  },
} as const;

/** The values of the Citus settings, as the worker reads them. */
export interface CitusSettings {
  citus_group: number;
  citus_database: string;
}

/** host and port of a member's conninfo, as the coordinator registers it in pg_dist_node; null when it names no TCP host. */
export function distNodeAddress(conninfo: string): { host: string; port: number } | null {
  let kv: Record<string, string>;
  try {
    kv = parseConninfo(conninfo);
  } catch {
    return null;
  }
  const host = (kv.host ?? kv.hostaddr ?? '').split(',')[0].trim();
  const port = Number((kv.port ?? '5432').split(',')[0] || 5432);
  // a Unix socket directory is of no use to the other servers of the formation
  if (!host || host.startsWith('/') || host.startsWith('@') || !Number.isInteger(port)) return null;
  return { host, port };
}

/** What is wrong with the Citus settings for this member (empty: nothing, or Citus is off). */
export function citusConfigErrors(s: CitusSettings & { conninfo: string }, sharedPreloadLibraries: string): string[] {
  if (s.citus_group < 0) return [];
  const errors: string[] = [];
  if (!s.citus_database) errors.push(`tsworker_promoter.citus_database is empty, and tsworker_promoter.citus_group = ${s.citus_group} needs the database holding the citus extension`);
  else if (s.citus_database.length > 63) errors.push(`tsworker_promoter.citus_database "${s.citus_database}" is longer than 63 bytes`);
  const libs = sharedPreloadLibraries.split(',').map((l) => l.trim().replace(/^"|"$/g, ''));
  if (libs[0] !== 'citus') {
    errors.push(
      `tsworker_promoter.citus_group = ${s.citus_group}, but citus is ${libs.includes('citus') ? 'not first' : 'missing'} in shared_preload_libraries ("${sharedPreloadLibraries}"): Citus must be loaded first`,
    );
  }
  if (s.conninfo && !distNodeAddress(s.conninfo)) {
    errors.push(`tsworker_promoter.conninfo "${s.conninfo}" names no TCP host and port: the coordinator registers members in pg_dist_node by host and port`);
  }
  return errors;
}
