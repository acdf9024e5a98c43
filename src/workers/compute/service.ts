/**
 * The compute worker's body: builds the pieces (state, SPI gate, API
 * server, configurator, activity monitor, metrics, tracing, terminator),
 * starts the API, applies the spec given at start, then runs the monitor
 * (in every status but `terminated`, as compute_ctl's) until the server
 * asks the worker to stop. Reloads apply every reloadable setting: the
 * API's (api-control.ts), the connection settings, and the spec file.
 *
 * A spec from `tsworker_compute.spec_path` or the saved spec that is not
 * applied, whatever the reason (unreadable, not JSON, refused, failed),
 * leaves the compute `failed` with the reason; a spec refused by
 * POST /configure (400, 422) changes nothing, the status included.
 */
import * as fs from 'fs';
import * as path from 'path';

import type { Json, WorkerContext } from '../../runtime/index';
import { ApiControl, computeSetting } from './api-control';
import { SpecRejected, Configurator, type ApplyOutcome } from './configurator';
import { SelfConnector, SESSION_OVERRIDES_SQL, type ServerAddress } from './connect';
import { SpiGate } from './gate';
import { ApiServer } from './http';
import { ComputeMetrics } from './metrics';
import { ActivityMonitor } from './monitor';
import { computeRoutes } from './routes';
import { SpecStore } from './saved-spec';
import type { computeSettings } from './settings';
import { ComputeState, displayStatus, type ComputeStatus } from './status';
import { Terminator } from './terminate';
import { Tracing, type Context } from './tracing';

type Ctx = WorkerContext<typeof computeSettings>;

/** How long requests under way may take to be answered once the worker is asked to stop (ms). */
const SHUTDOWN_GRACE_MS = 2000;

/** Whether the postmaster of `dataDir` is shutting down (postmaster.pid's status line, written before it signals anyone). */
export function postmasterStopping(dataDir: string): boolean {
  try {
    const lines = fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n');
    return lines[7]?.trim() === 'stopping';
  } catch {
    return true; // no pid file: the postmaster is gone or going
  }
}

export class ComputeService {
  private readonly gate = new SpiGate();
  private readonly tracing = new Tracing();
  private readonly state: ComputeState;
  private readonly connector: SelfConnector;
  private readonly configurator: Configurator;
  private readonly metrics: ComputeMetrics;
  private readonly monitor: ActivityMonitor;
  private readonly terminator: Terminator;
  private readonly api: ApiServer;
  private readonly control: ApiControl;
  private readonly dataDir: string;
  private specFileText: string | null = null;

  constructor(private readonly w: Ctx) {
    // The worker's own session: a spec's default_transaction_read_only or statement_timeout does not apply to it.
    w.query(SESSION_OVERRIDES_SQL);
    const info = w.query<{ pm_start: Date; sockets: string; port: number; usr: string; db: string; datadir: string }>(
      `SELECT pg_catalog.pg_postmaster_start_time() AS pm_start, current_setting('unix_socket_directories') AS sockets,
              current_setting('port')::int AS port, current_user AS usr, current_database() AS db,
              current_setting('data_directory') AS datadir`,
    )[0];
    this.dataDir = info.datadir;
    this.state = new ComputeState(info.pm_start, Date.now());
    this.state.metrics.start_postgres_ms = Math.max(0, this.state.workerStart - info.pm_start.getTime());
    const address: ServerAddress = { socketDirs: info.sockets, port: info.port, user: info.usr };
    this.connector = new SelfConnector(address, this.setting('conninfo'));
    this.metrics = new ComputeMetrics(w, this.gate, this.state);
    this.monitor = new ActivityMonitor(w, this.gate, this.state, this.metrics, () => this.connector.ownPids(), () => this.adminRole(info.usr));
    this.terminator = new Terminator(w, this.gate, this.state);
    this.configurator = new Configurator({
      w,
      state: this.state,
      gate: this.gate,
      connector: this.connector,
      tracing: this.tracing,
      store: new SpecStore(info.datadir),
      privilegedRole: () => this.setting('privileged_role_name'),
      adminRole: () => this.setting('admin_role'),
      onApplied: (o: ApplyOutcome) => {
        this.metrics.observeApply(o.source, o.ms / 1000, o.ok);
        this.monitor.rebaseline();
      },
    });
    this.api = new ApiServer({
      w,
      tracing: this.tracing,
      routes: computeRoutes({
        w,
        state: this.state,
        gate: this.gate,
        configurator: this.configurator,
        metrics: this.metrics,
        terminator: this.terminator,
        adminRole: () => this.adminRole(info.usr),
      }),
      authorizer: () => this.control.authorizer,
      observe: (route, status) => this.metrics.observeRequest(route, status),
    });
    this.control = new ApiControl(w, this.api, () => this.publish());
    this.state.onChange(() => this.publish());
  }

  /** A string setting as the server has it now ('' when cleared; the runtime keeps the old value for ''). */
  private setting(name: keyof typeof computeSettings): string {
    return computeSetting(this.w, name);
  }

  private adminRole(self: string): string {
    return this.setting('admin_role') || self;
  }

