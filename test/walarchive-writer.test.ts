/**
 * The walarchive segment writer (src/workers/walarchive/segment-writer.ts)
 * on a real directory, without a server: what reaches a segment whose
 * zero-filled file is still being made on libuv's thread pool waits for
 * it, queued, and is then written whole and in order; past MAX_WAIT_QUEUE
 * (64 MB) queued the event loop pads the segment itself instead. The
 * stream tests (walarchive.test.ts) reach these paths only when the
 * machine happens to be slow; here they are reached every time, since the
 * appends run synchronously, before any file made ahead can be ready.
 * And a synchronous archive's segments are zero-filled 64 kB at a time,
 * another's 1 MB at a time: counted in system calls (/proc/self/io), since
 * the page cache folios they make are not visible from here.
 */
import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';

import { segmentName } from '../src/workers/walarchive/lsn';
import { SegmentWriter } from '../src/workers/walarchive/segment-writer';
import { PREP_SUFFIX, ZERO_WRITE, ZERO_WRITE_SYNC, zeroWriteFor } from '../src/workers/walarchive/walfile';
import { waitFor } from './harness/cluster';

const SEG = 1024 * 1024;
const dirs: string[] = [];
after(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A writer on a new directory, and what it reported. */
interface Writer {
  w: SegmentWriter;
  dir: string;
  resumed: () => number;
  failures: Error[];
}

/** A writer on a new directory, starting at segment `first` of timeline 1; `resumed` writes what waited, as the receiver does. */
function writer(first: bigint): Writer {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgtsw-segwriter-'));
  dirs.push(dir);
  let resumed = 0;
  const failures: Error[] = [];
  const w: SegmentWriter = new SegmentWriter(dir, SEG, {
    segment: () => undefined,
    durable: () => undefined,
    failed: (err) => failures.push(err),
    resumed: () => {
      resumed++;
      w.writePending();
    },
  });
  w.reset(1, first * BigInt(SEG));
  return { w, dir, resumed: () => resumed, failures };
}

/** The bytes of segment `segno` in `dir`, complete or `.partial`. */
function segmentBytes(dir: string, segno: bigint): Buffer {
  const name = segmentName(1, segno, SEG);
  const file = fs.existsSync(path.join(dir, name)) ? name : `${name}.partial`;
  return fs.readFileSync(path.join(dir, file));
}

/** Wait until everything queued is written (the segments it waited for made). */
async function writtenAll({ w }: Writer): Promise<void> {
  await waitFor(() => w.position === w.end, { what: 'the queued WAL to be written once the segments are made' });
}

/** Close the writer, wait for the files made ahead to be gone, and check every byte of `data` from segment `first` on, and no failure. */
async function closeAndCheck({ w, dir, failures }: Writer, first: bigint, data: Buffer): Promise<void> {
  await w.close();
  await waitFor(() => !fs.readdirSync(dir).some((n) => n.endsWith('.prep')), { what: 'the files made ahead to be removed' });
  const segs = Math.ceil(data.length / SEG);
  for (let i = 0; i < segs; i++) {
    const got = segmentBytes(dir, first + BigInt(i));
    assert.equal(got.length, SEG, `segment ${i} has the segment size`);
    const want = data.subarray(i * SEG, (i + 1) * SEG);
    assert.ok(got.subarray(0, want.length).equals(want), `segment ${first + BigInt(i)} holds its WAL, in order`);
    assert.ok(got.subarray(want.length).every((b) => b === 0), `segment ${first + BigInt(i)} is zeros after its WAL`);
  }
  // complete segments lost their .partial; the last one (half full) kept it
  assert.ok(fs.existsSync(path.join(dir, segmentName(1, first + BigInt(segs - 1), SEG) + '.partial')));
  assert.ok(fs.existsSync(path.join(dir, segmentName(1, first, SEG))));
  assert.deepEqual(failures, []);
}

describe('walarchive segment writer', () => {
  test('what reaches a segment still being made waits, queued, and is then written whole and in order', async () => {
    const first = 5n;
    const t = writer(first);
    const { w } = t;
    const data = crypto.randomBytes(SEG * 3.5);
    // in 64 kB pieces, written after each as the receiver does per turn
    for (let off = 0; off < data.length; off += 64 * 1024) {
      w.append(data.subarray(off, off + 64 * 1024));
      w.writePending();
    }
    // the first segment is padded by the event loop (nothing was made ahead); the second is being made
    assert.equal(w.position, (first + 1n) * BigInt(SEG), 'written up to the segment still being made');
    assert.equal(w.end, first * BigInt(SEG) + BigInt(data.length), 'the rest queued, none lost');
    assert.equal(w.dirty, true);
    await writtenAll(t);
    assert.ok(t.resumed() >= 1, 'resumed once a segment was made');
    await closeAndCheck(t, first, data);
  });

  test('more than 64 MB queued: the event loop pads the next segment itself instead of waiting', async () => {
    const first = 9n;
    const t = writer(first);
    const { w } = t;
    const data = crypto.randomBytes(SEG * 66.5);
    w.append(data);
    w.writePending();
    // beyond the limit nothing waits: written until at most 64 MB are left, then a segment still being made is waited for
    const left = Number(w.end - w.position);
    assert.ok(left <= 64 * SEG, `at most 64 MB left queued (${left} bytes)`);
    assert.ok(w.position >= (first + 2n) * BigInt(SEG), 'segments padded by the event loop past the first');
    await writtenAll(t);
    await closeAndCheck(t, first, data);
  });

  test('close() writes what waits for a segment still being made, at once', async () => {
    const first = 2n;
    const t = writer(first);
    const data = crypto.randomBytes(SEG * 1.5);
    t.w.append(data);
    t.w.writePending();
    assert.ok(t.w.position < t.w.end, 'waiting for the second segment');
    await closeAndCheck(t, first, data);
  });

  test("a synchronous archive's zeros are written 64 kB at a time, another's 1 MB at a time", async () => {
    assert.equal(zeroWriteFor(true), ZERO_WRITE_SYNC);
    assert.equal(zeroWriteFor(false), ZERO_WRITE);
    // Write system calls (write, pwrite, writev; all threads, libuv's wake-ups included) while a
    // small turn opens segment 3 (padded by the event loop) and segments 4 to 6 are made ahead.
    const writesFor = async (zeroWrite: number): Promise<number> => {
      const t = writer(3n);
      t.w.zeroWrite = zeroWrite;
      const data = crypto.randomBytes(300);
      const before = syscw();
      t.w.append(data);
      t.w.writePending();
      await waitFor(() => fs.readdirSync(t.dir).filter((n) => n.endsWith(PREP_SUFFIX) && fs.statSync(path.join(t.dir, n)).size === SEG).length === 3, {
        what: 'three segments made ahead',
      });
      const n = syscw() - before;
      await t.w.close();
      const got = segmentBytes(t.dir, 3n);
      assert.equal(got.length, SEG);
      assert.ok(got.subarray(0, data.length).equals(data) && got.subarray(data.length).every((b) => b === 0), 'the WAL, then zeros');
      assert.deepEqual(t.failures, []);
      return n;
    };
    // four segments of 1 MB: 4 x 16 writes of 64 kB, or 4 x 1 of 1 MB
    const sync = await writesFor(zeroWriteFor(true));
    const other = await writesFor(zeroWriteFor(false));
    assert.ok(sync >= (4 * SEG) / ZERO_WRITE_SYNC, `synchronous: zeros in 64 kB writes (${sync} write calls)`);
    assert.ok(other < (4 * SEG) / ZERO_WRITE_SYNC / 2, `not synchronous: zeros in 1 MB writes (${other} write calls)`);
  });
});

/** Write system calls this process has made so far (/proc/self/io's syscw). */
function syscw(): number {
  const m = /^syscw: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'));
  if (!m) throw new Error('no syscw in /proc/self/io');
  return Number(m[1]);
}
