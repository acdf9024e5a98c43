/**
 * [promoter] Failover scenarios on real servers: a primary, a standby made
 * with pg_basebackup -R running the promoter, and witnesses; partitions in
 * network namespaces (test/harness/netns.ts).
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { chownToServerUser, Cluster, waitFor, type ConfSettings } from './harness/cluster';
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
    assert.ok(ev.durations.detectionMs >= 1000, `failed checks at least half an interval apart: detection took ${ev.durations.detectionMs} ms`);
    const kinds = (await standby.query(`SELECT kind FROM tsworker.events ORDER BY id`)).map((r) => r.kind);
    assert.equal(kinds.filter((k) => k === 'check_failed').length, 3);
    assert.equal(kinds.filter((k) => k === 'promoted').length, 1);
    await standby.pollQueryUntil(`SELECT status->>'role' FROM tsworker.workers WHERE name = 'promoter'`, 'primary');
    assert.deepEqual(logLines(standby, CRASH_RESTART), []);
    assert.equal(logLines(standby, /no witnesses configured/).length, 1, 'the split-brain warning is logged at start');
  });

  test('2. primary at max_connections: a refusal for too many connections is not a failure', async () => {
    const primary = await primaryOf('busy', { max_connections: 6, superuser_reserved_connections: 0 });
    const standby = await standbyOf(primary, 'busy', { 'tsworker_promoter.keep_connection': 'off' });
    await verified(standby);
    const held = [];
    for (;;) {
      try {
        held.push(await primary.connect());
      } catch (e) {
        assert.match(String(e), /too many clients|remaining connection slots/);
        break;
      }
      assert.ok(held.length < 20);
    }
    try {
      const off = standby.logOffset();
      await standby.waitForLog(/the primary answers but is busy, not a failure: too many connections \(53300\)/, off, 10_000);
      await staysStandby(standby, 5000);
      assert.equal((await status(standby)).failures, 0);
    } finally {
      for (const c of held) await c.end().catch(() => undefined);
    }
  });

  test('3. primary stopped and started again within interval x failures: no promotion, the failure count returns to 0', async (t) => {
    const primary = await primaryOf('restart');
    const standby = await standbyOf(primary, 'restart');
    await verified(standby);
    const off = standby.logOffset();
    const t0 = Date.now();
    await primary.stop('fast');
    await primary.start();
    t.diagnostic(`primary down and up again in ${Date.now() - t0} ms`);
    await standby.waitForLog(/primary_answers: \{"afterFailures":[12],/, off, 10_000);
    await staysStandby(standby, 4000);
    assert.equal((await status(standby)).failures, 0);
    assert.deepEqual(logLines(standby, /promoting|promoted:/, off), []);
  });

  test('5. standby lagging more than max_lag: no promotion, the reason is logged', async () => {
    const primary = await primaryOf('lag');
    const standby = await standbyOf(primary, 'lag', {
      'tsworker_promoter.primary_conninfo': `host=${primary.host} port=${primary.port} user=postgres`,
      'tsworker_promoter.max_lag': '64kB',
    });
    await verified(standby);
    // Cut the WAL stream (the promoter keeps watching over its own conninfo), then write on the primary.
    await standby.query(`ALTER SYSTEM SET primary_conninfo = 'host=/nonexistent port=1'`);
    await standby.reload();
    await standby.pollQueryUntil(`SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'`, '0');
    await primary.query('CREATE TABLE filler AS SELECT g, repeat(md5(g::text), 10) AS pad FROM generate_series(1, 20000) g');
    await new Promise((r) => setTimeout(r, 2500)); // a check sees the new flush position
    const off = standby.logOffset();
    await primary.kill9();
    await standby.waitForLog(/standby is \d+ bytes behind the primary's last seen flush position .* more than max_lag \(64 kB\)/, off, 15_000);
    await staysStandby(standby, 3000);
  });

  test('6. primary_conninfo pointing at a different cluster (changed by a reload): an error, never a promotion', async () => {
    const primary = await primaryOf('ident');
    const other = await primaryOf('ident-other');
    const standby = await standbyOf(primary, 'ident');
    await verified(standby);
    // Verified against its own primary, then pointed at another cluster by a reload.
    standby.appendConf({ 'tsworker_promoter.primary_conninfo': `host=${other.host} port=${other.port} user=postgres` });
    await standby.reload();
    await standby.pollQueryUntil(`SELECT status->>'identity' FROM tsworker.workers WHERE name = 'promoter'`, 'error');
    const st = await status(standby);
    assert.match(st.error, /is not this standby's .*: primary_conninfo points at a different cluster/);
    assert.ok(logLines(standby, /identity_mismatch/).length >= 1);
    // Then a malformed conninfo is a configuration error, not a failed check.
    standby.appendConf({ 'tsworker_promoter.primary_conninfo': `host='unterminated` });
    await standby.reload();
    await standby.pollQueryUntil(`SELECT status->>'error' ~ '^invalid primary conninfo' FROM tsworker.workers WHERE name = 'promoter'`);
    assert.equal((await status(standby)).failures, 0);
    standby.appendConf({ 'tsworker_promoter.primary_conninfo': `host=${other.host} port=${other.port} user=postgres` });
    await standby.reload();
    await standby.pollQueryUntil(`SELECT status->>'error' ~ 'points at a different cluster' FROM tsworker.workers WHERE name = 'promoter'`);
    await other.kill9();
    await primary.kill9();
    await staysStandby(standby, 6000);
    assert.ok(logLines(standby, /its identity was never verified: not promoting/).length >= 1);
  });

  test('7. before_promote vetoes; once it agrees, on_promote runs once with the event', async () => {
    const primary = await primaryOf('hooks');
    const standby = await standbyOf(primary, 'hooks');
    const dir = path.join(standby.baseDir, 'hooks');
    // the server's OS user owns it (on_promote writes into it); writable by others, the loader would refuse the hook
    fs.mkdirSync(dir, { mode: 0o755 });
    chownToServerUser(dir);
    const marker = path.join(dir, 'veto');
    fs.writeFileSync(marker, 'no');
    const hook = path.join(dir, 'before.ts');
    fs.writeFileSync(
      hook,
      `import * as fs from 'fs';\nexport default function (event: { failures: number }) {\n  return fs.existsSync(${JSON.stringify(marker)}) ? 'the operator said no' : event.failures >= 3;\n}\n`,
    );
    fs.chmodSync(hook, 0o644);
    const out = path.join(dir, 'on_promote.json');
    standby.appendConf({
      'tsworker_promoter.before_promote': hook,
      'tsworker_promoter.on_promote': `cat > ${out}; echo >> ${out}; echo "tl=$(echo "$TSWORKER_EVENT" | sed 's/.*"newTimeline":\\([0-9]*\\).*/\\1/')" >> ${out}`,
    });
    await standby.reload();
    await verified(standby);
    const off = standby.logOffset();
    await primary.kill9();
    await standby.waitForLog(/veto: \{"reason":"vetoed by before_promote: the operator said no"\}/, off, 15_000);
    await staysStandby(standby, 1500);
    fs.unlinkSync(marker);
    await standby.pollQueryUntil('SELECT NOT pg_is_in_recovery()', 't', { timeoutMs: 15_000 });
    await waitFor(() => fs.existsSync(out) && fs.readFileSync(out, 'utf8').includes('tl='), { timeoutMs: 10_000, what: 'on_promote output' });
    const [json, tl] = fs.readFileSync(out, 'utf8').trim().split('\n');
    const ev = JSON.parse(json);
    assert.equal(ev.kind, 'promotion');
    assert.ok(ev.newTimeline >= 2);
    assert.equal(tl, `tl=${ev.newTimeline}`);
    // the worker logs the command's exit after the command wrote its file
    await standby.waitForLog(/on_promote command exited 0/, off);
    assert.equal(logLines(standby, /on_promote command exited 0/, off).length, 1, 'on_promote ran once');
    assert.equal(await standby.queryText(`SELECT count(*) FROM tsworker.events WHERE kind = 'veto'`), String(logLines(standby, /veto: /, off).length));
  });
});

