/**
 * Compression of completed segments, with pg_receivewal's names
 * (`--compress=gzip[:level]` writes `<segment>.gz`, `--compress=lz4`
 * `<segment>.lz4`, in the LZ4 frame format). gzip is Node's zlib, LZ4 is
 * lz4-napi; both compress on libuv's thread pool, off the event loop, so
 * the WAL stream and its status updates go on meanwhile.
 *
 * A segment is compressed into `<segment>.<ext>.tmp`, fsynced, renamed to
 * `<segment>.<ext>`, the directory fsynced, and only then is the plain
 * `<segment>` removed: a crash at any step leaves at least one complete
 * copy (archive-dir.ts clears the leftovers at start).
 */
import * as fs from 'fs';
import * as path from 'path';
import { promisify } from 'util';
import * as zlib from 'zlib';

import { fsyncDir, writeDurably } from './walfile';

/** A compression setting, parsed. */
export type Compression = { method: 'none' } | { method: 'gzip'; level: number } | { method: 'lz4' };

/**
 * Parse `tsworker_walarchive.compression`: `none`, `gzip`, `gzip:N` (N 1-9,
 * default zlib's 6), `lz4`. Throws with a message naming what is accepted.
 */
export function parseCompression(text: string): Compression {
  const t = text.trim().toLowerCase();
  if (t === '' || t === 'none') return { method: 'none' };
  const m = /^(gzip|lz4)(?::(?:level=)?(\d+))?$/.exec(t);
  if (!m) throw new Error(`invalid compression "${text}": use none, gzip, gzip:LEVEL (1-9) or lz4`);
  if (m[1] === 'lz4') {
    if (m[2] !== undefined) throw new Error(`invalid compression "${text}": lz4 takes no level here (its default level is used)`);
    return { method: 'lz4' };
  }
  const level = m[2] === undefined ? 6 : Number(m[2]);
  if (level < 1 || level > 9) throw new Error(`invalid compression "${text}": gzip level must be between 1 and 9`);
  return { method: 'gzip', level };
}

/** The suffix pg_receivewal gives a compressed segment. */
export function compressedSuffix(c: Compression): string {
  return c.method === 'gzip' ? '.gz' : c.method === 'lz4' ? '.lz4' : '';
}

const gzip = promisify(zlib.gzip);

async function compressBuffer(c: Compression, data: Buffer): Promise<Buffer> {
  if (c.method === 'gzip') return gzip(data, { level: c.level });
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const lz4 = require('lz4-napi') as { compressFrameSync(b: Buffer): Buffer };
  return lz4.compressFrameSync(data);
}

/** Compresses completed segments one after another, in the order given. */
export class Compressor {
  private chain: Promise<void> = Promise.resolve();
  private queued = 0;
  private stopped = false;

  constructor(
    private readonly dir: string,
    private readonly compression: Compression,
    private readonly onError: (segment: string, err: Error) => void,
    private readonly onDone: (segment: string, bytes: number) => void = () => undefined,
    /** Start only once this settles (the previous compressor's stop()): never two on one segment. */
    after: Promise<void> = Promise.resolve(),
  ) {
    this.chain = after;
  }

  /** Segments waiting or being compressed. */
  get pending(): number {
    return this.queued;
  }

  /**
   * Take no new segment, and skip the queued ones (they stay plain and are
   * found again at the next start); resolves once the one being compressed
   * is done.
   */
  stop(): Promise<void> {
    this.stopped = true;
    return this.chain;
  }

  /** Queue a completed segment (its plain name, in the archive directory). */
  add(segment: string): void {
    if (this.compression.method === 'none' || this.stopped) return;
    this.queued++;
    this.chain = this.chain.then(async () => {
      if (this.stopped) {
        this.queued--;
        return;
      }
      try {
        const bytes = await this.compressOne(segment);
        if (bytes !== null) this.onDone(segment, bytes);
      } catch (err) {
        this.onError(segment, err as Error);
      } finally {
        this.queued--;
      }
    });
  }

  /** Compress one segment; null when it was already compressed (queued twice: at start and as it completed). */
  private async compressOne(segment: string): Promise<number | null> {
    const plain = path.join(this.dir, segment);
    const final = plain + compressedSuffix(this.compression);
    let data: Buffer;
    try {
      data = await fs.promises.readFile(plain);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && fs.existsSync(final)) return null;
      throw err;
    }
    const out = await compressBuffer(this.compression, data);
    writeDurably(final, out);
    fs.rmSync(plain);
    fsyncDir(this.dir);
    return out.length;
  }
}
