/**
 * [control] Status and control from SQL: the tsworker.workers view,
 * launch/stop/wake/reload, privileges, tsworker.module_path, crash loops.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { Cluster, waitFor } from './harness/cluster';
import { CRASH_RESTART, CUSTOM_WAIT_EVENTS, idleWaitEvent, installFixtures, logLines } from './helpers';

describe('control plane', () => {
  let c: Cluster;
  let modules: string;
  let outside: string;

  const row = async (name: string) =>
    (await c.query('SELECT * FROM tsworker.workers WHERE name = $1', [name]))[0];
  const asRole = (role: string) => ({ user: role });

  before(async () => {
    c = await Cluster.create('control', { start: false });
    modules = installFixtures(c, 'control');
    outside = path.join(c.baseDir, 'outside');
    fs.mkdirSync(outside, { mode: 0o755 });
    fs.copyFileSync(path.join(modules, 'ctl.ts'), path.join(outside, 'ctl.ts'));
    fs.chmodSync(path.join(outside, 'ctl.ts'), 0o644);
    c.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': `${modules}/ctl.ts, crashy=${modules}/ctl.ts, ${modules}/never.ts, ${modules}/always.ts, ${modules}/backoff.ts`,
      'tsworker_crashy.fail': 'on',
      // placeholders of a launched worker (test 'PostgreSQL checks launch settings ...')
      'tsworker_set1.limit': 99,
      'tsworker_set1.label': 'from conf',
      'tsworker_set1.flag': 'off',
      'tsworker_set1.nap_time': 5, // a typo of nap: said when the worker starts
      'tsworker.restart_interval': 1,
      'tsworker.crash_loop_failures': 3,
      'tsworker.crash_loop_window': '1min',
      'tsworker.max_workers': 8,
      'tsworker.module_path': modules,
      max_worker_processes: 16,
    });
    await c.start();
    await c.query(`
      CREATE EXTENSION pg_tsworker;
      CREATE ROLE alice LOGIN;
      CREATE ROLE bob LOGIN;
      GRANT tsworker_admin TO alice;
    `);
  });

  after(async () => {
    await c?.cleanup();
  });

  test('the view shows a configured worker waiting, its status, and its loops after wake', async () => {
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.workers WHERE name = 'ctl'`);
    const r = await row('ctl');
    assert.equal(r.module, `${modules}/ctl.ts`);
    assert.equal(r.database, 'postgres');
    assert.equal(r.dynamic, false);
    assert.ok(r.pid > 0);
    assert.ok(r.started_at instanceof Date);
    assert.equal(r.status.who, 'postgres');
    assert.equal(r.status.greeting, 'hello');
    const loops = Number(r.loops);
    const wakes = r.status.wakes as number;

    assert.equal(await c.queryOne(`SELECT tsworker.wake('ctl')`), true);
    await c.pollQueryUntil(`SELECT (status->>'wakes')::int = ${wakes + 1} FROM tsworker.workers WHERE name = 'ctl'`);
    await c.pollQueryUntil(`SELECT state = 'waiting' AND loops > ${loops} FROM tsworker.workers WHERE name = 'ctl'`);

    // its own name on 17+, Extension before (see the wait-event test below)
    await c.pollQueryUntil(
      `SELECT backend_type = 'ctl' AND wait_event_type = 'Extension' AND wait_event = '${idleWaitEvent('ctl')}'
         FROM pg_stat_activity WHERE pid = ${r.pid}`,
    );
  });

  test('a crash-looping worker is disabled, shown as failed, and started again by tsworker.reload()', async () => {
    await c.pollQueryUntil(`SELECT disabled AND state = 'failed' AND pid IS NULL FROM tsworker.workers WHERE name = 'crashy'`);
    const r = await row('crashy');
    assert.equal(r.restarts, 2, 'three starts: the first and two restarts');
    assert.match(r.last_error, /worker failed: Error: ctl was told to fail/);
    assert.ok(r.last_error_at instanceof Date);
    // Not restarted any more (restart_interval is 1 s).
    await new Promise((res) => setTimeout(res, 2500));
    assert.equal((await row('crashy')).restarts, 2);
    assert.equal((await row('crashy')).pid, null);

    // reload() starts what is neither running nor due to run: crashy among others
    // (never, and backoff once disabled).
    assert.ok((await c.queryOne('SELECT tsworker.reload()')) >= 1);
    await waitFor(async () => (await row('crashy')).restarts >= 3, { what: 'crashy to start again' });
    assert.deepEqual(logLines(c, CRASH_RESTART), []);
  });

  test('launch, wake and stop a worker from SQL; clear errors for bad calls', async () => {
    const pid = await c.queryOne(`SELECT tsworker.launch('dyn1', $1, '{"greeting": "hi"}')`, [`${modules}/ctl.ts`]);
    assert.ok(pid > 0);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.workers WHERE name = 'dyn1'`);
    const r = await row('dyn1');
    assert.equal(r.pid, pid);
    assert.equal(r.dynamic, true);
    assert.equal(r.status.greeting, 'hi', 'launch settings reach w.settings');

    const wakes = r.status.wakes as number;
    assert.equal(await c.queryOne(`SELECT tsworker.wake('dyn1')`), true);
    await c.pollQueryUntil(`SELECT (status->>'wakes')::int = ${wakes + 1} FROM tsworker.workers WHERE name = 'dyn1'`);

    await assert.rejects(c.query(`SELECT tsworker.launch('dyn1', $1)`, [`${modules}/ctl.ts`]), /worker "dyn1" already exists and is running/);
    assert.equal(await c.queryOne(`SELECT tsworker.wake('nope')`), false, 'waking no worker is not an error');
    await assert.rejects(c.query(`SELECT tsworker.stop('nope')`), /worker "nope" does not exist/);
    await assert.rejects(c.query(`SELECT tsworker.launch('bad-name', $1)`, [`${modules}/ctl.ts`]), /invalid worker name "bad-name"/);
    await assert.rejects(c.query(`SELECT tsworker.launch('x', 'no_such_builtin')`), /"no_such_builtin" is not a built-in worker/);
    await assert.rejects(c.query(`SELECT tsworker.launch('x', 'missing.ts')`), /module "missing\.ts" was not found in tsworker\.module_path/);
    await assert.rejects(c.query(`SELECT tsworker.launch('x', $1, '[1]')`, [`${modules}/ctl.ts`]), /settings must be a JSON object/);

    assert.equal(await c.queryOne(`SELECT tsworker.stop('dyn1')`), true);
    await c.pollQueryUntil(`SELECT state = 'stopped' AND pid IS NULL FROM tsworker.workers WHERE name = 'dyn1'`);
    await c.waitForLog(/tsworker "dyn1": stopped on shutdown request from tsworker\.stop\(\) or tsworker\.restart\(\)/);
    // A stopped worker can be launched again under its name.
    const again = await c.queryOne(`SELECT tsworker.launch('dyn1', $1)`, [`${modules}/ctl.ts`]);
    assert.ok(again > 0 && again !== pid);
    assert.equal(await c.queryOne(`SELECT tsworker.stop('dyn1')`), true);
    await c.pollQueryUntil(`SELECT state = 'stopped' FROM tsworker.workers WHERE name = 'dyn1'`);
  });

  test('PostgreSQL checks launch settings and placeholders with its own rules; a reload keeps launch values', async () => {
    const mod = `${modules}/settings.ts`;
    const off = c.logOffset();
    // parse_bool's prefixes, hex integers, a unit rounded into the base unit, exponents: as postgresql.conf takes them
    await c.query(`SELECT tsworker.launch('set1', $1, $2)`, [mod, JSON.stringify({ flag: 'ye', n: '0x10', nap: '1500ms', ratio: '25e-2', mode: 'slow', index: 2 })]);
    await c.pollQueryUntil(`SELECT status ? 'flag' FROM tsworker.workers WHERE name = 'set1'`);
    let st = (await row('set1')).status;
    assert.deepEqual(
      { flag: st.flag, n: st.n, nap: st.nap, ratio: st.ratio, mode: st.mode, index: st.index },
      { flag: true, n: 16, nap: 2, ratio: 0.25, mode: 'slow', index: 2 },
    );
    // postgresql.conf's placeholders: a good one is taken, a bad one is PostgreSQL's WARNING and the default stays
    assert.equal(st.label, 'from conf');
    assert.equal(st.limit, 7);
    await c.waitForLog(/set1 WARNING:  99 is outside the valid range for parameter "tsworker_set1\.limit" \(1 \.\. 9\)/, off);
    await c.waitForLog(/set1 WARNING:  invalid configuration parameter name "tsworker_set1\.nap_time", removing it/, off);
    // a reload takes new lines from postgresql.conf, but never replaces a launch value
    const offReload = c.logOffset();
    c.appendConf({ 'tsworker_set1.label': 'reloaded', 'tsworker_set1.flag': 'off', 'tsworker_set1.n': 3, 'tsworker_set1.ratio': 'lots', 'tsworker_set1.slots': 9 });
    await c.reload();
    await c.pollQueryUntil(`SELECT status->>'reloads' = '1' FROM tsworker.workers WHERE name = 'set1'`);
    st = (await row('set1')).status;
    assert.equal(st.label, 'reloaded');
    assert.equal(st.flag, true);
    assert.equal(st.n, 16);
    // the bad lines are said again at the reload, in the worker's log lines (the postmaster does not know these
    // parameters, and any other process says a bad line at DEBUG2 only); the values before them stay
    await c.waitForLog(/set1 WARNING:  99 is outside the valid range for parameter "tsworker_set1\.limit" \(1 \.\. 9\)/, offReload);
    await c.waitForLog(/set1 WARNING:  invalid value for parameter "tsworker_set1\.ratio": "lots"/, offReload);
    assert.equal(st.limit, 7);
    assert.equal(st.ratio, 0.25);
    assert.equal(st.slots, 3, "a context: 'postmaster' setting keeps its start value");
    assert.equal(await c.queryOne(`SELECT tsworker.stop('set1')`), true);

    // bad values are PostgreSQL's errors, every one named, and nothing starts
    const err = await c
      .query(`SELECT tsworker.launch('set2', $1, $2)`, [mod, JSON.stringify({ flag: 'maybe', n: '0x1000', nap: '5 parsecs', mode: 'medium', ratio: 2, nope: 1, index: 1.5 })])
      .then(() => assert.fail('launch should fail'), (e: { code?: string; message: string; detail?: string }) => e);
    assert.equal(err.code, '22023');
    assert.equal(err.message, 'invalid settings for worker "set2"');
    const detail = err.detail ?? '';
    assert.match(detail, /setting "flag": parameter "tsworker_set2\.flag" requires a Boolean value/);
    assert.match(detail, /setting "n": 4096 is outside the valid range for parameter "tsworker_set2\.n" \(0 \.\. 100\)/);
    assert.match(detail, /setting "nap": invalid value for parameter "tsworker_set2\.nap": "5 parsecs" \(Valid units for this parameter are "us", "ms", "s", "min", "h", and "d"\)/);
    assert.match(detail, /setting "mode": invalid value for parameter "tsworker_set2\.mode": "medium" \(Available values: fast, slow\)/);
    assert.match(detail, /setting "ratio": 2 is outside the valid range for parameter "tsworker_set2\.ratio" \(0 \.\. 1\)/);
    assert.match(detail, /setting "nope" is not declared by worker "set2" \(it declares: flag, n, nap, limit, ratio, mode, label, slots\)/);
    assert.match(detail, /setting "index" must be an integer >= 0, not 1\.5/);
    assert.equal(await row('set2'), undefined);

    // one session, a module whose declarations change between two launches: each check uses the declarations
    // of now (the session defines no parameter that would keep the first ones)
    const changing = `${modules}/settings_changing.ts`;
    const session = await c.connect();
    try {
      for (const [max, value, ok] of [[10, 50, false], [100, 50, true], [3, 8, false]] as const) {
        fs.writeFileSync(changing, fs.readFileSync(mod, 'utf8').replace('max: 100', `max: ${max}`));
        const r = await session.query(`SELECT tsworker.launch('set3', $1, $2)`, [changing, JSON.stringify({ n: value })]).then(
          () => null,
          (e: { code?: string; detail?: string }) => e,
        );
        if (ok) {
          assert.equal(r, null, `n = ${value} within 0 .. ${max}`);
          await c.pollQueryUntil(`SELECT (status->>'n')::int = ${value} FROM tsworker.workers WHERE name = 'set3'`);
          assert.equal(await c.queryOne(`SELECT tsworker.stop('set3')`), true);
        } else {
          assert.equal(r?.code, '22023', `n = ${value} outside 0 .. ${max}`);
          assert.match(r?.detail ?? '', new RegExp(`setting "n": ${value} is outside the valid range for parameter "tsworker_set3\\.n" \\(0 \\.\\. ${max}\\)`));
        }
      }
      assert.equal(await session.query(`SELECT count(*) FROM pg_settings WHERE name LIKE 'tsworker_set3.%'`).then((x) => x.rows[0].count), '0', 'nothing defined in the calling session');
    } finally {
      await session.end();
    }
    await c.query(`SELECT tsworker.stop('set3')`).catch(() => undefined);
  });

  test('a full slot table is a clear error', async () => {
    const launched: string[] = [];
    let refused: Error | undefined;
    try {
      for (let i = 0; i < 9 && !refused; i++) {
        try {
          await c.query(`SELECT tsworker.launch($1, $2)`, [`fill${i}`, `${modules}/ctl.ts`]);
          launched.push(`fill${i}`);
        } catch (e) {
          refused = e as Error;
        }
      }
      assert.ok(refused, 'a launch beyond tsworker.max_workers must fail');
      assert.match(refused.message, /all 8 worker slots are in use/);
      assert.ok(launched.length >= 1);
    } finally {
      for (const n of launched) await c.query(`SELECT tsworker.stop($1)`, [n]);
    }
    for (const n of launched) await c.pollQueryUntil(`SELECT state = 'stopped' FROM tsworker.workers WHERE name = '${n}'`);
  });

  test('restart policies: never stays down as failed; always restarts without counting as a crash loop', async () => {
    await c.pollQueryUntil(`SELECT state = 'failed' AND pid IS NULL FROM tsworker.workers WHERE name = 'never'`);
    await c.waitForLog(/tsworker "never": worker failed: Error: never: failing once, for good[\s\S]*?\(restart: never\)/);
    await c.waitForLog(/tsworker "never": exiting with code 0/);
    await c.pollQueryUntil(`SELECT state = 'failed' AND pid IS NULL FROM tsworker.workers WHERE name = 'never'`);
    const before = (await row('never')).restarts;
    await new Promise((res) => setTimeout(res, 2500)); // restart_interval is 1 s
    const never = await row('never');
    assert.equal(never.restarts, before, 'not restarted');
    assert.equal(never.pid, null);
    assert.equal(never.disabled, false);

    // crash_loop_failures is 3: four runs prove restarts are not failures.
    await waitFor(async () => (await row('always')).restarts >= 3, { what: 'always to restart 3 times' });
    const always = await row('always');
    assert.equal(always.disabled, false);
    assert.equal(always.last_error, null);
  });

  test('after repeated failures a worker backs off, doubling up to backoffMax, until the crash-loop limit', async () => {
    await c.waitForLog(/tsworker "backoff": 1 recent failure\(s\): waiting 1000 ms before starting/);
    await c.waitForLog(/tsworker "backoff": 2 recent failure\(s\): waiting 1500 ms before starting/);
    await c.pollQueryUntil(`SELECT disabled AND state = 'failed' FROM tsworker.workers WHERE name = 'backoff'`);
  });

  test('declared settings are parameters with bounds; a bad value is refused at reload', async () => {
    const [slots] = await c.query(
      `SELECT vartype, min_val, max_val, boot_val, context, short_desc FROM pg_settings WHERE name = 'tsworker_ctl.slots'`,
    );
    assert.deepEqual(slots, { vartype: 'integer', min_val: '1', max_val: '10', boot_val: '3', context: 'sighup', short_desc: 'A bounded integer.' });
    const [fail] = await c.query(`SELECT vartype, setting FROM pg_settings WHERE name = 'tsworker_crashy.fail'`);
    assert.deepEqual(fail, { vartype: 'bool', setting: 'on' });
    const off = c.logOffset();
    c.appendConf({ 'tsworker_ctl.slots': 50, 'tsworker_ctl.no_such_setting': 1 });
    await c.reload();
    await c.waitForLog(/50 is outside the valid range for parameter "tsworker_ctl\.slots" \(1 \.\. 10\)/, off);
    await c.waitForLog(/invalid configuration parameter name "tsworker_ctl\.no_such_setting"/, off);
    assert.equal(await c.queryOne(`SELECT setting FROM pg_settings WHERE name = 'tsworker_ctl.slots'`), '3');
  });

  test('a granted role launches inside tsworker.module_path and its worker runs as that role', async () => {
    const pid = await c.queryOne(`SELECT tsworker.launch('alices', 'ctl.ts')`, [], asRole('alice'));
    assert.ok(pid > 0);
    await c.pollQueryUntil(`SELECT status->>'who' = 'alice' FROM tsworker.workers WHERE name = 'alices'`);
    assert.equal((await c.query(`SELECT usename FROM pg_stat_activity WHERE pid = $1`, [pid]))[0].usename, 'alice');
    assert.equal(await c.queryOne(`SELECT tsworker.wake('alices')`, [], asRole('alice')), true);
    const seen = await c.query(`SELECT name FROM tsworker.workers`, [], asRole('alice'));
    assert.ok(seen.some((r) => r.name === 'alices'));
    assert.equal(await c.queryOne(`SELECT tsworker.stop('alices')`, [], asRole('alice')), true);
  });

  test('a granted role cannot launch outside tsworker.module_path, through .. or a symlink', async () => {
    const denied = /permission denied to launch module/;
    await assert.rejects(c.query(`SELECT tsworker.launch('a1', $1)`, [`${outside}/ctl.ts`], asRole('alice')), denied);
    await assert.rejects(c.query(`SELECT tsworker.launch('a2', '../outside/ctl.ts')`, [], asRole('alice')), denied);
    fs.symlinkSync(path.join(outside, 'ctl.ts'), path.join(modules, 'link.ts'));
    await assert.rejects(c.query(`SELECT tsworker.launch('a3', 'link.ts')`, [], asRole('alice')), denied);
    // nor a built-in worker: it would connect, run commands or promote as the server's OS user
    for (const builtin of ['walarchive', 'promoter', 'aggregate']) {
      await assert.rejects(
        c.query(`SELECT tsworker.launch('a4', $1, '{"source_conninfo": "user=postgres"}')`, [builtin], asRole('alice')),
        (e: { code?: string; message: string }) => e.code === '42501' && e.message === `permission denied to launch built-in worker "${builtin}"`,
      );
    }
    // A superuser may.
    const pid = await c.queryOne(`SELECT tsworker.launch('su_outside', $1)`, [`${outside}/ctl.ts`]);
    assert.ok(pid > 0);
    await c.query(`SELECT tsworker.stop('su_outside')`);
  });

  test('roles without tsworker_admin are refused', async () => {
    for (const sql of [
      `SELECT tsworker.launch('b1', 'ctl.ts')`,
      `SELECT tsworker.stop('ctl')`,
      `SELECT tsworker.wake('ctl')`,
      `SELECT tsworker.reload()`,
      `SELECT * FROM tsworker.workers`,
    ]) {
      await assert.rejects(c.query(sql, [], asRole('bob')), /permission denied for (function|view|schema)/, sql);
    }
  });

  test('a module writable by other OS users is refused', async () => {
    const file = path.join(modules, 'open.ts');
    fs.copyFileSync(path.join(modules, 'ctl.ts'), file);
    fs.chmodSync(file, 0o666);
    await assert.rejects(c.query(`SELECT tsworker.launch('open', $1)`, [file]), /refusing to launch module: module ".*open\.ts" is writable by other OS users \(mode 0666\)/);
  });

  // 0.1 → 0.2 from a cluster created at 0.1 is test/extension.test.ts.
  test('the extension is created at its default version, and UPDATE is a no-op there', async () => {
    assert.equal(await c.queryOne(`SELECT extversion FROM pg_extension WHERE extname = 'pg_tsworker'`), '0.2');
    await c.query(`ALTER EXTENSION pg_tsworker UPDATE`);
    assert.equal(await c.queryOne(`SELECT extversion FROM pg_extension WHERE extname = 'pg_tsworker'`), '0.2');
  });
});

// On a quiet cluster of its own: elsewhere, restarting workers make latches
// fire now and then (sinval catch-up), which would hide a lost wake-up.
describe('wake-ups', () => {
  let c: Cluster;
  let modules: string;
  const row = async (name: string) =>
    (await c.query('SELECT * FROM tsworker.workers WHERE name = $1', [name]))[0];

  before(async () => {
    c = await Cluster.create('wakeups', { start: false });
    modules = installFixtures(c, 'control');
    c.appendConf({ shared_preload_libraries: 'pg_tsworker' });
    await c.start();
    await c.query('CREATE EXTENSION pg_tsworker');
  });

  after(async () => {
    await c?.cleanup();
  });

  test('a tsworker.wake() during a lock wait inside a query is not lost', async () => {
    await c.query('CREATE TABLE lockme()');
    await c.query(`SELECT tsworker.launch('locker', $1)`, [`${modules}/locker.ts`]);
    const served = async () => Number((await row('locker')).status.served);
    // Let any wake-up pending from the start be served: the count is stable and the worker waits.
    let base = -1;
    await waitFor(
      async () => {
        const before = await served();
        await new Promise((res) => setTimeout(res, 500));
        const r = await row('locker');
        if (Number(r.status.served) !== before || r.state !== 'waiting') return false;
        base = before;
        return true;
      },
      { what: 'locker to settle' },
    );

    const holder = await c.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE lockme IN ACCESS EXCLUSIVE MODE');
      // at once, not at commit: the wake must arrive while the lock is held
      await holder.query(`SELECT tsworker.wake('locker', false)`);
      await new Promise((res) => setTimeout(res, 500));
      const [act] = (await holder.query(`SELECT wait_event_type FROM pg_stat_activity WHERE backend_type = 'locker'`)).rows;
      assert.equal(act.wait_event_type, 'Lock', 'the worker waits for the lock inside its query');
      // This wake-up's latch is reset by the lock wait inside the query.
      await holder.query(`SELECT tsworker.wake('locker', false)`);
      await new Promise((res) => setTimeout(res, 500));
      await holder.query('COMMIT');
    } finally {
      await holder.end();
    }
    await waitFor(async () => (await served()) === base + 2, { timeoutMs: 2_000, intervalMs: 50, what: 'both wake-ups served' });
    await c.query(`SELECT tsworker.stop('locker')`);
  });


  test('a waiting worker shows its own name as wait_event on 17+, Extension before 17', async (t) => {
    const pid = await c.queryOne(`SELECT tsworker.launch('waiter', $1)`, [`${modules}/ctl.ts`]);
    await c.pollQueryUntil(`SELECT state = 'waiting' FROM tsworker.workers WHERE name = 'waiter'`);
    await c.pollQueryUntil(
      `SELECT wait_event_type || '/' || wait_event FROM pg_stat_activity WHERE pid = ${pid}`,
      `Extension/${idleWaitEvent('waiter')}`,
    );
    if (!CUSTOM_WAIT_EVENTS) {
      t.diagnostic('PostgreSQL 15 and 16 have no custom wait events: the fallback, Extension, was checked');
      assert.equal(await c.queryText(`SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'waiter'`), '0');
      await c.query(`SELECT tsworker.stop('waiter')`);
      return;
    }
    // 17+: a wait event of type Extension in pg_wait_events, and a worker started
    // again under the same name reuses it instead of taking another of the
    // cluster's 128 custom wait events.
    const extensionEvents = `SELECT count(*) FROM pg_wait_events WHERE type = 'Extension'`;
    assert.equal(await c.queryText(`SELECT count(*) FROM pg_wait_events WHERE type = 'Extension' AND name = 'waiter'`), '1');
    const before = await c.queryText(extensionEvents);
    await c.query(`SELECT tsworker.stop('waiter')`);
    await c.pollQueryUntil(`SELECT state = 'stopped' AND pid IS NULL FROM tsworker.workers WHERE name = 'waiter'`);
    const again = await c.queryOne(`SELECT tsworker.launch('waiter', $1)`, [`${modules}/ctl.ts`]);
    assert.ok(again !== pid);
    await c.pollQueryUntil(`SELECT wait_event FROM pg_stat_activity WHERE pid = ${again}`, 'waiter');
    assert.equal(await c.queryText(extensionEvents), before, 'no second wait event for the same name');
    await c.query(`SELECT tsworker.stop('waiter')`);
  });

  test('pg_stat_activity shows the statement a worker runs through SPI', async () => {
    const pid = await c.queryOne(`SELECT tsworker.launch('sleeper', $1)`, [`${modules}/sleeper.ts`]);
    await c.query(`SELECT tsworker.wake('sleeper')`);
    await c.pollQueryUntil(
      `SELECT state = 'active' AND query = 'SELECT pg_sleep(1.5) /* sleeper */' AND backend_type = 'sleeper'
         FROM pg_stat_activity WHERE pid = ${pid}`,
    );
    await c.pollQueryUntil(`SELECT state = 'idle' FROM pg_stat_activity WHERE pid = ${pid}`);
    await c.query(`SELECT tsworker.stop('sleeper')`);
  });
});