describe('promoter: inherited synchronous_standby_names', () => {
  test('8. a standby made from a synchronous primary is promoted; on_promote runs once; status and events are stored without waiting for a standby', async () => {
    const primary = await primaryOf('sync');
    // from now on every commit on the primary waits for a standby; pg_basebackup copies the setting
    await primary.query(`ALTER SYSTEM SET synchronous_standby_names = '*'`);
    await primary.reload();
    const standby = await standbyOf(primary, 'sync');
    assert.equal(await standby.queryText('SHOW synchronous_standby_names'), '*', 'pg_basebackup copied the setting');
    // the primary's commits wait for this standby: replication is synchronous
    await primary.query('CREATE TABLE synced(id int); INSERT INTO synced VALUES (1)');
    const dir = path.join(standby.baseDir, 'hooks');
    fs.mkdirSync(dir, { mode: 0o755 });
    chownToServerUser(dir);
    const out = path.join(dir, 'on_promote.log');
    standby.appendConf({ 'tsworker_promoter.on_promote': `cat >> ${out}; echo >> ${out}` });
    await standby.reload();
    await verified(standby);
    const off = standby.logOffset();
    await primary.kill9();
    await standby.pollQueryUntil('SELECT NOT pg_is_in_recovery()', 't', { timeoutMs: 20_000 });
    await standby.pollQueryUntil(`SELECT status->>'role' FROM tsworker.workers WHERE name = 'promoter'`, 'primary', { timeoutMs: 10_000 });
    await standby.waitForLog(/on_promote command exited 0/, off, 10_000);
    assert.equal(logLines(standby, /on_promote command exited 0/, off).length, 1, 'on_promote ran once');
    assert.equal(fs.readFileSync(out, 'utf8').trim().split('\n').length, 1);
    assert.equal(await standby.queryText(`SELECT count(*) FROM tsworker.events WHERE kind = 'promoted'`), '1');
    // an ordinary commit here would wait for a standby that is gone; the worker's did not
    assert.equal(await standby.queryText(`SELECT count(*) > 0 FROM pg_stat_activity WHERE backend_type = 'promoter' AND wait_event = 'SyncRep'`), 'f');
    assert.deepEqual(logLines(standby, CRASH_RESTART, off), []);
  });
});