  /** The status shown in tsworker.stat_workers.status. */
  private publish(): void {
    const error = this.state.error;
    const status: { [key: string]: Json } = {
      status: this.state.status,
      last_active: this.state.lastActive?.toISOString() ?? null,
      activity: this.monitor?.lastKind ?? null,
      error: error && Buffer.byteLength(error) > 800 ? `${Buffer.from(error).subarray(0, 800).toString('utf8')}…` : error,
      listen: this.control?.listening ?? null,
      applies: this.state.metrics.applies,
    };
    if (this.tracing.endpoint) status.otlp = this.tracing.endpoint;
    try {
      this.w.status.set(status);
    } catch {
      // Too long for the slot (an error full of escapes): /status still has it whole.
      this.w.status.set({ ...status, error: 'see GET /status' });
    }
  }

  /** The compute could not take a spec from `source`: `failed`, with the reason. */
  private notApplied(source: string, message: string): void {
    this.w.log.warning(`the spec from ${source} was not applied: ${message}`);
    this.state.set('failed', `the spec from ${source} was not applied: ${message}`);
  }

  /** Apply a spec document from a file or the saved spec; a refused or failed spec leaves `failed`. */
  private async applyDocument(doc: unknown, source: string, pending: ComputeStatus, parent: Context): Promise<void> {
    try {
      const spec = this.configurator.checkSchema(doc, '');
      await this.configurator.configure(spec, { source, base: '', pending, parent, logPrefix: '' });
    } catch (err) {
      this.notApplied(source, err instanceof SpecRejected ? err.message : (err as Error).message);
    }
  }

  /**
   * Read the spec file; null when its text did not change since the last
   * read (unless the compute failed: then the same file is tried again).
   * Throws when it cannot be read or is not JSON.
   */
  private readSpecFile(file: string): unknown | null {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`could not read it: ${(err as Error).message}`);
    }
    if (text === this.specFileText && this.state.status !== 'failed') return null;
    this.specFileText = text;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new Error(`it is not JSON: ${(err as Error).message}`);
    }
  }

  /** Apply the spec file if it changed; `pending` is the status while it is checked. */
  private async applySpecFile(pending: ComputeStatus, parent: Context): Promise<void> {
    const file = this.setting('spec_path');
    const source = `spec_path ${file}`;
    let doc: unknown;
    try {
      doc = this.readSpecFile(file);
    } catch (err) {
      this.notApplied(source, (err as Error).message);
      return;
    }
    if (doc === null) return;
    if (!this.configurator.canConfigure()) {
      // Another apply runs: take this one once it is done.
      this.w.log.log(`tsworker_compute.spec_path changed while the compute is ${displayStatus(this.state.status)}: applied once that is over`);
      const settled = await this.state.until((s) => this.configurator.canConfigure() || s.startsWith('termination') || s === 'terminated');
      if (!this.configurator.canConfigure()) {
        this.w.log.log(`the spec from ${source} is not applied: the compute is ${displayStatus(settled)}`);
        return;
      }
    }
    await this.applyDocument(doc, source, pending, parent);
  }

  private async initialSpec(parent: Context): Promise<void> {
    if (this.setting('spec_path')) return this.applySpecFile('init', parent);
    const saved = this.configurator.savedSpec;
    if (saved) await this.applyDocument(saved, 'the saved spec', 'init', parent);
  }

  private async onReload(): Promise<void> {
    // Through the gate: an apply may hold the worker's transaction open.
    this.connector.configure(await this.gate.run(() => this.connectorAddress()), this.setting('conninfo'));
    await this.control.reload().catch((err: Error) => this.w.log.warning(`compute API not started: ${err.message}`));
    if (this.setting('spec_path')) await this.applySpecFile('configuration_pending', this.tracing.startupContext({}));
  }

  private connectorAddress(): ServerAddress {
    const r = this.w.query<{ sockets: string; port: number; usr: string }>(
      `SELECT current_setting('unix_socket_directories') AS sockets, current_setting('port')::int AS port, current_user AS usr`,
    )[0];
    return { socketDirs: r.sockets, port: r.port, user: r.usr };
  }

  /** Run until shutdown. */
  async run(): Promise<void> {
    const startup = this.tracing.start('start_compute', this.tracing.startupContext());
    this.publish();
    let reloading = Promise.resolve();
    this.w.on('reload', () => {
      reloading = reloading.then(() => this.onReload()).catch((err: Error) => this.w.log.warning(`reload: ${err.message}`));
    });
    try {
      await this.control.start();
      await this.initialSpec(Tracing.contextOf(startup, this.tracing.startupContext()));
      Tracing.end(startup);
      let lastActive = this.state.lastActive?.getTime();
      while (await this.w.wait({ timeout: this.w.settings.monitor_interval })) {
        // compute_ctl's monitor runs whatever the status; only a terminated compute has nothing to watch.
        if (this.state.status !== 'terminated') await this.monitor.tick();
        if (this.state.lastActive?.getTime() !== lastActive) {
          lastActive = this.state.lastActive?.getTime();
          this.publish();
        }
      }
      await this.terminator.onShutdown();
    } finally {
      await this.api.close(SHUTDOWN_GRACE_MS);
      await this.tracing.shutdown();
    }
    if (this.state.status !== 'terminated' && !postmasterStopping(this.dataDir)) {
      // SIGTERM without a shutdown of the server: pg_terminate_backend() (or tsworker.stop(), which keeps it stopped whatever the exit code).
      throw new Error(
        'stopped by SIGTERM while the server is not shutting down (pg_terminate_backend()?): exiting with code 1 so that the compute API starts again ' +
          'after tsworker.restart_interval (a worker stopped by tsworker.stop() stays stopped)',
      );
    }
  }
}
