/**
 * Receiving WAL into the archive directory: XLogData written into the
 * segment files, fsynced, and the positions reported to the source with
 * standby status updates, as pg_receivewal's receivelog.c does:
 *
 * - the XLogData of a turn of the event loop (everything the reads of the
 *   socket in that turn brought) is written at the end of that turn, in
 *   pwritevs (segment-writer.ts);
 * - `synchronous` (pg_receivewal --synchronous): everything one read
 *   brought is written, the segment fdatasynced and a status update sent
 *   as soon as that read's messages are handed out (a next tick), so that
 *   the source's synchronous replication sees the flush position as soon
 *   as it is on disk;
 * - otherwise the segment is fsynced when it is complete and, beyond
 *   pg_receivewal, at every status update, so that at most
 *   `status_interval` of WAL is received but not yet durable;
 * - a keepalive asking for a reply is answered at once, after an fsync of
 *   what was received (so the flush position a shutting-down source waits
 *   for is sent);
 * - a status update goes out every `status_interval` (0: only when asked).
 *
 * The flush position reported is always what is fsynced, never more.
 */
import type pg from 'pg';

import { formatLsn } from './lsn';
import { parseSourceMessage } from './messages';
import { startReplication, type ReplicationStream, type StartPoint, type StreamEnd } from './replication';
import { SegmentWriter } from './segment-writer';
import { zeroWriteFor } from './walfile';

/** How the receiver writes and reports. */
export interface ReceiverOptions {
  dir: string;
  segSize: number;
  synchronous: boolean;
  /** ms between status updates; 0 for none unless asked. */
  statusInterval: number;
  /** ms without any message from the source after which the stream is given up. */
  receiveTimeout: number;
  /** Called with the plain name of each completed segment. */
  onSegment(name: string, timeline: number): void;
}

/** What the receiver reports in the worker's status. */
export interface ReceiverState {
  timeline: number;
  written: string | null;
  flushed: string | null;
  sourceEnd: string | null;
  lagBytes: number;
  lagSeconds: number;
  lastSegment: string | null;
  segments: number;
}

export class Receiver {
  private readonly writer: SegmentWriter;
  private timeline = 0;
  private sourceEnd = 0n;
  /** When the source first had WAL beyond what is flushed (ms), or 0. */
  private behindSince = 0;
  private lastSegment: string | null = null;
  private segments = 0;
  private stream: ReplicationStream | null = null;
  /** A write of what arrived is scheduled at the end of this turn of the event loop. */
  private writeScheduled = false;
  private failure: Error | null = null;
  private client: pg.Client | null = null;

  constructor(private opts: ReceiverOptions) {
    this.writer = new SegmentWriter(opts.dir, opts.segSize, {
      segment: (name, timeline) => {
        this.lastSegment = name;
        this.segments++;
        this.opts.onSegment(name, timeline);
      },
      durable: () => {
        this.caughtUp();
        // a completion finished: in synchronous mode the source hears of it at once
        if (this.opts.synchronous && !this.failure) this.report();
      },
      failed: (err) => this.fail(err),
      // the segment file the writer waited for is made: write what waited, as at the end of a turn
      resumed: () => this.writeArrived(),
    });
    this.writer.zeroWrite = zeroWriteFor(opts.synchronous);
  }

  /** End of what is written. */
  private get writePos(): bigint {
    return this.writer.position;
  }

  /** End of what is durable (fsynced): the flush position reported. */
  private get flushPos(): bigint {
    return this.writer.durable;
  }

  get segSize(): number {
    return this.opts.segSize;
  }

  /** Change the options that a reload may change. */
  configure(opts: Partial<Pick<ReceiverOptions, 'synchronous' | 'statusInterval' | 'receiveTimeout'>>): void {
    this.opts = { ...this.opts, ...opts };
    this.writer.zeroWrite = zeroWriteFor(this.opts.synchronous);
  }

  state(): ReceiverState {
    const has = this.writePos > 0n;
    const lag = this.sourceEnd > this.flushPos ? this.sourceEnd - this.flushPos : 0n;
    return {
      timeline: this.timeline,
      written: has ? formatLsn(this.writePos) : null,
      flushed: has ? formatLsn(this.flushPos) : null,
      sourceEnd: this.sourceEnd > 0n ? formatLsn(this.sourceEnd) : null,
      lagBytes: Number(lag),
      lagSeconds: lag > 0n && this.behindSince ? Math.round((Date.now() - this.behindSince) / 100) / 10 : 0,
      lastSegment: this.lastSegment,
      segments: this.segments,
    };
  }

