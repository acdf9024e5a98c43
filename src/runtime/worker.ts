/**
 * The running worker: implements `WorkerContext` on top of the addon, and
 * turns the host's loop events (latch, reload, shutdown) into resolved
 * waits, fresh settings and listener calls. Its SQL is transactions.ts's.
 */
import { format } from 'util';

import type { Addon } from './addon';
import type {
  Json,
  Logger,
  QueryOptions,
  Row,
  Transaction,
  TransactionOptions,
  WaitOptions,
  WorkerContext,
  WorkerDefinition,
  WorkerEvents,
  WorkerStatus,
} from './define';
import type { Param } from './params';
import type { Rows } from './results';
import { manifestSettings, settingFromPostgres, type SettingsSpec, type SettingValues } from './settings';
import { Transactions } from './transactions';
import { Listener, type ListenTarget, type NotificationHandler } from './listen';
import { ServerStoppingWatch } from './server-stopping';

interface Waiter {
  resolve(value: boolean): void;
  timer?: NodeJS.Timeout;
}

/** Logger writing through elog, one line per call. */
export function makeLogger(addon: Addon): Logger {
  const level = addon.constants.log;
  const at = (n: number) => (...args: unknown[]) => addon.log(n, format(...args));
  const log = at(level.log);
  return {
    debug: at(level.debug),
    log,
    info: log,
    notice: at(level.notice),
    warning: at(level.warning),
  };
}

export class Worker<S extends SettingsSpec> implements WorkerContext<S> {
  readonly name: string;
  readonly log: Logger;
  index: number | undefined;
  private readonly configName: string;
  private readonly addon: Addon;
  private readonly spec: S;
  private values: SettingValues<S>;
  private waiters = new Set<Waiter>();
  private latchPending = false;
  private wakesSeen = 0;
  private stopping = false;
  private listeners: { [E in keyof WorkerEvents]: WorkerEvents[E][] } = { reload: [], shutdown: [], serverStopping: [], postmasterDeath: [] };
  private postmasterGone = false;
  private readonly transactions: Transactions;
  private published: { [key: string]: Json } = {};
  private listener: Listener | undefined;
  /** Watches for a server shutdown while a LISTEN connection or a serverStopping listener needs it. */
  private readonly serverWatch = new ServerStoppingWatch(() => this.onServerStopping());
  readonly status: WorkerStatus;

  /**
   * @param launchSettings JSON object given to tsworker.launch(): values
   *   that take precedence over postgresql.conf (set with source override,
   *   which a reload does not replace).
   */
  constructor(
    addon: Addon,
    name: string,
    def: WorkerDefinition<S>,
    launchSettings = '{}',
    wakesAtStart = 0,
    configName = name,
  ) {
    this.addon = addon;
    this.name = name;
    this.configName = configName;
    this.spec = def.settings;
    this.log = makeLogger(addon);
    this.defineSettings(launchSettings);
    this.values = this.readSettings();
    this.wakesSeen = wakesAtStart;
    this.status = {
      set: (value) => this.publish({ ...value }),
      update: (value) => this.publish({ ...this.published, ...value }),
      get: () => ({ ...this.published }),
    };
    this.transactions = new Transactions(addon, this.log, () => this.postmasterGone);
  }

  get settings(): Readonly<SettingValues<S>> {
    return this.values;
  }

  get shutdownRequested(): boolean {
    return this.stopping || this.addon.shutdownRequested();
  }

  /** Configuration parameter `tsworker_<worker>.<setting>` of a declared setting. */
  settingName(key: string): string {
    return `tsworker_${this.configName}.${key}`;
  }

