/**
 * The payloads of the CopyData messages of physical streaming replication
 * (PostgreSQL's protocol-replication docs): XLogData `w` and Primary
 * keepalive `k` from the source, Standby status update `r` to it. The
 * CopyData framing itself is pg-copy-streams'; these are the bytes inside.
 */

/** Microseconds between the Unix epoch and PostgreSQL's (2000-01-01). */
const PG_EPOCH_OFFSET_US = 946_684_800_000_000;

/**
 * Now, as PostgreSQL's TimestampTz (microseconds since 2000-01-01), in a
 * Number: exact (below 2^53 until the year 2285), and without BigInt
 * arithmetic, which V8 runs outside optimized code (a status update goes
 * out on every turn in synchronous mode).
 */
function pgNowUs(): number {
  return Date.now() * 1000 - PG_EPOCH_OFFSET_US;
}

/** XLogData: WAL bytes starting at `start`; `walEnd` is the source's current end of WAL. */
export interface XLogData {
  type: 'w';
  start: bigint;
  walEnd: bigint;
  sendTime: bigint;
  data: Buffer;
}

/** Primary keepalive: the source's end of WAL, and whether it wants a status update now. */
export interface Keepalive {
  type: 'k';
  walEnd: bigint;
  sendTime: bigint;
  replyRequested: boolean;
}

export type SourceMessage = XLogData | Keepalive;

/** Parse one CopyData payload from the source. Throws on an unknown or short message. */
export function parseSourceMessage(buf: Buffer): SourceMessage {
  const type = buf.length > 0 ? String.fromCharCode(buf[0]) : '';
  if (type === 'w') {
    if (buf.length < 25) throw new Error(`streaming header too small: ${buf.length}`);
    // DataView's 64-bit reads are V8 built-ins, Buffer's are BigInt arithmetic in JavaScript (about 2x slower)
    const v = new DataView(buf.buffer, buf.byteOffset, 25);
    return {
      type,
      start: v.getBigUint64(1),
      walEnd: v.getBigUint64(9),
      sendTime: v.getBigInt64(17),
      data: buf.subarray(25),
    };
  }
  if (type === 'k') {
    if (buf.length < 18) throw new Error(`streaming header too small: ${buf.length}`);
    const v = new DataView(buf.buffer, buf.byteOffset, 18);
    return { type, walEnd: v.getBigUint64(1), sendTime: v.getBigInt64(9), replyRequested: buf[17] !== 0 };
  }
  throw new Error(`unrecognized streaming header: "${type}"`);
}

/** Bytes of a Standby status update. */
export const STATUS_UPDATE_SIZE = 34;

/**
 * Write a Standby status update into `b` (STATUS_UPDATE_SIZE bytes, `view`
 * a DataView over them): `write` and `flush` positions (flush = on disk,
 * fsynced), `apply` always invalid (0) as pg_receivewal sends it, the
 * time, and whether the source is to answer at once.
 */
export function writeStatusUpdate(b: Buffer, view: DataView, write: bigint, flush: bigint, replyRequested = false): void {
  b[0] = 0x72; // 'r'
  view.setBigUint64(1, write);
  view.setBigUint64(9, flush);
  view.setBigUint64(17, 0n);
  const now = pgNowUs();
  b.writeUInt32BE(Math.floor(now / 0x1_0000_0000), 25);
  b.writeUInt32BE(now % 0x1_0000_0000, 29);
  b[33] = replyRequested ? 1 : 0;
}

/** A DataView over `b`'s bytes. */
export function viewOf(b: Buffer): DataView {
  return new DataView(b.buffer, b.byteOffset, b.length);
}
