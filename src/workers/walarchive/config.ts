/**
 * The walarchive worker's settings (`tsworker_walarchive.<name>`) and
 * their checks. A bad value is a configuration error: reported with what
 * to change, and the worker waits for a reload instead of streaming.
 */
import * as fs from 'fs';
import * as path from 'path';

import { clientConfig } from '../promoter/conninfo';
import { parseCompression, type Compression } from './compress';

export const settings = {
  source_conninfo: {
    type: 'string',
    default: '',
    superuserOnly: true,
    description: "Connection string of the server to stream WAL from (default: this standby's primary_conninfo); several hosts are tried in order.",
  },
  directory: { type: 'string', default: '', description: 'Absolute path of the archive directory, writable by the server\'s OS user, outside its data directory.' },
  slot: { type: 'string', default: '', description: 'Physical replication slot to stream from (empty: none).' },
  create_slot: { type: 'bool', default: false, description: 'Create the replication slot on the source when it does not exist.' },
  synchronous: {
    type: 'bool',
    default: false,
    description: 'fsync and report each write at once (pg_receivewal --synchronous), so that the archive can be a synchronous standby.',
  },
  status_interval: { type: 'int', default: 10_000, min: 0, max: 3_600_000, unit: 'ms', description: 'Time between status updates sent to the source (0: only when asked).' },
  compression: { type: 'string', default: 'none', description: 'Compression of completed segments: none, gzip, gzip:LEVEL or lz4.' },
  application_name: { type: 'string', default: '', description: 'application_name of the replication connection (default: the worker\'s name).' },
  connect_timeout: { type: 'int', default: 10_000, min: 100, max: 600_000, unit: 'ms', description: 'Time to connect to the source and run a replication command.' },
  receive_timeout: {
    type: 'int',
    default: 60_000,
    min: 0,
    max: 3_600_000,
    unit: 'ms',
    description: 'Give up a stream that sent nothing for this long and connect again (0: never).',
  },
  retry_interval: { type: 'int', default: 1000, min: 10, max: 600_000, unit: 'ms', description: 'First wait before connecting again after a failure; doubled up to 60 s.' },
} as const;

export type Settings = typeof settings;

/** The settings, checked and completed with their defaults. */
export interface ArchiveConfig {
  conninfo: string;
  directory: string;
  slot: string | null;
  createSlot: boolean;
  synchronous: boolean;
  statusInterval: number;
  compression: Compression;
  applicationName: string;
  connectTimeout: number;
  receiveTimeout: number;
  retryInterval: number;
}

/** A configuration error: the operator's to fix. */
export class ConfigError extends Error {
  constructor(
    message: string,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Values = { [K in keyof Settings]: Settings[K]['default'] extends number ? number : Settings[K]['default'] extends boolean ? boolean : string };

/**
 * Check the settings. `primaryConninfo` is this server's primary_conninfo
 * while it is a standby (null on a primary), the source when
 * `source_conninfo` is empty. Throws ConfigError.
 */
export function checkConfig(s: Values, workerName: string, primaryConninfo: string | null, dataDirectory: string | null): ArchiveConfig {
  const conninfo = s.source_conninfo || primaryConninfo || '';
  if (!conninfo) {
    throw new ConfigError(
      'no source to stream WAL from: tsworker_walarchive.source_conninfo is empty and this server is not a standby with a primary_conninfo',
      "Set tsworker_walarchive.source_conninfo to the source's connection string, then reload.",
    );
  }
  const from = s.source_conninfo ? 'tsworker_walarchive.source_conninfo' : 'primary_conninfo';
  try {
    clientConfig(conninfo, s.connect_timeout, workerName);
  } catch (err) {
    throw new ConfigError(`invalid ${from}: ${(err as Error).message}`, 'Correct it (libpq\'s keywords and values), then reload.');
  }
  const dir = s.directory;
  if (!dir) throw new ConfigError('tsworker_walarchive.directory is not set', 'Set it to an absolute path of a directory the server\'s OS user can write, then reload.');
  if (!path.isAbsolute(dir)) throw new ConfigError(`tsworker_walarchive.directory must be an absolute path, not "${dir}"`);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw new ConfigError(`could not access the archive directory "${dir}": ${(err as Error).message}`, 'Create it, owned by the server\'s OS user, then reload.');
  }
  if (!st.isDirectory()) throw new ConfigError(`the archive directory "${dir}" is not a directory`);
  try {
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
  } catch {
    const own = st.uid === process.getuid?.();
    throw new ConfigError(
      `the archive directory "${dir}" is not writable by the server's OS user`,
      own ? 'It is that user\'s but its permissions do not let it write (chmod u+wx), then reload.' : 'Give it to that user (chown), then reload.',
    );
  }
  const server = serverDirectoryHolding(dir, dataDirectory);
  if (server) {
    throw new ConfigError(
      `the archive directory "${dir}" is inside this server's ${server}`,
      'PostgreSQL owns what is there (a standby\'s pg_wal holds segments of the same names): use a directory outside the data directory, then reload.',
    );
  }
  const slot = s.slot.trim();
  if (slot && !/^[a-z0-9_]{1,63}$/.test(slot)) {
    throw new ConfigError(`invalid replication slot name "${slot}"`, 'Slot names contain only lower case letters, numbers and the underscore, at most 63 of them.');
  }
  if (s.create_slot && !slot) throw new ConfigError('tsworker_walarchive.create_slot is on but tsworker_walarchive.slot is empty');
  let compression: Compression;
  try {
    compression = parseCompression(s.compression);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const applicationName = s.application_name || workerName;
  if (!/^[\x20-\x7e]{1,63}$/.test(applicationName)) throw new ConfigError(`invalid application_name "${applicationName}": 1 to 63 printable ASCII characters`);
  return {
    conninfo,
    directory: dir,
    slot: slot || null,
    createSlot: s.create_slot,
    synchronous: s.synchronous,
    statusInterval: s.status_interval,
    compression,
    applicationName,
    connectTimeout: s.connect_timeout,
    receiveTimeout: s.receive_timeout,
    retryInterval: s.retry_interval,
  };
}

/**
 * Which of this server's directories holds `dir` (the same or a parent):
 * "pg_wal" (where it really is, if a link) or "data directory"; null for
 * neither, or when the data directory is unknown.
 */
function serverDirectoryHolding(dir: string, dataDirectory: string | null): string | null {
  if (!dataDirectory) return null;
  const real = (p: string): string | null => {
    try {
      return fs.realpathSync(p);
    } catch {
      return null;
    }
  };
  const target = real(dir);
  if (!target) return null;
  const within = (base: string | null): boolean => {
    if (!base) return false;
    const rel = path.relative(base, target);
    return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
  };
  if (within(real(path.join(dataDirectory, 'pg_wal')))) return 'pg_wal';
  if (within(real(dataDirectory))) return 'data directory';
  return null;
}

/** Whether a change of configuration needs a new connection (anything but the live knobs). */
export function needsReconnect(a: ArchiveConfig, b: ArchiveConfig): boolean {
  return (
    a.conninfo !== b.conninfo ||
    a.directory !== b.directory ||
    a.slot !== b.slot ||
    a.createSlot !== b.createSlot ||
    a.applicationName !== b.applicationName ||
    JSON.stringify(a.compression) !== JSON.stringify(b.compression)
  );
}
