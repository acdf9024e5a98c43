/**
 * libpq connection strings (`key=value ...`, as in primary_conninfo) to
 * node-postgres client configurations. node-postgres parses URIs only
 * (pg-connection-string): the keyword/value form is parsed here, checked
 * against libpq's keywords and values as libpq checks them, and each
 * keyword is either applied or refused when it asks for what node-postgres
 * cannot do.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import type { ClientConfig } from 'pg';
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pgpass = require('pgpass/lib/helper.js') as {
  getFileName(env: Record<string, string | undefined>): string;
  usePgPass(stats: fs.Stats, file: string): boolean;
  getPassword(connInfo: Record<string, unknown>, stream: NodeJS.ReadableStream, cb: (pass: string | undefined) => void): void;
};

const BOOL01 = (v: string): boolean => v === '0' || v === '1';
const INT = /^\s*\d+\s*$/;
const oneOf =
  (...values: string[]) =>
  (v: string): boolean =>
    values.includes(v);
const anything = (): boolean => true;
const ports = (v: string): boolean => v.split(',').every((p) => p === '' || (/^\d+$/.test(p) && Number(p) >= 1 && Number(p) <= 65535));
const TLS_VERSIONS = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

/**
 * libpq's connection keywords (PQconndefaults of libpq 15 to 18: a server
 * of any supported version writes its own libpq's keywords into
 * primary_conninfo, e.g. `pg_basebackup -R` of 16 writes
 * `sslcertmode=allow`, of 17 `sslnegotiation=postgres`) and what a value
 * must be. A keyword not listed is refused, as libpq refuses it. Values
 * node-postgres cannot honour are refused by `unsupported`.
 */
const KEYWORDS: Record<string, (v: string) => boolean> = {
  host: anything,
  hostaddr: anything,
  port: ports,
  dbname: anything,
  user: anything,
  password: anything,
  passfile: anything,
  channel_binding: oneOf('disable', 'prefer', 'require'),
  connect_timeout: (v) => INT.test(v),
  client_encoding: anything,
  options: anything,
  application_name: anything,
  fallback_application_name: anything,
  keepalives: BOOL01,
  keepalives_idle: (v) => INT.test(v),
  keepalives_interval: (v) => INT.test(v),
  keepalives_count: (v) => INT.test(v),
  tcp_user_timeout: (v) => INT.test(v),
  replication: oneOf('true', 'on', 'yes', '1', 'false', 'off', 'no', '0', 'database'),
  sslmode: oneOf('disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'),
  sslnegotiation: oneOf('postgres', 'direct'), // 17
  sslcompression: BOOL01,
  sslcert: anything,
  sslcertmode: oneOf('disable', 'allow', 'require'), // 16
  sslkey: anything,
  sslpassword: anything,
  sslrootcert: anything,
  sslcrl: anything,
  sslcrldir: anything,
  sslsni: BOOL01,
  requirepeer: anything,
  require_auth: anything, // 16
  min_protocol_version: oneOf('', '3.0', '3.2', 'latest'), // 18
  max_protocol_version: oneOf('', '3.0', '3.2', 'latest'), // 18
  ssl_min_protocol_version: (v) => v === '' || TLS_VERSIONS.includes(v),
  ssl_max_protocol_version: (v) => v === '' || TLS_VERSIONS.includes(v),
  gssencmode: oneOf('disable', 'prefer', 'require'),
  krbsrvname: anything,
  gsslib: oneOf('', 'gssapi', 'sspi'),
  gssdelegation: BOOL01, // 16
  service: anything,
  target_session_attrs: oneOf('any', 'read-write', 'read-only', 'primary', 'standby', 'prefer-standby'),
  load_balance_hosts: oneOf('disable', 'random'), // 16
  scram_client_key: anything, // 18
  scram_server_key: anything, // 18
  oauth_issuer: anything, // 18
  oauth_client_id: anything, // 18
  oauth_client_secret: anything, // 18
  oauth_scope: anything, // 18
  sslkeylogfile: anything, // 18
};

