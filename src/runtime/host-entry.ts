/**
 * Entry point called by the worker host (native/host/host.cc) once Node.js
 * runs inside the background worker.
 *
 * `start(host)` loads the addon, makes `pg-tsworker` resolvable from any
 * directory, sends module loading's messages (compile cache) to the log, turns every way JavaScript can
 * fail into a logged exit with code 1, loads the worker module, runs its
 * `main` and returns the function the host calls with loop events.
 */
import Module from 'module';
import * as fs from 'fs';
import * as path from 'path';

import { loadAddon, type Addon } from './addon';
import { isWorkerDefinition, type WorkerDefinition } from './define';
import { PgError } from './errors';
import { describe, summarize } from './failure';
import { Interval } from './interval';
import { resultChannel } from './results';
import type { SettingsSpec } from './settings';
import { requireModule, setModuleLog } from './modules';
import { Worker } from './worker';

/**
 * What the host hands over (built in host.cc). Who the worker is comes from
 * its slot, through the addon (addon.slot()).
 */
export interface HostInterface {
  /** <sharedir>/pg_tsworker: this runtime and its node_modules. */
  runtimeDir: string;
  /** <pkglibdir>/pg_tsworker: the addon. */
  nativeDir: string;
  /**
   * Leave the loop and exit the process: 0 when the run finished, 1 when it
   * failed. The exit code the postmaster sees is the slot's decision
   * (restart policy, tsworker.stop(), crash loops: native/shim/worker_slot.c).
   */
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
          addon.constants.log.warning,
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
  const level = addon.constants.log;
  const to = (n: number) => (...args: unknown[]) => addon.log(n, format(...args));
  console.log = to(level.log);
  console.info = to(level.log);
  console.debug = to(level.debug);
  console.warn = to(level.warning);
  console.error = to(level.warning);
  console.trace = (...args: unknown[]) => addon.log(level.log, `${format(...args)}\n${new Error().stack ?? ''}`);
}

export function loadDefinition(host: { module: string; runtimeDir: string }): WorkerDefinition<SettingsSpec> {
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
  addon.init(PgError as never, { Interval }, resultChannel);
  const { log: level, outcome, restart, state } = addon.constants;
  const slot = addon.slot();
  let finished = false;
  let worker: Worker<SettingsSpec> | undefined;
  let policy: WorkerDefinition['restart'] = 'on-failure';

  /**
   * End the run: `code` 0 when it finished, 1 when it failed. `message` goes
   * to the log; a failure's one-line `summary` (default: the message's
   * first line) becomes last_error. The restart policy, applied by the
   * slot, is noted.
   */
  const finish = (code: number, message: string, logLevel: number, summary?: string): void => {
    if (finished) return;
    finished = true;
    let note = '';
    if (policy === 'never' && code !== 0) note = ' (restart: never)';
    else if (policy === 'always' && code === 0 && !worker?.shutdownRequested) {
      note = ' (restart: always; starting again after tsworker.restart_interval)';
    }
    if (code !== 0) addon.setError((summary ?? message.split('\n')[0]).slice(0, 1000));
    addon.setOutcome(code === 0 ? outcome.finished : outcome.failed);
    addon.log(logLevel, message + note);
    host.finish(code === 0 ? 0 : 1);
  };
  const fail = (what: string, err: unknown): void =>
    finish(1, `${what}: ${describe(err)}`, level.warning, `${what}: ${summarize(err, host.runtimeDir)}`);
  /** Set once the postmaster is gone: settles when the postmasterDeath listeners have. */
  let afterPostmaster: Promise<void> | undefined;
  const leaveAfterPostmaster = (): void => {
    void afterPostmaster?.then(() => finish(1, 'postmaster died; worker exits', level.log));
  };

  /**
   * A statement cancelled because the worker was asked to stop ends the
   * worker cleanly, wherever it ran (main, a timer, a listener); any other
   * error fails it.
   */
  /** Who asked: said when it was tsworker.stop() or tsworker.restart(), not a server shutdown or a SIGTERM. */
  const stopCause = (): string => {
    try {
      return addon.stopRequested() ? ' from tsworker.stop() or tsworker.restart()' : '';
    } catch {
      return '';
    }
  };
  const cancelledByStop = (err: unknown): boolean => !!worker?.shutdownRequested && err instanceof PgError && err.code === '57014';
  const failOrStop = (what: string, err: unknown): void => {
    if (!cancelledByStop(err)) return fail(what, err);
    const where = what === 'worker failed' ? 'its running statement was cancelled' : 'a statement was cancelled in a callback';
    finish(0, `stopped on shutdown request (${where})${stopCause()}`, level.log);
  };
  process.on('uncaughtException', (err) => failOrStop('uncaught exception', err));
  process.on('unhandledRejection', (reason) => failOrStop('unhandled promise rejection', reason));
  const realExit = process.exit.bind(process);
  process.exit = ((code?: number | string | null) => {
    const n = Number(code ?? process.exitCode ?? 0);
    finish(
      n === 0 ? 0 : 1,
      `process.exit(${String(code ?? '')}) called; exiting with code ${n === 0 ? 0 : 1}\n${new Error().stack ?? ''}`,
      level.warning,
    );
    realExit(n);
  }) as typeof process.exit;
  redirectConsole(addon);
  guardSignals(addon);
  setupResolution(host.runtimeDir);
  setModuleLog({ debug: (m) => addon.log(level.debug, m), warning: (m) => addon.log(level.warning, m) });

  try {
    const def = loadDefinition({ module: slot.module, runtimeDir: host.runtimeDir });
    policy = def.restart;
    addon.setPolicy(restart[def.restart]);
    worker = new Worker(addon, slot.name, def, slot.settings, slot.wakes, slot.configName || slot.name);
    const w = worker;
    addon.log(level.debug, `module ${slot.module} loaded`);
    const delay = backoffDelay(slot.recentFailures, def.backoffMax);
    if (delay > 0) w.log.log(`${slot.recentFailures} recent failure(s): waiting ${delay} ms before starting`);
    (delay > 0 ? w.wait({ timeout: delay }).then(() => undefined) : Promise.resolve())
      .then(() => {
        if (w.shutdownRequested) return undefined;
        addon.setState(state.running);
        return def.main(w);
      })
      .then(
        () => {
          if (afterPostmaster) return leaveAfterPostmaster();
          finish(0, w.shutdownRequested ? `stopped on shutdown request${stopCause()}` : 'main() returned; worker finished', level.log);
        },
        (err) => {
          if (afterPostmaster) {
            w.log.log(`main() ended after the postmaster died: ${summarize(err, host.runtimeDir)}`);
            return leaveAfterPostmaster();
          }
          failOrStop('worker failed', err);
        },
      );
  } catch (err) {
    fail(`could not load module ${slot.module}`, err);
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
