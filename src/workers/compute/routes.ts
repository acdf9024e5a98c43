/**
 * The routes of the compute API, after compute_ctl's
 * (compute_tools/src/http/routes/): names, bodies and status codes.
 */
import type { WorkerContext } from '../../runtime/index';
import { PgError } from '../../runtime/index';
import { quoteIdent } from '../sql';
import { SpecRejected, type Configurator } from './configurator';
import type { SpiGate } from './gate';
import { HttpError, type Reply, type Request, type Route } from './http';
import type { ComputeMetrics } from './metrics';
import { displayStatus, type ComputeState } from './status';
import type { Terminator } from './terminate';

export interface RouteDeps {
  w: WorkerContext;
  state: ComputeState;
  gate: SpiGate;
  configurator: Configurator;
  metrics: ComputeMetrics;
  terminator: Terminator;
  /** The admin role ('' is the role the worker runs as). */
  adminRole(): string;
}

const ok = (body: unknown, status = 200): Reply => ({ status, body });

/** 412 unless the compute is running (compute_ctl's `invalid_status`). */
function requireRunning(state: ComputeState): void {
  if (state.status !== 'running') throw new HttpError(412, `invalid compute status: ${displayStatus(state.status)}`);
}

function rejected(err: SpecRejected): HttpError {
  return new HttpError(err.status, err.message, { errors: err.problems });
}

async function configure(d: RouteDeps, req: Request): Promise<Reply> {
  const body = await req.json();
  if (!body || typeof body !== 'object' || Array.isArray(body) || !('spec' in body)) {
    throw new HttpError(422, 'invalid spec: /spec: is required', { errors: [{ path: '/spec', message: 'is required' }] });
  }
  let spec;
  try {
    spec = d.configurator.checkSchema((body as { spec: unknown }).spec, '/spec');
  } catch (err) {
    if (err instanceof SpecRejected) throw rejected(err);
    throw err;
  }
  if (!d.configurator.canConfigure()) throw new HttpError(412, `invalid compute status: ${displayStatus(d.state.status)}`);
  try {
    await d.configurator.configure(spec, {
      source: 'POST /configure',
      base: '/spec',
      pending: 'configuration_pending',
      parent: req.context,
      logPrefix: req.logPrefix,
    });
  } catch (err) {
    if (err instanceof SpecRejected) throw rejected(err);
    throw err;
  }
  if (d.state.status === 'failed') {
    throw new HttpError(500, `compute configuration failed: ${JSON.stringify(d.state.error ?? 'unknown error')}`);
  }
  return ok(d.state.response());
}

async function dbsAndRoles(d: RouteDeps): Promise<Reply> {
  const body = await d.gate.run(() =>
    d.w.transaction(
      (tx) => ({
        roles: tx
          .query<{ name: string; encrypted_password: string | null }>('SELECT rolname AS name, rolpassword AS encrypted_password FROM pg_catalog.pg_authid')
          .map((r) => ({ name: r.name, encrypted_password: r.encrypted_password, options: null })),
        databases: tx
          .query<{ name: string; owner: string; restrict_conn: boolean; invalid: boolean }>(
            `SELECT datname AS name, (SELECT rolname FROM pg_catalog.pg_roles WHERE oid = datdba) AS owner,
                    NOT datallowconn AS restrict_conn, datconnlimit = -2 AS invalid
               FROM pg_catalog.pg_database`,
          )
          .map((r) => ({ name: r.name, owner: r.owner, options: null, restrict_conn: r.restrict_conn, invalid: r.invalid })),
      }),
      { readOnly: true },
    ),
  );
  return ok(body);
}

/** compute_ctl's checker.rs: upsert into public.health_check; a full disk still counts as writable. */
async function checkWritability(d: RouteDeps, req: Request): Promise<Reply> {
  requireRunning(d.state);
  try {
    await d.gate.run(() =>
      d.w.transaction(
        (tx) =>
          tx.query(
            'INSERT INTO public.health_check VALUES (1, pg_catalog.now()) ON CONFLICT (id) DO UPDATE SET updated_at = pg_catalog.now()',
          ),
        { synchronousCommit: 'local', statementSavepoints: false },
      ),
    );
  } catch (err) {
    if (err instanceof PgError && err.code === '53100') {
      d.w.log.warning(`${req.logPrefix}check_writability: the disk is full (${err.message}); counted as writable`);
      return ok(true);
    }
    throw new HttpError(500, (err as Error).message);
  }
  return ok(true);
}

/** compute_ctl's `collect_insights`: pg_stat_statements' top 100 by mean time, the admin role's statements excepted. */
async function insights(d: RouteDeps): Promise<Reply> {
  requireRunning(d.state);
  const rows = await d.gate.run(() =>
    d.w.transaction(
      (tx) => {
        const ext = tx.query<{ schema: string }>(
          `SELECT n.nspname AS schema FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
            WHERE e.extname = 'pg_stat_statements'`,
        )[0];
        if (!ext) return null;
        const admin = d.adminRole();
        return tx.query<{ j: string }>(
          `SELECT pg_catalog.row_to_json(pss)::text AS j FROM ${quoteIdent(ext.schema)}.pg_stat_statements pss
            WHERE pss.userid <> coalesce((SELECT oid FROM pg_catalog.pg_roles WHERE rolname = coalesce(nullif($1, ''), current_user)), 0)
            ORDER BY (pss.mean_exec_time + pss.mean_plan_time) DESC LIMIT 100`,
          [admin],
        );
      },
      { readOnly: true },
    ),
  ).catch((err: Error) => {
    throw new HttpError(500, `could not read pg_stat_statements: ${err.message}`);
  });
  if (rows === null) {
    throw new HttpError(500, 'pg_stat_statements is not installed in this database: add it to shared_preload_libraries and CREATE EXTENSION pg_stat_statements');
  }
  // Rows are kept as PostgreSQL printed them: JSON.parse would round int8 query ids.
  return { status: 200, text: `{"pg_stat_statements":[${rows.map((r) => r.j).join(',')}]}` };
}

/** Every route, in compute_ctl's names. */
export function computeRoutes(d: RouteDeps): Route[] {
  return [
    { method: 'GET', path: '/status', auth: true, handler: async () => ok(d.state.response()) },
    { method: 'POST', path: '/configure', auth: true, handler: (req) => configure(d, req) },
    { method: 'GET', path: '/dbs_and_roles', auth: true, handler: () => dbsAndRoles(d) },
    { method: 'POST', path: '/check_writability', auth: true, handler: (req) => checkWritability(d, req) },
    { method: 'GET', path: '/insights', auth: true, handler: () => insights(d) },
    { method: 'GET', path: '/metrics.json', auth: true, handler: async () => ok(d.state.metrics) },
    {
      method: 'POST',
      path: '/terminate',
      auth: true,
      handler: (req) => {
        // As compute_ctl's query deserializer: a field given twice is refused.
        if (req.query.getAll('mode').length > 1) throw new HttpError(400, 'failed to deserialize query string: duplicate field `mode`');
        return d.terminator.request(req.query.get('mode'));
      },
    },
    {
      method: 'GET',
      path: '/metrics',
      auth: false,
      handler: async () => {
        const m = await d.metrics.render();
        return { status: 200, text: m.text, contentType: m.contentType };
      },
    },
  ];
}
