/**
 * [compute] The built-in worker `compute` (compute_ctl's in-server duties)
 * on real servers, through real HTTP requests, with keys, tokens and a
 * certificate made here: every route and status code, authorization, the
 * 1,000-role spec applied, changed and applied again, malformed specs,
 * the activity monitor's rules, /metrics, trace export over OTLP/HTTP and
 * /terminate.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';

import { Cluster, getFreePort, waitFor } from './harness/cluster';
import {
  ApiClient,
  bigSpec,
  changedSpec,
  dbName,
  makeCertificate,
  makeKey,
  makeToken,
  md5Password,
  roleName,
  writeJwks,
  type TestKey,
} from './compute-client';
import { CRASH_RESTART } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const parsePrometheus = require('parse-prometheus-text-format') as (text: string) => {
  name: string;
  type: string;
  metrics: { value?: string; labels?: Record<string, string>; buckets?: Record<string, string>; count?: string }[];
}[];

const COMPUTE_ID = 'compute-quiet-sun-123';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const clusters: Cluster[] = [];
/** Directories made by sharedDir(), removed after the clusters. */
const sharedDirs: string[] = [];

after(async () => {
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
  for (const dir of sharedDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A directory the server's OS user can read. */
function sharedDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgtsw-compute-files-'));
  sharedDirs.push(dir);
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** Spans received by a small OTLP/HTTP (JSON) receiver. */
interface ReceivedSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  service: string;
  attributes: Record<string, unknown>;
}

async function otlpReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; close(): void }> {
  const spans: ReceivedSpan[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        for (const rs of doc.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a: any) => a.key === 'service.name')?.value?.stringValue;
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              const attributes: Record<string, unknown> = {};
              for (const a of s.attributes ?? []) attributes[a.key] = Object.values(a.value ?? {})[0];
              spans.push({ name: s.name, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, service, attributes });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, spans, close: () => server.close() };
}

/** Roles r…, databases db…, their owners, passwords, xmins, memberships, and postgresql.auto.conf: to prove a spec changed nothing. */
async function snapshot(c: Cluster): Promise<unknown> {
  return {
    roles: await c.query(`SELECT rolname, rolpassword, rolcanlogin, rolconnlimit, xmin::text FROM pg_authid ORDER BY rolname`),
    dbs: await c.query(`SELECT datname, datdba::regrole::text AS owner, xmin::text FROM pg_database ORDER BY datname`),
    members: await c.query(`SELECT roleid::regrole::text, member::regrole::text FROM pg_auth_members ORDER BY 1, 2`),
    autoConf: fs.readFileSync(path.join(c.dataDir, 'postgresql.auto.conf'), 'utf8'),
  };
}

/** The catalog holds exactly the spec's r… roles and db… databases, with their passwords, limits and owners. */
async function assertCatalogMatches(c: Cluster, spec: any): Promise<void> {
  const roles = new Map(
    (await c.query<{ rolname: string; rolpassword: string | null; rolcanlogin: boolean; rolconnlimit: number; member: boolean }>(
      `SELECT rolname, rolpassword, rolcanlogin, rolconnlimit, pg_has_role(oid, 'neon_superuser', 'MEMBER') AS member
         FROM pg_authid WHERE rolname ~ '^r[0-9]{4}'`,
    )).map((r) => [r.rolname, r]),
  );
  assert.equal(roles.size, spec.cluster.roles.length, 'number of roles');
  for (const r of spec.cluster.roles) {
    const got = roles.get(r.name);
    assert.ok(got, `role ${r.name} exists`);
    assert.equal(got.rolpassword, `md5${r.encrypted_password}`, `password of ${r.name}`);
    assert.equal(got.rolcanlogin, true);
    assert.equal(got.member, true, `${r.name} is a member of neon_superuser`);
    const limit = r.options?.find((o: any) => o.name === 'CONNECTION LIMIT')?.value;
    assert.equal(got.rolconnlimit, limit === undefined ? -1 : Number(limit), `connection limit of ${r.name}`);
  }
  const dbs = await c.query<{ datname: string; owner: string }>(
    `SELECT datname, (SELECT rolname FROM pg_roles WHERE oid = datdba) AS owner FROM pg_database WHERE datname ~ '^db[0-9]{3}' ORDER BY 1`,
  );
  assert.deepEqual(
    dbs.map((d) => [d.datname, d.owner]),
    spec.cluster.databases.map((d: any) => [d.name, d.owner]).sort((a: string[], b: string[]) => a[0].localeCompare(b[0])),
  );
  const auto = new Map(
    (await c.query<{ name: string; setting: string }>(`SELECT name, setting FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'`)).map((r) => [
      r.name,
      r.setting,
    ]),
  );
  for (const s of spec.cluster.settings) assert.equal(auto.get(s.name), s.value, `setting ${s.name}`);
  for (const name of ['log_min_duration_statement', 'statement_timeout', 'idle_in_transaction_session_timeout']) {
    if (!spec.cluster.settings.some((s: any) => s.name === name)) assert.equal(auto.has(name), false, `${name} was reset`);
  }
}

