/**
 * [walarchive] A full archive disk (a small tmpfs, mounted as root): the
 * worker reports it and, once space is freed, streams again by itself
 * with no gap, never stuck on a segment file it could not pad.
 *
 * Half a segment is left free once the next segment's file has been made
 * ahead: the padding of the segment after it is cut short. On tmpfs the
 * kernel then returns a short write (the bytes that fit) and only the next
 * write fails with ENOSPC: a padding that did not continue short writes
 * left a half-size `.partial` that received WAL, and the worker refused it
 * forever ("should be 0 or …"). A `.partial` left that way by an older
 * version is padded (its WAL kept) at the next start.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { Cluster, waitFor } from './harness/cluster';
import { archiveHost, archiveSource, archiveStatus, completedSegments, segno, switchWal, waitFlushed, waldump, WALDUMP_END_RE } from './walarchive-helpers';

const SEG = 1024 * 1024;
const clusters: Cluster[] = [];
let mounted: string | null = null;
after(async () => {
  // The tmpfs is unmounted before the clusters' directories are removed: a mount point in one cannot be.
  for (const c of clusters) await c.stop().catch(() => undefined);
  if (mounted) execFileSync('umount', ['-l', mounted]);
  for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
});

describe('walarchive: disk full', { skip: process.getuid?.() !== 0 ? 'mounting a tmpfs needs root' : false }, () => {
  test('ENOSPC while a segment is padded is reported; once space is freed the worker streams again with no gap', async () => {
    const src = await archiveSource('df-src', clusters);
    const { host, dir } = await archiveHost(
      'df-host',
      src,
      { 'tsworker_walarchive.slot': 'wa', 'tsworker_walarchive.create_slot': 'on', 'tsworker_walarchive.retry_interval': '100ms' },
      clusters,
    );
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'streaming');
    // move the archive onto a 32 MB tmpfs, owned by the server's OS user
    await host.stop();
    const st = fs.statSync(dir);
    fs.rmSync(dir, { recursive: true });
    fs.mkdirSync(dir);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=32m,uid=${st.uid},gid=${st.gid},mode=0700`, 'tmpfs', dir]);
    mounted = dir;
    await host.start();
    await host.pollQueryUntil(`SELECT status->>'state' FROM tsworker.workers WHERE name = 'walarchive'`, 'streaming');
    // leave less than a segment free
    const free = () => {
      const s = fs.statfsSync(dir);
      return s.bavail * s.bsize;
    };
    // segments are made ahead just after the first is opened, several at once: wait until every one is
    // whole, twice in a row, so that free() stays put
    const prepsWhole = () => {
      const preps = fs.readdirSync(dir).filter((n) => n.endsWith('.partial.prep'));
      return preps.length > 0 && preps.every((n) => fs.statSync(path.join(dir, n)).size === SEG) ? preps.join() : null;
    };
    let seen: string | null = null;
    await waitFor(
      () => {
        const now = prepsWhole();
        const stable = now !== null && now === seen;
        seen = now;
        return stable;
      },
      { intervalMs: 200, what: 'the segments made ahead to be whole' },
    );
    const filler = path.join(dir, 'filler');
    fs.writeFileSync(filler, Buffer.alloc(Math.max(0, free() - SEG / 2)));
    const off = host.logOffset();
    await src.query('CREATE TABLE t(v int)');
    // new segments until one has to be padded on the full disk: the ones made ahead are used first
    const failing = /tsworker "walarchive": failing: .*ENOSPC|No space left/;
    for (let i = 0; i < 10 && !failing.test(host.readLog(off)); i++) {
      await src.query('INSERT INTO t SELECT generate_series(1, 1000)');
      await switchWal(src);
      await new Promise((r) => setTimeout(r, 300));
    }
    await host.waitForLog(failing, off, 60_000);
    fs.rmSync(filler);
    const end = await src.queryText('SELECT pg_current_wal_flush_lsn()');
    await waitFlushed(host, end, 'walarchive', 90_000);
    assert.equal((await archiveStatus(host))?.state, 'streaming');
    assert.deepEqual(host.readLog(off).split('\n').filter((l) => /should be 0 or/.test(l)), [], 'no segment left with the wrong size');
    // no gap in what was archived
    const nums = completedSegments(dir).map((n) => segno(n, SEG));
    for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1] + 1n, `gap after segment ${nums[i - 1]}`);
    for (const n of fs.readdirSync(dir).filter((n) => n.endsWith('.partial'))) {
      assert.equal(fs.statSync(path.join(dir, n)).size, SEG, `${n} has the segment size`);
    }
  });

  test('a .partial cut short with WAL in it (left by an older version) is padded at the next start, its WAL kept', async () => {
    const [src, host] = clusters;
    const dir = mounted!;
    await src.query('INSERT INTO t SELECT generate_series(1, 1000)');
    await waitFlushed(host, await src.queryText('SELECT pg_current_wal_flush_lsn()'), 'walarchive', 60_000);
    await host.stop();
    const partial = fs.readdirSync(dir).find((n) => n.endsWith('.partial'))!;
    assert.ok(partial, 'a .partial to cut short');
    // as the old padding left it: the first half of the segment, with WAL in it
    fs.truncateSync(path.join(dir, partial), SEG / 2);
    const off = host.logOffset();
    await host.start();
    await host.waitForLog(new RegExp(`padded ${partial} from ${SEG / 2} bytes`), off, 60_000);
    await src.query('INSERT INTO t SELECT generate_series(1, 1000)');
    await switchWal(src);
    await waitFlushed(host, await src.queryText('SELECT pg_current_wal_flush_lsn()'), 'walarchive', 60_000);
    assert.deepEqual(host.readLog(off).split('\n').filter((l) => /should be 0 or|failing/.test(l)), [], 'no failure');
    const nums = completedSegments(dir).map((n) => segno(n, SEG));
    for (let i = 1; i < nums.length; i++) assert.equal(nums[i], nums[i - 1] + 1n, `gap after segment ${nums[i - 1]}`);
    assert.ok(nums.includes(segno(partial.replace('.partial', ''), SEG)), `${partial} completed`);
    // pg_waldump reads every record of the completed segments; past them it stops at the end of the WAL in the .partial
    const r = await waldump(dir, completedSegments(dir)[0], path.join(host.baseDir, 'scratch'));
    if (r.code !== 0) {
      const stop = WALDUMP_END_RE.exec(r.err);
      assert.ok(stop, `pg_waldump ends at the end of the received WAL, not at a broken record: ${r.err}`);
      const stopSeg = ((BigInt(`0x${stop[1]}`) << 32n) | BigInt(`0x${stop[2]}`)) / BigInt(SEG);
      assert.ok(stopSeg > nums[nums.length - 1], `pg_waldump stopped in segment ${stopSeg}, inside the completed ones: ${r.err}`);
    }
  });
});
