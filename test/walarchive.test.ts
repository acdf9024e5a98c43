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
import * as zlib from 'node:zlib';

import { Cluster, waitFor } from './harness/cluster';
import { CRASH_RESTART, logLines } from './helpers';
import {
  archiveDir,
  archiveStatus,
  completedSegments,
  pgProgram,
  pgSpawn,
  segno,
  stopProgram,
  waitFlushed,
  waldump,
} from './walarchive-helpers';

const SEG = 1024 * 1024;
const clusters: Cluster[] = [];
const children: ChildProcess[] = [];
after(async () => {
  for (const c of children) await stopProgram(c).catch(() => undefined);
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
});

async function source(name: string, conf: Record<string, string | number> = {}): Promise<Cluster> {
  const c = await Cluster.create(name, { allowStreaming: true, initdbArgs: ['--wal-segsize=1'], conf: { max_wal_size: '64MB', ...conf } });
  clusters.push(c);
  return c;
}

/** A server running the walarchive worker against `src`. */
async function archiveHost(name: string, src: Cluster, settings: Record<string, string | number>): Promise<{ host: Cluster; dir: string }> {
  const host = await Cluster.create(name, { start: false });
  clusters.push(host);
  const dir = archiveDir(host, 'archive');
  host.appendConf({
    shared_preload_libraries: 'pg_tsworker',
    'tsworker.workers': 'walarchive',
    'tsworker_walarchive.source_conninfo': src.connectionString(),
    'tsworker_walarchive.directory': dir,
    'tsworker_walarchive.status_interval': '1s',
    ...settings,
  });
  await host.start();
  await host.query('CREATE EXTENSION pg_tsworker');
  return { host, dir };
}

async function pgbench(c: Cluster, args: string[]): Promise<void> {
  await pgProgram('pgbench', ['-h', c.host, '-p', String(c.port), '-U', 'postgres', ...args, 'postgres'], { timeoutMs: 300_000 });
}

async function flushLsn(c: Cluster): Promise<string> {
  return c.queryText('SELECT pg_current_wal_flush_lsn()');
}

/** Wait until a completed segment named `name` (or a compressed form) is in `dir`. */
async function segmentArchived(dir: string, name: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(() => fs.existsSync(path.join(dir, name)) || fs.existsSync(path.join(dir, `${name}.gz`)) || fs.existsSync(path.join(dir, `${name}.lz4`)), {
    timeoutMs,
    what: `${name} in ${dir}`,
  });
}

async function switchWal(c: Cluster): Promise<string> {
  // the segment that was current is complete once the switch is done
  const name = await c.queryText(`SELECT pg_walfile_name(pg_current_wal_lsn())`);
  await c.query('SELECT pg_switch_wal()');
  return name;
}

describe('walarchive beside pg_receivewal, under pgbench', () => {
  let src: Cluster;
  let host: Cluster;
  let dir: string;
  let rwDir: string;
  let rw: ChildProcess;
  let firstSeg: string;

  test('streams from a slot it creates, resumes exactly after a SIGKILL mid-segment', async (t) => {
    src = await source('bytes-src');
    ({ host, dir } = await archiveHost('bytes-host', src, { 'tsworker_walarchive.slot': 'wa', 'tsworker_walarchive.create_slot': 'on' }));
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
    const pid = Number(await host.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'walarchive'`));
    const off = host.logOffset();
    process.kill(pid, 'SIGKILL');
    const resumed = await host.waitForLog(/streaming from ([0-9A-F]+\/[0-9A-F]+) on timeline 1, the end of ([0-9A-F]{24})\.partial in the archive/, off, 60_000);
    const m = /streaming from ([0-9A-F]+)\/([0-9A-F]+) on timeline 1, the end of ([0-9A-F]{24})\.partial/.exec(resumed)!;
    const offsetInSegment = Number(BigInt(`0x${m[2]}`) % BigInt(SEG));
    t.diagnostic(`resumed at ${m[1]}/${m[2]}, ${offsetInSegment} bytes into ${m[3]}`);
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
    const dump = await waldump(dir, ours[0], path.join(src.baseDir, 'dump'), ['--stats']);
    assert.match(dump.out, /Total/, dump.err);
    // pg_waldump stops at the end of the valid WAL: after the last complete segment, never inside the range
    const stop = /error in WAL record at ([0-9A-F]+\/[0-9A-F]+)/.exec(dump.err) ?? /invalid record length at ([0-9A-F]+\/[0-9A-F]+)/.exec(dump.err);
    if (stop) {
      const lsnSeg = await src.queryText(`SELECT pg_walfile_name($1::pg_lsn)`, [stop[1]]);
      assert.ok(lsnSeg.slice(8) >= ours[ours.length - 1].slice(8), `pg_waldump stopped at ${stop[1]} inside the archived range: ${dump.err}`);
    }
    const status = await archiveStatus(host);
    assert.equal(status?.state, 'streaming');
    assert.equal(status?.slot, 'wa');
    assert.equal(status?.timeline, 1);
    assert.equal(status?.error, null);
    assert.ok(status?.segments >= 1);
  });
});
