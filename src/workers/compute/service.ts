/**
 * The compute worker's body: builds the pieces (state, SPI gate, API
 * server, configurator, activity monitor, metrics, tracing, terminator),
 * starts the API, applies the spec given at start, then runs the monitor
 * until the server asks the worker to stop. Reloads re-read the key set,
 * the TLS files and the spec file.
 */
import * as fs from 'fs';
import { isIP } from 'net';

import type { Json, WorkerContext } from '../../runtime/index';
import { readJwks, Authorizer } from './auth';
import { SpecRejected, Configurator, type ApplyOutcome } from './configurator';
import { SelfConnector, type ServerAddress } from './connect';
import { SpiGate } from './gate';
import { ApiServer } from './http';
import { ComputeMetrics } from './metrics';
import { ActivityMonitor } from './monitor';
import { computeRoutes } from './routes';
import { SpecStore } from './saved-spec';
import type { computeSettings } from './settings';
import { ComputeState, type ComputeStatus } from './status';
import { Terminator } from './terminate';
import { Tracing, type Context } from './tracing';


/** `host:port` or `[v6]:port` to its parts. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`tsworker_compute.listen must be host:port or [ipv6]:port, not ${JSON.stringify(listen)}`);
  return { host: m[1] ?? m[2] ?? '', port };
}

/** Whether `host` can only be reached from this machine. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

type Ctx = WorkerContext<typeof computeSettings>;

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
  private authorizer: Authorizer | null = null;
  private listening: string | null = null;
  private specFileText: string | null = null;

  constructor(private readonly w: Ctx) {
    const info = w.query<{ pm_start: Date; sockets: string; port: number; usr: string; db: string; datadir: string }>(
      `SELECT pg_catalog.pg_postmaster_start_time() AS pm_start, current_setting('unix_socket_directories') AS sockets,
              current_setting('port')::int AS port, current_user AS usr, current_database() AS db,
              current_setting('data_directory') AS datadir`,
    )[0];
    this.state = new ComputeState(info.pm_start, Date.now());
    this.state.metrics.start_postgres_ms = Math.max(0, this.state.workerStart - info.pm_start.getTime());
    const address: ServerAddress = { socketDirs: info.sockets, port: info.port, user: info.usr };
    this.connector = new SelfConnector(address, w.settings.conninfo);
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
      privilegedRole: () => w.settings.privileged_role_name,
      adminRole: () => w.settings.admin_role,
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
      authorizer: () => this.authorizer,
      observe: (route, status) => this.metrics.observeRequest(route, status),
    });
    this.state.onChange(() => this.publish());
  }

  private adminRole(self: string): string {
    return this.w.settings.admin_role || self;
  }

  /** The status shown in tsworker.stat_workers.status. */
  private publish(): void {
    const error = this.state.error;
    const status: { [key: string]: Json } = {
      status: this.state.status,
      last_active: this.state.lastActive?.toISOString() ?? null,
      activity: this.monitor?.lastKind ?? null,
      error: error && Buffer.byteLength(error) > 800 ? `${Buffer.from(error).subarray(0, 800).toString('utf8')}…` : error,
      listen: this.listening,
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

  /** Read the key set; null when none is configured. Throws when it is configured but unusable. */
  private loadAuthorizer(): Authorizer | null {
    const s = this.w.settings;
    if (!s.jwks) return null;
    return new Authorizer(readJwks(s.jwks), s.compute_id);
  }

  private tlsFiles(): { key: Buffer; cert: Buffer } | undefined {
    const s = this.w.settings;
    if (!s.key_path && !s.cert_path) return undefined;
    if (!s.key_path || !s.cert_path) throw new Error('TLS needs both tsworker_compute.key_path and tsworker_compute.cert_path');
    return { key: fs.readFileSync(s.key_path), cert: fs.readFileSync(s.cert_path) };
  }

  /** Start the API; false (with a WARNING) when the settings forbid it. */
  private async startApi(): Promise<boolean> {
    const { host, port } = parseListen(this.w.settings.listen);
    try {
      this.authorizer = this.loadAuthorizer();
    } catch (err) {
      // Configured but unusable: every authorized route fails closed.
      this.authorizer = new Authorizer({ keys: [] }, '');
      this.w.log.warning(`tsworker_compute.jwks: ${(err as Error).message}; requests that need authorization are refused`);
    }
    if (!this.w.settings.jwks && !isLoopback(host)) {
      this.w.log.warning(
        `not serving the compute API on ${this.w.settings.listen}: without tsworker_compute.jwks it listens on a loopback address only (set a JWKS, or listen on 127.0.0.1)`,
      );
      return false;
    }
    const tls = this.tlsFiles();
    const addr = await this.api.listen(host, port, tls);
    this.listening = `${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
    this.w.log.info(
      `compute API listening on ${tls ? 'https' : 'http'}://${this.listening}` + (this.w.settings.jwks ? '' : ' (no JWKS: requests are not authorized)'),
    );
    this.publish();
    return true;
  }

  /** Apply a spec document from a file or the saved spec; a refused or failed spec leaves `failed`. */
  private async applyDocument(doc: unknown, source: string, pending: ComputeStatus, parent: Context): Promise<void> {
    try {
      const spec = this.configurator.checkSchema(doc, '');
      await this.configurator.configure(spec, { source, base: '', pending, parent, logPrefix: '' });
    } catch (err) {
      const message = err instanceof SpecRejected ? err.message : (err as Error).message;
      this.w.log.warning(`the spec from ${source} was not applied: ${message}`);
      this.state.set('failed', message);
    }
  }

  /**
   * Read the spec file; null when its text did not change since the last
   * read (unless the compute failed: then the same file is tried again).
   */
  private readSpecFile(): unknown | null {
    const file = this.w.settings.spec_path;
    const text = fs.readFileSync(file, 'utf8');
    if (text === this.specFileText && this.state.status !== 'failed') return null;
    this.specFileText = text;
    try {
      return JSON.parse(text) as unknown;
    } catch (err) {
      throw new Error(`${file} is not JSON: ${(err as Error).message}`);
    }
  }

  private async initialSpec(parent: Context): Promise<void> {
    const file = this.w.settings.spec_path;
    if (file) {
      let doc: unknown;
      try {
        doc = this.readSpecFile();
      } catch (err) {
        this.state.set('failed', `could not read tsworker_compute.spec_path: ${(err as Error).message}`);
        this.w.log.warning(this.state.error);
        return;
      }
      await this.applyDocument(doc, `spec_path ${file}`, 'init', parent);
      return;
    }
    const saved = this.configurator.savedSpec;
    if (saved) await this.applyDocument(saved, 'the saved spec', 'init', parent);
  }

  private async onReload(): Promise<void> {
    // Through the gate: an apply may hold the worker's transaction open.
    this.connector.configure(await this.gate.run(() => this.connectorAddress()), this.w.settings.conninfo);
    try {
      this.authorizer = this.loadAuthorizer();
    } catch (err) {
      this.w.log.warning(`tsworker_compute.jwks: ${(err as Error).message}; keeping the previous key set`);
    }
    try {
      const tls = this.tlsFiles();
      if (tls) this.api.setTls(tls);
    } catch (err) {
      this.w.log.warning(`TLS files not reloaded: ${(err as Error).message}`);
    }
    if (!this.listening) await this.startApi().catch((err: Error) => this.w.log.warning(`compute API not started: ${err.message}`));
    if (!this.w.settings.spec_path) return;
    let doc: unknown;
    try {
      doc = this.readSpecFile();
    } catch (err) {
      this.w.log.warning(`tsworker_compute.spec_path not applied: ${(err as Error).message}`);
      return;
    }
    if (doc === null) return;
    if (!this.configurator.canConfigure()) {
      this.w.log.warning(`tsworker_compute.spec_path changed, but the compute is ${this.state.status}: not applied`);
      this.specFileText = null;
      return;
    }
    await this.applyDocument(doc, `spec_path ${this.w.settings.spec_path}`, 'configuration_pending', this.tracing.startupContext({}));
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
      await this.startApi();
      await this.initialSpec(Tracing.contextOf(startup, this.tracing.startupContext()));
      Tracing.end(startup);
      let lastActive = this.state.lastActive?.getTime();
      while (await this.w.wait({ timeout: this.w.settings.monitor_interval })) {
        if (this.state.status === 'running') await this.monitor.tick();
        if (this.state.lastActive?.getTime() !== lastActive) {
          lastActive = this.state.lastActive?.getTime();
          this.publish();
        }
      }
      await this.terminator.onShutdown();
    } finally {
      await this.api.close();
      await this.tracing.shutdown();
    }
  }
}
