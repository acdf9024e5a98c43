/**
 * [walarchive] Settings of a running walarchive worker on real servers:
 * a reload of the directory or compression takes effect with nothing lost
 * across the switch; a setting reloaded to '' is ''; live knobs changed
 * while connecting are kept; a conninfo is hidden from plain roles; two
 * workers never share a directory; a promoted standby stops following its
 * old primary; a failover to the next host of a multi-host conninfo is
 * followed onto the new timeline.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { Cluster, waitFor, signalPid } from './harness/cluster';
import { archiveDir, archiveHost, archiveSource, archiveStatus, segno, segmentArchived, switchWal } from './walarchive-helpers';

const SEG = 1024 * 1024;
const clusters: Cluster[] = [];
after(async () => {
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
});

/** Segment numbers held in `dir` (complete, compressed or .partial). */
function heldSegments(dir: string): bigint[] {
  return fs
    .readdirSync(dir)
    .filter((n) => /^[0-9A-F]{24}(\.partial|\.gz|\.lz4)?$/.test(n))
    .map((n) => segno(n.slice(0, 24), SEG));
}

async function someWal(c: Cluster): Promise<string> {
  await c.query('CREATE TABLE IF NOT EXISTS t(v int); INSERT INTO t SELECT generate_series(1, 20000)');
  return switchWal(c);
}

describe('walarchive: reloads', () => {
  let src: Cluster;
  let host: Cluster;
  let dir: string;
  let dir2: string;

  test('a reload of directory, then of compression, takes effect at once; nothing is lost across the switch', async () => {
    src = await archiveSource('rl-src', clusters);
    ({ host, dir } = await archiveHost('rl-host', src, { 'tsworker_walarchive.slot': 'wa', 'tsworker_walarchive.create_slot': 'on' }, clusters));
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'streaming');
    await segmentArchived(dir, await someWal(src));

    dir2 = archiveDir(host, 'second');
    let off = host.logOffset();
    host.appendConf({ 'tsworker_walarchive.directory': dir2 });
    await host.reload();
    await host.waitForLog(/tsworker "walarchive": settings changed: connecting again/, off);
    await host.waitForLog(/tsworker "walarchive": connected to .*; streaming from/, off);
    const seg = await someWal(src);
    await segmentArchived(dir2, seg);
    assert.equal(fs.existsSync(path.join(dir, seg)), false, `${seg} went to the new directory only`);
    // the old directory stops where the new one starts: every segment is in one of them
    const all = [...heldSegments(dir), ...heldSegments(dir2)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (let n = all[0]; n <= all[all.length - 1]; n++) assert.ok(all.includes(n), `segment ${n} is in neither directory`);
    // the new directory starts at the slot's restart position: at or before the old one's end (an overlap, never a gap)
    assert.ok(heldSegments(dir2).reduce((a, b) => (a < b ? a : b)) <= heldSegments(dir).reduce((a, b) => (a > b ? a : b)) + 1n, 'no gap between the directories');

    off = host.logOffset();
    host.appendConf({ 'tsworker_walarchive.compression': 'lz4' });
    await host.reload();
    await host.waitForLog(/tsworker "walarchive": connected to .*; streaming from/, off);
    const seg2 = await someWal(src);
    await waitFor(() => fs.existsSync(path.join(dir2, `${seg2}.lz4`)), { what: `${seg2}.lz4 in ${dir2}` });
  });

  test('slot reloaded to empty streams without the slot; source_conninfo reloaded to empty on a primary is the "no source" configuration error', async () => {
    await src.pollQueryUntil(`SELECT active FROM pg_replication_slots WHERE slot_name = 'wa'`);
    let off = host.logOffset();
    host.appendConf({ 'tsworker_walarchive.slot': '', 'tsworker_walarchive.create_slot': 'off' });
    await host.reload();
    await host.waitForLog(/tsworker "walarchive": connected to .*; streaming from/, off);
    await src.pollQueryUntil(`SELECT NOT active FROM pg_replication_slots WHERE slot_name = 'wa'`);
    assert.equal((await archiveStatus(host))?.slot, null);

    off = host.logOffset();
    host.appendConf({ 'tsworker_walarchive.source_conninfo': '' });
    await host.reload();
    await host.waitForLog(/tsworker "walarchive": configuration error: no source to stream WAL from/, off);
    await src.pollQueryUntil(`SELECT count(*) = 0 FROM pg_stat_replication WHERE application_name = 'walarchive'`);
  });

  test('source_conninfo is readable by superusers only', async () => {
    await host.query('CREATE ROLE plain LOGIN');
    await assert.rejects(
      host.query('SHOW tsworker_walarchive.source_conninfo', [], { user: 'plain' }),
      /(must be superuser or have privileges of pg_read_all_settings to examine|permission denied to examine) "tsworker_walarchive\.source_conninfo"/,
    );
    assert.equal(await host.queryOne(`SELECT count(*)::int FROM pg_settings WHERE name = 'tsworker_walarchive.source_conninfo'`, [], { user: 'plain' }), 0);
    // a superuser still reads it
    assert.equal(await host.queryOne(`SELECT setting FROM pg_settings WHERE name = 'tsworker_walarchive.source_conninfo'`), '');
  });

  test('a second worker refuses a directory another worker writes', async () => {
    const off = host.logOffset();
    await host.query(`SELECT tsworker.launch('wa_twin', 'walarchive', $1::jsonb)`, [JSON.stringify({ source_conninfo: src.connectionString(), directory: dir2 })]);
    const line = await host.waitForLog(/tsworker "wa_twin": configuration error: .*/, off);
    assert.match(line, /the archive directory ".*second" is in use by worker "walarchive" \(pid \d+\); give each walarchive worker its own directory/);
    await host.query(`SELECT tsworker.stop('wa_twin')`);
  });

  test('libpq conninfo rules: an unknown keyword or a bad value is a configuration error naming the setting; sslmode=require is honoured', async () => {
    const launch = async (name: string, conninfo: string, re: RegExp): Promise<void> => {
      const off = host.logOffset();
      await host.query(`SELECT tsworker.launch($1, 'walarchive', $2::jsonb)`, [name, JSON.stringify({ source_conninfo: conninfo, directory: archiveDir(host, name) })]);
      assert.match(await host.waitForLog(new RegExp(`tsworker "${name}": (configuration error|failing): .*`), off), re);
      await host.query(`SELECT tsworker.stop($1)`, [name]);
    };
    await launch('wa_typo', `${src.connectionString()} sslmdoe=require`, /configuration error: invalid tsworker_walarchive\.source_conninfo: invalid connection option "sslmdoe"/);
    await launch('wa_port', `host=${src.host} port=abc`, /configuration error: invalid tsworker_walarchive\.source_conninfo: invalid value for connection option "port": "abc"/);
    await launch('wa_ca', `${src.connectionString()} sslmode=verify-full sslrootcert=/nonexistent/root.crt`, /configuration error: .*could not read sslrootcert "\/nonexistent\/root\.crt"/);
    // the source has no TLS: require fails instead of streaming in clear
    await launch('wa_tls', `${src.connectionString()} sslmode=require`, /failing: .*(does not support SSL|SSL)/i);
  });
});

