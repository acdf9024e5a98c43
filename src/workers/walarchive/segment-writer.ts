/**
 * Writes the received WAL into segment files and knows what of it is
 * durable (fsynced, and for a complete segment renamed with its directory
 * fsynced): the flush position the receiver may report.
 *
 * What arrives is queued (`append`) and written by `writePending()` in
 * pwritevs of up to MAX_WRITE bytes (larger writes cost more CPU per
 * byte), never one across two segments: the receiver calls
 * it once per turn of the event loop, after every message that one read of
 * the socket brought has been queued.
 *
 * The stream is never held up by work that can run beside it: the next
 * segments' zero-filled files are made ahead, and a complete segment is
 * fsynced and renamed, on libuv's thread pool. Completions run one after
 * the other, in order; what they cover counts as durable only once they
 * are done. When the stream reaches a segment whose file is still being
 * made, what arrives stays queued (up to MAX_WAIT_QUEUE bytes) until the
 * file is ready, instead of the event loop writing the zeros again while
 * the thread pool's file is thrown away: that put every following
 * segment behind as well.
 */
import * as fs from 'fs';
import * as path from 'path';

import { segmentName, segmentOf, segmentOffset, segmentStart } from './lsn';
import { MAX_WRITE, PREP_SUFFIX, prepareSegment, WalFile, ZERO_WRITE } from './walfile';

/** What the writer reports back. */
export interface WriterEvents {
  /** A segment is complete and durable under its final name. */
  segment(name: string, timeline: number): void;
  /** The durable position moved forward without a fsync of the open segment (a completion finished). */
  durable(): void;
  /** A background completion failed: the stream must stop. */
  failed(err: Error): void;
  /** The segment file writePending() waited for is made (or failed to be): call writePending() again. */
  resumed(): void;
}

/** Buffers in one pwritev (below Linux's IOV_MAX of 1024). */
const MAX_IOV = 256;

/**
 * Segment files made ahead of the open one. Three: a catch-up fills a
 * 16 MB segment in 50-100 ms, about what making one (16 MB of zeros,
 * fsync) takes on a busy machine; with one only, the next was often not
 * ready, and with two the stream still reached segments being made in
 * bench runs under pgbench (bench/walarchive/README.md, sixth pass).
 */
const PREP_AHEAD = 3;

/**
 * Bytes queued, at most, while the next segment's file is still being
 * made; beyond, the event loop makes it itself (a 16 MB segment is made
 * in 50-100 ms, in which a catch-up receives 10-30 MB).
 */
const MAX_WAIT_QUEUE = 64 * 1024 * 1024;

/** A segment file being made ahead. */
interface Prep {
  timeline: number;
  segno: bigint;
  ready: boolean;
  /** Made, or failed to be (then not ready). */
  settled: boolean;
  abandoned: boolean;
}

export class SegmentWriter {
  private file: WalFile | null = null;
  private timeline = 0;
  /** End of the data written. */
  private written = 0n;
  /** Received after `written`, not yet written: contiguous, in order. */
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  /** Durable up to here: the last finished completion, or the last fsync of the open segment. */
  private durablePos = 0n;
  /** Position the open segment was last fsynced to. */
  private syncedOpen = 0n;
  private pending = 0;
  private chain: Promise<void> = Promise.resolve();
  /** Segment files being made (or made) ahead, in segment order. */
  private preps: Prep[] = [];
  /** The file being made that writePending() waits for, with the rest queued. */
  private waitingFor: Prep | null = null;
  /** Bytes per write of the zeros of the segments made from now on (walfile.ts, zeroWriteFor()). */
  zeroWrite = ZERO_WRITE;

  constructor(
    private readonly dir: string,
    private readonly segSize: number,
    private readonly ev: WriterEvents,
  ) {}

  /** Start writing at `pos` on `timeline` (what is before it is durable). */
  reset(timeline: number, pos: bigint): void {
    if (this.file) throw new Error('reset() with a segment open');
    this.queued = [];
    this.queuedBytes = 0;
    this.waitingFor = null;
    this.timeline = timeline;
    this.written = pos;
    this.durablePos = pos;
    this.syncedOpen = pos;
  }

  /** End of what is written (to the files; durable or not). */
  get position(): bigint {
    return this.written;
  }

  /** End of what was received: written, or queued to be. The next data must start here. */
  get end(): bigint {
    return this.written + BigInt(this.queuedBytes);
  }

  /** The flush position: durable, never ahead of a completion still running. */
  get durable(): bigint {
    if (this.pending > 0) return this.durablePos;
    return this.syncedOpen > this.durablePos ? this.syncedOpen : this.durablePos;
  }

  /** Whether data written is not yet durable. */
  get dirty(): boolean {
    return this.written > this.durable;
  }

  /** Queue `data`, which starts at `end`; `writePending()` writes it. */
  append(data: Buffer): void {
    if (data.length === 0) return;
    this.queued.push(data);
    this.queuedBytes += data.length;
  }

