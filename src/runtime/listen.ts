/**
 * LISTEN for a worker: PostgreSQL refuses LISTEN in a background worker, so
 * the runtime keeps one node-postgres connection to the worker's own server
 * (its Unix socket, its role, its database) and hands each notification to
 * the handler of its channel. The connection is made at the first
 * `w.listen()`, made again (with every channel listened to again) when it
 * is lost, and closed when the last channel is unlistened, when the worker
 * stops, or when the server begins to shut down (server-stopping.ts: a
 * smart shutdown waits for this client session to end before it stops the
 * worker).
 *
 * Notifications sent while the connection was down are lost: PostgreSQL
 * queues them only for sessions that are listening. So once the connection
 * is back and listening again, each handler is called with `reconnected:
 * true`, and must catch up (read the table the notifications were about);
 * notifications committed after that call are all delivered.
 */
import type pg from 'pg';

import type { Logger } from './define';

/** What a `w.listen()` handler receives. */
export interface Notification {
  /** The channel, exactly as given to `w.listen()`. */
  readonly channel: string;
  /** The payload given to NOTIFY / pg_notify() ('' when none, and on a reconnect). */
  readonly payload: string;
  /** Pid of the backend that sent it (0 on a reconnect). */
  readonly processId: number;
  /**
   * true for the one call made after the connection was lost and made again:
   * notifications sent meanwhile are lost, so catch up now. false otherwise.
   */
  readonly reconnected: boolean;
}

/**
 * A `w.listen()` handler. What it returns is not used, except that a
 * returned promise that rejects ends the worker; its calls are not awaited:
 * an async handler's calls may overlap.
 */
export type NotificationHandler = (notification: Notification) => unknown;

/** Where the connection goes. */
export interface ListenTarget {
  /** Directory of the server's Unix socket (or a host name when it has none). */
  host: string;
  port: number;
  user: string;
  database: string;
  applicationName: string;
}

const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;
/** NAMEDATALEN - 1: PostgreSQL truncates a longer LISTEN channel, and pg_notify() refuses it. */
const MAX_CHANNEL_BYTES = 63;

/** A channel name as an SQL identifier. */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

export class Listener {
  private readonly handlers = new Map<string, NotificationHandler>();
  private client: pg.Client | undefined;
  /** Operations on the connection run one at a time, in order. */
  private chain: Promise<unknown> = Promise.resolve();
  private retryMs = RETRY_FIRST_MS;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Why no connection is made any more: the worker stops, or the server does. */
  private closed: string | undefined;
  private failures = 0;

  constructor(
    private readonly target: () => ListenTarget,
    private readonly log: Logger,
  ) {}

  /** Listen to `channel`: resolves once notifications on it are delivered. */
  listen(channel: string, handler: NotificationHandler): Promise<void> {
    if (typeof channel !== 'string' || channel === '' || Buffer.byteLength(channel, 'utf8') > MAX_CHANNEL_BYTES) {
      return Promise.reject(new TypeError(`listen(channel, handler): channel must be a string of 1 to ${MAX_CHANNEL_BYTES} bytes (UTF-8)`));
    }
    if (typeof handler !== 'function') return Promise.reject(new TypeError('listen(channel, handler): handler must be a function'));
    if (this.closed) return Promise.reject(new Error(`listen(): ${this.closed}`));
    const known = this.handlers.has(channel);
    this.handlers.set(channel, handler);
    if (known) return Promise.resolve();
    return this.serial(async () => {
      if (!this.handlers.has(channel)) return; // unlistened meanwhile
      const client = await this.connected();
      await client.query(`LISTEN ${quoteIdent(channel)}`);
    });
  }

