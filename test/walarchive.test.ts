/**
 * [walarchive] The built-in worker `walarchive` on real servers: WAL
 * streamed into an archive beside pg_receivewal, byte for byte; resume
 * after a SIGKILL; synchronous mode across the source's SIGKILL; a
 * failover followed onto the new timeline; a point-in-time restore from
 * the archive alone; compression; clear errors.
 *
 * Segments are 1 MB (initdb --wal-segsize=1) so that many complete in a
 * few seconds of pgbench.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { Cluster, waitFor, signalPid } from './harness/cluster';
import { CRASH_RESTART, logLines } from './helpers';
import {
  archiveDir,
  archiveHost,
  archiveSource,
  archiveStatus,
  completedSegments,
  decompress,
  pgbench,
  pgProgram,
  pgSpawn,
  segmentArchived,
  segno,
  stopProgram,
  switchWal,
  synchronousTrial,
  waitFlushed,
  waldump,
  WALDUMP_END_RE,
} from './walarchive-helpers';

const SEG = 1024 * 1024;
const clusters: Cluster[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) await stopProgram(c).catch(() => undefined);
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
});

async function flushLsn(c: Cluster): Promise<string> {
  return c.queryText('SELECT pg_current_wal_flush_lsn()');
}

describe('walarchive beside pg_receivewal, under pgbench', () => {
  let src: Cluster;
  let host: Cluster;
  let dir: string;
  let rwDir: string;
  let rw: ChildProcess;
  let firstSeg: string;

  test('streams from a slot it creates, resumes exactly after a SIGKILL mid-segment', async (t) => {
    src = await archiveSource('bytes-src', clusters);
    ({ host, dir } = await archiveHost('bytes-host', src, { 'tsworker_walarchive.slot': 'wa', 'tsworker_walarchive.create_slot': 'on' }, clusters));
    await src.pollQueryUntil(`SELECT active FROM pg_replication_slots WHERE slot_name = 'wa'`);
    // pg_receivewal on the same source, from its own slot, starting at the same segment
    rwDir = archiveDir(src, 'receivewal');
    await pgProgram('pg_receivewal', ['-h', src.host, '-p', String(src.port), '-U', 'postgres', '-S', 'rw', '--create-slot']);
    rw = pgSpawn('pg_receivewal', ['-h', src.host, '-p', String(src.port), '-U', 'postgres', '-S', 'rw', '-D', rwDir, '-n', '-v'], path.join(src.baseDir, 'receivewal.log'));
    children.push(rw);
    await waitFor(() => fs.readdirSync(rwDir).some((n) => n.endsWith('.partial')), { what: 'pg_receivewal to start' });
    firstSeg = fs.readdirSync(dir).find((n) => n.endsWith('.partial'))!.replace('.partial', '');
    assert.ok(firstSeg, 'the worker writes a .partial segment');

    await pgbench(src, ['-i', '-s', '4', '-q']);
    await pgbench(src, ['-c', '2', '-T', '3', '-n']);
    // SIGKILL the worker in the middle of a segment, under load
    const load = pgbench(src, ['-c', '2', '-T', '6', '-n']);
    await new Promise((r) => setTimeout(r, 2000));
    // A kill can land just after a segment was opened, before any of its WAL was written: the worker then
    // resumes exactly at its start, which is right but not the case this test is for. Kill again then.
    let offsetInSegment = 0;
    for (let attempt = 1; attempt <= 3 && offsetInSegment === 0; attempt++) {
      const pid = Number(await host.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'walarchive'`));
      const off = host.logOffset();
      signalPid(pid, 'SIGKILL');
      const resumed = await host.waitForLog(/streaming from ([0-9A-F]+\/[0-9A-F]+) on timeline 1, the end of ([0-9A-F]{24})\.partial in the archive/, off, 60_000);
      const m = /streaming from ([0-9A-F]+)\/([0-9A-F]+) on timeline 1, the end of ([0-9A-F]{24})\.partial/.exec(resumed)!;
      offsetInSegment = Number(BigInt(`0x${m[2]}`) % BigInt(SEG));
      t.diagnostic(`kill ${attempt}: resumed at ${m[1]}/${m[2]}, ${offsetInSegment} bytes into ${m[3]}`);
      if (offsetInSegment === 0) await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(offsetInSegment > 0, 'resumed in the middle of the segment, not at its start');
    await load;
    const end = await flushLsn(src);
    const last = await switchWal(src);
    await segmentArchived(dir, last);
    await segmentArchived(rwDir, last);
    await waitFlushed(host, end);
    // a SIGKILLed background worker crash-restarts its server; nothing else is wrong
    assert.equal(logLines(host, /tsworker "walarchive".*(ERROR|FATAL)/).length, 0);
  });

  test('every completed segment is byte-for-byte pg_receivewal\'s, with no gap, and pg_waldump reads them all', async (t) => {
    const ours = completedSegments(dir);
    const theirs = new Set(completedSegments(rwDir));
    const common = ours.filter((n) => theirs.has(n));
    t.diagnostic(`${ours.length} segments archived, ${common.length} also written by pg_receivewal`);
    assert.ok(common.length >= 10, `at least 10 common segments (${common.length})`);
    for (const n of common) {
      assert.ok(fs.readFileSync(path.join(dir, n)).equals(fs.readFileSync(path.join(rwDir, n))), `${n} differs from pg_receivewal's`);
    }
    // no gap: consecutive segments from the first one
    const nums = ours.map((n) => segno(n, SEG));
    for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1] + 1n, `gap after ${ours[i - 1]}`);
    assert.equal(ours[0], firstSeg);
    const dump = await waldump(dir, ours[0], path.join(src.baseDir, 'dump'));
    // pg_waldump reads every record, up to the end of the last complete segment or, past it, the end of the
    // WAL received in the .partial: never stopping inside the completed segments
    if (dump.code !== 0) {
      const stop = WALDUMP_END_RE.exec(dump.err);
      assert.ok(stop, `pg_waldump ends at the end of the received WAL, not at a broken record: ${dump.err}`);
      const stopSeg = ((BigInt(`0x${stop[1]}`) << 32n) | BigInt(`0x${stop[2]}`)) / BigInt(SEG);
      assert.ok(stopSeg > segno(ours[ours.length - 1], SEG), `pg_waldump stopped at ${stop[1]}/${stop[2]}, inside the completed segments`);
    }
    const records = dump.out.split('\n').filter((l) => l.startsWith('rmgr:')).length;
    t.diagnostic(`pg_waldump read ${records} records from ${ours[0]} to ${dump.endSeg}`);
    assert.ok(records > 10_000);
    const status = await archiveStatus(host);
    assert.equal(status?.state, 'streaming');
    assert.equal(status?.slot, 'wa');
    assert.equal(status?.timeline, 1);
    assert.equal(status?.error, null);
    assert.ok(status?.segments >= 1);
  });
});

describe('walarchive: clear errors from the source, never a silent loop', () => {
  test('slot missing, WAL removed, wrong system identifier, bad directory: each reported with a hint, no crash loop', async () => {
    const src = await archiveSource('err-src', clusters);
    const other = await archiveSource('err-other', clusters);
    const { host, dir } = await archiveHost('err-host', src, { 'tsworker_walarchive.slot': 'wa', 'tsworker_walarchive.create_slot': 'on' }, clusters);
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'streaming');
    // WAL on the source, archived; then removed from the source's pg_wal
    await src.query('CREATE TABLE t AS SELECT g FROM generate_series(1, 100000) g');
    const seg = await switchWal(src);
    await segmentArchived(dir, seg);
    await src.query(`ALTER SYSTEM SET wal_keep_size = 0`);
    await src.reload();
    for (let i = 0; i < 3; i++) {
      await src.query('INSERT INTO t SELECT g FROM generate_series(1, 50000) g');
      await switchWal(src);
    }
    const upTo = await flushLsn(src);
    await src.pollQueryUntil(`SELECT restart_lsn >= '${upTo}' FROM pg_replication_slots WHERE slot_name = 'wa'`);
    await src.query('CHECKPOINT');
    await src.query('CHECKPOINT');
    assert.equal(fs.existsSync(path.join(src.dataDir, 'pg_wal', seg)), false, `${seg} removed from the source`);

    const launch = async (name: string, settings: Record<string, string>): Promise<void> => {
      await host.query(`SELECT tsworker.launch($1, 'walarchive', $2::jsonb)`, [name, JSON.stringify(settings)]);
    };
    const expectError = async (name: string, re: RegExp, hint: RegExp): Promise<void> => {
      const line = await host.waitForLog(new RegExp(`tsworker "${name}": (failing|configuration error): .*`), 0, 30_000);
      assert.match(line, re);
      assert.match(line, hint);
      await waitFor(async () => re.test(String((await archiveStatus(host, name))?.error ?? '')), { what: `${name}'s status error` });
    };
    // the slot does not exist, and create_slot is off
    await launch('wa_noslot', { directory: archiveDir(host, 'noslot'), slot: 'nope', create_slot: 'off' });
    await expectError('wa_noslot', /replication slot "nope" does not exist on the source/, /pg_create_physical_replication_slot\('nope'\)|create_slot = on/);
    // the archive needs WAL the source has removed
    const gone = archiveDir(host, 'gone');
    const prev = completedSegments(dir).filter((n) => n < seg).pop()!;
    fs.copyFileSync(path.join(dir, prev), path.join(gone, prev));
    fs.chownSync(path.join(gone, prev), fs.statSync(gone).uid, fs.statSync(gone).gid);
    await launch('wa_gone', { directory: gone, slot: '', create_slot: 'off' });
    await expectError('wa_gone', /the source has already removed WAL the archive needs/, /replication slot/);
    // the directory holds WAL of another cluster
    const alien = archiveDir(host, 'alien');
    fs.copyFileSync(path.join(dir, prev), path.join(alien, prev));
    fs.chownSync(path.join(alien, prev), fs.statSync(alien).uid, fs.statSync(alien).gid);
    await launch('wa_alien', { directory: alien, source_conninfo: other.connectionString(), slot: '', create_slot: 'off' });
    await expectError('wa_alien', /the source's system identifier \d+ is not the archive's \d+/, /another cluster/);
    // a directory that does not exist
    await launch('wa_nodir', { directory: path.join(host.baseDir, 'missing'), slot: '', create_slot: 'off' });
    await expectError('wa_nodir', /could not access the archive directory/, /create it/i);
    // the server's own data directory, or its pg_wal: refused before anything is written there
    await launch('wa_datadir', { directory: host.dataDir, slot: '', create_slot: 'off' });
    await expectError('wa_datadir', /the archive directory ".*" is inside this server's data directory/, /outside the data directory/);
    await launch('wa_pgwal', { directory: path.join(host.dataDir, 'pg_wal'), slot: '', create_slot: 'off' });
    await expectError('wa_pgwal', /the archive directory ".*" is inside this server's pg_wal/, /outside the data directory/);
    assert.deepEqual(fs.readdirSync(path.join(host.dataDir, 'pg_wal')).filter((n) => /partial|walarchive/.test(n)), [], 'nothing written into pg_wal');
    for (const name of ['wa_datadir', 'wa_pgwal']) await host.query('SELECT tsworker.stop($1)', [name]); // free their slots
    // the server's OS user's own directory, without write permission: the hint is chmod, not chown
    const readOnly = archiveDir(host, 'readonly');
    fs.chmodSync(readOnly, 0o555);
    await launch('wa_readonly', { directory: readOnly, slot: '', create_slot: 'off' });
    await expectError('wa_readonly', /the archive directory ".*" is not writable by the server's OS user/, /chmod u\+wx/);
    // an idle source sends nothing while the worker's status updates keep coming: the worker asks for a
    // reply at half receive_timeout, and the stream is not given up
    await launch('wa_idle', { directory: archiveDir(host, 'idle'), source_conninfo: other.connectionString(), slot: '', create_slot: 'off', receive_timeout: '2s', status_interval: '500ms' });
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'wa_idle'`, 'streaming');
    const idleFrom = host.logOffset();
    // they keep trying (backoff), are not restarted as failing workers, and the first worker goes on
    await new Promise((r) => setTimeout(r, 5000));
    assert.deepEqual(logLines(host, /wa_idle.*no message from the source/, idleFrom), []);
    assert.equal((await archiveStatus(host, 'wa_idle'))?.state, 'streaming');
    // the missing directory appears: the worker, which checks again every 10 s, streams without a restart
    archiveDir(host, 'missing');
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'wa_nodir'`, 'streaming', { timeoutMs: 30_000 });
    const rows = await host.query(`SELECT name, restarts, state FROM tsworker.workers WHERE name LIKE 'wa\\_%' ORDER BY name`);
    for (const r of rows) assert.equal(r.restarts, 0, `${r.name} was restarted`);
    assert.deepEqual(fs.readdirSync(alien).filter((n) => n !== 'walarchive.lock'), [prev], 'nothing written into a directory of another cluster');
    assert.equal((await archiveStatus(host))?.state, 'streaming');
    assert.deepEqual(logLines(host, CRASH_RESTART), []);
  });
});

describe('walarchive: synchronous mode', () => {
  test('with synchronous_standby_names naming it, every acknowledged commit is in the archive after the source\'s SIGKILL', async (t) => {
    const src = await archiveSource('sync-src', clusters, { synchronous_standby_names: 'walarchive' });
    const { host, dir } = await archiveHost('sync-host', src, {
      'tsworker_walarchive.slot': 'wa',
      'tsworker_walarchive.create_slot': 'on',
      'tsworker_walarchive.synchronous': 'on',
      'tsworker_walarchive.compression': 'lz4',
      'tsworker_walarchive.retry_interval': '200ms',
    }, clusters);
    await src.query('CREATE TABLE acked(id bigserial PRIMARY KEY, v int)');
    const trials = Number(process.env.WALARCHIVE_SYNC_TRIALS) || 3;
    for (let i = 0; i < trials; i++) {
      await src.pollQueryUntil(`SELECT sync_state FROM pg_stat_replication WHERE application_name = 'walarchive'`, 'sync');
      // a segment switch at each trial: completed segments get compressed
      await switchWal(src);
      const n = await synchronousTrial(src, dir, 400 + 300 * i);
      t.diagnostic(`trial ${i + 1}: ${n} acknowledged commits, all in the archive`);
      assert.ok(n > 0);
      await src.start();
    }
    // completed segments are compressed with pg_receivewal's name (.lz4), and decompress to the source's bytes
    await waitFor(() => fs.readdirSync(dir).some((n) => n.endsWith('.lz4')), { what: 'an .lz4 segment' });
    const lz = fs.readdirSync(dir).filter((n) => n.endsWith('.lz4')).sort().pop()!;
    const plain = path.join(src.dataDir, 'pg_wal', lz.replace('.lz4', ''));
    if (fs.existsSync(plain)) assert.ok(decompress(lz, fs.readFileSync(path.join(dir, lz))).equals(fs.readFileSync(plain)), `${lz} decompresses to the source's segment`);
    assert.equal(fs.readdirSync(dir).filter((n) => /^[0-9A-F]{24}$/.test(n)).length, 0, 'no uncompressed completed segment left');
    assert.deepEqual(logLines(host, CRASH_RESTART), []);
  });
});

describe('walarchive: failover of the source, and a point-in-time restore from the archive alone', () => {
  test('a promoted source is followed onto timeline 2 with its .history; a restore from a base backup and the gzip archive reaches the last commit', async (t) => {
    const primary = await archiveSource('fo-primary', clusters, { shared_preload_libraries: 'pg_tsworker' });
    const standby = await Cluster.createStandby(primary, 'fo-standby');
    clusters.push(standby);
    await primary.query('CREATE EXTENSION pg_tsworker');
    const dir = archiveDir(primary, 'archive');
    // the archive runs on the primary and streams from the standby (cascading)
    await primary.query(`SELECT tsworker.launch('walarchive', 'walarchive', $1::jsonb)`, [
      JSON.stringify({ source_conninfo: standby.connectionString(), directory: dir, compression: 'gzip', status_interval: '1s', retry_interval: '200ms' }),
    ]);
    await primary.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'streaming');
    // a base backup without WAL: the restore will take all of it from the archive
    const backup = primary.backupDir('nowal');
    fs.mkdirSync(path.dirname(backup), { recursive: true });
    fs.chownSync(path.dirname(backup), fs.statSync(dir).uid, fs.statSync(dir).gid);
    await pgProgram('pg_basebackup', ['-h', primary.host, '-p', String(primary.port), '-U', 'postgres', '-D', backup, '-X', 'none', '-c', 'fast', '--no-sync']);
    await primary.query('CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 1000)');
    await pgbench(primary, ['-i', '-s', '2', '-q']);
    const upTo = await flushLsn(primary);
    await standby.pollQueryUntil(`SELECT pg_last_wal_replay_lsn() >= '${upTo}'`);
    const off = primary.logOffset();
    await standby.promote();
    await primary.waitForLog(/tsworker "walarchive": timeline 1 ended at [0-9A-F/]+; following timeline 2/, off, 60_000);
    await primary.waitForLog(/tsworker "walarchive": archived the history file 00000002\.history/, off, 30_000);
    await standby.query('INSERT INTO t SELECT generate_series(1001, 2000)');
    await pgbench(standby, ['-c', '2', '-T', '2', '-n']);
    await standby.query('INSERT INTO t VALUES (2001)');
    const last = 2001;
    const end = await flushLsn(standby);
    const seg = await switchWal(standby);
    assert.ok(seg.startsWith('00000002'));
    await waitFlushed(primary, end);
    await segmentArchived(dir, seg);
    assert.equal(fs.readFileSync(path.join(dir, '00000002.history'), 'utf8'), fs.readFileSync(path.join(standby.dataDir, 'pg_wal', '00000002.history'), 'utf8'));
    assert.equal((await archiveStatus(primary))?.timeline, 2);
    await waitFor(() => fs.readdirSync(dir).some((n) => /^00000002[0-9A-F]{16}\.gz$/.test(n)), { what: 'a gzip segment of timeline 2' });
    // the old timeline's last segment stays .partial, as pg_receivewal leaves it
    assert.ok(fs.readdirSync(dir).some((n) => /^00000001[0-9A-F]{16}\.partial$/.test(n)));

    // point-in-time restore: the backup, and the archive through restore_command
    const restored = await Cluster.createStandby(primary, 'fo-restored', { fromBackup: 'nowal', start: false });
    clusters.push(restored);
    const f = `${dir}/%f`;
    restored.appendConf({
      restore_command: `if [ -f ${f}.gz ]; then gzip -dc ${f}.gz > %p; elif [ -f ${f} ]; then cp ${f} %p; elif [ -f ${f}.partial ]; then cp ${f}.partial %p; else exit 1; fi`,
      recovery_target_timeline: 'latest',
      'tsworker.workers': '',
    });
    fs.writeFileSync(path.join(restored.dataDir, 'recovery.signal'), '');
    fs.chownSync(path.join(restored.dataDir, 'recovery.signal'), fs.statSync(dir).uid, fs.statSync(dir).gid);
    await restored.start();
    await restored.pollQueryUntil('SELECT NOT pg_is_in_recovery()', 't', { timeoutMs: 120_000 });
    assert.equal(await restored.queryText('SELECT max(id) || \',\' || count(*) FROM t'), `${last},${last}`);
    t.diagnostic(`restored to ${await restored.queryText('SELECT pg_walfile_name(pg_current_wal_lsn())')}, last row ${last}`);
  });
});