  /**
   * Write what is queued: one pwritev per segment it falls in. Stops, with
   * the rest queued, at a segment whose file is still being made (the
   * `resumed` event says when to call again), unless `force` or more than
   * MAX_WAIT_QUEUE bytes are queued.
   */
  writePending(force = false): void {
    const bufs = this.queued;
    if (bufs.length === 0) return;
    if (this.waitingFor && this.mayWait(force, this.queuedBytes)) return;
    this.waitingFor = null;
    const total = this.queuedBytes;
    this.queued = [];
    this.queuedBytes = 0;
    const seg = this.segSize;
    let done = 0; // bytes of bufs written
    let i = 0;
    let off = 0; // into bufs[i]
    while (i < bufs.length) {
      // In the open segment (BigInt subtraction), or the segment is found by division: V8 runs BigInt
      // division outside optimized code, and in synchronous mode this runs on every turn.
      let offset = this.file && this.file.timeline === this.timeline && this.written >= this.file.start ? Number(this.written - this.file.start) : seg;
      if (offset >= seg) {
        this.closeOpen();
        const segno = segmentOf(this.written, seg);
        const making = this.mayWait(force, total - done) ? this.preps.find((p) => p.timeline === this.timeline && p.segno === segno && !p.settled && !p.abandoned) : undefined;
        if (making) {
          this.waitingFor = making;
          this.queued = [off === 0 ? bufs[i] : bufs[i].subarray(off), ...bufs.slice(i + 1)];
          this.queuedBytes = total - done;
          return;
        }
        this.openSegment(segno);
        offset = segmentOffset(this.written, seg);
      }
      let room = Math.min(seg - offset, MAX_WRITE);
      const iov: Buffer[] = [];
      let n = 0;
      while (i < bufs.length && room > 0 && iov.length < MAX_IOV) {
        const b = bufs[i];
        const take = Math.min(b.length - off, room);
        iov.push(off === 0 && take === b.length ? b : b.subarray(off, off + take));
        n += take;
        room -= take;
        off += take;
        if (off === b.length) {
          i++;
          off = 0;
        }
      }
      this.file!.writev(offset, iov, n);
      this.written += BigInt(n);
      done += n;
      if (offset + n === seg) this.completeOpen();
    }
  }

  /** Whether `queued` bytes may wait for a segment file still being made. */
  private mayWait(force: boolean, queued: number): boolean {
    return !force && queued <= MAX_WAIT_QUEUE;
  }

  /** fdatasync the open segment (synchronously): everything written to it becomes durable. */
  syncOpen(): void {
    if (this.file && this.syncedOpen < this.written) {
      this.file.sync();
      this.syncedOpen = this.written;
    }
  }

  /** Write what is queued, fsync and close the open segment (renamed if complete); then wait for the completions. */
  async close(): Promise<void> {
    try {
      this.writePending(true);
    } finally {
      this.queued = [];
      this.queuedBytes = 0;
      this.waitingFor = null;
      this.closeOpen();
    }
    await this.chain;
    for (const p of this.preps) this.dropPrep(p);
    this.preps = [];
  }

  /** Give up a segment file being made ahead; remove it if it is already made. */
  private dropPrep(p: Prep): void {
    p.abandoned = true;
    if (p.ready) fs.rmSync(path.join(this.dir, segmentName(p.timeline, p.segno, this.segSize) + PREP_SUFFIX), { force: true });
  }

  private openSegment(segno: bigint): void {
    let prepared = false;
    const keep: Prep[] = [];
    for (const p of this.preps) {
      if (p.timeline === this.timeline && p.segno === segno && p.ready && !p.abandoned) prepared = true;
      else if (p.timeline === this.timeline && p.segno > segno && !p.abandoned) keep.push(p);
      else this.dropPrep(p); // still being made, or for another segment: not used
    }
    this.preps = keep;
    this.file = WalFile.open(this.dir, this.timeline, segno, this.segSize, prepared, this.zeroWrite);
    this.syncedOpen = this.written;
    for (let n = segno + 1n; n <= segno + BigInt(PREP_AHEAD); n++) {
      if (!this.preps.some((p) => p.segno === n)) this.prepare(n);
    }
  }

  private prepare(segno: bigint): void {
    const next: Prep = { timeline: this.timeline, segno, ready: false, settled: false, abandoned: false };
    this.preps.push(next);
    void prepareSegment(this.dir, next.timeline, segno, this.segSize, this.zeroWrite, () => next.abandoned).then((ok) => {
      next.ready = ok;
      next.settled = true;
      if (ok && next.abandoned) {
        fs.rmSync(path.join(this.dir, segmentName(next.timeline, segno, this.segSize) + PREP_SUFFIX), { force: true });
      }
      if (this.waitingFor === next) {
        this.waitingFor = null;
        this.ev.resumed();
      }
    });
  }

  /** The open segment is full: fsync, rename and fsync the directory in the background. */
  private completeOpen(): void {
    const f = this.file!;
    this.file = null;
    const end = segmentStart(f.segno + 1n, this.segSize);
    this.syncedOpen = end;
    this.pending++;
    this.chain = this.chain.then(async () => {
      try {
        await f.complete();
        if (end > this.durablePos) this.durablePos = end;
        this.pending--;
        this.ev.segment(f.name, f.timeline);
        this.ev.durable();
      } catch (err) {
        this.pending--;
        this.ev.failed(err as Error);
      }
    });
  }

  /** fsync and close the open segment now; renamed if it is complete. */
  private closeOpen(): void {
    const f = this.file;
    this.file = null;
    if (!f) return;
    const complete = segmentStart(f.segno + 1n, this.segSize) === this.written;
    f.close(complete);
    this.syncedOpen = this.written;
    if (complete) this.ev.segment(f.name, f.timeline);
  }
}
