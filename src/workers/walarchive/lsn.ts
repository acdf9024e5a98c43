/**
 * WAL positions and file names, as PostgreSQL spells them
 * (src/include/access/xlog_internal.h): LSNs `X/X`, segment names
 * `TTTTTTTTXXXXXXXXYYYYYYYY` and history names `TTTTTTTT.history`.
 *
 * Positions are bigints (an LSN is an unsigned 64-bit integer).
 */

/** A WAL segment of one timeline. */
export interface SegmentId {
  timeline: number;
  /** Segment number: LSN / segment size. */
  segno: bigint;
}

/** Parse `X/X` (pg_lsn's text form) into a position. Throws on anything else. */
export function parseLsn(text: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`invalid WAL position "${text}"`);
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** A position as `X/X`, as PostgreSQL prints it (upper case hex, no padding). */
export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

const hex8 = (n: number | bigint): string => n.toString(16).toUpperCase().padStart(8, '0');

/** Segments per "xlogid" (4 GB of WAL): XLogSegmentsPerXLogId. */
function segmentsPerId(segSize: number): bigint {
  return 0x100000000n / BigInt(segSize);
}

/** The segment name (XLogFileName) of a segment number on a timeline. */
export function segmentName(timeline: number, segno: bigint, segSize: number): string {
  const per = segmentsPerId(segSize);
  return `${hex8(timeline)}${hex8(segno / per)}${hex8(segno % per)}`;
}

/** The segment number holding a position. */
export function segmentOf(lsn: bigint, segSize: number): bigint {
  return lsn / BigInt(segSize);
}

/** The first position of a segment. */
export function segmentStart(segno: bigint, segSize: number): bigint {
  return segno * BigInt(segSize);
}

/** Offset of a position inside its segment. */
export function segmentOffset(lsn: bigint, segSize: number): number {
  return Number(lsn % BigInt(segSize));
}

/** `TTTTTTTT.history` (TLHistoryFileName). */
export function historyName(timeline: number): string {
  return `${hex8(timeline)}.history`;
}

/** What a file in the archive directory is, by its name (pg_receivewal's names). */
export type ArchiveFile =
  | { kind: 'segment'; id: SegmentId; partial: boolean; compression: 'none' | 'gzip' | 'lz4'; name: string }
  | { kind: 'history'; timeline: number; name: string };

const SEGMENT_RE = /^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.gz|\.lz4)?(\.partial)?$/;

/** Classify a directory entry; null for anything that is not WAL or history. */
export function parseArchiveName(name: string, segSize: number): ArchiveFile | null {
  const h = /^([0-9A-F]{8})\.history$/.exec(name);
  if (h) return { kind: 'history', timeline: parseInt(h[1], 16), name };
  const m = SEGMENT_RE.exec(name);
  if (!m) return null;
  const per = segmentsPerId(segSize);
  const low = BigInt(`0x${m[3]}`);
  if (low >= per) return null;
  return {
    kind: 'segment',
    id: { timeline: parseInt(m[1], 16), segno: BigInt(`0x${m[2]}`) * per + low },
    partial: m[5] !== undefined,
    compression: m[4] === '.gz' ? 'gzip' : m[4] === '.lz4' ? 'lz4' : 'none',
    name,
  };
}

/** Parse a size as `SHOW wal_segment_size` prints it (`16MB`, `1GB`, `512kB`) into bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB|TB)?$/.exec(text.trim());
  if (!m) throw new Error(`invalid size "${text}"`);
  const mult: Record<string, number> = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
  return Number(m[1]) * mult[m[2] ?? 'B'];
}

/** One entry of a timeline history file: `tli` ended at `end` (the switch point). */
export interface HistoryEntry {
  timeline: number;
  end: bigint;
}

/** Parse a timeline history file's content (`<tli>\t<X/X>\t<reason>` lines). */
export function parseHistory(content: string): HistoryEntry[] {
  const out: HistoryEntry[] = [];
  for (const line of content.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const f = t.split(/\s+/);
    if (f.length < 2 || !/^\d+$/.test(f[0])) throw new Error(`invalid timeline history line "${t}"`);
    out.push({ timeline: Number(f[0]), end: parseLsn(f[1]) });
  }
  return out;
}
