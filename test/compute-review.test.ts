/**
 * [compute] The kinds of fault an adversarial review found in the compute
 * worker, each on a real server through real requests: system roles a
 * spec may not touch, list-valued parameters, settings all or nothing,
 * password secrets and role options checked as PostgreSQL reads them,
 * contradicting delta operations, databases without connections, the
 * activity monitor in every status, HTTP limits and malformed requests,
 * reloads of the key set, compute id and TLS, pg_terminate_backend(), a
 * shutdown during /configure, and the saved spec at start.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster, getFreePort, waitFor } from './harness/cluster';
import { pgMajor } from './harness/pg-config';
import { ApiClient, makeCertificate, makeKey, makeToken, md5Password, writeJwks, type TestKey } from './compute-client';

const clusters: Cluster[] = [];
/** Directories made by sharedDir(), removed after the clusters. */
const sharedDirs: string[] = [];
after(async () => {
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
  for (const dir of sharedDirs) fs.rmSync(dir, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function sharedDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgtsw-compute-review-'));
  sharedDirs.push(dir);
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** A spec with these roles, databases and settings. */
function spec(roles: unknown[] = [], databases: unknown[] = [], settings: unknown[] = [], delta: unknown[] = []): any {
  return { format_version: 1.0, cluster: { roles, databases, settings }, delta_operations: delta };
}

/** Send `head` (and `body`) over a raw connection; resolve with what the server answered until it closed or `waitMs` passed. */
function raw(port: number, head: string, body: Buffer | string = '', waitMs = 5000): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect(port, '127.0.0.1', () => {
      s.write(head);
      if (body.length > 0) s.write(body);
    });
    let closed = false;
    const done = () => resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    const timer = setTimeout(() => {
      s.destroy();
      done();
    }, waitMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => undefined);
    s.on('close', () => {
      closed = true;
      clearTimeout(timer);
      done();
    });
  });
}

