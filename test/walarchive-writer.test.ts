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
import { Receiver } from '../src/workers/walarchive/receiver';
import { PREP_SUFFIX, prepareSegment, WalFile, ZERO_WRITE, ZERO_WRITE_SYNC, zeroWriteFor } from '../src/workers/walarchive/walfile';
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
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pgtsw-zeros-'));
    dirs.push(dir);
    // Padded by the event loop, synchronously: nothing else writes meanwhile, the count is exact.
    const padWrites = (segno: bigint, zeroWrite: number): number => {
      const before = syscw();
      WalFile.open(dir, 1, segno, SEG, false, zeroWrite).close(false);
      return syscw() - before;
    };
    assert.equal(padWrites(1n, ZERO_WRITE_SYNC), SEG / ZERO_WRITE_SYNC);
    assert.equal(padWrites(2n, ZERO_WRITE), 1);
    // Made ahead on the thread pool: libuv's wake-ups of the event loop (one per completion at
    // most: open, writes, fsync, close) are write calls too.
    const prepWrites = async (segno: bigint, zeroWrite: number): Promise<number> => {
      const before = syscw();
      assert.equal(await prepareSegment(dir, 1, segno, SEG, zeroWrite, () => false), true);
      return syscw() - before;
    };
    const prepSync = await prepWrites(3n, ZERO_WRITE_SYNC);
    const prepOther = await prepWrites(4n, ZERO_WRITE);
    assert.ok(prepSync >= SEG / ZERO_WRITE_SYNC && prepSync <= 2 * (SEG / ZERO_WRITE_SYNC) + 3, `64 kB: ${prepSync} write calls`);
    assert.ok(prepOther >= 1 && prepOther <= 5, `1 MB: ${prepOther} write calls`);
    for (const n of [3n, 4n]) {
      const got = fs.readFileSync(path.join(dir, segmentName(1, n, SEG) + PREP_SUFFIX));
      assert.ok(got.length === SEG && got.every((b) => b === 0), 'made ahead: the segment size, all zeros');
    }
    // A size that is not a positive whole number is refused, and nothing is left behind.
    assert.throws(() => WalFile.open(dir, 1, 5n, SEG, false, 0), RangeError);
    assert.equal(await prepareSegment(dir, 1, 6n, SEG, Number.NaN, () => false), false);
    assert.ok(!fs.existsSync(path.join(dir, segmentName(1, 6n, SEG) + PREP_SUFFIX)));

    // The writer takes its `zeroWrite` for the segment it pads and those it makes ahead; over its
    // whole life (until the files made ahead are removed) a small turn that opens segment 3 writes
    // 4 segments of zeros: 4 x 16 writes, or 4 x 1.
    const writerWrites = async (zeroWrite: number): Promise<number> => {
      const t = writer(3n);
      t.w.zeroWrite = zeroWrite;
      const before = syscw();
      t.w.append(crypto.randomBytes(300));
      t.w.writePending();
      await waitFor(() => fs.readdirSync(t.dir).filter((n) => n.endsWith(PREP_SUFFIX) && fs.statSync(path.join(t.dir, n)).size === SEG).length === 3, {
        what: 'three segments made ahead',
      });
      await t.w.close();
      await waitFor(() => !fs.readdirSync(t.dir).some((n) => n.endsWith(PREP_SUFFIX)), { what: 'the files made ahead to be removed' });
      assert.deepEqual(t.failures, []);
      return syscw() - before;
    };
    const sync = await writerWrites(ZERO_WRITE_SYNC);
    const other = await writerWrites(ZERO_WRITE);
    assert.ok(sync >= (4 * SEG) / ZERO_WRITE_SYNC, `synchronous: ${sync} write calls`);
    assert.ok(other < (4 * SEG) / ZERO_WRITE_SYNC / 2, `not synchronous: ${other} write calls`);

    // The receiver sets it from `synchronous`, at the start and on a reload.
    const receiver = new Receiver({ dir, segSize: SEG, synchronous: true, statusInterval: 0, receiveTimeout: 0, onSegment: () => undefined });
    const zeroWriteOf = (): number => (receiver as unknown as { writer: SegmentWriter }).writer.zeroWrite;
    assert.equal(zeroWriteOf(), ZERO_WRITE_SYNC);
    receiver.configure({ synchronous: false });
    assert.equal(zeroWriteOf(), ZERO_WRITE);
    receiver.configure({ synchronous: true });
    assert.equal(zeroWriteOf(), ZERO_WRITE_SYNC);
  });
});

/** Write system calls this process has made so far (/proc/self/io's syscw). */
function syscw(): number {
  const m = /^syscw: (\d+)$/m.exec(fs.readFileSync('/proc/self/io', 'utf8'));
  if (!m) throw new Error('no syscw in /proc/self/io');
  return Number(m[1]);
}
