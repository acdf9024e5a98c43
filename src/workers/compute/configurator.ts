/**
 * One owner for applying specs, whatever brought them (POST /configure,
 * `tsworker_compute.spec_path` at start and on reload, the spec saved by
 * the last apply): it checks the spec whole (JSON Schema, then against the
 * catalog), moves the compute through compute_ctl's statuses (`init` or
 * `configuration_pending` → `configuration` → `running` or `failed`),
 * plans and runs the statements, and records timings.
 */
import type { WorkerContext } from '../../runtime/index';
import { ApplyError, Applier } from './apply';
import { catalogFingerprint, readCatalog, type Catalog } from './catalog';
import type { SelfConnector } from './connect';
import type { SpiGate } from './gate';
import { planApply, type Plan } from './plan';
import type { SpecStore, SavedSpec } from './saved-spec';
import { SettingRefused, SettingsWriter } from './settings-writer';
import { checkSpec } from './spec-check';
import { checkSpecSchema, type ComputeSpec, type SpecProblem } from './spec-schema';
import type { ComputeState, ComputeStatus } from './status';
import { Tracing, type Context } from './tracing';

/** A spec refused before anything ran: `status` is the HTTP status to answer (422 schema, 400 semantics). */
export class SpecRejected extends Error {
  constructor(
    readonly status: 400 | 422,
    readonly problems: SpecProblem[],
  ) {
    super(`invalid spec: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`);
    this.name = 'SpecRejected';
  }
}

/** What an apply reports when it ends. */
export interface ApplyOutcome {
  source: string;
  ok: boolean;
  ms: number;
  statements: number;
}

export interface ConfiguratorEnv {
  w: WorkerContext;
  state: ComputeState;
  gate: SpiGate;
  connector: SelfConnector;
  tracing: Tracing;
  store: SpecStore;
  /** compute_ctl's privileged role, '' for none. */
  privilegedRole(): string;
  /** The admin role ('' is the role the worker runs as). */
  adminRole(): string;
  /** Called after every apply. */
  onApplied(outcome: ApplyOutcome): void;
}

/**
 * compute_ctl's `max_service_connections` for a compute that starts (status
 * `init`): a third of the spec's max_connections, at least 10 when it
 * allows, at most 100; 10 without it. Here also at most a third of the
 * running server's max_connections, which a spec's value only changes at
 * the next restart.
 */
export function startupConcurrency(spec: ComputeSpec, maxConnections: number): number {
  const value = (spec.cluster.settings ?? []).find((s) => s.name.toLowerCase() === 'max_connections')?.value;
  const limit = value !== undefined && value !== null && /^\d+$/.test(value) ? Number(value) : null;
  const wanted = limit === null ? 10 : limit < 10 ? limit : limit < 30 ? 10 : limit < 300 ? Math.floor(limit / 3) : 100;
  return Math.max(1, Math.min(wanted, Math.floor(maxConnections / 3)));
}

/** Statuses from which a new spec may be applied (compute_ctl: empty and running; here failed too, since restarting the compute means restarting the server). */
const CONFIGURABLE: ReadonlySet<ComputeStatus> = new Set(['empty', 'running', 'failed']);

export class Configurator {
  private saved: SavedSpec | null = null;
  /** Databases whose schema permissions were set, by name: `<owner>@<oid>` (kept in the saved spec). */
  private readonly schemaPermsDone = new Map<string, string>();
  private firstSpecAt = 0;
  private runningOnce = false;
  /** The last catalog read, and the fingerprint it was read at. */
  private cached: { fingerprint: string; catalog: Catalog } | null = null;

  constructor(private readonly env: ConfiguratorEnv) {
    try {
      this.saved = env.store.load();
      for (const [db, done] of Object.entries(this.saved?.schemaPerms ?? {})) this.schemaPermsDone.set(db, done);
    } catch (err) {
      env.w.log.warning(`ignoring the saved spec: ${(err as Error).message}`);
    }
  }

  /** The spec saved by the last successful apply, if any. */
  get savedSpec(): ComputeSpec | null {
    return this.saved?.spec ?? null;
  }

  /** Whether a new spec may be applied in the current status. */
  canConfigure(): boolean {
    return CONFIGURABLE.has(this.env.state.status);
  }

  /** Check `doc` against the JSON Schema; throws {@link SpecRejected} (422). */
  checkSchema(doc: unknown, base: string): ComputeSpec {
    const problems = checkSpecSchema(doc, base);
    if (problems.length > 0) throw new SpecRejected(422, problems);
    return doc as ComputeSpec;
  }