describe('compute: API, authorization, specs, metrics, traces', () => {
  let c: Cluster;
  let api: ApiClient;
  let keys: Record<'ed' | 'ed2' | 'rsa' | 'stranger', TestKey>;
  let receiver: Awaited<ReturnType<typeof otlpReceiver>>;
  let specFile: string;
  const startupTrace = randomBytes(16).toString('hex');
  const startupParent = randomBytes(8).toString('hex');

  before(async () => {
    receiver = await otlpReceiver();
    const dir = sharedDir();
    keys = {
      ed: await makeKey('EdDSA', 'ed-1'),
      ed2: await makeKey('EdDSA', 'ed-2'),
      rsa: await makeKey('RS256', 'rsa-1'),
      stranger: await makeKey('EdDSA', 'ed-1'),
    };
    const jwks = path.join(dir, 'jwks.json');
    writeJwks(jwks, [keys.ed, keys.ed2, keys.rsa]);
    const cert = makeCertificate(dir);
    specFile = path.join(dir, 'spec.json');
    fs.writeFileSync(specFile, JSON.stringify({ format_version: 1.0, cluster: { roles: [{ name: 'app_owner' }], databases: [{ name: 'app', owner: 'app_owner' }] } }));
    fs.chmodSync(specFile, 0o644);
    const port = await getFreePort();
    c = await Cluster.create('compute', {
      conf: {
        shared_preload_libraries: 'pg_tsworker,pg_stat_statements',
        'tsworker.workers': 'compute',
        'tsworker_compute.listen': `127.0.0.1:${port}`,
        'tsworker_compute.jwks': jwks,
        'tsworker_compute.compute_id': COMPUTE_ID,
        'tsworker_compute.spec_path': specFile,
        'tsworker_compute.key_path': cert.key,
        'tsworker_compute.cert_path': cert.cert,
      },
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '100', TRACEPARENT: `00-${startupTrace}-${startupParent}-01` },
    });
    clusters.push(c);
    await c.query('CREATE EXTENSION pg_tsworker');
    api = new ApiClient(`https://127.0.0.1:${port}`, await makeToken(keys.ed, { compute_id: COMPUTE_ID }), cert.ca);
    await waitFor(async () => (await api.get('/status')).json?.status === 'running', { what: 'the compute to run', timeoutMs: 30_000 });
  });

  after(() => receiver?.close());

  test('starts with the spec of spec_path: running over HTTPS, roles and database created, status in tsworker.workers', async () => {
    const s = await api.get('/status');
    assert.equal(s.status, 200);
    assert.deepEqual(Object.keys(s.json).sort(), ['error', 'last_active', 'start_time', 'status', 'tenant', 'timeline']);
    assert.equal(s.json.status, 'running');
    assert.equal(s.json.error, null);
    assert.equal(await c.queryText(`SELECT datdba::regrole::text FROM pg_database WHERE datname = 'app'`), 'app_owner');
    const st = (await c.query(`SELECT status FROM tsworker.workers WHERE name = 'compute'`))[0].status;
    assert.equal(st.status, 'running');
    assert.match(st.listen, /^127\.0\.0\.1:\d+$/);
    await assert.rejects(new ApiClient(api.base.replace('https', 'http')).get('/status'), 'plain HTTP is not served when TLS is on');
  });

  test('x-request-id on every response, one log line per request, JSON errors for 404, 405, 415 and bad JSON', async () => {
    const offset = c.logOffset();
    const given = await api.get('/status', { headers: { 'x-request-id': 'req-given-1' } });
    assert.equal(given.headers['x-request-id'], 'req-given-1');
    const made = await api.get('/status');
    assert.match(String(made.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const missing = await api.get('/no_such_route');
    assert.equal(missing.status, 404);
    assert.equal(typeof missing.json.error, 'string');
    assert.ok(missing.headers['x-request-id']);
    const wrong = await api.post('/status');
    assert.equal(wrong.status, 405);
    assert.equal(wrong.headers.allow, 'GET');
    assert.match(wrong.json.error, /not allowed/);
    const notJson = await api.post('/configure', { body: 'hello', headers: { 'content-type': 'text/plain' } });
    assert.equal(notJson.status, 415);
    assert.match(notJson.json.error, /content-type: application\/json/);
    const badJson = await api.post('/configure', { body: '{"spec": ' });
    assert.equal(badJson.status, 400);
    assert.match(badJson.json.error, /JSON/);
    await c.waitForLog(/request_id=req-given-1 GET \/status 200 [0-9.]+ ms/, offset);
    await c.waitForLog(new RegExp(`request_id=${badJson.headers['x-request-id']} POST /configure 400`), offset);
    assert.equal(c.readLog(offset).split('\n').filter((l) => l.includes('req-given-1')).length, 1, 'one log line for the request');
  });

  test('authorization: 400 without a bearer token, 401 for bad tokens and audiences, 403 for another compute, 200 for EdDSA and RS256', async () => {
    const status = async (token: string | null, headers: Record<string, string> = {}) => (await api.get('/status', { token, headers })).status;
    const now = Math.floor(Date.now() / 1000);
    const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    assert.equal(await status(null), 400, 'no Authorization header');
    assert.equal((await api.get('/status', { token: null })).json.error, 'invalid authorization token');
    assert.equal(await status(null, { authorization: 'Basic dXNlcjpwdw==' }), 400, 'not a bearer token');
    assert.equal(await status(null, { authorization: 'Bearer' }), 400, 'bearer without a token');
    assert.equal(await status('not.a.jwt'), 401, 'malformed JWT');
    assert.equal(await status(`${b64({ alg: 'none' })}.${b64({ compute_id: COMPUTE_ID, exp: now + 600 })}.`), 401, 'alg none');
    assert.equal(await status(await makeToken(keys.stranger, { compute_id: COMPUTE_ID })), 401, 'signed by a key not in the set (same kid)');
    const expired = await api.get('/status', { token: await makeToken(keys.ed, { compute_id: COMPUTE_ID }, { expiresIn: -3600 }) });
    assert.equal(expired.status, 401, 'expired');
    assert.equal(expired.json.error, 'failed to verify authorization token');
    const admin = (aud?: unknown) => makeToken(keys.rsa, aud === undefined ? { scope: 'compute_ctl:admin' } : { scope: 'compute_ctl:admin', aud });
    const noAud = await api.get('/status', { token: await admin() });
    assert.deepEqual([noAud.status, noAud.json.error], [401, 'missing audience in authorization token claims']);
    const wrongAud = await api.get('/status', { token: await admin(['control-plane']) });
    assert.deepEqual([wrongAud.status, wrongAud.json.error], [401, 'invalid audience in authorization token claims']);
    assert.equal(await status(await admin(['compute'])), 200, 'admin scope, audience compute (RS256)');
    assert.equal(await status(await makeToken(keys.ed, { scope: 'something_else', compute_id: COMPUTE_ID })), 401, 'unknown scope');
    const other = await api.get('/status', { token: await makeToken(keys.ed, { compute_id: 'compute-other-1' }) });
    assert.deepEqual([other.status, other.json.error], [403, 'invalid compute ID in authorization token claims']);
    const none = await api.get('/status', { token: await makeToken(keys.ed, {}) });
    assert.deepEqual([none.status, none.json.error], [403, 'missing compute_id in authorization token claims']);
    assert.equal(await status(await makeToken(keys.ed, { compute_id: COMPUTE_ID })), 200, 'EdDSA');
    assert.equal(await status(await makeToken(keys.rsa, { compute_id: COMPUTE_ID })), 200, 'RS256');
    assert.equal(await status(await makeToken(keys.ed2, { compute_id: COMPUTE_ID }, { kid: false })), 200, 'EdDSA without kid: each key is tried');
    for (const [method, route] of [['GET', '/status'], ['POST', '/configure'], ['GET', '/dbs_and_roles'], ['POST', '/check_writability'], ['GET', '/insights'], ['GET', '/metrics.json'], ['POST', '/terminate']]) {
      assert.equal((await api.request(method, route, { token: null })).status, 400, `${method} ${route} needs a token`);
    }
    assert.equal((await api.get('/metrics', { token: null })).status, 200, '/metrics needs none');
  });

  test('a spec of 1,000 roles and 100 databases is applied and the catalog matches; applying it again changes nothing', async () => {
    const offset = c.logOffset();
    const first = await api.post('/configure', { body: { spec: bigSpec() } });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.json.status, 'running');
    await assertCatalogMatches(c, bigSpec());
    const log = c.readLog(offset);
    assert.match(log, /CreateAndAlterRoles: CREATE ROLE "r0005" IN ROLE "neon_superuser" .* PASSWORD '\*\*\*' \([0-9.]+ ms\)/);
    assert.match(log, /CreateAndAlterDatabases \(connection\): CREATE DATABASE "db000" TEMPLATE 'template0' OWNER "r0000" \([0-9.]+ ms\)/);
    assert.match(log, /Settings \(connection\): ALTER SYSTEM SET "log_min_duration_statement" = '10s'/);
    assert.ok(!log.includes(md5Password('pw5', roleName(5))), 'no password in the log');
    const before = await snapshot(c);
    const again = await api.post('/configure', { body: { spec: bigSpec() } });
    assert.equal(again.status, 200);
    assert.equal((await api.get('/metrics.json')).json.last_apply_statements, 0);
    assert.deepEqual(await snapshot(c), before, 'nothing changed (rows and their xmin)');
    // Changes made behind the worker's back are seen (its cached catalog is not trusted) and undone.
    await c.query(`ALTER ROLE ${roleName(7)} PASSWORD 'changed outside'`);
    await c.query(`ALTER SYSTEM SET log_min_duration_statement = '99s'`);
    assert.equal((await api.post('/configure', { body: { spec: bigSpec() } })).status, 200);
    assert.equal((await api.get('/metrics.json')).json.last_apply_statements, 3, 'ALTER SYSTEM, the reload and ALTER ROLE');
    await assertCatalogMatches(c, bigSpec());
  });

  test('the changed spec (renames, a password, an owner, deletions) is applied, then again with no change', async () => {
    // Objects of roles about to be dropped, in a database of the spec and in the worker's own.
    const db5 = await c.connect({ database: dbName(5) });
    await db5.query(`CREATE TABLE owned_by_doomed(id int); ALTER TABLE owned_by_doomed OWNER TO ${roleName(999)}; GRANT SELECT ON owned_by_doomed TO ${roleName(998)}`);
    await db5.end();
    await c.query(`CREATE TABLE doomed_here(id int); ALTER TABLE doomed_here OWNER TO ${roleName(998)}`);
    const r = await api.post('/configure', { body: { spec: changedSpec() } });
    assert.equal(r.status, 200, r.text);
    await assertCatalogMatches(c, changedSpec());
    assert.equal(await c.queryText(`SELECT count(*) FROM pg_authid WHERE rolname IN ('r0001', 'r0998', 'r0999')`), '0');
    assert.equal(await c.queryText(`SELECT count(*) FROM pg_database WHERE datname IN ('db098', 'db099')`), '0');
    assert.equal(await c.queryText(`SELECT tableowner FROM pg_tables WHERE tablename = 'doomed_here'`), 'postgres');
    const db5b = await c.connect({ database: dbName(5) });
    assert.equal((await db5b.query(`SELECT tableowner FROM pg_tables WHERE tablename = 'owned_by_doomed'`)).rows[0].tableowner, roleName(50));
    await db5b.end();
    const before = await snapshot(c);
    assert.equal((await api.post('/configure', { body: { spec: changedSpec() } })).status, 200);
    assert.equal((await api.get('/metrics.json')).json.last_apply_statements, 0);
    assert.deepEqual(await snapshot(c), before);
  });

  test('ten malformed specs are refused with the path of each error, and nothing changes', async () => {
    const good = changedSpec();
    const variant = (f: (s: any) => void) => {
      const s = structuredClone(good);
      f(s);
      return s;
    };
    const cases: [string, unknown, number, string][] = [
      ['no cluster', variant((s) => delete s.cluster), 422, '/spec'],
      ['roles not an array', variant((s) => (s.cluster.roles = { name: 'x' })), 422, '/spec/cluster/roles'],
      ['empty role name', variant((s) => (s.cluster.roles[3].name = '')), 422, '/spec/cluster/roles/3/name'],
      ['password not a hash', variant((s) => (s.cluster.roles[4].encrypted_password = "x' SUPERUSER --")), 422, '/spec/cluster/roles/4/encrypted_password'],
      ['role option outside the list', variant((s) => (s.cluster.roles[5].options = [{ name: 'SUPERUSER; DROP ROLE postgres', value: null, vartype: 'bool' }])), 422, '/spec/cluster/roles/5/options/0/name'],
      ['database without owner', variant((s) => delete s.cluster.databases[2].owner), 422, '/spec/cluster/databases/2'],
      ['setting name that is not one', variant((s) => (s.cluster.settings[0].name = 'work_mem = 1; x')), 422, '/spec/cluster/settings/0/name'],
      ['unknown delta action', variant((s) => s.delta_operations.push({ action: 'drop_everything', name: 'x' })), 422, '/spec/delta_operations/5/action'],
      ['owner that will not exist', variant((s) => (s.cluster.databases[7].owner = 'nobody_at_all')), 400, '/spec/cluster/databases/7/owner'],
      ['unknown parameter', variant((s) => s.cluster.settings.push({ name: 'no_such_parameter', value: '1', vartype: 'integer' })), 400, '/spec/cluster/settings/2/name'],
    ];
    const before = await snapshot(c);
    for (const [what, spec, status, where] of cases) {
      const r = await api.post('/configure', { body: { spec } });
      assert.equal(r.status, status, `${what}: ${r.text}`);
      assert.ok(r.json.errors.some((e: { path: string }) => e.path === where), `${what}: ${JSON.stringify(r.json.errors)} names ${where}`);
      assert.ok(r.json.error.includes(where), `${what}: the message names ${where}`);
      assert.equal((await api.get('/status')).json.status, 'running', `${what}: still running`);
    }
    assert.deepEqual(await snapshot(c), before, 'nothing changed');
  });

  test('412 while an apply runs; a failing apply answers 500, shows failed, and the next spec recovers', async () => {
    const slow = changedSpec();
    for (let i = 0; i < 8; i++) slow.cluster.databases.push({ name: `extra${i}`, owner: roleName(0) });
    const pending = api.post('/configure', { body: { spec: slow } });
    await waitFor(async () => ['configuration_pending', 'configuration'].includes((await api.get('/status')).json.status), { intervalMs: 5, what: 'the apply to start' });
    const busy = await api.post('/configure', { body: { spec: slow } });
    assert.equal(busy.status, 412);
    assert.match(busy.json.error, /^invalid compute status: configuration(-pending)?$/);
    assert.equal((await api.post('/check_writability')).status, 412);
    assert.equal((await api.get('/insights')).status, 412);
    assert.equal((await api.post('/terminate')).status, 412);
    assert.equal((await pending).status, 200);

    const bad = structuredClone(slow);
    bad.cluster.databases.push({ name: 'bad_db', owner: roleName(0), options: [{ name: 'TEMPLATE', value: 'no_such_template', vartype: 'string' }] });
    const failed = await api.post('/configure', { body: { spec: bad } });
    assert.equal(failed.status, 500);
    assert.match(failed.json.error, /^compute configuration failed: ".*CreateAndAlterDatabases: .*no_such_template/);
    const st = (await api.get('/status')).json;
    assert.equal(st.status, 'failed');
    assert.match(st.error, /CreateAndAlterDatabases/);
    assert.equal((await api.post('/check_writability')).status, 412);
    assert.equal((await api.post('/configure', { body: { spec: slow } })).status, 200, 'a failed compute takes a new spec');
    assert.equal((await api.get('/status')).json.status, 'running');
  });

  test('/dbs_and_roles, /check_writability, /insights and /metrics.json', async () => {
    const dr = await api.get('/dbs_and_roles');
    assert.equal(dr.status, 200);
    const r0 = dr.json.roles.find((r: any) => r.name === roleName(0));
    assert.deepEqual(r0, { name: roleName(0), encrypted_password: `md5${md5Password('pw0', roleName(0))}`, options: null });
    assert.deepEqual(dr.json.databases.find((d: any) => d.name === dbName(0)), { name: dbName(0), owner: roleName(0), options: null, restrict_conn: false, invalid: false });

    const before = await c.queryText('SELECT updated_at FROM public.health_check WHERE id = 1');
    const w = await api.post('/check_writability');
    assert.deepEqual([w.status, w.json], [200, true]);
    assert.notEqual(await c.queryText('SELECT updated_at FROM public.health_check WHERE id = 1'), before);
    // The upsert failing with a full disk (SQLSTATE 53100, raised here by a trigger) still counts as writable; another error does not.
    const failWith = (code: string) =>
      c.query(`CREATE OR REPLACE FUNCTION fail_health_check() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '${code}'; END $$`);
    await failWith('disk_full');
    await c.query('CREATE TRIGGER fail BEFORE UPDATE ON public.health_check FOR EACH ROW EXECUTE FUNCTION fail_health_check()');
    const offset = c.logOffset();
    const full = await api.post('/check_writability');
    assert.deepEqual([full.status, full.json], [200, true], 'a full disk counts as writable');
    await c.waitForLog(/check_writability: the disk is full/, offset);
    await failWith('read_only_sql_transaction');
    const ro = await api.post('/check_writability');
    assert.equal(ro.status, 500);
    assert.match(ro.json.error, /No space left on device/);
    await c.query('DROP TRIGGER fail ON public.health_check; DROP FUNCTION fail_health_check()');

    const missing = await api.get('/insights');
    assert.equal(missing.status, 500);
    assert.match(missing.json.error, /pg_stat_statements is not installed/);
    const spec = changedSpec();
    spec.cluster.settings.push({ name: 'shared_preload_libraries', value: 'pg_tsworker,pg_stat_statements', vartype: 'string' });
    assert.equal((await api.post('/configure', { body: { spec } })).status, 200);
    const user = await c.connect({ database: dbName(0), user: roleName(0) });
    await user.query('SELECT count(*) FROM pg_class WHERE relname = $1', ['insights_marker']);
    await user.end();
    const ins = await api.get('/insights');
    assert.equal(ins.status, 200, ins.text);
    assert.ok(Array.isArray(ins.json.pg_stat_statements) && ins.json.pg_stat_statements.length <= 100);
    assert.ok(ins.json.pg_stat_statements.some((s: any) => /relname = \$1/.test(s.query)), 'the user statement is there');
    const means = ins.json.pg_stat_statements.map((s: any) => s.mean_exec_time + s.mean_plan_time);
    assert.deepEqual(means, [...means].sort((a: number, b: number) => b - a), 'by mean time, slowest first');

    const m = await api.get('/metrics.json');
    assert.equal(m.status, 200);
    for (const k of ['wait_for_spec_ms', 'start_postgres_ms', 'config_ms', 'total_startup_ms', 'sync_safekeepers_ms', 'basebackup_ms']) {
      assert.equal(typeof m.json[k], 'number', k);
    }
    assert.ok(m.json.total_startup_ms > 0 && m.json.applies >= 5);
  });

  test('/metrics is Prometheus text that a parser reads, with status, applies, workers, connections and database sizes', async (t) => {
    const r = await api.get('/metrics', { token: null });
    t.diagnostic(`GET /metrics took ${r.ms.toFixed(0)} ms`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const families = new Map(parsePrometheus(r.text).map((f) => [f.name, f]));
    const up = families.get('compute_ctl_up')!;
    assert.equal(up.metrics.find((m) => m.labels?.status === 'running')?.value, '1');
    assert.equal(up.metrics.find((m) => m.labels?.status === 'failed')?.value, '0');
    const durations = families.get('compute_ctl_spec_apply_duration_seconds')!;
    assert.equal(durations.type, 'HISTOGRAM');
    assert.ok(Number(durations.metrics[0].count) >= 8);
    const applies = families.get('compute_ctl_spec_applies_total')!.metrics;
    assert.ok(Number(applies.find((m) => m.labels?.source === 'POST /configure' && m.labels?.result === 'ok')?.value) >= 7);
    assert.equal(applies.find((m) => m.labels?.source === 'POST /configure' && m.labels?.result === 'failed')?.value, '1');
    assert.equal(families.get('compute_ctl_spec_apply_failures_total')!.metrics[0].value, '1');
    // the compute worker reads its own row inside its SQL statement: `running sql`
    assert.match(String(families.get('tsworker_worker_state')!.metrics.find((m) => m.labels?.worker === 'compute')?.labels?.state), /^(running|running sql|waiting)$/);
    const restarts = families.get('tsworker_worker_restarts_total')!;
    assert.equal(restarts.type, 'COUNTER');
    assert.equal(restarts.metrics.find((m) => m.labels?.worker === 'compute')?.value, '0');
    assert.ok(Number(families.get('compute_pg_database_size_bytes')!.metrics.find((m) => m.labels?.datname === dbName(0))?.value) > 1e6);
    assert.ok(families.get('compute_pg_connections'));
    assert.ok(families.has('compute_pg_current_downtime_ms') && families.has('compute_pg_downtime_ms_total'));
    assert.ok(families.get('compute_ctl_http_requests_total')!.metrics.some((m) => m.labels?.route === '/configure' && m.labels?.code === '422'));
  });

  test('a reload applies a changed spec_path file', async () => {
    const offset = c.logOffset();
    fs.writeFileSync(specFile, JSON.stringify({ format_version: 1.0, cluster: { roles: [{ name: 'app_owner' }, { name: 'from_file' }], databases: [{ name: 'app', owner: 'app_owner' }] } }));
    await c.reload();
    await c.waitForLog(/spec from spec_path \S+ applied/, offset);
    assert.equal(await c.queryText(`SELECT count(*) FROM pg_roles WHERE rolname = 'from_file'`), '1');
    assert.equal((await api.get('/status')).json.status, 'running');
  });

  test('spans go to an OTLP/HTTP receiver: startup under TRACEPARENT, a traced /configure with its apply and phases; its log lines carry the trace id', async () => {
    const traceId = randomBytes(16).toString('hex');
    const parent = randomBytes(8).toString('hex');
    const offset = c.logOffset();
    const spec = changedSpec();
    spec.cluster.roles.push({ name: 'traced_role' });
    const r = await api.post('/configure', { body: { spec }, headers: { traceparent: `00-${traceId}-${parent}-01` } });
    assert.equal(r.status, 200);
    const spans = await waitFor(() => {
      const mine = receiver.spans.filter((s) => s.traceId === traceId);
      return mine.some((s) => s.name === 'db_apply_changes') && mine.some((s) => s.name === 'POST /configure') ? mine : undefined;
    }, { timeoutMs: 20_000, what: 'spans of the traced request' });
    const request = spans.find((s) => s.name === 'POST /configure')!;
    assert.equal(request.parentSpanId, parent);
    assert.equal(request.service, 'compute_ctl');
    assert.equal(request.attributes['http.response.status_code'], 200);
    const apply = spans.find((s) => s.name === 'apply_spec_sql')!;
    assert.equal(apply.parentSpanId, request.spanId);
    const phases = spans.filter((s) => s.name === 'db_apply_changes');
    assert.ok(phases.every((p) => p.parentSpanId === apply.spanId));
    assert.ok(phases.some((p) => p.attributes.phase === 'CreateAndAlterRoles'));
    const startup = receiver.spans.find((s) => s.name === 'start_compute');
    assert.ok(startup, 'start_compute exported');
    assert.equal(startup.traceId, startupTrace);
    assert.equal(startup.parentSpanId, startupParent);
    assert.ok(receiver.spans.some((s) => s.name === 'apply_spec_sql' && s.parentSpanId === startup.spanId), 'the start-up apply is its child');
    const log = c.readLog(offset);
    assert.match(log, new RegExp(`trace_id=${traceId} request_id=\\S+ POST /configure 200`));
    assert.match(log, new RegExp(`trace_id=${traceId} CreateAndAlterRoles: CREATE ROLE "traced_role"`));
  });

  test('POST /terminate (fast) answers the last flushed LSN and shuts the server down', async () => {
    assert.equal((await api.post('/terminate?mode=sideways')).status, 400);
    const offset = c.logOffset();
    const r = await api.post('/terminate');
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    await waitFor(() => !c.isRunning(), { what: 'the server to stop', timeoutMs: 30_000 });
    const log = c.readLog(offset);
    assert.match(log, /received fast shutdown request/);
    assert.doesNotMatch(log, CRASH_RESTART);
    const control = execFileSync(c.bin('pg_controldata'), ['-D', c.dataDir], { encoding: 'utf8' });
    const checkpoint = /Latest checkpoint location:\s+(\S+)/.exec(control)![1];
    const lsn = (s: string) => s.split('/').reduce((acc, part) => acc * 2n ** 32n + BigInt(`0x${part}`), 0n);
    assert.ok(lsn(checkpoint) >= lsn(r.json.lsn), `the shutdown checkpoint ${checkpoint} is after ${r.json.lsn}`);
    assert.match(control, /Database cluster state:\s+shut down/);
  });
});

describe('compute: no JWKS, a reload, immediate termination', () => {
  test('without a JWKS the API refuses a non-loopback address; a reload with a JWKS starts it; /terminate?mode=immediate stops the server', async () => {
    const port = await getFreePort();
    const c = await Cluster.create('compute-nojwks', {
      conf: { shared_preload_libraries: 'pg_tsworker', 'tsworker.workers': 'compute', 'tsworker_compute.listen': `0.0.0.0:${port}`, 'tsworker_compute.compute_id': COMPUTE_ID },
    });
    clusters.push(c);
    await c.waitForLog(/not serving the compute API on 0\.0\.0\.0:\d+: without tsworker_compute\.jwks/);
    await assert.rejects(new ApiClient(`http://127.0.0.1:${port}`).get('/status'), /ECONNREFUSED/);
    const dir = sharedDir();
    const key = await makeKey('EdDSA', 'k1');
    writeJwks(path.join(dir, 'jwks.json'), [key]);
    const offset = c.logOffset();
    await c.query(`ALTER SYSTEM SET tsworker_compute.jwks = '${path.join(dir, 'jwks.json')}'`);
    await c.query('SELECT pg_reload_conf()');
    await c.waitForLog(/compute API listening on http:\/\/0\.0\.0\.0:\d+/, offset);
    const api = new ApiClient(`http://127.0.0.1:${port}`, await makeToken(key, { compute_id: COMPUTE_ID }));
    assert.equal((await api.get('/status', { token: null })).status, 400);
    const st = await api.get('/status');
    assert.deepEqual([st.status, st.json.status], [200, 'empty']);
    const r = await api.post('/terminate?mode=immediate');
    assert.equal(r.status, 200, r.text);
    assert.match(r.json.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);
    await waitFor(() => !c.isRunning(), { what: 'the server to stop', timeoutMs: 30_000 });
    assert.match(c.readLog(offset), /received immediate shutdown request/);
  });
});

describe('compute: on a hot standby', () => {
  test('runs on a standby: settings applied, roles and databases left to the primary, not writable, /terminate answers no LSN', async () => {
    const primary = await Cluster.create('compute-primary', { allowStreaming: true, conf: { shared_preload_libraries: 'pg_tsworker' } });
    clusters.push(primary);
    const port = await getFreePort();
    const standby = await Cluster.createStandby(primary, 'compute-standby', {
      conf: { 'tsworker.workers': 'compute', 'tsworker_compute.listen': `127.0.0.1:${port}` },
    });
    clusters.push(standby);
    const api = new ApiClient(`http://127.0.0.1:${port}`);
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.json?.status === 'empty', { what: 'the API on the standby' });
    const offset = standby.logOffset();
    const spec = { format_version: 1.0, cluster: { roles: [{ name: 'only_on_primary' }], databases: [], settings: [{ name: 'work_mem', value: '12MB', vartype: 'string' }] } };
    const r = await api.post('/configure', { body: { spec } });
    assert.equal(r.status, 200, r.text);
    await standby.waitForLog(/roles and databases of spec from POST \/configure not applied: the server is in recovery/, offset);
    assert.equal(await standby.queryText(`SELECT count(*) FROM pg_roles WHERE rolname = 'only_on_primary'`), '0');
    assert.equal(await standby.queryText(`SELECT setting FROM pg_file_settings WHERE name = 'work_mem' AND sourcefile LIKE '%auto.conf'`), '12MB');
    assert.equal((await api.post('/check_writability')).status, 500);
    const t = await api.post('/terminate');
    assert.deepEqual([t.status, t.json], [200, { lsn: null }]);
    await waitFor(() => !standby.isRunning(), { what: 'the standby to stop', timeoutMs: 30_000 });
  });
});

describe('compute: activity monitor', () => {
  let c: Cluster;
  let publisher: Cluster;
  let api: ApiClient;

  const lastActive = async (): Promise<number | null> => {
    const v = (await api.get('/status')).json.last_active;
    return v === null ? null : Date.parse(v);
  };
  const kind = async (): Promise<string> => (await c.query(`SELECT status->>'activity' AS k FROM tsworker.workers WHERE name = 'compute'`))[0].k;

  /** Poll /status until last_active is at least `since`; returns how long that took after `since`. */
  async function detected(since: number, expectedKind: string): Promise<number> {
    const seenAt = await waitFor(async () => ((await lastActive()) ?? 0) >= since && (await kind()) === expectedKind && Date.now(), {
      intervalMs: 20,
      timeoutMs: 10_000,
      what: `last_active to move for ${expectedKind}`,
    });
    return seenAt - since;
  }

  before(async () => {
    const port = await getFreePort();
    [c, publisher] = await Promise.all([
      Cluster.create('compute-activity', {
        conf: {
          shared_preload_libraries: 'pg_tsworker',
          'tsworker.workers': 'compute',
          'tsworker_compute.listen': `127.0.0.1:${port}`,
          autovacuum: 'off',
          autovacuum_naptime: '1s',
        },
      }),
      Cluster.create('compute-publisher', { conf: { wal_level: 'logical' } }),
    ]);
    clusters.push(c, publisher);
    await c.query('CREATE EXTENSION pg_tsworker');
    api = new ApiClient(`http://127.0.0.1:${port}`);
    const spec = { format_version: 1.0, cluster: { roles: [{ name: 'alice', encrypted_password: md5Password('secret', 'alice') }], databases: [{ name: 'shop', owner: 'alice' }] } };
    const r = await waitFor(async () => {
      const a = await api.post('/configure', { body: { spec } }).catch(() => undefined);
      return a?.status === 200 ? a : undefined;
    }, { what: 'the spec to apply' });
    assert.equal(r.json.status, 'running', 'no JWKS on a loopback address: served without authorization');
  });

  test('an idle server does not move last_active', async () => {
    await sleep(1500);
    const before = await lastActive();
    await sleep(3000);
    assert.equal(await lastActive(), before);
  });

  test('each kind of activity moves last_active within 1 s', async (t) => {
    const report = (what: string, ms: number) => {
      t.diagnostic(`${what}: detected after ${ms} ms`);
      assert.ok(ms <= 1000, `${what} detected after ${ms} ms`);
    };
    // A client backend that is not idle (in database postgres, which the statistics rule leaves out).
    const busy = await c.connect({ user: 'alice' });
    let since = Date.now();
    const sleeping = busy.query('SELECT pg_sleep(2)');
    report('a non-idle client backend', await detected(since, 'active_backend'));
    await sleeping;
    await busy.end();

    // A new idle session: its state_change is newer than the last activity.
    since = Date.now();
    const idle = await c.connect({ user: 'alice' });
    report('a newer state_change of an idle backend', await detected(since, 'idle_backend'));
    await idle.end();

    // Sessions and active time of pg_stat_database: a short session in another database, gone before it is seen.
    const short = await c.connect({ user: 'alice', database: 'shop' });
    await short.query('SELECT 1');
    await short.end();
    since = Date.now();
    report('a change in pg_stat_database', await detected(since, 'database_stats'));

    // A walsender.
    const walsender = new pg.Client({ ...c.clientConfig(), replication: 'database' } as pg.ClientConfig);
    await walsender.connect();
    since = Date.now();
    report('a walsender', await detected(since, 'walsender'));
    await walsender.end();

    // An active subscription (its apply worker), to another server.
    await publisher.query('CREATE TABLE items(id int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE items');
    await c.query('CREATE TABLE items(id int PRIMARY KEY)');
    await c.query(`CREATE SUBSCRIPTION sub CONNECTION '${publisher.connectionString()}' PUBLICATION pub`);
    await c.pollQueryUntil('SELECT count(*) > 0 FROM pg_stat_subscription WHERE pid IS NOT NULL', 't', { intervalMs: 10 });
    since = Date.now();
    report('an active subscription', await detected(since, 'subscription'));
    await c.query('ALTER SUBSCRIPTION sub DISABLE');
    await c.pollQueryUntil('SELECT count(*) FROM pg_stat_subscription WHERE pid IS NOT NULL', '0');

    // An autovacuum worker, slowed down so that it stays.
    await c.query(
      `CREATE TABLE dead(id int) WITH (autovacuum_vacuum_cost_delay = 100, autovacuum_vacuum_cost_limit = 1,
         autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0);
       INSERT INTO dead SELECT generate_series(1, 50000); DELETE FROM dead`,
    );
    await c.query('ALTER SYSTEM SET autovacuum = on');
    await c.query('SELECT pg_reload_conf()');
    await c.pollQueryUntil(`SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query LIKE '%public.dead%'`, 't', {
      intervalMs: 10,
      timeoutMs: 30_000,
    });
    since = Date.now();
    report('an autovacuum worker', await detected(since, 'autovacuum'));
  });
});
