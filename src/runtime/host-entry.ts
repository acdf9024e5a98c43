/**
 * Entry point called by the worker host (native/host/host.cc) once Node.js
 * runs inside the background worker.
 *
 * `start(host)` loads the addon, makes `pg-tsworker` resolvable from any
 * directory, registers tsx for TypeScript, turns every way JavaScript can
 * fail into a logged exit with code 1, loads the worker module, runs its
 * `main` and returns the function the host calls with loop events.
 */
import Module from 'module';
import * as fs from 'fs';
import * as path from 'path';

import { loadAddon, LogLevel, SlotState, type Addon } from './addon';
import { isWorkerDefinition, type WorkerDefinition } from './define';
import { PgError } from './errors';
import { describe, summarize } from './failure';
import { Interval } from './interval';
import { formatParam } from './params';
import type { SettingsSpec } from './settings';
import { requireModule } from './modules';
import { Worker } from './worker';

/** What the host hands over (built in host.cc). */
export interface HostInterface {
  /** Worker name from tsworker.workers. */
  name: string;
  /** Absolute path of the worker module. */
  module: string;
  /** <sharedir>/pg_tsworker: this runtime and its node_modules. */
  runtimeDir: string;
  /** <pkglibdir>/pg_tsworker: the addon. */
  nativeDir: string;
  /** Settings prefix: the worker reads tsworker_<configName>.* */
  configName: string;
  /** JSON object given to tsworker.launch() ('{}' for configured workers). */
  launchSettings: string;
  /** Started by tsworker.launch(). */
  dynamic: boolean;
  /** Failures of this worker within tsworker.crash_loop_window, before this start. */
  recentFailures: number;
  /** tsworker.wake() count of the slot when this run claimed it. */
  wakesAtStart: number;
  /** Leave the loop and exit the process with this code (0 or 1). */
  finish(code: number): void;
}

/** Loop events sent by the host. */
export type HostEvent = 'latch' | 'reload' | 'shutdown' | 'postmaster_death';

type ModuleInternals = typeof Module & {
  _resolveFilename(request: string, parent: unknown, isMain: boolean, options?: unknown): string;
};

/**
 * Make `pg-tsworker` resolvable from anywhere, and packages shipped with the
 * runtime too when the module's own node_modules do not have them.
 */