  /**
   * The catalog (waits for SPI): the one read before when the server's
   * fingerprint of it has not changed since, else read again. Plans never
   * change a catalog object.
   */
  catalog(fresh = false): Promise<Catalog> {
    return this.env.gate.run(() =>
      this.env.w.transaction(
        (tx) => {
          const fingerprint = catalogFingerprint(tx);
          if (!fresh && this.cached?.fingerprint === fingerprint) return this.cached.catalog;
          const catalog = readCatalog(tx);
          this.cached = { fingerprint, catalog };
          return catalog;
        },
        { readOnly: true },
      ),
    );
  }

  /** Check `spec` against `catalog`; throws {@link SpecRejected} (400). */
  checkAgainst(spec: ComputeSpec, catalog: Catalog, base: string): void {
    const admin = this.env.adminRole() || catalog.currentUser;
    const roles = new Set([catalog.currentUser, admin, catalog.bootstrapUser]);
    if (this.env.privilegedRole()) roles.add(this.env.privilegedRole());
    const databases = new Set([catalog.currentDatabase, 'template0', 'template1']);
    const problems = checkSpec(spec, catalog, { roles, databases }, base);
    if (problems.length > 0) throw new SpecRejected(400, problems);
  }

  /**
   * Values only the server can judge, read by it: each VALID UNTIL as a
   * timestamptz (its text is what pg_authid's column prints, so that an
   * unchanged value compares equal). Throws {@link SpecRejected} (400).
   */
  private async checkValues(spec: ComputeSpec, base: string): Promise<Map<string, string>> {
    const uses = new Map<string, string[]>();
    spec.cluster.roles.forEach((r, i) =>
      (r.options ?? []).forEach((o, j) => {
        if (o.name === 'VALID UNTIL' && o.value !== null) uses.set(o.value, [...(uses.get(o.value) ?? []), `${base}/cluster/roles/${i}/options/${j}/value`]);
      }),
    );
    const canonical = new Map<string, string>();
    if (uses.size === 0) return canonical;
    const problems: SpecProblem[] = [];
    await this.env.gate.run(() =>
      this.env.w.transaction(
        (tx) => {
          for (const [value, paths] of uses) {
            try {
              canonical.set(value, tx.query<{ t: string }>('SELECT $1::pg_catalog.timestamptz::text AS t', [value])[0].t);
            } catch (err) {
              for (const path of paths) problems.push({ path, message: `not a timestamp: ${(err as Error).message}` });
            }
          }
        },
        { readOnly: true },
      ),
    );
    if (problems.length > 0) throw new SpecRejected(400, problems);
    return canonical;
  }

  /**
   * Apply a spec that passed {@link checkSchema}. `pending` is the status
   * while the catalog is checked (`init` at start, `configuration_pending`
   * for a new spec); the caller has checked {@link canConfigure}. Throws
   * {@link SpecRejected} when the spec does not fit the catalog (the status
   * is then what it was); an apply that fails leaves the status `failed`
   * and resolves.
   */
  async configure(spec: ComputeSpec, opts: { source: string; base: string; pending: ComputeStatus; parent: Context; logPrefix: string }): Promise<void> {
    const { state, w } = this.env;
    const before = { status: state.status, error: state.error };
    state.set(opts.pending);
    if (!this.firstSpecAt) {
      this.firstSpecAt = Date.now();
      state.metrics.wait_for_spec_ms = this.firstSpecAt - state.workerStart;
    }
    const t0 = performance.now();
    const settings = new SettingsWriter(w, this.env.connector, '', opts.logPrefix);
    let catalog: Catalog;
    let plan: Plan;
    try {
      catalog = await this.catalog();
      try {
        this.checkAgainst(spec, catalog, opts.base);
      } catch (err) {
        if (!(err instanceof SpecRejected)) throw err;
        // Refused against a catalog read before: check again against a fresh one.
        catalog = await this.catalog(true);
        this.checkAgainst(spec, catalog, opts.base);
      }
      const validUntil = await this.checkValues(spec, opts.base);
      plan = planApply(spec, catalog, {
        privilegedRole: this.env.privilegedRole(),
        adminRole: this.env.adminRole() || catalog.currentUser,
        managedSettings: new Set(this.saved?.settings ?? []),
        schemaPermsDone: this.schemaPermsDone,
        validUntil,
      });
      // The settings are written (and so checked by PostgreSQL) before anything else runs.
      settings.database = catalog.currentDatabase;
      await settings.write(plan.settingWrites, opts.base);
    } catch (err) {
      state.set(before.status, before.error);
      if (err instanceof SettingRefused) throw new SpecRejected(400, err.problems);
      throw err;
    }
    // compute_ctl starts the compute (status init) with the first spec an empty compute gets.
    const starting = opts.pending === 'init' || before.status === 'empty';
    await this.apply(spec, catalog, plan, settings, { ...opts, starting, checkMs: performance.now() - t0 });
  }

