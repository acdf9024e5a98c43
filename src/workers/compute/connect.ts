/**
 * Connections from the worker to its own server, with node-postgres: for
 * statements that cannot run inside a transaction block (CREATE DATABASE,
 * DROP DATABASE, ALTER SYSTEM) and for work inside other databases. By
 * default they go through the server's first Unix socket directory and
 * port, as the role the worker runs as; `tsworker_compute.conninfo` (libpq
 * `key=value` pairs) overrides any of that (a password, another host).
 *
 * The pids of these connections are kept, so that the activity monitor
 * does not count the worker's own work as user activity.
 */
import { Client, type ClientConfig } from 'pg';

import { parseConninfo } from '../promoter/conninfo';

/** application_name of the worker's connections. */
export const APPLICATION_NAME = 'pg_tsworker compute';

/**
 * Session settings of the worker's own sessions (its connections, and its
 * SPI session through {@link SESSION_OVERRIDES_SQL}): a spec's
 * `default_transaction_read_only`, `statement_timeout` or the like must
 * not make the worker's own statements fail, nor the next apply.
 */
export const SESSION_OVERRIDES: Readonly<Record<string, string>> = {
  default_transaction_read_only: 'off',
  statement_timeout: '0',
  lock_timeout: '0',
  idle_in_transaction_session_timeout: '0',
  idle_session_timeout: '0',
};

/** Sets {@link SESSION_OVERRIDES} for the rest of the session that runs it. */
export const SESSION_OVERRIDES_SQL = `SELECT ${Object.entries(SESSION_OVERRIDES)
  .map(([k, v]) => `pg_catalog.set_config('${k}', '${v}', false)`)
  .join(', ')}`;

/** How long a closed connection's pid is still the worker's own. */
const FORGET_AFTER_MS = 2000;

/** How to reach the server, as read from its settings. */
export interface ServerAddress {
  /** unix_socket_directories. */
  socketDirs: string;
  /** port. */
  port: number;
  /** The role the worker runs as. */
  user: string;
}

export class SelfConnector {
  private readonly pids = new Set<number>();
  private readonly closing = new Set<Promise<void>>();

  constructor(
    private address: ServerAddress,
    private conninfo: string,
  ) {}

  /** Take new settings (after a reload). */
  configure(address: ServerAddress, conninfo: string): void {
    this.address = address;
    this.conninfo = conninfo;
  }

  /** Backend pids of the worker's open connections. */
  ownPids(): ReadonlySet<number> {
    return this.pids;
  }

  /** node-postgres configuration for `database`. Throws on a malformed conninfo. */
  config(database: string): ClientConfig {
    const c = this.conninfo ? parseConninfo(this.conninfo) : {};
    const socket = this.address.socketDirs.split(',')[0]?.trim();
    const host = c.hostaddr || c.host || socket || '127.0.0.1';
    return {
      host: host.split(',')[0],
      port: Number((c.port || String(this.address.port)).split(',')[0]),
      user: c.user || this.address.user,
      password: c.password || undefined,
      database,
      application_name: APPLICATION_NAME,
      options: Object.entries(SESSION_OVERRIDES)
        .map(([k, v]) => `-c ${k}=${v}`)
        .join(' '),
      connectionTimeoutMillis: Number(c.connect_timeout || 10) * 1000,
      ssl: c.sslmode === 'require' ? { rejectUnauthorized: false } : false,
    };
  }

  /** Open a connection to `database`; close it with {@link release}. */
  async connect(database: string): Promise<Client> {
    const client = new Client(this.config(database));
    client.on('error', () => undefined); // a broken connection fails its next query
    await client.connect();
    const pid = (client as unknown as { processID: number | null }).processID;
    if (pid) this.pids.add(pid);
    return client;
  }

  /** Close a connection opened by {@link connect}. */
  async release(client: Client): Promise<void> {
    const pid = (client as unknown as { processID: number | null }).processID;
    try {
      await client.end();
    } finally {
      // The backend may show in pg_stat_activity a moment after the socket closes.
      if (pid) setTimeout(() => this.pids.delete(pid), FORGET_AFTER_MS).unref();
    }
  }

  /**
   * Run `fn` with a connection to `database`, closed afterwards without
   * waiting for the server to finish its side (as psql's `\connect` does);
   * {@link settled} waits for every such close.
   */
  async with<T>(database: string, fn: (client: Client) => Promise<T>): Promise<T> {
    const client = await this.connect(database);
    try {
      return await fn(client);
    } finally {
      const closing = this.release(client).catch(() => undefined);
      this.closing.add(closing);
      void closing.then(() => this.closing.delete(closing));
    }
  }

  /** Resolves once every connection closed by {@link with} is closed. */
  async settled(): Promise<void> {
    await Promise.all([...this.closing]);
  }
}