  /**
   * Stream from `start` until the source ends the stream or it fails. The
   * positions received and flushed carry over from call to call.
   */
  async run(client: pg.Client, start: StartPoint, onFirstMessage: () => void = () => undefined): Promise<StreamEnd> {
    this.timeline = start.timeline;
    this.writer.reset(start.timeline, start.lsn);
    this.failure = null;
    this.client = client;
    const stream = startReplication(client, start);
    this.stream = stream;
    // A first status update, asking for a reply (sent once the source accepted START_REPLICATION): the
    // source answers at once, so that its acceptance is seen even when it has no WAL to send yet.
    stream.sendStatusUpdate(this.writePos, this.flushPos, true);
    let lastMessageAt = Date.now();
    // Messages since the timer last looked: it notes their time, within a tick (no clock read per message).
    let received = 0;
    let first = true;
    let pinged = false;
    stream.onMessage((payload) => {
      received++;
      pinged = false;
      if (this.failure) return;
      if (first) {
        first = false;
        onFirstMessage();
      }
      try {
        this.handle(payload);
      } catch (err) {
        this.fail(err as Error);
      }
    });
    const tick = Math.max(100, Math.min(this.opts.statusInterval || 1000, 1000));
    let lastStatus = Date.now();
    const timer = setInterval(() => {
      if (this.failure) return;
      try {
        const now = Date.now();
        if (received > 0) {
          received = 0;
          lastMessageAt = now;
        }
        if (this.opts.statusInterval > 0 && now - lastStatus >= this.opts.statusInterval) {
          lastStatus = now;
          this.flush(true);
        }
        const silent = now - lastMessageAt;
        if (this.opts.receiveTimeout > 0 && silent > this.opts.receiveTimeout) {
          this.fail(Object.assign(new Error(`no message from the source for ${this.opts.receiveTimeout} ms`), { code: 'ETIMEDOUT' }));
        } else if (this.opts.receiveTimeout > 0 && silent > this.opts.receiveTimeout / 2 && !pinged) {
          // An idle source sends nothing while our status updates keep coming:
          // ask for a reply, as the walreceiver does (wal_receiver_timeout / 2).
          pinged = true;
          this.stream?.sendStatusUpdate(this.writePos, this.flushPos, true);
        }
      } catch (err) {
        this.fail(err as Error);
      }
    }, tick);
    try {
      const end = await stream.ended;
      return this.failure ? { kind: 'error', error: this.failure } : end;
    } finally {
      clearInterval(timer);
      this.stream = null;
      this.client = null;
      // Whichever way the stream ended, what was received is made durable
      // and the segment closed (it stays .partial unless complete).
      try {
        await this.writer.close();
      } catch (err) {
        this.failure ??= err as Error;
      }
    }
  }

  /** The position the next stream continues from. */
  position(): { timeline: number; lsn: bigint } {
    return { timeline: this.timeline, lsn: this.writePos };
  }

  /** fsync what is written and tell the source (at shutdown, before the connection closes). */
  finish(): void {
    if (this.stream && !this.failure) this.flush(true);
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    // Ends the stream: `ended` resolves with the connection's end.
    this.client?.end().catch(() => undefined);
  }

  private handle(payload: Buffer): void {
    const msg = parseSourceMessage(payload);
    if (msg.walEnd > this.sourceEnd) this.sourceEnd = msg.walEnd;
    if (this.sourceEnd > this.flushPos && !this.behindSince) this.behindSince = Date.now();
    if (msg.type === 'k') {
      if (msg.replyRequested) this.flush(true);
      return;
    }
    if (msg.start !== this.writer.end) {
      throw new Error(`received WAL at ${formatLsn(msg.start)}, expected ${formatLsn(this.writer.end)}`);
    }
    this.writer.append(msg.data);
    if (!this.writeScheduled) {
      // Everything that has arrived first: one write (and in synchronous mode one fsync) for all of it.
      // In synchronous mode in a next tick: pg-copy-streams' reader hands out every message one read
      // brought in a next tick of that read, and this one runs after it, without the second call from
      // C++ into JavaScript per turn (libuv's check phase) that setImmediate costs. Otherwise at the end
      // of the turn, which may have read the socket more than once.
      this.writeScheduled = true;
      if (this.opts.synchronous) process.nextTick(this.endOfTurn);
      else setImmediate(this.endOfTurn);
    }
  }

  /** The end of a turn in which messages arrived (scheduled by handle()). */
  private readonly endOfTurn = (): void => {
    this.writeScheduled = false;
    this.writeArrived();
  };

  /** Write what arrived and is queued; in synchronous mode make it durable and tell the source. */
  private writeArrived(): void {
    if (this.failure) return;
    try {
      if (this.opts.synchronous) this.flush(true);
      else this.writer.writePending();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private caughtUp(): void {
    if (this.flushPos >= this.sourceEnd) this.behindSince = 0;
  }

  /** fsync what is written but not yet flushed; then send a status update if `report`. */
  private flush(report: boolean): void {
    this.writer.writePending();
    if (this.writer.dirty) {
      this.writer.syncOpen();
      this.caughtUp();
    }
    if (report) this.report();
  }

  private report(): void {
    this.stream?.sendStatusUpdate(this.writePos, this.flushPos);
  }
}