/** Why a valid libpq keyword/value cannot be honoured here, or null. */
function unsupported(key: string, value: string): string | null {
  if (key === 'service' && value) return 'service files (pg_service.conf) are not read: give the keywords themselves';
  if (key === 'requirepeer' && value) return 'requirepeer is not supported';
  if (key === 'gssencmode' && value === 'require') return 'GSSAPI encryption is not supported (gssencmode=require)';
  if (key === 'sslcrldir' && value) return 'sslcrldir is not supported: use sslcrl';
  if (key === 'target_session_attrs' && value !== 'any') return 'target_session_attrs other than "any" is not supported';
  if (key === 'sslnegotiation' && value === 'direct') return 'direct SSL negotiation is not supported (sslnegotiation=direct)';
  if (key === 'sslcertmode' && value === 'require') return 'sslcertmode=require is not supported';
  if (key === 'require_auth' && value) return 'require_auth is not supported';
  if (key === 'min_protocol_version' && (value === '3.2' || value === 'latest')) return `min_protocol_version=${value} is not supported: protocol 3.0 is spoken`;
  if (key === 'load_balance_hosts' && value === 'random') return 'load_balance_hosts=random is not supported';
  if ((key.startsWith('oauth_') || key.startsWith('scram_')) && value) return `${key} is not supported`;
  if (key === 'sslkeylogfile' && value) return 'sslkeylogfile is not supported';
  return null;
}

/**
 * Parse `key=value` pairs; values may be single-quoted with `\'` and `\\`
 * escapes. Throws on a keyword libpq does not know, a value libpq would
 * refuse (port=abc, sslmode=maybe), or one that cannot be honoured.
 */
export function parseConninfo(conninfo: string): Record<string, string> {
  if (/^\s*postgres(ql)?:\/\//.test(conninfo)) {
    throw new Error('a connection URI (postgresql://...) is not supported here: write the keyword=value form (host=... port=... user=...)');
  }
  const out: Record<string, string> = {};
  let i = 0;
  const s = conninfo;
  const skipSpace = () => {
    while (i < s.length && /\s/.test(s[i])) i++;
  };
  for (;;) {
    skipSpace();
    if (i >= s.length) break;
    const keyStart = i;
    while (i < s.length && s[i] !== '=' && !/\s/.test(s[i])) i++;
    const key = s.slice(keyStart, i);
    skipSpace();
    if (s[i] !== '=') throw new Error(`conninfo: missing "=" after "${key}"`);
    i++;
    skipSpace();
    let value = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) throw new Error('conninfo: unterminated quoted string');
        if (s[i] === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else if (s[i] === "'") {
          i++;
          break;
        } else value += s[i++];
      }
    } else {
      while (i < s.length && !/\s/.test(s[i])) {
        if (s[i] === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else value += s[i++];
      }
    }
    if (!key) throw new Error('conninfo: empty key');
    const valid = KEYWORDS[key];
    if (!valid) throw new Error(`invalid connection option "${key}"`);
    if (!valid(value)) throw new Error(`invalid value for connection option "${key}": "${value}"`);
    const why = unsupported(key, value);
    if (why) throw new Error(why);
    out[key] = value;
  }
  return out;
}

/** Where a conninfo points, for logs and status (never the password). */
export function describeConninfo(conninfo: string): string {
  try {
    const c = parseConninfo(conninfo);
    const host = c.hostaddr || c.host || 'localhost';
    return `${host}:${c.port || '5432'}`;
  } catch {
    return '(invalid conninfo)';
  }
}

/** A file named by a conninfo keyword, read now (a missing file is libpq's error too). */
function readKeywordFile(key: string, file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new Error(`could not read ${key} "${file}": ${(err as Error).message}`);
  }
}

/**
 * TLS options for node-postgres from libpq's sslmode (default `prefer`,
 * which node-postgres, unable to fall back, treats as `disable`: see
 * docs/walarchive.md), sslrootcert (default ~/.postgresql/root.crt when it
 * exists, as libpq), sslcert/sslkey (client certificate; default
 * ~/.postgresql/postgresql.crt/.key when they exist), sslpassword,
 * sslcertmode (disable sends none), sslcrl, sslsni and
 * ssl_min/max_protocol_version.
 */