describe('walarchive: password file', () => {
  test('a passfile changed by a reload is read at the next connection (never stuck), without node-postgres deprecation warnings', async () => {
    const src = await archiveSource('pw-src', clusters);
    await src.query(`CREATE ROLE arch LOGIN REPLICATION PASSWORD 'right-pw'`);
    const hba = path.join(src.dataDir, 'pg_hba.conf');
    fs.writeFileSync(hba, `local replication arch scram-sha-256\n${fs.readFileSync(hba, 'utf8')}`);
    await src.reload();
    const host = await Cluster.create('pw-host', { start: false });
    clusters.push(host);
    const dir = archiveDir(host, 'archive');
    const st = fs.statSync(dir);
    const passfile = (name: string, pw: string): string => {
      const f = path.join(host.baseDir, name);
      fs.writeFileSync(f, `*:*:*:arch:${pw}\n`, { mode: 0o600 });
      fs.chownSync(f, st.uid, st.gid);
      return f;
    };
    const wrong = passfile('wrong.pgpass', 'wrong-pw');
    const right = passfile('right.pgpass', 'right-pw');
    host.appendConf({
      shared_preload_libraries: 'pg_tsworker',
      'tsworker.workers': 'walarchive',
      'tsworker_walarchive.source_conninfo': `${src.connectionString('postgres', 'arch')} passfile=${wrong}`,
      'tsworker_walarchive.directory': dir,
      'tsworker_walarchive.retry_interval': '100ms',
    });
    await host.start();
    await host.query('CREATE EXTENSION pg_tsworker');
    await host.waitForLog(/tsworker "walarchive": failing: .*password authentication failed for user "arch"/);
    host.appendConf({ 'tsworker_walarchive.source_conninfo': `${src.connectionString('postgres', 'arch')} passfile=${right}` });
    await host.reload();
    await waitFor(async () => (await host.query(`SELECT status->>'state' AS s FROM tsworker.workers WHERE name = 'walarchive'`).catch(() => []))[0]?.s === 'streaming', {
      what: 'streaming with the right passfile',
      timeoutMs: 60_000,
    });
    assert.deepEqual(host.readLog().split('\n').filter((l) => /deprecat/i.test(l)), []);
  });
});

