/**
 * [reliability] The fault matrix: every state a worker can be stuck in,
 * crossed with every way to end it. In each cell the worker is gone within
 * tsworker.terminate_grace + 1 s, a log line names it and the reason, it
 * exits 0 or 1 (never by a signal), the cluster is not crash-restarted,
 * and an open client session keeps its backend.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import pg from 'pg';

import { Cluster, waitFor } from './harness/cluster';
import { CRASH_RESTART, installFixtures, logLines } from './helpers';

const GRACE_S = 2;
const BOUND_MS = (GRACE_S + 1) * 1000;

/** Where a worker is when it is asked to end (test/fixtures/faults/faults.ts). */
const STATES = [
  'busy_main',
  'busy_timer',
  'busy_microtask',
  'busy_promise',
  'heap_then_busy',
  'sql_syncrep',
  'sql_lock',
  'sql_sleep',
] as const;
type State = (typeof STATES)[number];

/** A process that no longer exists, or is a zombie waiting for its parent. */
function gone(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Milliseconds from `start` until `pid` is gone. */
async function timeUntilGone(pid: number, start: number, limitMs = 15_000): Promise<number> {
  await waitFor(() => gone(pid), { timeoutMs: limitMs, intervalMs: 10, what: `process ${pid} to exit` });
  return Date.now() - start;
}

const results: { cell: string; ms: number; exit: string }[] = [];

describe('fault matrix', () => {
  let c: Cluster;
  let module: string;
  let watcher: pg.Client;
  let watcherPid: number;
  let locker: pg.Client;

  /** Launch `name` in `state` and wait until it is there; returns its pid. */
  async function launchIn(name: string, state: State): Promise<number> {
    await c.query(`SELECT tsworker.launch($1, $2, $3, 'postgres')`, [name, module, JSON.stringify({ mode: state })]);
    const want = state.startsWith('sql_') ? 'sql' : 'busy';
    await c.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = '${name}'`, want, { timeoutMs: 60_000 });
    if (state === 'sql_syncrep') {
      await c.pollQueryUntil(`SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = '${name}' AND wait_event = 'SyncRep'`);
    } else if (state === 'sql_lock') {
      await c.pollQueryUntil(`SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = '${name}' AND wait_event_type = 'Lock'`);
    } else if (state === 'sql_sleep') {
      await c.pollQueryUntil(`SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = '${name}' AND wait_event = 'PgSleep'`);
    } else {
      await new Promise((r) => setTimeout(r, 300)); // well into its busy loop
    }
    return c.queryOne<number>(`SELECT pid FROM tsworker.workers WHERE name = $1`, [name]);
  }

  /** Every check of a cell but the time, from the log since `off`. */
  function checkLog(name: string, pid: number, off: number, expectExit: RegExp): string {
    const mine = logLines(c, new RegExp(`tsworker "${name}": `), off);
    assert.ok(mine.length > 0, `${name}: a log line names the worker`);
    const exit = mine.find((l) => /exiting with code [01]/.test(l));
    assert.ok(exit, `${name}: logs its exit code:\n${mine.join('\n')}`);
    assert.match(mine.join('\n'), expectExit, `${name}: the reason is logged`);
    assert.deepEqual(logLines(c, new RegExp(`\\(PID ${pid}\\) (was terminated by signal|exited with exit code [2-9])`), off), []);
    assert.deepEqual(logLines(c, CRASH_RESTART, off), []);
    assert.deepEqual(logLines(c, /async hook stack has become corrupted/, off), []);
    return /exiting with code (\d)/.exec(exit!)![1];
  }

  const reasonFor = (state: State): RegExp =>
    state.startsWith('sql_')
      ? /stopped on shutdown request \(its running statement was cancelled\)|stopped on shutdown request/
      : /did not stop within tsworker\.terminate_grace \(2 s\) after SIGTERM; JavaScript terminated/;

  before(async () => {
    c = await Cluster.create('faults', {
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        max_worker_processes: 40,
        'tsworker.max_workers': 64,
        'tsworker.terminate_grace': GRACE_S,
        'tsworker.restart_interval': 1,
        'tsworker.max_old_space_mb': 64,
        'tsworker.crash_loop_failures': 0,
        // every COMMIT that asks for synchronous replication waits forever
        synchronous_standby_names: 'nobody',
        synchronous_commit: 'local',
      },
    });
    module = `${installFixtures(c, 'faults')}/faults.ts`;
    await c.query(`
      CREATE EXTENSION pg_tsworker;
      CREATE TABLE fault_runs(name text, at timestamptz DEFAULT now());
      CREATE TABLE fault_rows(name text, at timestamptz DEFAULT now());
      CREATE TABLE fault_locked(x int);
      CREATE TABLE fault_syncrep(x int);
    `);
    watcher = await c.connect();
    watcherPid = (await watcher.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
    locker = await c.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK fault_locked IN ACCESS EXCLUSIVE MODE');
  });

  after(async () => {
    if (results.length) {
      console.log('# cell | exit code | gone after (ms)');
      for (const r of results) console.log(`# ${r.cell} | ${r.exit} | ${r.ms}`);
    }
    await watcher?.end().catch(() => undefined);
    await locker?.end().catch(() => undefined);
    await c?.cleanup();
  });

  type How = 'tsworker.stop()' | 'pg_terminate_backend()' | 'pg_ctl stop -m fast' | 'postmaster SIGKILL';

  /**
   * Put one worker in every state (in parallel), end them all `how`, and
   * check each cell: time, log, exit code, no crash-restart.
   */
  async function matrixRow(how: How, prefix: string): Promise<void> {
    const entries = await Promise.all(STATES.map(async (state) => [state, await launchIn(`${prefix}_${state}`, state)] as const));
    const pids = new Map<State, number>(entries);
    const off = c.logOffset();
    const times = new Map<State, Promise<number>>();
    const start = Date.now();
    const measure = () => {
      for (const [state, pid] of pids) times.set(state, timeUntilGone(pid, start));
    };
    switch (how) {
      case 'tsworker.stop()':
        await Promise.all(STATES.map((state) => c.query(`SELECT tsworker.stop($1)`, [`${prefix}_${state}`])));
        measure();
        break;
      case 'pg_terminate_backend()':
        await c.query(`SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid`, [[...pids.values()]]);
        measure();
        break;
      case 'pg_ctl stop -m fast': {
        const stopping = c.stop('fast');
        measure();
        await stopping;
        break;
      }
      case 'postmaster SIGKILL': {
        const killing = c.kill9({ waitChildren: true }); // the SIGKILL is sent before this returns
        measure();
        await killing;
        break;
      }
    }
    const server = how === 'pg_ctl stop -m fast' || how === 'postmaster SIGKILL';
    // without a postmaster, the 1 s given to postmasterDeath listeners counts too
    const bound = how === 'postmaster SIGKILL' ? Math.max(BOUND_MS, 2000) : BOUND_MS;
    for (const [state, pid] of pids) {
      const name = `${prefix}_${state}`;
      const ms = await times.get(state)!;
      if (!server) await c.waitForLog(new RegExp(`tsworker "${name}": exiting with code`), off, 5000);
      const reason = how === 'postmaster SIGKILL' ? /postmaster died/ : reasonFor(state);
      const exit = checkLog(name, pid, off, reason);
      results.push({ cell: `${state} × ${how}`, ms, exit });
      assert.ok(ms <= bound, `${name} gone after ${ms} ms (bound ${bound} ms)`);
      if (how === 'tsworker.stop()') {
        assert.equal(await c.queryOne(`SELECT state FROM tsworker.workers WHERE name = $1`, [name]), 'stopped');
      }
    }
    if (!server) {
      assert.equal((await watcher.query('SELECT pg_backend_pid() AS pid')).rows[0].pid, watcherPid, 'the client kept its backend');
    }
  }

  test('every state × tsworker.stop()', () => matrixRow('tsworker.stop()', 's'));
  test('every state × pg_terminate_backend()', () => matrixRow('pg_terminate_backend()', 't'));
  test('every state × pg_ctl stop -m fast', async () => {
    await matrixRow('pg_ctl stop -m fast', 'f');
    await c.start();
  });
  test('every state × postmaster SIGKILL', async () => {
    await watcher.end().catch(() => undefined);
    await locker.end().catch(() => undefined);
    watcher = await c.connect();
    locker = await c.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK fault_locked IN ACCESS EXCLUSIVE MODE');
    await matrixRow('postmaster SIGKILL', 'k');
    await watcher.end().catch(() => undefined);
    await locker.end().catch(() => undefined);
    await c.start();
  });
});
