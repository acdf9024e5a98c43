/**
 * What the archive directory already holds, and where streaming resumes.
 *
 * As pg_receivewal's FindStreamingStart: the highest segment (by segment
 * number, then timeline, a complete one over a `.partial`) decides. After
 * a complete segment, streaming starts at the next one on its timeline.
 * Unlike pg_receivewal, which starts a `.partial` again from its first
 * byte, streaming resumes where the data in the `.partial` ends: its WAL
 * pages are read (each page header names its own position), and the
 * received bytes end after the last non-zero byte of the last valid page
 * (the rest of the file is the zero padding). The file is fsynced first, so
 * that everything before the resume point is on disk before it is reported
 * as flushed. Resuming a little early (if the last received bytes were
 * zeros) rewrites identical bytes in place: no gap, nothing twice.
 */
import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

import { fsyncDir, PREP_SUFFIX, repairShortPartial } from './walfile';
import { historyName, parseArchiveName, segmentStart, type ArchiveFile, type SegmentId } from './lsn';

/** XLogPageHeaderData: xlp_magic(2) xlp_info(2) xlp_tli(4) xlp_pageaddr(8) xlp_rem_len(4) + padding. */
const PAGE_ADDR_OFFSET = 8;
/** XLogLongPageHeaderData adds xlp_sysid(8) xlp_seg_size(4) xlp_xlog_blcksz(4) after the 24-byte short header. */
const LONG_SYSID_OFFSET = 24;
const LONG_SEGSIZE_OFFSET = 32;
const LONG_BLCKSZ_OFFSET = 36;
/** XLP_LONG_HEADER in xlp_info. */
const XLP_LONG_HEADER = 0x0002;

/** Where to start streaming, from what the directory holds. */
export interface ResumePoint {
  timeline: number;
  lsn: bigint;
  /** The segment file this was read from, for the log. */
  from: string;
  /** The system identifier in that file's first page, when it has one. */
  systemId: string | null;
}

/** The archive files in `dir`, classified (unknown names left out). */
export function listArchive(dir: string, segSize: number): ArchiveFile[] {
  const out: ArchiveFile[] = [];
  for (const name of fs.readdirSync(dir)) {
    const f = parseArchiveName(name, segSize);
    if (f) out.push(f);
  }
  return out;
}

function higher(a: SegmentId & { partial: boolean }, b: SegmentId & { partial: boolean }): boolean {
  if (a.segno !== b.segno) return a.segno > b.segno;
  if (a.timeline !== b.timeline) return a.timeline > b.timeline;
  return !a.partial && b.partial;
}

/** The first page of a segment file, decompressed if need be. */
function firstPage(file: string, compression: 'none' | 'gzip' | 'lz4'): Buffer {
  if (compression === 'none') {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(64);
      const n = fs.readSync(fd, b, 0, b.length, 0);
      return b.subarray(0, n);
    } finally {
      fs.closeSync(fd);
    }
  }
  const data = fs.readFileSync(file);
  if (compression === 'gzip') return zlib.gunzipSync(data).subarray(0, 64);
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const lz4 = require('lz4-napi') as { decompressFrameSync(b: Buffer): Buffer };
  return lz4.decompressFrameSync(data).subarray(0, 64);
}

/** The system identifier of a segment's long page header, or null if the page is not one. */
export function pageSystemId(page: Buffer, segSize: number): string | null {
  if (page.length < 40) return null;
  const info = page.readUInt16LE(2);
  if ((info & XLP_LONG_HEADER) === 0) return null;
  if (page.readUInt32LE(LONG_SEGSIZE_OFFSET) !== segSize) return null;
  return page.readBigUInt64LE(LONG_SYSID_OFFSET).toString();
}

/**
 * End of the received data in a padded `.partial` whose first byte is at
 * `base`: pages are valid while their header carries their own address.
 */
export function partialDataEnd(file: string, base: bigint, segSize: number): number {
  const fd = fs.openSync(file, 'r+');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return 0;
    if (size !== segSize) throw new Error(`WAL file "${file}" has ${size} bytes, should be 0 or ${segSize}`);
    fs.fsyncSync(fd);
    const head = Buffer.alloc(40);
    fs.readSync(fd, head, 0, 40, 0);
    if (head.readBigUInt64LE(PAGE_ADDR_OFFSET) !== base) return 0;
    const blcksz = head.readUInt32LE(LONG_BLCKSZ_OFFSET) || 8192;
    const page = Buffer.alloc(blcksz);
    let lastValid = -1;
    for (let p = 0; p * blcksz < segSize; p++) {
      fs.readSync(fd, page, 0, blcksz, p * blcksz);
      if (page.readBigUInt64LE(PAGE_ADDR_OFFSET) !== base + BigInt(p * blcksz)) break;
      lastValid = p;
      // a page that is valid to its last byte may be followed by more
    }
    if (lastValid < 0) return 0;
    fs.readSync(fd, page, 0, blcksz, lastValid * blcksz);
    let end = blcksz;
    while (end > 0 && page[end - 1] === 0) end--;
    return lastValid * blcksz + end;
  } finally {
    fs.closeSync(fd);
  }
}