describe('compute: specs the review broke', () => {
  let c: Cluster;
  let api: ApiClient;
  let port: number;
  const autoConf = () => fs.readFileSync(path.join(c.dataDir, 'postgresql.auto.conf'), 'utf8');
  const statements = async () => (await api.get('/metrics.json')).json.last_apply_statements as number;
  let slowBody: Promise<{ text: string; closed: boolean; ms: number }>;

  before(async () => {
    port = await getFreePort();
    c = await Cluster.create('compute-review', {
      conf: { shared_preload_libraries: 'pg_tsworker', 'tsworker.workers': 'compute', 'tsworker_compute.listen': `127.0.0.1:${port}` },
    });
    clusters.push(c);
    await c.query('CREATE EXTENSION pg_tsworker');
    api = new ApiClient(`http://127.0.0.1:${port}`);
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.json?.status === 'empty', { what: 'the API' });
  });

  test('system roles: listing, altering, renaming or dropping them is refused with the path; the superuser keeps its password', async () => {
    const owner = 'review_owner';
    assert.equal((await api.post('/configure', { body: { spec: spec([{ name: owner }]) } })).status, 200);
    await c.query(`ALTER ROLE postgres PASSWORD 'kept'`);
    const before = await c.query(`SELECT rolname, rolsuper, rolpassword FROM pg_authid ORDER BY 1`);
    const cases: [string, any, string][] = [
      ['demote the bootstrap superuser', spec([{ name: 'postgres', encrypted_password: null, options: [{ name: 'NOSUPERUSER', value: null, vartype: 'bool' }] }]), '/spec/cluster/roles/0/name'],
      ['list the privileged role', spec([{ name: 'neon_superuser' }]), '/spec/cluster/roles/0/name'],
      ['delete the extension\'s role', spec([], [], [], [{ action: 'delete_role', name: 'tsworker_admin' }]), '/spec/delta_operations/0/name'],
      ['delete a pg_ role', spec([], [], [], [{ action: 'delete_role', name: 'pg_monitor' }]), '/spec/delta_operations/0/name'],
      ['rename the superuser', spec([], [], [], [{ action: 'rename_role', name: 'postgres', new_name: 'pg2' }]), '/spec/delta_operations/0/name'],
      ['rename onto the privileged role', spec([], [], [], [{ action: 'rename_role', name: owner, new_name: 'neon_superuser' }]), '/spec/delta_operations/0/new_name'],
    ];
    for (const [what, s, where] of cases) {
      const r = await api.post('/configure', { body: { spec: s } });
      assert.equal(r.status, 400, `${what}: ${r.text}`);
      assert.ok(r.json.errors.some((e: any) => e.path === where), `${what}: ${r.text}`);
    }
    assert.deepEqual(await c.query(`SELECT rolname, rolsuper, rolpassword FROM pg_authid ORDER BY 1`), before);
    assert.equal((await api.get('/status')).json.status, 'running');
  });

  test('list-valued parameters are written element by element; the server starts with them; the same spec again changes nothing', async () => {
    const settings = [
      { name: 'shared_preload_libraries', value: 'pg_tsworker,pg_stat_statements', vartype: 'string' },
      { name: 'search_path', value: '"$user", public', vartype: 'string' },
    ];
    const s = spec([{ name: 'review_owner' }], [{ name: 'review_app', owner: 'review_owner' }], settings);
    const r = await api.post('/configure', { body: { spec: s } });
    assert.equal(r.status, 200, r.text);
    assert.match(autoConf(), /^shared_preload_libraries = 'pg_tsworker, pg_stat_statements'$/m);
    assert.match(autoConf(), /^search_path = '"\$user", public'$/m);
    assert.equal((await api.post('/configure', { body: { spec: s } })).status, 200);
    assert.equal(await statements(), 0, 'nothing to change');
    const offset = c.logOffset();
    await c.restart();
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.json?.status === 'running', { what: 'the saved spec at start' });
    assert.equal(await c.queryText('SHOW shared_preload_libraries'), 'pg_tsworker, pg_stat_statements');
    assert.equal(await c.queryText('SHOW search_path'), '"$user", public');
    const log = c.readLog(offset);
    assert.match(log, /spec from the saved spec: nothing to change/);
    assert.doesNotMatch(log, /RunInEachDatabase/, 'schema permissions are not set again at start');
    for (const [value, why] of [
      ['pg_stat_statements', /must keep pg_tsworker/],
      ['pg_tsworker, no_such_library', /library "no_such_library" is not installed/],
      ['', /empty list/],
      ['pg_tsworker, "unterminated', /invalid list syntax/],
    ] as const) {
      const bad = await api.post('/configure', { body: { spec: spec([{ name: 'review_owner' }], [], [{ name: 'shared_preload_libraries', value, vartype: 'string' }]) } });
      assert.equal(bad.status, 400, bad.text);
      assert.deepEqual(bad.json.errors.map((e: any) => e.path), ['/spec/cluster/settings/0/value']);
      assert.match(bad.json.error, why);
    }
  });

  test('settings are all or nothing: a refused value or a later failure leaves postgresql.auto.conf as it was', async () => {
    // (After the restart above.) A body that never arrives: answered (408) and closed once the request timeout passes; checked in the last test.
    const t0 = Date.now();
    slowBody = raw(port, 'POST /configure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n', '{"spec":', 60_000).then((r) => ({
      ...r,
      ms: Date.now() - t0,
    }));
    const base = [{ name: 'shared_preload_libraries', value: 'pg_tsworker,pg_stat_statements', vartype: 'string' }];
    const before = autoConf();
    const refused = await api.post('/configure', {
      body: { spec: spec([{ name: 'review_owner' }], [], [...base, { name: 'work_mem', value: '8MB', vartype: 'string' }, { name: 'maintenance_work_mem', value: 'lots', vartype: 'string' }]) },
    });
    assert.equal(refused.status, 400, refused.text);
    assert.deepEqual(refused.json.errors.map((e: any) => e.path), ['/spec/cluster/settings/2/value']);
    assert.match(refused.json.error, /invalid value for parameter "maintenance_work_mem"/);
    assert.equal(autoConf(), before, 'work_mem was written, then undone');
    assert.equal((await api.get('/status')).json.status, 'running');
    const custom = await api.post('/configure', { body: { spec: spec([{ name: 'review_owner' }], [], [...base, { name: 'my.custom', value: 'x', vartype: 'string' }]) } });
    if (pgMajor() >= 17) {
      // 17 lets ALTER SYSTEM set an unrecognized custom parameter (2d870b4aef,
      // "Allow ALTER SYSTEM to set unrecognized custom GUCs"): written, and
      // reset by the next spec without it, as any setting a spec wrote.
      assert.equal(custom.status, 200, custom.text);
      assert.match(autoConf(), /^my\.custom = 'x'$/m);
      const searchPath = { name: 'search_path', value: '"$user", public', vartype: 'string' }; // what the spec before set
      assert.equal((await api.post('/configure', { body: { spec: spec([{ name: 'review_owner' }], [], [...base, searchPath]) } })).status, 200);
      assert.equal(autoConf(), before, 'my.custom reset');
    } else {
      // 15 and 16 refuse it: a 400 with the path of the setting
      assert.equal(custom.status, 400, custom.text);
      assert.deepEqual(custom.json.errors.map((e: any) => e.path), ['/spec/cluster/settings/1/value']);
    }

    // A later statement fails (CREATE DATABASE from a template that does not exist): the settings go back, and the reload with them.
    const failing = spec(
      [{ name: 'review_owner' }],
      [{ name: 'review_bad', owner: 'review_owner', options: [{ name: 'TEMPLATE', value: 'no_such_template', vartype: 'string' }] }],
      [...base, { name: 'work_mem', value: '8MB', vartype: 'string' }, { name: 'default_transaction_read_only', value: 'on', vartype: 'bool' }],
    );
    const failed = await api.post('/configure', { body: { spec: failing } });
    assert.equal(failed.status, 500, failed.text);
    assert.match(failed.json.error, /CreateAndAlterDatabases: .*no_such_template/);
    assert.equal(autoConf(), before, 'no setting left behind');
    await c.pollQueryUntil(`SELECT current_setting('work_mem') <> '8MB' AND current_setting('default_transaction_read_only') = 'off'`);
    // A spec that does set default_transaction_read_only applies, and so do the next ones (the worker's own sessions stay read-write).
    const ro = spec([{ name: 'review_owner' }, { name: 'review_ro' }], [], [...base, { name: 'default_transaction_read_only', value: 'on', vartype: 'bool' }]);
    assert.equal((await api.post('/configure', { body: { spec: ro } })).status, 200);
    ro.cluster.roles.push({ name: 'review_ro2' });
    const next = await api.post('/configure', { body: { spec: ro } });
    assert.equal(next.status, 200, next.text);
    assert.equal(await c.queryText(`SELECT count(*) FROM pg_roles WHERE rolname IN ('review_ro', 'review_ro2')`), '2');
    assert.equal((await api.post('/configure', { body: { spec: spec([{ name: 'review_owner' }], [], base) } })).status, 200);
  });

  test('passwords and role options are checked as PostgreSQL reads them; NOLOGIN is honoured; re-applies change nothing', async () => {
    const b64 = (n: number, fill: number) => Buffer.alloc(n, fill).toString('base64');
    const scram = `SCRAM-SHA-256$4096:${b64(16, 7)}$${b64(32, 1)}:${b64(32, 2)}`;
    const refused: [any, number, string, RegExp][] = [
      [{ name: 'r1', encrypted_password: 'SCRAM-SHA-256$1:x$y:z' }, 422, '/spec/cluster/roles/0/encrypted_password', /salt that is not base64/],
      [{ name: 'r1', encrypted_password: `SCRAM-SHA-256$4096:${b64(16, 7)}$${b64(31, 1)}:${b64(32, 2)}` }, 422, '/spec/cluster/roles/0/encrypted_password', /StoredKey/],
      [{ name: 'r1', options: [{ name: 'CONNECTION LIMIT', value: '-5', vartype: 'integer' }] }, 422, '/spec/cluster/roles/0/options/0/value', /-1/],
      [{ name: 'r1', options: [{ name: 'CONNECTION LIMIT', value: '9999999999', vartype: 'integer' }] }, 400, '/spec/cluster/roles/0/options/0/value', /at most/],
      [{ name: 'r1', options: [{ name: 'VALID UNTIL', value: 'tomorrow-ish', vartype: 'string' }] }, 400, '/spec/cluster/roles/0/options/0/value', /not a timestamp/],
      [{ name: 'r1', options: [{ name: 'VALID UNTIL', value: 'tomorrow', vartype: 'string' }] }, 400, '/spec/cluster/roles/0/options/0/value', /relative/],
      [{ name: 'r1', encrypted_password: 7 }, 422, '/spec/cluster/roles/0/encrypted_password', /^invalid spec: \/spec\/cluster\/roles\/0\/encrypted_password: must be string or null$/],
    ];
    for (const [role, status, where, why] of refused) {
      const r = await api.post('/configure', { body: { spec: spec([role]) } });
      assert.equal(r.status, status, r.text);
      assert.deepEqual(r.json.errors.map((e: any) => e.path), [where], r.text);
      assert.match(r.json.error, why);
    }
    const roles = [
      { name: 'review_owner' },
      { name: 'scram_role', encrypted_password: scram, options: [{ name: 'VALID UNTIL', value: 'infinity', vartype: 'string' }] },
      { name: 'md5_role', encrypted_password: md5Password('pw', 'md5_role'), options: [{ name: 'VALID UNTIL', value: '2031-02-03 04:05:06+00', vartype: 'string' }] },
      { name: 'group_role', options: [{ name: 'NOLOGIN', value: null, vartype: 'bool' }] },
    ];
    assert.equal((await api.post('/configure', { body: { spec: spec(roles) } })).status, 200);
    const got = await c.query<{ rolname: string; rolpassword: string; rolcanlogin: boolean }>(
      `SELECT rolname, rolpassword, rolcanlogin FROM pg_authid WHERE rolname IN ('scram_role', 'md5_role', 'group_role') ORDER BY 1`,
    );
    assert.deepEqual(got.map((r) => [r.rolname, r.rolpassword, r.rolcanlogin]), [
      ['group_role', null, false],
      ['md5_role', `md5${md5Password('pw', 'md5_role')}`, true],
      ['scram_role', scram, true],
    ]);
    assert.equal((await api.post('/configure', { body: { spec: spec(roles) } })).status, 200);
    assert.equal(await statements(), 0, 'SCRAM secrets, VALID UNTIL and NOLOGIN are not altered again');
  });

  test('delta operations that contradict each other or the cluster are refused with the path', async () => {
    await c.query(`CREATE ROLE own1; CREATE ROLE own2`);
    const cases: [any, string, RegExp][] = [
      [spec([], [], [], [{ action: 'rename_role', name: 'own1', new_name: 'tmp' }, { action: 'rename_role', name: 'own2', new_name: 'own1' }, { action: 'rename_role', name: 'tmp', new_name: 'own2' }]), '/spec/delta_operations/1/new_name', /already renamed/],
      [spec([], [], [], [{ action: 'rename_role', name: 'own1', new_name: 'x1' }, { action: 'rename_role', name: 'x1', new_name: 'x2' }]), '/spec/delta_operations/1/name', /already the new name/],
      [spec([], [], [], [{ action: 'rename_role', name: 'own1', new_name: 'same' }, { action: 'rename_role', name: 'own2', new_name: 'same' }]), '/spec/delta_operations/1/new_name', /already the new name/],
      [spec([{ name: 'own1' }], [], [], [{ action: 'delete_role', name: 'own1' }]), '/spec/delta_operations/0/name', /also in cluster\.roles/],
      [spec([], [{ name: 'review_db', owner: 'own1' }], [], [{ action: 'delete_db', name: 'review_db' }]), '/spec/delta_operations/0/name', /also in cluster\.databases/],
      [spec([], [{ name: 'review_db', owner: 'own1' }], [], [{ action: 'delete_role', name: 'own1' }]), '/spec/cluster/databases/0/owner', /role "own1" is deleted by \/delta_operations\/0/],
    ];
    for (const [s, where, why] of cases) {
      s.cluster.roles.unshift({ name: 'review_owner' });
      const r = await api.post('/configure', { body: { spec: s } });
      assert.equal(r.status, 400, r.text);
      assert.ok(r.json.errors.some((e: any) => e.path === where && why.test(e.message)), `${where} ${why}: ${r.text}`);
    }
  });

  test('a database created without connections is skipped in every database\'s work, as compute_ctl does', async () => {
    const s = spec([{ name: 'review_owner' }], [{ name: 'closed_db', owner: 'review_owner', options: [{ name: 'ALLOW_CONNECTIONS', value: 'false', vartype: 'bool' }] }]);
    const r = await api.post('/configure', { body: { spec: s } });
    assert.equal(r.status, 200, r.text);
    assert.equal(await c.queryText(`SELECT datallowconn FROM pg_database WHERE datname = 'closed_db'`), 'f');
    assert.equal((await api.post('/configure', { body: { spec: s } })).status, 200);
    const bad = await api.post('/configure', { body: { spec: spec([{ name: 'review_owner' }], [{ name: 'x_db', owner: 'review_owner', options: [{ name: 'ALLOW_CONNECTIONS', value: 'nope', vartype: 'bool' }] }]) } });
    assert.deepEqual([bad.status, bad.json.errors.map((e: any) => e.path)], [400, ['/spec/cluster/databases/0/options/0/value']]);
  });

  test('the activity monitor keeps running while the compute is failed', async () => {
    const failing = spec([{ name: 'review_owner' }], [{ name: 'review_bad', owner: 'review_owner', options: [{ name: 'TEMPLATE', value: 'no_such_template', vartype: 'string' }] }]);
    assert.equal((await api.post('/configure', { body: { spec: failing } })).status, 500);
    assert.equal((await api.get('/status')).json.status, 'failed');
    const since = Date.now();
    const client = await c.connect({ user: 'review_owner' });
    const busy = client.query('SELECT pg_sleep(1.5)');
    await waitFor(async () => Date.parse((await api.get('/status')).json.last_active ?? '0') >= since, { what: 'last_active to move', timeoutMs: 10_000 });
    await busy;
    await client.end();
  });

  test('HTTP: 413 before reading a large body (and without 100 Continue), x-request-id checked, paths as sent, duplicate query fields', async () => {
    const big = await raw(port, 'POST /configure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17000000\r\n\r\n');
    assert.match(big.text, /^HTTP\/1\.1 413 /);
    assert.match(big.text, /request body is larger than 16777216 bytes/);
    const expect = await raw(port, 'POST /configure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 17000000\r\nExpect: 100-continue\r\n\r\n');
    assert.match(expect.text, /^HTTP\/1\.1 413 /, 'no 100 Continue first');
    const ok = await raw(port, 'POST /configure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n', '', 1000);
    assert.match(ok.text, /^HTTP\/1\.1 100 Continue/, 'a body of acceptable size gets 100 Continue');
    // Chunked, no length: read to the end, then 413 (no reset).
    const chunk = Buffer.alloc(1024 * 1024, 0x20);
    let body = '';
    for (let i = 0; i < 17; i++) body += `${chunk.length.toString(16)}\r\n${chunk.toString('latin1')}\r\n`;
    body += '0\r\n\r\n';
    const chunked = await raw(port, 'POST /configure HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n', Buffer.from(body, 'latin1'), 20_000);
    assert.match(chunked.text, /^HTTP\/1\.1 413 /);

    const offset = c.logOffset();
    const spoof = `a b\nLOG:  fake ${'x'.repeat(3000)}`;
    const r = await raw(port, `GET /status HTTP/1.1\r\nHost: x\r\nx-request-id: ${spoof.replace('\n', ' ')}\r\nConnection: close\r\n\r\n`);
    const id = /x-request-id: (\S+)/i.exec(r.text)?.[1];
    assert.match(String(id), /^[0-9a-f-]{36}$/, 'replaced by a new id');
    await c.waitForLog(new RegExp(`request_id=${id} GET /status 200 .*x-request-id given was not`), offset);
    assert.doesNotMatch(c.readLog(offset), /fake/);
    assert.equal((await api.get('/status', { headers: { 'x-request-id': 'good-id.1' } })).headers['x-request-id'], 'good-id.1');

    const dbl = await raw(port, 'GET //status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.match(dbl.text, /^HTTP\/1\.1 404 [^]*"no route \/\/status"/);
    const two = await api.post('/terminate?mode=fast&mode=immediate');
    assert.deepEqual([two.status, two.json.error], [400, 'failed to deserialize query string: duplicate field `mode`']);
  });

  test('connections are limited and timed out: idle sockets do not take the API or the worker down; a body that never comes is answered 408', async () => {
    const sockets: net.Socket[] = [];
    let closedEarly = 0;
    await Promise.all(
      Array.from({ length: 300 }, () =>
        new Promise<void>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => resolve());
          s.on('error', () => resolve());
          s.on('close', () => closedEarly++);
          sockets.push(s);
        }),
      ),
    );
    await sleep(500);
    assert.ok(closedEarly >= 300 - 128 - 5, `connections beyond the limit are closed at once (${closedEarly} closed)`);
    // The worker itself goes on (its descriptors are not exhausted).
    assert.match(await c.queryText(`SELECT state FROM tsworker.workers WHERE name = 'compute'`), /^(running|waiting)$/);
    const offset = c.logOffset();
    // Idle sockets are closed once the headers timeout passes; then the API answers again.
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.status === 200, { what: 'the API to answer again', timeoutMs: 30_000, intervalMs: 500 });
    await waitFor(() => sockets.every((s) => s.destroyed || s.closed), { what: 'every idle socket to be closed', timeoutMs: 15_000 });
    assert.doesNotMatch(c.readLog(offset), /EMFILE|too many open files/i);
    const slow = await slowBody;
    assert.ok(slow.closed, 'the slow body was cut');
    assert.match(slow.text, /^HTTP\/1\.1 408 /);
    assert.ok(slow.ms < 60_000);
  });
});