describe('promoter: partitions (network namespaces)', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, () => {
  let net: Network;

  after(async () => {
    for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
    clusters.length = 0;
    await net?.destroy();
  });

  test('4. standby cut off from primary and witness: no promotion; primary cut off from standby and witness: promotion', async (t) => {
    net = await Network.create(['a', 'b', 'c']);
    const fast = { wal_receiver_timeout: '2s', wal_sender_timeout: '2s', wal_retrieve_retry_interval: '500ms' };
    const primary = await Cluster.create('part-primary', {
      allowStreaming: true,
      netns: net.host('a'),
      conf: { shared_preload_libraries: 'pg_tsworker', ...fast },
    });
    clusters.push(primary);
    await primary.query('CREATE EXTENSION pg_tsworker');
    const witness = await Cluster.create('part-witness', {
      netns: net.host('c'),
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'promoter',
        'tsworker_promoter.mode': 'witness',
        'tsworker_promoter.primary_conninfo': primary.tcpConnectionString(),
        'tsworker_promoter.interval': '1s',
        'tsworker_promoter.timeout': '1s',
      },
    });
    clusters.push(witness);
    await witness.query('CREATE EXTENSION pg_tsworker');
    const standby = await Cluster.createStandby(primary, 'part-standby', {
      netns: net.host('b'),
      conf: { ...PROMOTER, ...fast, 'tsworker_promoter.witnesses': witness.tcpConnectionString() },
    });
    clusters.push(standby);
    await verified(standby);
    await witness.pollQueryUntil(`SELECT status->>'lastContactAt' IS NOT NULL FROM tsworker.workers WHERE name = 'promoter'`);

    // (a) The standby alone is cut off: it reaches neither primary nor witness.
    let off = standby.logOffset();
    await net.partition(['b'], ['a', 'c']);
    await standby.waitForLog(/reached 0 of 1 witnesses, not a majority: not promoting/, off, 20_000);
    await staysStandby(standby, 3000);
    await net.heal();
    await standby.pollQueryUntil(`SELECT (status->>'failures')::int = 0 FROM tsworker.workers WHERE name = 'promoter'`, 't', { timeoutMs: 30_000 });
    assert.equal(await inRecovery(standby), true);

    // (b) The primary is cut off; standby and witness still see each other.
    off = standby.logOffset();
    const t0 = Date.now();
    await net.partition(['a'], ['b', 'c']);
    await standby.pollQueryUntil('SELECT NOT pg_is_in_recovery()', 't', { timeoutMs: 30_000 });
    t.diagnostic(`promoted ${Date.now() - t0} ms after the primary was cut off`);
    assert.equal(await inRecovery(primary), false, 'the old primary still runs, isolated (fencing it is the operator\'s)');
    await standby.waitForLog(/promoted: /, off);
    assert.equal(logLines(standby, /promoted: /, off).length, 1);
  });
});