  private async apply(
    spec: ComputeSpec,
    catalog: Catalog,
    plan: Plan,
    settings: SettingsWriter,
    opts: { source: string; starting: boolean; parent: Context; logPrefix: string; checkMs: number },
  ): Promise<void> {
    const { w, state, tracing } = this.env;
    state.set(opts.starting ? 'init' : 'configuration');
    const t0 = Date.now();
    const span = tracing.start('apply_spec_sql', opts.parent, { source: opts.source, operation_uuid: spec.operation_uuid ?? '' });
    const applier = new Applier({
      w,
      gate: this.env.gate,
      connector: this.env.connector,
      tracing,
      database: catalog.currentDatabase,
      logPrefix: opts.logPrefix,
    });
    let error: unknown;
    try {
      const what = `spec${spec.operation_uuid ? ` ${spec.operation_uuid}` : ''} from ${opts.source}`;
      if (plan.catalogSkipped) w.log.log(`${opts.logPrefix}roles and databases of ${what} not applied: ${plan.catalogSkipped}`);
      const count = plan.settingWrites.length + plan.operations.length;
      w.log.log(count === 0 ? `${opts.logPrefix}${what}: nothing to change` : `${opts.logPrefix}applying ${what}: ${count} statements`);
      // compute_ctl: max_service_connections when starting, reconfigure_concurrency afterwards.
      const concurrency = opts.starting ? startupConcurrency(spec, catalog.maxConnections) : (spec.reconfigure_concurrency ?? 1);
      await applier.run(plan.operations, Tracing.contextOf(span, opts.parent), concurrency);
      await this.rememberSchemaPerms(plan.schemaPerms);
      const inSpec = new Set(spec.cluster.databases.map((d) => d.name));
      for (const db of [...this.schemaPermsDone.keys()]) if (!inSpec.has(db)) this.schemaPermsDone.delete(db);
      this.saved = this.env.store.save(spec, plan.settings, Object.fromEntries(this.schemaPermsDone), this.saved);
      if (plan.settingWrites.length > 0) await this.warnPendingRestart(opts.logPrefix);
    } catch (err) {
      error = err;
      await settings.undo();
    }
    const ms = Date.now() - t0;
    Tracing.end(span, error);
    const statements = applier.statements + settings.statements;
    state.metrics.config_ms = ms;
    state.metrics.last_apply_statements = statements;
    state.metrics.applies++;
    this.env.onApplied({ source: opts.source, ok: error === undefined, ms, statements });
    if (error !== undefined) {
      const message = error instanceof ApplyError || error instanceof Error ? error.message : String(error);
      w.log.warning(`${opts.logPrefix}applying the spec from ${opts.source} failed after ${ms} ms: ${message}`);
      state.set('failed', message);
      return;
    }
    state.tenant = spec.tenant_id ?? null;
    state.timeline = spec.timeline_id ?? null;
    w.log.log(
      `${opts.logPrefix}spec from ${opts.source} applied in ${ms} ms (${statements} statements; catalog read, checked and settings written before in ${opts.checkMs.toFixed(1)} ms)`,
    );
    if (!this.runningOnce) {
      this.runningOnce = true;
      state.metrics.total_startup_ms = Date.now() - state.workerStart;
    }
    state.set('running');
  }

  /** Record the databases whose schema permissions were set, with their oid (a database dropped and created again is done again). */
  private async rememberSchemaPerms(done: Map<string, string>): Promise<void> {
    if (done.size === 0) return;
    const rows = await this.env.gate.run(() =>
      this.env.w.query<{ datname: string; oid: number }>('SELECT datname, oid::int8::float8 AS oid FROM pg_catalog.pg_database WHERE datname = ANY ($1::text[])', [[...done.keys()]]),
    );
    for (const r of rows) this.schemaPermsDone.set(r.datname, `${done.get(r.datname)}@${r.oid}`);
  }

  /** Log the parameters a restart must bring in (context postmaster). */
  private async warnPendingRestart(prefix: string): Promise<void> {
    // pg_file_settings reads the files now; pg_settings.pending_restart waits for this process's own reload.
    const rows = await this.env.gate.run(() =>
      this.env.w.query<{ name: string }>(
        `SELECT DISTINCT name FROM pg_catalog.pg_file_settings WHERE NOT applied AND error = 'setting could not be applied' ORDER BY name`,
      ),
    );
    if (rows.length > 0) {
      this.env.w.log.warning(`${prefix}these parameters take effect only after a restart of the server: ${rows.map((r) => r.name).join(', ')}`);
    }
  }
}
