/**
 * GET /metrics: Prometheus text exposition with prom-client, in a registry
 * of its own. compute_ctl's names where compute_ctl has the metric
 * (`compute_ctl_up`, `compute_pg_current_downtime_ms`,
 * `compute_pg_downtime_ms_total`); the rest are read from the server at
 * each scrape: pg_tsworker's workers, connections, replication lag and
 * database sizes.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

import type { WorkerContext } from '../../runtime/index';
import type { SpiGate } from './gate';
import type { ComputeState, ComputeStatus } from './status';

const STATUSES: ComputeStatus[] = [
  'empty', 'init', 'configuration_pending', 'configuration', 'running', 'failed',
  'termination_pending_fast', 'termination_pending_immediate', 'terminated',
];

/** The `build_tag` label of compute_ctl_up: this package's version. */
const BUILD_TAG = (() => {
  try {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    return String((require('../../../package.json') as { version: string }).version);
  } catch {
    return 'unknown';
  }
})();

export class ComputeMetrics {
  readonly registry = new Registry();
  private readonly up = new Gauge({ name: 'compute_ctl_up', help: 'Whether compute_ctl is running', labelNames: ['build_tag', 'status'], registers: [this.registry] });
  readonly currentDowntime = new Gauge({
    name: 'compute_pg_current_downtime_ms',
    help: 'Non-cumulative duration of Postgres downtime in ms; resets after successful check',
    registers: [this.registry],
  });
  readonly totalDowntime = new Counter({ name: 'compute_pg_downtime_ms_total', help: 'Cumulative duration of Postgres downtime in ms', registers: [this.registry] });
  private readonly lastActive = new Gauge({
    name: 'compute_last_active_timestamp_seconds',
    help: 'Time of the last user activity (Unix seconds); 0 before the first',
    registers: [this.registry],
  });
  private readonly applyDuration = new Histogram({
    name: 'compute_ctl_spec_apply_duration_seconds',
    help: 'Duration of spec applications',
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });
  private readonly applies = new Counter({
    name: 'compute_ctl_spec_applies_total',
    help: 'Spec applications, by where the spec came from and their result (ok, failed)',
    labelNames: ['source', 'result'],
    registers: [this.registry],
  });
  private readonly applyFailures = new Counter({
    name: 'compute_ctl_spec_apply_failures_total',
    help: 'Spec applications that failed',
    registers: [this.registry],
  });
  private readonly requests = new Counter({
    name: 'compute_ctl_http_requests_total',
    help: 'HTTP requests answered, by route and status code',
    labelNames: ['route', 'code'],
    registers: [this.registry],
  });
  private readonly workerState = new Gauge({
    name: 'tsworker_worker_state',
    help: 'pg_tsworker workers (tsworker.stat_workers): 1 for each worker in its current state',
    labelNames: ['worker', 'state'],
    registers: [this.registry],
  });
  /** A counter (it only grows while the server runs; a restart of the server, or a slot given to another worker, starts it again: a counter reset). */
  private readonly workerRestarts = new Counter({
    name: 'tsworker_worker_restarts_total',
    help: 'Times each pg_tsworker worker was started again after it ended, since the server started',
    labelNames: ['worker'],
    registers: [this.registry],
  });
  private readonly connections = new Gauge({
    name: 'compute_pg_connections',
    help: 'Client connections by state (pg_stat_activity)',
    labelNames: ['state'],
    registers: [this.registry],
  });
  private readonly replicationLag = new Gauge({
    name: 'compute_pg_replication_lag_bytes',
    help: 'On a primary: WAL bytes each standby has not replayed yet (pg_stat_replication)',
    labelNames: ['application_name'],
    registers: [this.registry],
  });
  private readonly replayLag = new Gauge({
    name: 'compute_pg_standby_replay_lag_bytes',
    help: 'On a standby: WAL bytes received but not replayed yet',
    registers: [this.registry],
  });
  private readonly databaseSize = new Gauge({
    name: 'compute_pg_database_size_bytes',
    help: 'Size of each database (pg_database_size)',
    labelNames: ['datname'],
    registers: [this.registry],
  });