  private publish(value: { [key: string]: Json }): void {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new TypeError('status.set(): the status must be an object');
    }
    const json = JSON.stringify(value);
    this.addon.setStatus(json);
    this.published = JSON.parse(json) as { [key: string]: Json };
  }

  /**
   * Make the declared settings parameters of this process (PostgreSQL then
   * checks a placeholder's value from postgresql.conf: a bad one is a
   * WARNING and the default is kept) and set the values given to
   * tsworker.launch(), which PostgreSQL checks too (launch() did already,
   * unless the module changed since): every bad one is named.
   */
  private defineSettings(launchSettings: string): void {
    const bad = this.addon.defineSettings(this.name, this.configName, JSON.stringify(manifestSettings(this.spec)), launchSettings || '{}');
    if (bad !== null) throw new Error(`invalid tsworker.launch() settings: ${bad}`);
    const { index } = JSON.parse(launchSettings || '{}') as { index?: number };
    this.index = index;
  }

  /**
   * The declared settings as PostgreSQL has them: checked, in their base
   * unit. At a reload (`previous` given), a `context: 'postmaster'` setting
   * keeps its value: a launched worker's parameters are defined after server
   * start, where PostgreSQL allows only sighup ones.
   */
  private readSettings(previous?: SettingValues<S>): SettingValues<S> {
    const out: Record<string, unknown> = {};
    for (const [key, spec] of Object.entries(this.spec)) {
      if (previous && spec.context === 'postmaster') {
        out[key] = previous[key as keyof S];
        continue;
      }
      const { value: text, defined } = this.addon.getSetting(this.settingName(key));
      // not defined: the shim could not define it, and said why in a WARNING
      out[key] = defined && text !== null ? settingFromPostgres(spec, text) : spec.default;
    }
    return Object.freeze(out) as SettingValues<S>;
  }

  wait(options: WaitOptions = {}): Promise<boolean> {
    const { timeout } = options;
    if (timeout !== undefined && (typeof timeout !== 'number' || !(timeout >= 0))) {
      return Promise.reject(new TypeError('wait(): timeout must be a number of milliseconds >= 0'));
    }
    if (this.shutdownRequested) return Promise.resolve(false);
    // A tsworker.wake() whose latch a wait inside PostgreSQL reset is kept.
    const wakes = this.addon.wakes();
    if (wakes !== this.wakesSeen) {
      this.wakesSeen = wakes;
      this.latchPending = true;
    }
    if (this.latchPending) {
      this.latchPending = false;
      this.addon.noteLoop();
      return Promise.resolve(true);
    }
    if (this.waiters.size === 0) this.addon.setState(this.addon.constants.state.waiting);
    return new Promise<boolean>((resolve) => {
      const waiter: Waiter = { resolve };
      if (timeout !== undefined && Number.isFinite(timeout)) {
        waiter.timer = setTimeout(() => this.settle(waiter, true), Math.min(timeout, 2 ** 31 - 1));
      }
      this.waiters.add(waiter);
    });
  }

  private settle(waiter: Waiter, value: boolean): void {
    if (!this.waiters.delete(waiter)) return;
    if (waiter.timer) clearTimeout(waiter.timer);
    if (value && this.waiters.size === 0) this.addon.noteLoop();
    waiter.resolve(value);
  }

  private settleAll(value: boolean): void {
    for (const w of [...this.waiters]) this.settle(w, value);
  }

  transaction<T>(fn: (tx: Transaction) => Promise<T>, options?: TransactionOptions): Promise<T>;
  transaction<T>(fn: (tx: Transaction) => T, options?: TransactionOptions): T;
  transaction<T>(fn: (tx: Transaction) => T, options?: TransactionOptions): T {
    return this.transactions.transaction(fn, options);
  }

  query<R extends Row = Row>(sql: string, params?: readonly Param[], options?: QueryOptions): Rows<R> {
    return this.transactions.query<R>(sql, params, options);
  }

  setting(name: string): string | null {
    if (typeof name !== 'string') throw new TypeError('setting(name): name must be a string');
    return this.addon.getSetting(name).value;
  }

  listen(channel: string, handler: NotificationHandler): Promise<void> {
    this.listener ??= new Listener(() => this.listenTarget(), this.log);
    if (!this.stopping) this.serverWatch.start();
    return this.listener.listen(channel, handler);
  }

  unlisten(channel: string): Promise<void> {
    return this.listener ? this.listener.unlisten(channel) : Promise.resolve();
  }

  /**
   * The worker's own server, as its LISTEN connection reaches it: the first
   * directory of unix_socket_directories (localhost when there is none),
   * port, the session's role and database.
   */
  private listenTarget(): ListenTarget {
    const sql = 'SELECT session_user::text AS "user", current_database()::text AS database';
    const [who] = this.addon.inTransaction() ? this.transactions.tx.query<{ user: string; database: string }>(sql) : this.query<{ user: string; database: string }>(sql);
    const dirs = (this.setting('unix_socket_directories') ?? '').split(',').map((d) => d.trim()).filter((d) => d !== '');
    return {
      host: dirs[0] ?? 'localhost',
      port: Number(this.setting('port')),
      user: who.user,
      database: who.database,
      applicationName: `${this.name} listen`,
    };
  }

  on<E extends keyof WorkerEvents>(event: E, listener: WorkerEvents[E]): void {
    if (!(event in this.listeners)) throw new TypeError(`on(): unknown event "${String(event)}"`);
    if (typeof listener !== 'function') throw new TypeError('on(): listener must be a function');
    this.listeners[event].push(listener);
    if (event === 'serverStopping' && !this.stopping) this.serverWatch.start();
  }

  private emit(event: 'reload' | 'shutdown' | 'serverStopping'): void {
    for (const listener of this.listeners[event]) listener();
  }

  /** The server began to shut down: close what a smart shutdown waits for. */
  private onServerStopping(): void {
    this.listener?.serverStopping();
    this.emit('serverStopping');
  }

  /** Host event: the latch was set. */
  onLatch(): void {
    this.wakesSeen = this.addon.wakes();
    if (this.waiters.size > 0) this.settleAll(true);
    else this.latchPending = true;
  }

  /** Host event: configuration reloaded. */
  onReload(): void {
    this.values = this.readSettings(this.values);
    this.emit('reload');
  }

  /**
   * Host event: the postmaster died. Shutdown as usual, then the
   * postmasterDeath listeners; the promise settles when theirs have (a
   * listener that throws or rejects is logged).
   */
  onPostmasterDeath(): Promise<void> {
    this.postmasterGone = true;
    try {
      this.onShutdown();
    } catch (err) {
      this.log.warning('shutdown listener failed after the postmaster died:', err);
    }
    const pending = this.listeners.postmasterDeath.map((listener) => {
      try {
        return Promise.resolve(listener());
      } catch (err) {
        return Promise.reject(err);
      }
    });
    return Promise.allSettled(pending).then((results) => {
      for (const r of results) if (r.status === 'rejected') this.log.warning('postmasterDeath listener failed:', r.reason);
    });
  }

  /** Host event: shutdown requested. */
  onShutdown(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.serverWatch.stop();
    this.listener?.close();
    this.addon.setState(this.addon.constants.state.stopping);
    this.settleAll(false);
    this.emit('shutdown');
  }
}
