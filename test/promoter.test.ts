/**
 * [promoter] Failover scenarios on real servers: a primary, a standby made
 * with pg_basebackup -R running the promoter, and witnesses; partitions in
 * network namespaces (test/harness/netns.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { Cluster, waitFor, type ConfSettings } from './harness/cluster';
import { Network } from './harness/netns';
import { CRASH_RESTART, logLines } from './helpers';

const PROMOTER: Record<string, string | number> = {
  shared_preload_libraries: 'pg_tsworker',
  'tsworker.workers': 'promoter',
  'tsworker_promoter.interval': '1s',
  'tsworker_promoter.timeout': '1s',
  'tsworker_promoter.failures': 3,
  wal_receiver_timeout: '5s',
};

const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
});

async function primaryOf(name: string, conf: ConfSettings = {}): Promise<Cluster> {
  const primary = await Cluster.create(`${name}-primary`, {
    allowStreaming: true,
    conf: { shared_preload_libraries: 'pg_tsworker', ...(conf as object) },
  });
  clusters.push(primary);
  await primary.query('CREATE EXTENSION pg_tsworker');
  return primary;
}

async function standbyOf(primary: Cluster, name: string, conf: Record<string, string | number> = {}): Promise<Cluster> {
  const standby = await Cluster.createStandby(primary, `${name}-standby`, { conf: { ...PROMOTER, ...conf } });
  clusters.push(standby);
  return standby;
}

async function status(c: Cluster): Promise<any> {
  return (await c.query(`SELECT status FROM tsworker.workers WHERE name = 'promoter'`))[0]?.status;
}

async function verified(standby: Cluster): Promise<void> {
  await standby.pollQueryUntil(`SELECT status->>'identity' FROM tsworker.workers WHERE name = 'promoter'`, 'verified');
}

async function inRecovery(c: Cluster): Promise<boolean> {
  return (await c.queryText('SELECT pg_is_in_recovery()')) === 't';
}

/** Watch that `c` stays a standby for `ms`. */
async function staysStandby(c: Cluster, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    assert.equal(await inRecovery(c), true, `${c.name} was promoted`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('promoter', () => {
  test('1. primary killed with SIGKILL: the standby is promoted, accepts writes, on a new timeline, with one promotion event', async (t) => {
    const primary = await primaryOf('kill');
    const standby = await standbyOf(primary, 'kill');
    await verified(standby);
    const tlBefore = await standby.queryText(`SELECT timeline_id FROM pg_control_checkpoint()`);
    const start = Date.now();
    await primary.kill9();
    await standby.pollQueryUntil('SELECT NOT pg_is_in_recovery()', 't', { timeoutMs: 20_000, intervalMs: 20 });
    await standby.query('CREATE TABLE after_failover(id int); INSERT INTO after_failover VALUES (1)');
    t.diagnostic(`promoted and writable ${Date.now() - start} ms after the SIGKILL`);
    const tlAfter = parseInt((await standby.queryText('SELECT pg_walfile_name(pg_current_wal_lsn())')).slice(0, 8), 16);
    assert.ok(tlAfter > Number(tlBefore), `timeline ${tlBefore} -> ${tlAfter}`);
    await standby.pollQueryUntil(`SELECT count(*) FROM tsworker.events WHERE kind = 'promoted'`, '1');
    const ev = (await standby.query(`SELECT detail FROM tsworker.events WHERE kind = 'promoted'`))[0].detail;
    assert.equal(ev.newTimeline, tlAfter);
    assert.equal(ev.failures, 3);
    assert.ok(ev.durations.detectionMs >= 1800, `detection took ${ev.durations.detectionMs} ms`);
    const kinds = (await standby.query(`SELECT kind FROM tsworker.events ORDER BY id`)).map((r) => r.kind);
    assert.deepEqual(kinds.filter((k) => k === 'check_failed').length, 3);
    await standby.pollQueryUntil(`SELECT status->>'role' FROM tsworker.workers WHERE name = 'promoter'`, 'primary');
    assert.deepEqual(logLines(standby, CRASH_RESTART), []);
    assert.equal(logLines(standby, /no witnesses configured/).length, 1, 'the split-brain warning is logged at start');
  });
});
