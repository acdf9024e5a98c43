/**
 * One connection to the source: identify it, decide where to start, fetch
 * the timeline history files, stream, and follow timeline switches until
 * the stream fails or the worker stops (pg_receivewal's StreamLog and
 * ReceiveXlogStream).
 *
 * Where to start: from the directory (archive-dir.ts) when it holds WAL;
 * else the slot's restart position; else the source's current position,
 * at the start of its segment. When the source reports the end of a
 * timeline, streaming continues on the next one from the start of the
 * segment holding the switch point (so that the new timeline's segment is
 * whole). When the archive holds WAL of an old timeline beyond the point
 * where the source's timeline forked from it (a failover to a standby that
 * had received less), that WAL stays in the old timeline's `.partial` and
 * streaming continues on the timeline that followed, from the fork.
 */
import * as path from 'path';

import { findResumePoint, hasHistory, settleDirectory } from './archive-dir';
import type { ArchiveConfig } from './config';
import { ArchiveError, explain, systemIdMismatch } from './diagnose';
import { formatLsn, historyName, parseHistory, segmentOf, segmentStart } from './lsn';
import type { Receiver } from './receiver';
import { connectSource, createSlot, identifySystem, readSlot, timelineHistory, walSegmentSize, type SourceConnection } from './source';
import { writeDurably } from './walfile';

/** What the session tells the worker as it goes. */
export interface SessionEvents {
  log(text: string): void;
  warn(text: string): void;
  /** Connected to `where`; streaming timeline `timeline` from `lsn`. */
  streaming(where: string, timeline: number, lsn: string): void;
}

export class Session {
  private conn: SourceConnection | null = null;
  private stopped = false;
  segSize = 0;

  constructor(
    private readonly cfg: ArchiveConfig,
    private readonly receiver: (segSize: number) => Receiver,
    private readonly ev: SessionEvents,
  ) {}

  /** End the session: the stream ends and `run` returns. */
  stop(): void {
    this.stopped = true;
    this.conn?.client.end().catch(() => undefined);
  }

