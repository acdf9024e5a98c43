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
import type { WorkerContext } from '../../runtime/index';
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

/** tsworker_promoter.citus_group as the configuration files write it (pg_file_settings' last line for it), or null. */
export interface WrittenSetting {
  setting: string | null;
  sourcefile: string | null;
  sourceline: number | null;
}

/** The last line of the configuration files that sets tsworker_promoter.citus_group (pg_file_settings), or null. */
export function citusGroupAsWritten(w: WorkerContext<any>): WrittenSetting | null {
  try {
    const rows = w.query<WrittenSetting & { [k: string]: unknown }>(
      `SELECT setting, sourcefile, sourceline FROM pg_catalog.pg_file_settings WHERE name = 'tsworker_promoter.citus_group' ORDER BY seqno DESC LIMIT 1`,
    );
    return rows[0] ?? null;
  } catch (err) {
    // pg_file_settings needs superuser or pg_read_all_settings: without it, only what PostgreSQL kept is checked
    w.log.debug(`could not read pg_file_settings: ${(err as Error).message}`);
    return null;
  }
}

/** An integer as PostgreSQL parses an int setting (decimal, 0x hex, 0 octal; surrounding blanks), or null. */
function parseGucInt(text: string): number | null {
  const t = text.trim();
  let m: RegExpExecArray | null;
  let v: number;
  if ((m = /^([+-]?)0x([0-9a-f]+)$/i.exec(t))) v = parseInt(m[2], 16) * (m[1] === '-' ? -1 : 1);
  else if ((m = /^([+-]?)0([0-7]*)$/.exec(t))) v = (m[2] ? parseInt(m[2], 8) : 0) * (m[1] === '-' ? -1 : 1);
  else if (/^[+-]?[1-9][0-9]*$/.test(t)) v = Number(t);
  else return null;
  return Number.isSafeInteger(v) ? v : null;
}

/**
 * What is wrong with the Citus settings for this member (empty: nothing,
 * or Citus is off). `written`: citus_group as the files write it: a value
 * PostgreSQL rejected (it then only warns and keeps -1, and the member
 * would run as a plain cluster outside its formation) is an error too.
 */
export function citusConfigErrors(s: CitusSettings & { conninfo: string; restapi_listen?: string }, sharedPreloadLibraries: string, written: WrittenSetting | null = null): string[] {
  if (written?.setting != null) {
    const v = parseGucInt(written.setting);
    if (v === null || v < -1 || v > 2_147_483_647) {
      const where = written.sourcefile ? ` (${written.sourcefile}${written.sourceline ? ` line ${written.sourceline}` : ''})` : '';
      return [`tsworker_promoter.citus_group = '${written.setting}'${where} is not a Citus group (-1, or 0 for the coordinator, 1, 2, ... for a worker group): PostgreSQL ignored it, and this member would run outside its formation`];
    }
  }
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
  // the workers POST their switchovers to the coordinator's leader at the address it publishes (Patroni's restapi.connect_address)
  if (s.citus_group === COORDINATOR_GROUP && s.restapi_listen !== undefined) {
    const host = s.restapi_listen.slice(0, s.restapi_listen.lastIndexOf(':'));
    if (!s.restapi_listen) {
      errors.push('tsworker_promoter.restapi_listen is empty on a member of the Citus coordinator group (tsworker_promoter.citus_group = 0): the worker groups reach the coordinator\'s leader there (POST /citus)');
    } else if (['0.0.0.0', '::', '[::]', '*', ''].includes(host)) {
      errors.push(`tsworker_promoter.restapi_listen "${s.restapi_listen}" is a wildcard address on a member of the Citus coordinator group: the worker groups would POST /citus to it as published; give the address they reach`);
    }
  }
  return errors;
}
