/**
 * Built-in worker `compute`: the part of Neon's compute_ctl that can live
 * inside the server (docs/compute.md). Its event loop serves compute_ctl's
 * HTTP API (status, configure, dbs_and_roles, check_writability, insights,
 * metrics.json, metrics, terminate) next to SPI; it applies specs
 * (compute_ctl's ComputeSpec: roles, databases, settings, delta operations)
 * idempotently and in compute_ctl's order, watches user activity with
 * compute_ctl's rules, exports Prometheus metrics and OpenTelemetry spans.
 *
 *   shared_preload_libraries = 'pg_tsworker'
 *   tsworker.workers = 'compute'
 *   tsworker_compute.listen = '0.0.0.0:3080'
 *   tsworker_compute.jwks = '/etc/compute/jwks.json'
 *   tsworker_compute.compute_id = 'compute-quiet-sun-123'
 *
 * The module itself only declares the worker: the service and its
 * libraries (jose, ajv, prom-client, OpenTelemetry) load when the worker
 * runs, not when the postmaster reads the declared settings.
 */
import { defineWorker } from '../runtime/index';
import { computeSettings } from './compute/settings';

export default defineWorker({
  name: 'compute',
  start: 'standby',
  settings: computeSettings,
  async main(w) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { ComputeService } = require('./compute/service') as typeof import('./compute/service');
    await new ComputeService(w).run();
  },
});