  /** Connect and stream until the stream fails (throws ArchiveError) or `stop()` is called (returns). */
  async run(): Promise<void> {
    const cfg = this.cfg;
    const t = cfg.connectTimeout;
    let at = '(not started)';
    try {
      this.conn = await connectSource(cfg.conninfo, t, cfg.applicationName);
      if (this.stopped) return;
      const client = this.conn.client;
      const id = await identifySystem(client, t);
      const segSize = await walSegmentSize(client, t);
      if (this.segSize && this.segSize !== segSize) throw new ArchiveError(`the source's WAL segment size changed from ${this.segSize} to ${segSize}`);
      this.segSize = segSize;
      for (const line of settleDirectory(cfg.directory, segSize)) this.ev.log(line);
      const resume = findResumePoint(cfg.directory, segSize);
      if (resume?.systemId && resume.systemId !== id.systemId) throw systemIdMismatch(id.systemId, resume.systemId, resume.from);
      let start: { timeline: number; lsn: bigint } | undefined;
      let why: string | undefined;
      if (cfg.slot) {
        let slot = await readSlot(client, cfg.slot, t);
        if (!slot.exists && cfg.createSlot) {
          await createSlot(client, cfg.slot, t);
          this.ev.log(`created physical replication slot "${cfg.slot}" on the source`);
          slot = await readSlot(client, cfg.slot, t);
        }
        if (!slot.exists) throw explain(Object.assign(new Error('replication slot does not exist'), { code: '42704' }), { slot: cfg.slot, at });
        if (slot.type !== 'physical') throw new ArchiveError(`replication slot "${cfg.slot}" on the source is a ${slot.type} slot, not a physical one`);
        if (!resume && slot.restartLsn) {
          start = { timeline: slot.restartTli ?? id.timeline, lsn: slot.restartLsn - BigInt(Number(slot.restartLsn % BigInt(segSize))) };
          why = `the restart position of slot "${cfg.slot}"`;
        }
      }
      if (resume) {
        start = { timeline: resume.timeline, lsn: resume.lsn };
        why = `the end of ${resume.from} in the archive`;
      }
      let from: { timeline: number; lsn: bigint } = start ?? { timeline: id.timeline, lsn: segmentStart(segmentOf(id.xlogpos, segSize), segSize) };
      why ??= "the start of the source's current segment";
      if (from.timeline > id.timeline) {
        throw new ArchiveError(`the archive's timeline ${from.timeline} is not present on the source (its timeline is ${id.timeline})`, 'The source is behind the archive: point the conninfo at the current primary.');
      }
      const receiver = this.receiver(segSize);
      const where = this.conn.where;
      // Logged once the source answered START_REPLICATION (its first message), not before: it may refuse.
      let connected = `connected to ${where} (system ${id.systemId}, timeline ${id.timeline}); streaming from ${formatLsn(from.lsn)} on timeline ${from.timeline}, ${why}`;
      for (;;) {
        at = `${formatLsn(from.lsn)} on timeline ${from.timeline}`;
        await this.fetchHistory(from.timeline);
        const streaming = { ...from };
        const end = await receiver.run(client, { slot: cfg.slot, lsn: from.lsn, timeline: from.timeline }, () => {
          if (connected) this.ev.log(connected);
          connected = '';
          this.ev.streaming(where, streaming.timeline, formatLsn(streaming.lsn));
        });
        if (this.stopped) return;
        if (end.kind === 'timeline') {
          const stop = receiver.position().lsn;
          if (end.timeline <= from.timeline || end.start > stop) {
            throw new ArchiveError(
              `the source stopped streaming timeline ${from.timeline} at ${formatLsn(stop)}, but reported the next timeline ${end.timeline} to begin at ${formatLsn(end.start)}`,
            );
          }
          this.ev.log(`timeline ${from.timeline} ended at ${formatLsn(end.start)}; following timeline ${end.timeline}`);
          from = { timeline: end.timeline, lsn: segmentStart(segmentOf(end.start, segSize), segSize) };
          continue;
        }
        if (end.kind === 'done') throw new ArchiveError('the source ended the stream');
        const forked: { timeline: number; lsn: bigint } | null = /is not in this server's history/.test(end.error.message) ? await this.afterFork(from, id.timeline) : null;
        if (forked) {
          from = forked;
          continue;
        }
        throw explain(end.error, { slot: cfg.slot, at });
      }
    } catch (err) {
      if (this.stopped) return;
      throw explain(err, { slot: cfg.slot, at });
    } finally {
      this.conn?.client.end().catch(() => undefined);
      this.conn = null;
    }
  }

  /** Fetch and store `<tli>.history` when the archive lacks it (timeline 1 has none). */
  private async fetchHistory(timeline: number): Promise<string | null> {
    if (hasHistory(this.cfg.directory, timeline)) return null;
    const h = await timelineHistory(this.conn!.client, timeline, this.cfg.connectTimeout);
    if (h.name !== historyName(timeline)) throw new ArchiveError(`the source reported an unexpected history file name for timeline ${timeline}: ${h.name}`);
    writeDurably(path.join(this.cfg.directory, h.name), h.content);
    this.ev.log(`archived the history file ${h.name}`);
    return h.content;
  }

  /**
   * START_REPLICATION refused a position past the fork of the source's
   * timeline from ours: continue on the timeline that followed ours, from
   * the start of the segment of the fork. Null when that is not the case.
   */
  private async afterFork(from: { timeline: number; lsn: bigint }, sourceTli: number): Promise<{ timeline: number; lsn: bigint } | null> {
    if (sourceTli <= from.timeline) return null;
    const h = await timelineHistory(this.conn!.client, sourceTli, this.cfg.connectTimeout);
    const entries = parseHistory(h.content);
    const i = entries.findIndex((e) => e.timeline === from.timeline);
    if (i < 0 || entries[i].end >= from.lsn) return null;
    const next = i + 1 < entries.length ? entries[i + 1].timeline : sourceTli;
    this.ev.warn(
      `the archive holds WAL of timeline ${from.timeline} up to ${formatLsn(from.lsn)}, beyond ${formatLsn(entries[i].end)} where the source's timeline ${next} forked from it: ` +
        `that WAL stays in timeline ${from.timeline}'s .partial file; continuing on timeline ${next}`,
    );
    return { timeline: next, lsn: segmentStart(segmentOf(entries[i].end, this.segSize), this.segSize) };
  }
}