  constructor(
    private readonly w: WorkerContext,
    private readonly gate: SpiGate,
    private readonly state: ComputeState,
  ) {}

  /** Record an answered request. */
  observeRequest(route: string, code: number): void {
    this.requests.inc({ route, code: String(code) });
  }

  /** Record a spec application. */
  observeApply(source: string, seconds: number, ok: boolean): void {
    this.applyDuration.observe(seconds);
    this.applies.inc({ source, result: ok ? 'ok' : 'failed' });
    if (!ok) this.applyFailures.inc();
  }

  /** Read the server's side of the metrics (through the SPI gate). */
  private async refresh(): Promise<void> {
    for (const s of STATUSES) this.up.set({ build_tag: BUILD_TAG, status: s }, s === this.state.status ? 1 : 0);
    this.lastActive.set(this.state.lastActive ? this.state.lastActive.getTime() / 1000 : 0);
    await this.gate.run(() =>
      this.w.transaction(
        (tx) => {
          this.connections.reset();
          for (const r of tx.query<{ state: string; n: number }>(
            `SELECT coalesce(state, 'unknown') AS state, count(*)::int AS n FROM pg_catalog.pg_stat_activity
              WHERE backend_type = 'client backend' GROUP BY 1`,
          )) {
            this.connections.set({ state: r.state }, r.n);
          }
          this.replicationLag.reset();
          const standby = tx.query<{ r: boolean }>('SELECT pg_catalog.pg_is_in_recovery() AS r')[0].r;
          if (standby) {
            const lag = tx.query<{ lag: string | null }>(
              'SELECT pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())::text AS lag',
            )[0].lag;
            this.replayLag.set(lag === null ? 0 : Math.max(0, Number(lag)));
          } else {
            for (const r of tx.query<{ name: string; lag: string | null }>(
              `SELECT application_name AS name, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), replay_lsn)::text AS lag
                 FROM pg_catalog.pg_stat_replication`,
            )) {
              if (r.lag !== null) this.replicationLag.set({ application_name: r.name }, Number(r.lag));
            }
          }
          this.databaseSize.reset();
          for (const r of tx.query<{ datname: string; size: string }>(
            `SELECT datname, pg_catalog.pg_database_size(oid)::text AS size FROM pg_catalog.pg_database
              WHERE datconnlimit <> -2 AND NOT datistemplate`,
          )) {
            this.databaseSize.set({ datname: r.datname }, Number(r.size));
          }
          this.workerState.reset();
          const restarts = new Map<string, number>();
          const workers = tx.query<{ ok: boolean }>(
            `SELECT coalesce(has_function_privilege(to_regprocedure('tsworker.worker_status()'), 'EXECUTE'), false) AS ok`,
          )[0].ok;
          if (workers) {
            for (const r of tx.query<{ name: string; state: string; restarts: number }>('SELECT name, state, restarts FROM tsworker.worker_status()')) {
              this.workerState.set({ worker: r.name, state: r.state }, 1);
              restarts.set(r.name, r.restarts);
            }
          }
          for (const [worker, count] of restarts) {
            const before = this.restartsSeen.get(worker);
            if (before !== undefined && count >= before) {
              if (count > before) this.workerRestarts.inc({ worker }, count - before);
            } else {
              this.workerRestarts.remove({ worker });
              this.workerRestarts.inc({ worker }, count);
            }
          }
          for (const worker of this.restartsSeen.keys()) if (!restarts.has(worker)) this.workerRestarts.remove({ worker });
          this.restartsSeen = restarts;
        },
        { readOnly: true },
      ),
    );
  }

  /** The restarts of each worker at the last scrape. */
  private restartsSeen = new Map<string, number>();

  /** The exposition text and its content type. */
  async render(): Promise<{ text: string; contentType: string }> {
    await this.refresh();
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