describe('walarchive: a promoted standby', () => {
  test('following primary_conninfo, the worker stops streaming from the old primary once its server is promoted', async () => {
    const primary = await archiveSource('pr-primary', clusters);
    const standby = await Cluster.createStandby(primary, 'pr-standby', { start: false });
    clusters.push(standby);
    const dir = archiveDir(standby, 'archive');
    standby.appendConf({ shared_preload_libraries: 'pg_tsworker', 'tsworker.workers': 'walarchive', 'tsworker_walarchive.directory': dir });
    await standby.start();
    await primary.pollQueryUntil(`SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = 'walarchive'`);
    const off = standby.logOffset();
    await standby.promote();
    await standby.waitForLog(/tsworker "walarchive": configuration error: no source to stream WAL from/, off);
    await primary.pollQueryUntil(`SELECT count(*) = 0 FROM pg_stat_replication WHERE application_name = 'walarchive'`);
  });
});

describe('walarchive: a failover to the next host of a multi-host conninfo', () => {
  test('the primary stopped and its standby promoted: the worker goes on from the standby onto timeline 2, with its .history', async () => {
    const primary = await archiveSource('mh-primary', clusters);
    const standby = await Cluster.createStandby(primary, 'mh-standby');
    clusters.push(standby);
    const { host, dir } = await archiveHost(
      'mh-host',
      primary,
      {
        'tsworker_walarchive.source_conninfo': `host=${primary.host},${standby.host} port=${primary.port},${standby.port} user=postgres dbname=postgres`,
        'tsworker_walarchive.retry_interval': '200ms',
      },
      clusters,
    );
    await primary.pollQueryUntil(`SELECT count(*) = 1 FROM pg_stat_replication WHERE application_name = 'walarchive'`);
    await primary.query('CREATE TABLE t(id int); INSERT INTO t SELECT generate_series(1, 1000)');
    const first = await switchWal(primary);
    await segmentArchived(dir, first);
    // a fast shutdown sends the standby and the worker all of the primary's WAL
    await primary.stop('fast');
    await standby.promote();
    await standby.query('INSERT INTO t SELECT generate_series(1001, 2000)');
    const seg = await switchWal(standby);
    assert.ok(seg.startsWith('00000002'), `a segment of timeline 2 (${seg})`);
    await segmentArchived(dir, seg);
    assert.equal(fs.readFileSync(path.join(dir, '00000002.history'), 'utf8'), fs.readFileSync(path.join(standby.dataDir, 'pg_wal', '00000002.history'), 'utf8'));
    assert.equal((await archiveStatus(host))?.timeline, 2);
    assert.equal(await standby.queryText(`SELECT count(*) FROM pg_stat_replication WHERE application_name = 'walarchive'`), '1', 'streaming from the second host');
    // no gap: every segment from the first one archived to the last, on one timeline or the other
    const names = fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}(\.partial)?$/.test(n));
    for (let n = segno(first, SEG); n <= segno(seg, SEG); n++) {
      assert.ok(names.some((x) => segno(x.slice(0, 24), SEG) === n), `segment ${n} is in the archive`);
    }
  });
});

describe('walarchive: a change made while connecting', () => {
  test('synchronous turned on while the worker waits for the source to answer applies to the stream that follows', async () => {
    const src = await archiveSource('cx-src', clusters);
    const pid = src.postmasterPid()!;
    // a stopped postmaster accepts the connection but never answers: the worker stays connecting
    signalPid(pid, 'SIGSTOP');
    let host: Cluster;
    try {
      ({ host } = await archiveHost(
        'cx-host',
        src,
        { 'tsworker_walarchive.status_interval': '1h', 'tsworker_walarchive.receive_timeout': 0, 'tsworker_walarchive.connect_timeout': '60s' },
        clusters,
      ));
      await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'connecting');
      host.appendConf({ 'tsworker_walarchive.synchronous': 'on' });
      await host.reload();
      await host.pollQueryUntil(`SELECT status->>'synchronous' FROM tsworker.workers WHERE name = 'walarchive'`, 'true');
    } finally {
      signalPid(pid, 'SIGCONT');
    }
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'streaming');
    // synchronous: each write is flushed and reported at once (with status_interval 1h, nothing else would report it)
    await src.query('CREATE TABLE t AS SELECT generate_series(1, 1000) g');
    const lsn = await src.queryText('SELECT pg_current_wal_flush_lsn()');
    await src.pollQueryUntil(`SELECT flush_lsn >= '${lsn}' FROM pg_stat_replication WHERE application_name = 'walarchive'`, 't', { timeoutMs: 15_000 });
  });
});