export function setupResolution(runtimeDir: string): void {
  const M = Module as ModuleInternals;
  const index = path.join(runtimeDir, 'dist', 'runtime', 'index.js');
  const shipped = path.join(runtimeDir, 'node_modules');
  const original = M._resolveFilename;
  M._resolveFilename = function (request, parent, isMain, options) {
    if (request === 'pg-tsworker') return index;
    try {
      return original.call(this, request, parent, isMain, options);
    } catch (err) {
      const bare = !request.startsWith('.') && !path.isAbsolute(request) && !request.startsWith('node:');
      if (!bare || (err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      return original.call(this, request, parent, isMain, { paths: [shipped] });
    }
  };
}

const SIGNALS = new Set(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGCHLD', 'SIGURG', 'SIGPIPE', 'SIGFPE']);

/**
 * PostgreSQL owns the worker's signals: a process.on('SIGTERM') listener
 * would replace its handler (through libuv) and break shutdown, latches
 * and timeouts. Such listeners are refused with a warning; use
 * w.on('shutdown') and w.on('reload') instead.
 */
function guardSignals(addon: Addon): void {
  for (const method of ['on', 'once', 'addListener', 'prependListener', 'prependOnceListener'] as const) {
    const original = process[method].bind(process) as (event: string | symbol, listener: (...args: unknown[]) => void) => NodeJS.Process;
    (process as unknown as Record<string, unknown>)[method] = (event: string | symbol, listener: (...args: unknown[]) => void) => {
      if (typeof event === 'string' && SIGNALS.has(event)) {
        addon.log(
          LogLevel.Warning,
          `ignored process.${method}('${event}'): PostgreSQL handles this worker's signals; use w.on('shutdown') or w.on('reload')`,
        );
        return process;
      }
      return original(event, listener);
    };
  }
}

/** Send console output to the server log instead of the postmaster's stdout. */
function redirectConsole(addon: Addon): void {
  const { format } = require('util') as typeof import('util');
  const to = (level: LogLevel) => (...args: unknown[]) => addon.log(level, format(...args));
  console.log = to(LogLevel.Log);
  console.info = to(LogLevel.Log);
  console.debug = to(LogLevel.Debug);
  console.warn = to(LogLevel.Warning);
  console.error = to(LogLevel.Warning);
  console.trace = (...args: unknown[]) => addon.log(LogLevel.Log, `${format(...args)}\n${new Error().stack ?? ''}`);
}

export function loadDefinition(host: Pick<HostInterface, 'module' | 'runtimeDir'>): WorkerDefinition<SettingsSpec> {
  const file = host.module;
  if (!fs.existsSync(file)) {
    throw new Error(`module ${file} does not exist (or the server's OS user cannot see it)`);
  }
  fs.accessSync(file, fs.constants.R_OK);
  const exported = requireModule(file, host.runtimeDir) as { default?: unknown };
  const def = exported && typeof exported === 'object' && 'default' in exported ? exported.default : exported;
  if (!isWorkerDefinition(def)) {
    throw new TypeError(`module ${file} must have a default export made by defineWorker() from 'pg-tsworker'`);
  }
  return def;
}

/** Delay before main() after `failures` recent failures: 1 s, 2 s, 4 s ... up to `max` ms. */
export function backoffDelay(failures: number, max: number): number {
  if (failures <= 0 || max <= 0) return 0;
  return Math.min(1000 * 2 ** Math.min(failures - 1, 30), max);
}

/** Called by the host; returns the dispatcher for loop events. */
export function start(host: HostInterface): (event: HostEvent) => void {
  const addon = loadAddon(host.nativeDir);
  addon.init(PgError as never, {
    makeInterval: (months, days, microseconds) => new Interval(months, days, microseconds),
    formatParam,
  });
  let finished = false;
  let worker: Worker<SettingsSpec> | undefined;
  let policy: WorkerDefinition['restart'] = 'on-failure';

  /**
   * Exit with `code` as the restart policy has it. `message` goes to the
   * log; a failure's one-line `summary` (default: the message's first
   * line) becomes last_error.
   */
  const finish = (code: number, message: string, level: LogLevel, summary?: string): void => {
    if (finished) return;
    finished = true;
    let exitCode = code;
    let note = '';
    if (policy === 'never' && code !== 0) {
      exitCode = 0;
      note = ' (restart: never)';
    } else if (policy === 'always' && code === 0 && !worker?.shutdownRequested) {
      exitCode = 1;
      addon.requestRestart();
      note = ' (restart: always; starting again after tsworker.restart_interval)';
    }
    if (code !== 0) addon.setError((summary ?? message.split('\n')[0]).slice(0, 1000));
    addon.log(level, message + note);
    host.finish(exitCode);
  };
  const fail = (what: string, err: unknown): void =>
    finish(1, `${what}: ${describe(err)}`, LogLevel.Warning, `${what}: ${summarize(err, host.runtimeDir)}`);
  /** Set once the postmaster is gone: settles when the postmasterDeath listeners have. */
  let afterPostmaster: Promise<void> | undefined;
  const leaveAfterPostmaster = (): void => {
    void afterPostmaster?.then(() => finish(1, 'postmaster died; worker exits', LogLevel.Log));
  };

  process.on('uncaughtException', (err) => fail('uncaught exception', err));
  process.on('unhandledRejection', (reason) => fail('unhandled promise rejection', reason));
  const realExit = process.exit.bind(process);
  process.exit = ((code?: number | string | null) => {
    const n = Number(code ?? process.exitCode ?? 0);
    finish(
      n === 0 ? 0 : 1,
      `process.exit(${String(code ?? '')}) called; exiting with code ${n === 0 ? 0 : 1}\n${new Error().stack ?? ''}`,
      LogLevel.Warning,
    );
    realExit(n);
  }) as typeof process.exit;
  redirectConsole(addon);
  guardSignals(addon);
  setupResolution(host.runtimeDir);

  try {
    const def = loadDefinition(host);
    policy = def.restart;
    worker = new Worker(addon, host.name, def, host.launchSettings, host.wakesAtStart, host.configName || host.name);
    const w = worker;
    addon.log(LogLevel.Debug, `module ${host.module} loaded`);
    const delay = backoffDelay(host.recentFailures, def.backoffMax);
    if (delay > 0) w.log.info(`${host.recentFailures} recent failure(s): waiting ${delay} ms before starting`);
    (delay > 0 ? w.wait({ timeout: delay }).then(() => undefined) : Promise.resolve())
      .then(() => {
        if (w.shutdownRequested) return undefined;
        addon.setState(SlotState.Running);
        return def.main(w);
      })
      .then(
        () => {
          if (afterPostmaster) return leaveAfterPostmaster();
          finish(0, w.shutdownRequested ? 'stopped on shutdown request' : 'main() returned; worker finished', LogLevel.Log);
        },
        (err) => {
          if (afterPostmaster) {
            w.log.info(`main() ended after the postmaster died: ${summarize(err, host.runtimeDir)}`);
            return leaveAfterPostmaster();
          }
          if (w.shutdownRequested && err instanceof PgError && err.code === '57014') {
            finish(0, 'stopped on shutdown request (its running statement was cancelled)', LogLevel.Log);
          } else {
            fail('worker failed', err);
          }
        },
      );
  } catch (err) {
    fail(`could not load module ${host.module}`, err);
  }

  return (event: HostEvent) => {
    if (!worker || finished) return;
    try {
      switch (event) {
        case 'latch':
          worker.onLatch();
          break;
        case 'reload':
          worker.onReload();
          break;
        case 'shutdown':
          worker.onShutdown();
          break;
        case 'postmaster_death':
          afterPostmaster = worker.onPostmasterDeath();
          leaveAfterPostmaster();
          break;
      }
    } catch (err) {
      fail(`${event} handler failed`, err);
    }
  };
}