/** Whether every WAL page of a padded segment file carries its own address (no hole, no zero page). */
function allPagesValid(file: string, base: bigint, segSize: number): boolean {
  const fd = fs.openSync(file, 'r');
  try {
    if (fs.fstatSync(fd).size !== segSize) return false;
    const head = Buffer.alloc(40);
    fs.readSync(fd, head, 0, 40, 0);
    const blcksz = head.readUInt32LE(LONG_BLCKSZ_OFFSET) || 8192;
    const hdr = Buffer.alloc(16);
    for (let off = 0; off < segSize; off += blcksz) {
      fs.readSync(fd, hdr, 0, 16, off);
      if (hdr.readBigUInt64LE(PAGE_ADDR_OFFSET) !== base + BigInt(off)) return false;
    }
    return true;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Put the directory in order after a stop at any point: segment files
 * made ahead (`.partial.prep`) are removed; a `.partial` shorter than a
 * segment (a padding cut short by a full disk) is removed if all zeros,
 * else padded to the segment size (walfile.ts repairShortPartial); a `.partial` followed by a
 * later segment of its timeline was complete (its completion, which runs
 * beside the stream, was cut short): it is fsynced and renamed, unless
 * one of its pages is missing (the machine crashed before its fsync), in
 * which case the later segments of that timeline are removed, so that
 * streaming resumes in it: no gap. Returns what was done, for the log.
 */
export function settleDirectory(dir: string, segSize: number): string[] {
  const done: string[] = [];
  for (const n of fs.readdirSync(dir)) {
    if (n.endsWith(PREP_SUFFIX)) fs.rmSync(path.join(dir, n), { force: true });
  }
  let changed = false;
  for (const f of listArchive(dir, segSize)) {
    if (f.kind !== 'segment' || !f.partial || f.compression !== 'none') continue;
    const fixed = repairShortPartial(path.join(dir, f.name), segSize);
    if (fixed) {
      done.push(fixed);
      changed = true;
    }
  }
  const segs = listArchive(dir, segSize).filter((f): f is ArchiveFile & { kind: 'segment' } => f.kind === 'segment');
  const partials = segs.filter((f) => f.partial && f.compression === 'none').sort((a, b) => (a.id.segno < b.id.segno ? -1 : 1));
  for (const p of partials) {
    const later = segs.filter((f) => f.id.timeline === p.id.timeline && f.id.segno > p.id.segno);
    if (later.length === 0 || !fs.existsSync(path.join(dir, p.name))) continue;
    const file = path.join(dir, p.name);
    const plain = path.join(dir, p.name.replace(/\.partial$/, ''));
    if (allPagesValid(file, segmentStart(p.id.segno, segSize), segSize)) {
      const fd = fs.openSync(file, 'r+');
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      if (fs.existsSync(plain)) fs.rmSync(file);
      else fs.renameSync(file, plain);
      done.push(`completed ${path.basename(plain)}, whose completion had been cut short`);
    } else {
      for (const l of later) fs.rmSync(path.join(dir, l.name), { force: true });
      done.push(`${p.name} has missing pages (a crash before its fsync): removed the ${later.length} later segment files of timeline ${p.id.timeline}, to stream them again`);
    }
    changed = true;
  }
  if (changed) fsyncDir(dir);
  return done;
}

/**
 * Where streaming resumes from the directory's content, or null when it
 * holds no segment. Compressed `.partial` files (pg_receivewal's with
 * --compress) are started again from their first byte, as pg_receivewal
 * does.
 */
export function findResumePoint(dir: string, segSize: number): ResumePoint | null {
  let best: (SegmentId & { partial: boolean; file: ArchiveFile & { kind: 'segment' } }) | null = null;
  for (const f of listArchive(dir, segSize)) {
    if (f.kind !== 'segment') continue;
    const cand = { ...f.id, partial: f.partial, file: f };
    if (!best || higher(cand, best)) best = cand;
  }
  if (!best) return null;
  const file = path.join(dir, best.file.name);
  const base = segmentStart(best.segno, segSize);
  // A file that cannot be read is an error to report, not a check to skip.
  const systemId = pageSystemId(firstPage(file, best.file.compression), segSize);
  if (!best.partial) {
    return { timeline: best.timeline, lsn: base + BigInt(segSize), from: best.file.name, systemId };
  }
  if (best.file.compression !== 'none') return { timeline: best.timeline, lsn: base, from: best.file.name, systemId };
  const end = partialDataEnd(file, base, segSize);
  return { timeline: best.timeline, lsn: base + BigInt(end), from: best.file.name, systemId };
}

/** Whether the history file of a timeline is in the directory (timeline 1 has none). */
export function hasHistory(dir: string, timeline: number): boolean {
  return timeline === 1 || fs.existsSync(path.join(dir, historyName(timeline)));
}

/**
 * Complete uncompressed segments (`<segment>` without suffix) for which no
 * compressed file of `compression` exists yet, oldest first; and stale
 * leftovers (`.tmp`) removed.
 */
export function uncompressedSegments(dir: string, segSize: number, compression: 'gzip' | 'lz4'): string[] {
  const names = new Set(fs.readdirSync(dir));
  for (const n of names) {
    if (/^[0-9A-F]{24}\.(gz|lz4)\.tmp$/.test(n)) fs.rmSync(path.join(dir, n), { force: true });
  }
  const ext = compression === 'gzip' ? '.gz' : '.lz4';
  const out: { name: string; segno: bigint }[] = [];
  for (const n of names) {
    const f = parseArchiveName(n, segSize);
    if (!f || f.kind !== 'segment' || f.partial || f.compression !== 'none') continue;
    if (names.has(n + ext)) {
      fs.rmSync(path.join(dir, n), { force: true }); // compressed before a crash: the plain copy is redundant
      continue;
    }
    out.push({ name: n, segno: f.id.segno });
  }
  return out.sort((a, b) => (a.segno < b.segno ? -1 : a.segno > b.segno ? 1 : a.name.localeCompare(b.name))).map((o) => o.name);
}