function tlsOptions(c: Record<string, string>, host: string): ClientConfig['ssl'] {
  const mode = c.sslmode || 'prefer';
  if (mode === 'disable' || mode === 'allow' || mode === 'prefer') return false;
  const home = path.join(os.homedir(), '.postgresql');
  const pick = (key: string, fallback: string): Buffer | undefined => {
    if (c[key]) return readKeywordFile(key, c[key]);
    const f = path.join(home, fallback);
    return fs.existsSync(f) ? fs.readFileSync(f) : undefined;
  };
  const verify = mode === 'verify-ca' || mode === 'verify-full';
  const ca = pick('sslrootcert', 'root.crt');
  if (verify && !ca) throw new Error(`sslmode=${mode} needs a root certificate: set sslrootcert`);
  const out: Record<string, unknown> = {
    rejectUnauthorized: verify,
    ca,
    // sslcertmode=disable: never send a client certificate
    cert: c.sslcertmode === 'disable' ? undefined : pick('sslcert', 'postgresql.crt'),
    key: c.sslcertmode === 'disable' ? undefined : pick('sslkey', 'postgresql.key'),
    passphrase: c.sslpassword || undefined,
    crl: c.sslcrl ? readKeywordFile('sslcrl', c.sslcrl) : undefined,
    servername: c.sslsni === '0' || /^[\d.:]+$/.test(host) ? undefined : host,
    minVersion: c.ssl_min_protocol_version || 'TLSv1.2',
    maxVersion: c.ssl_max_protocol_version || undefined,
  };
  // verify-ca checks the chain, not the name (libpq)
  if (mode === 'verify-ca') out.checkServerIdentity = () => undefined;
  return out as ClientConfig['ssl'];
}

/**
 * The password of a connection from a password file, read at each
 * connection as libpq does: the conninfo's passfile, else PGPASSFILE,
 * else ~/.pgpass (pgpass matches host, port, database and user). Never
 * through process.env, which would outlive a change of conninfo.
 */
function passwordFor(passfile: string | undefined): (params: Record<string, unknown>) => Promise<string | undefined> {
  return (params) =>
    new Promise((resolve) => {
      const file = passfile || pgpass.getFileName({ PGPASSFILE: process.env.PGPASSFILE, HOME: os.homedir() });
      fs.stat(file, (err, st) => {
        if (err || !pgpass.usePgPass(st, file)) return resolve(undefined);
        // node-postgres's connection parameters: host, port, database, user, as pgpass matches them
        pgpass.getPassword(params, fs.createReadStream(file), resolve);
      });
    });
}

/**
 * A node-postgres configuration for a conninfo (its first host). The
 * database defaults to `postgres` (primary_conninfo usually names none);
 * `applicationName` replaces the conninfo's application_name. Throws as
 * parseConninfo, and when a file it names cannot be read.
 */
export function clientConfig(conninfo: string, timeoutMs: number, applicationName: string): ClientConfig {
  const c = parseConninfo(conninfo);
  const host = (c.hostaddr || c.host || '/var/run/postgresql').split(',')[0];
  const cfg: ClientConfig = {
    host,
    port: c.port ? Number(c.port.split(',')[0]) || 5432 : 5432,
    user: c.user || undefined,
    database: c.dbname || 'postgres',
    application_name: applicationName,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
    keepAlive: c.keepalives !== '0',
    keepAliveInitialDelayMillis: c.keepalives_idle ? Number(c.keepalives_idle) * 1000 : undefined,
    options: c.options || undefined,
    client_encoding: c.client_encoding || undefined,
    enableChannelBinding: c.channel_binding === 'require' ? true : undefined,
    ssl: tlsOptions(c, host),
  } as ClientConfig;
  // node-postgres calls a password function with its connection parameters
  cfg.password = c.password || (passwordFor(c.passfile) as unknown as () => Promise<string>);
  return cfg;
}