describe('compute: reloads, pg_terminate_backend, a shutdown during /configure, the saved spec at start', () => {
  const COMPUTE_ID = 'compute-review-1';
  let c: Cluster;
  let dir: string;
  let port: number;
  let key: TestKey;
  let token: string;
  const setting = async (name: string, value: string) => {
    const offset = c.logOffset();
    await c.query(`ALTER SYSTEM SET tsworker_compute.${name} = '${value}'`);
    await c.query('SELECT pg_reload_conf()');
    return offset;
  };

  before(async () => {
    dir = sharedDir();
    key = await makeKey('EdDSA', 'k1');
    writeJwks(path.join(dir, 'jwks.json'), [key]);
    port = await getFreePort();
    c = await Cluster.create('compute-review-reload', {
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'compute',
        'tsworker.restart_interval': 1,
        'tsworker_compute.listen': `127.0.0.1:${port}`,
        'tsworker_compute.jwks': path.join(dir, 'jwks.json'),
        'tsworker_compute.compute_id': COMPUTE_ID,
      },
    });
    clusters.push(c);
    await c.query('CREATE EXTENSION pg_tsworker');
    token = await makeToken(key, { compute_id: COMPUTE_ID });
    await waitFor(async () => (await new ApiClient(`http://127.0.0.1:${port}`, token).get('/status').catch(() => undefined))?.status === 200, { what: 'the API' });
  });

  test('TLS switched on and off by reload; unreadable files are named and never served as plain HTTP', async () => {
    const http = new ApiClient(`http://127.0.0.1:${port}`, token);
    const cert = makeCertificate(dir);
    const https = new ApiClient(`https://127.0.0.1:${port}`, token, cert.ca);
    await c.query(`ALTER SYSTEM SET tsworker_compute.cert_path = '${cert.cert}'`);
    let offset = await setting('key_path', cert.key);
    await c.waitForLog(/restarting the compute API on \S+ over HTTPS/, offset);
    await waitFor(async () => (await https.get('/status').catch(() => undefined))?.status === 200, { what: 'HTTPS' });
    await assert.rejects(http.get('/status'));
    offset = await setting('key_path', path.join(dir, 'missing.key'));
    await c.waitForLog(/TLS files not reloaded: could not read tsworker_compute\.key_path "[^"]*missing\.key"/, offset);
    assert.equal((await https.get('/status')).status, 200, 'HTTPS keeps its files');
    await c.query(`ALTER SYSTEM RESET tsworker_compute.cert_path`);
    offset = await setting('key_path', '');
    await c.waitForLog(/over plain HTTP/, offset);
    await waitFor(async () => (await http.get('/status').catch(() => undefined))?.status === 200, { what: 'plain HTTP again' });
    await c.query(`ALTER SYSTEM SET tsworker_compute.cert_path = '${cert.cert}'`);
    offset = await setting('key_path', path.join(dir, 'missing.key'));
    await c.waitForLog(/TLS asked for but could not read tsworker_compute\.key_path .*stops serving plain HTTP/, offset);
    await assert.rejects(http.get('/status'), 'not served over plain HTTP when TLS is asked for');
    await c.query(`ALTER SYSTEM RESET tsworker_compute.cert_path`);
    offset = await setting('key_path', '');
    await waitFor(async () => (await http.get('/status').catch(() => undefined))?.status === 200, { what: 'plain HTTP after the fix' });
  });

  test('the key set and compute id: a bad key set fails closed with the reason logged; cleared values are applied', async () => {
    const api = new ApiClient(`http://127.0.0.1:${port}`, token);
    const bad = path.join(dir, 'bad-jwks.json');
    fs.writeFileSync(bad, '{"keys": "nope"}');
    fs.chmodSync(bad, 0o644);
    let offset = await setting('jwks', bad);
    await c.waitForLog(/bad-jwks\.json.*every request that needs authorization is refused \(401\)/, offset);
    const refused = await api.get('/status');
    assert.deepEqual([refused.status, refused.json.error], [401, 'failed to verify authorization token']);
    await c.waitForLog(/GET \/status 401 .*no usable key set: tsworker_compute\.jwks/, offset);
    offset = await setting('jwks', path.join(dir, 'jwks.json'));
    await waitFor(async () => (await api.get('/status')).status === 200, { what: 'the key set back' });
    offset = await setting('compute_id', '');
    await c.waitForLog(/tsworker_compute\.compute_id is now ""/, offset);
    assert.equal((await api.get('/status')).status, 403, 'a cleared compute id is applied');
    offset = await setting('jwks', '');
    await c.waitForLog(/tsworker_compute\.jwks cleared: requests are no longer authorized/, offset);
    assert.equal((await api.get('/status', { token: null })).status, 200, 'loopback without a key set');
    await c.query(`ALTER SYSTEM SET tsworker_compute.compute_id = '${COMPUTE_ID}'`);
    await setting('jwks', path.join(dir, 'jwks.json'));
    await waitFor(async () => (await api.get('/status', { token: null })).status === 400, { what: 'authorization again' });
  });

  test('a spec file that is not JSON leaves the compute failed, like one the schema refuses', async () => {
    const api = new ApiClient(`http://127.0.0.1:${port}`, token);
    const file = path.join(dir, 'spec.json');
    fs.writeFileSync(file, '{"format_version": 1, "cluster": ');
    fs.chmodSync(file, 0o644);
    const offset = await setting('spec_path', file);
    await c.waitForLog(/the spec from spec_path \S+ was not applied: it is not JSON/, offset);
    const st = (await api.get('/status')).json;
    assert.equal(st.status, 'failed');
    assert.match(st.error, /not JSON/);
    fs.writeFileSync(file, JSON.stringify(spec([{ name: 'from_file' }])));
    await c.reload();
    await waitFor(async () => (await api.get('/status')).json.status === 'running', { what: 'the fixed file to apply' });
  });

  test('pg_terminate_backend() of the worker: it starts again and serves the API', async () => {
    const api = new ApiClient(`http://127.0.0.1:${port}`, token);
    const offset = c.logOffset();
    const pid = await c.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'compute'`);
    await c.query(`SELECT pg_terminate_backend(${pid})`);
    await c.waitForLog(/stopped by SIGTERM while the server is not shutting down/, offset);
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.status === 200, { what: 'the API after the restart', timeoutMs: 30_000 });
    assert.notEqual(await c.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'compute'`), pid);
    const m = await api.get('/metrics', { token: null });
    assert.match(m.text, /# TYPE tsworker_worker_restarts_total counter\ntsworker_worker_restarts_total\{worker="compute"\} 1\n/);
  });

  test('a shutdown during /configure answers the request and logs it; the saved spec is checked again at start', async () => {
    const api = new ApiClient(`http://127.0.0.1:${port}`, token);
    await c.query(`ALTER SYSTEM RESET tsworker_compute.spec_path`);
    await c.reload();
    await sleep(300);
    const dbs = Array.from({ length: 25 }, (_, i) => ({ name: `slow_${i}`, owner: 'from_file' }));
    const offset = c.logOffset();
    const pending = api.post('/configure', { body: { spec: spec([{ name: 'from_file' }], dbs) } });
    await waitFor(async () => ['configuration', 'configuration_pending'].includes((await api.get('/status')).json.status), { intervalMs: 5, what: 'the apply to start' });
    await c.stop('fast');
    const r = await pending;
    assert.ok(r.status === 500 || r.status === 503, `answered: ${r.status} ${r.text}`);
    assert.match(c.readLog(offset), /POST \/configure 50[03] /);

    // A saved spec that demotes the bootstrap superuser (as an older version could save) is refused at start.
    const saved = path.join(c.dataDir, 'pg_tsworker', 'compute_spec.json');
    const doc = JSON.parse(fs.readFileSync(saved, 'utf8'));
    doc.spec.cluster.roles.push({ name: 'postgres', encrypted_password: null, options: [{ name: 'NOSUPERUSER', value: null, vartype: 'bool' }] });
    fs.writeFileSync(saved, JSON.stringify(doc));
    await c.start();
    await waitFor(async () => (await api.get('/status').catch(() => undefined))?.json?.status === 'failed', { what: 'the saved spec refused' });
    assert.match((await api.get('/status')).json.error, /the saved spec was not applied: .*\/cluster\/roles\/\d+\/name: refused: role "postgres" is a system role/);
    assert.equal(await c.queryText(`SELECT rolsuper FROM pg_authid WHERE rolname = 'postgres'`), 't');
  });
});