  /** Stop listening to `channel` (nothing if it was not listened to). */
  unlisten(channel: string): Promise<void> {
    if (typeof channel !== 'string') return Promise.reject(new TypeError('unlisten(channel): channel must be a string'));
    if (!this.handlers.delete(channel)) return Promise.resolve();
    return this.serial(async () => {
      const client = this.client;
      if (!client || this.handlers.has(channel)) return;
      if (this.handlers.size === 0) {
        this.client = undefined;
        await client.end().catch(() => undefined);
      } else {
        await client.query(`UNLISTEN ${quoteIdent(channel)}`);
      }
    });
  }

  /** The worker stops: drop the connection, and make no other. */
  close(): void {
    this.closeFor('the worker is stopping');
    this.handlers.clear();
  }

  /**
   * The server begins to shut down: drop the connection (a smart shutdown
   * waits for it), and make no other.
   */
  serverStopping(): void {
    if (this.closed) return;
    if (this.client) this.log.log('the server is shutting down: LISTEN connection closed');
    this.closeFor('the server is shutting down');
  }

  private closeFor(why: string): void {
    this.closed = why;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    void client?.end().catch(() => undefined);
  }

  /**
   * Call a handler outside node-postgres's parser: what it throws or
   * rejects with is an unhandled rejection, which ends the worker as an
   * error in main() would (logged, exit 1).
   */
  private call(handler: NotificationHandler, notification: Notification): void {
    void Promise.resolve(notification).then(handler);
  }

  private serial<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op, op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The connection, made if there is none. */
  private async connected(): Promise<pg.Client> {
    if (this.client) return this.client;
    if (this.closed) throw new Error(`listen(): ${this.closed}`);
    const t = this.target();
    // Loaded on first use: a worker that never listens does not pay for
    // loading pg (time and memory).
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { Client } = require('pg') as typeof pg;
    const client = new Client({
      host: t.host,
      port: t.port,
      user: t.user,
      database: t.database,
      application_name: t.applicationName,
    });
    client.on('notification', (msg) => {
      const handler = this.handlers.get(msg.channel);
      if (handler) this.call(handler, { channel: msg.channel, payload: msg.payload ?? '', processId: msg.processId, reconnected: false });
    });
    const lost = (err?: Error) => this.lost(client, err);
    client.on('error', lost);
    client.on('end', () => lost());
    await client.connect();
    if (this.closed) {
      // closed while connecting: this connection must not outlive it
      await client.end().catch(() => undefined);
      throw new Error(`listen(): ${this.closed}`);
    }
    this.client = client;
    return client;
  }

  /** The connection ended or failed: make it again, unless the worker stops or listens to nothing. */
  private lost(client: pg.Client, err?: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    if (this.closed || this.handlers.size === 0) return;
    this.log.warning(`LISTEN connection lost${err ? `: ${err.message}` : ''}; reconnecting`);
    this.scheduleReconnect(0);
  }

  private scheduleReconnect(delayMs: number): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.serial(() => this.reconnect());
    }, delayMs);
  }

  private async reconnect(): Promise<void> {
    if (this.closed || this.handlers.size === 0 || this.client) return;
    try {
      const client = await this.connected();
      const channels = [...this.handlers.keys()];
      for (const channel of channels) await client.query(`LISTEN ${quoteIdent(channel)}`);
      if (this.failures > 0) this.log.log(`LISTEN connection made again after ${this.failures} failed attempts`);
      this.failures = 0;
      this.retryMs = RETRY_FIRST_MS;
      for (const channel of channels) {
        const handler = this.handlers.get(channel);
        if (handler) this.call(handler, { channel, payload: '', processId: 0, reconnected: true });
      }
    } catch (err) {
      const client = this.client as pg.Client | undefined;
      this.client = undefined;
      void client?.end().catch(() => undefined);
      this.failures++;
      if (this.failures === 1 || this.failures % 10 === 0) {
        this.log.warning(`could not make the LISTEN connection again (attempt ${this.failures}): ${(err as Error).message}`);
      }
      const delay = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, RETRY_MAX_MS);
      this.scheduleReconnect(delay);
    }
  }
}
