/**
 * One WAL segment being received, as pg_receivewal writes it
 * (walmethods.c, receivelog.c): `<segment>.partial`, padded with zeros to
 * the segment size when created and then fsynced with its directory;
 * written in place; fsynced, renamed to `<segment>` and the directory
 * fsynced once complete. An incomplete segment (end of a timeline,
 * shutdown) is fsynced and keeps its `.partial` name.
 *
 * Beyond pg_receivewal, the zero-filled file of the next segment can be
 * made ahead, on libuv's thread pool, as `<segment>.partial.prep` (a name
 * nothing reads WAL from), and a complete segment fsynced and renamed
 * there too: the stream goes on meanwhile.
 */
import * as fs from 'fs';
import * as path from 'path';

import { segmentName, segmentStart } from './lsn';

/** fsync a directory, so that a file created or renamed in it persists. */
export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Write `data` to `file` durably: `<file>.tmp`, fsync, rename, fsync the directory. */
export function writeDurably(file: string, data: Buffer | string): void {
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w', 0o600);
  try {
    fs.writeFileSync(fd, data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(tmp, file);
  fsyncDir(path.dirname(file));
}

/**
 * Bytes of one write system call, at most: on this project's machines
 * (Linux 6.18, ext4) a write of several megabytes into new page cache costs
 * several times the CPU of the same bytes in writes of up to 1 MB (16 MB of
 * zeros: 17-21 ms in one pwritev or one write, 4.2-4.5 ms in 1 MB or 256 kB
 * writes; bench/walarchive/README.md), which made the zeros of a segment
 * made ahead cost more than its data. pg_receivewal writes its zeros 8 kB
 * at a time.
 */
export const MAX_WRITE = 256 * 1024;

/**
 * Bytes of one write of a segment's zeros, at most: 1 MB, which costs no
 * more CPU per byte than 256 kB (above) in four times fewer system calls,
 * and fewer round trips between libuv's thread pool and the event loop
 * for a segment made ahead (PREP_WINDOW).
 */
export const ZERO_WRITE = 1024 * 1024;

/**
 * Bytes of one write of a segment's zeros for a synchronous archive. The
 * page cache (Linux 6.18, ext4) makes a new file's pages in folios as
 * large as the write that creates them (up to 1 MB here), and every later
 * write into a folio, and every fdatasync of it, walks all of its buffers
 * (ext4_block_write_begin, block_commit_write, the writeback). A
 * synchronous archive writes and fdatasyncs a few hundred bytes to a few
 * kB a turn: into the folios of 1 MB zero writes that cost 5-10 % more
 * CPU per commit at 1000 commits/s than into those of 64 kB writes
 * (bench/walarchive/README.md, seventh pass).
 * pg_receivewal 15 writes its zeros 8 kB at a time, in small folios too
 * (16 and later: 256 kB per pwritev).
 * Catching up, the 256 writes a 16 MB segment then takes cost a fifth more
 * CPU than 16 of 1 MB: an archive that is not synchronous takes ZERO_WRITE.
 */
export const ZERO_WRITE_SYNC = 64 * 1024;

/** The size of the writes of a segment's zeros, for a synchronous archive or not. */
export function zeroWriteFor(synchronous: boolean): number {
  return synchronous ? ZERO_WRITE_SYNC : ZERO_WRITE;
}

const ZEROS = Buffer.alloc(ZERO_WRITE);

/** Whether the first `size` bytes of an open file are all zeros. */
function allZeros(fd: number, size: number): boolean {
  const buf = Buffer.alloc(ZEROS.length);
  for (let off = 0; off < size; ) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.length, size - off), off);
    if (n === 0) return true;
    if (!buf.subarray(0, n).equals(ZEROS.subarray(0, n))) return false;
    off += n;
  }
  return true;
}

/** `chunk` as the bytes of one write of zeros: a positive whole number, at most ZERO_WRITE. */
function zeroChunk(chunk: number): number {
  if (!Number.isInteger(chunk) || chunk <= 0) throw new RangeError(`a write of zeros must be a positive whole number of bytes, not ${chunk}`);
  return Math.min(chunk, ZEROS.length);
}

/**
 * Write zeros over `[from, to)` of an open file, every byte, `chunk`
 * bytes (at most ZERO_WRITE) at a time: a write that the kernel cuts short
 * (a disk that fills up mid-write returns the bytes it took, and only the
 * next write fails with ENOSPC) is continued, so that a padding either
 * covers the whole range or throws.
 */
export function writeZeros(fd: number, from: number, to: number, chunk = ZERO_WRITE): void {
  const n = zeroChunk(chunk);
  for (let off = from; off < to; ) {
    off += fs.writeSync(fd, ZEROS, 0, Math.min(n, to - off), off);
  }
}

/**
 * Put a `.partial` of the wrong size (0 < size < a segment) in order:
 * such a file was cut short by a full disk (an older version did not
 * check for short writes while padding). All zeros, it holds no WAL and is
 * removed; with data, it is padded with zeros to the segment size — the
 * bytes it holds are kept as they are. Returns what was done, for the log,
 * or null when the file had the right size.
 */
export function repairShortPartial(file: string, segSize: number): string | null {
  const fd = fs.openSync(file, 'r+');
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0 || size >= segSize) return null;
    if (allZeros(fd, size)) {
      fs.rmSync(file);
      return `removed ${path.basename(file)}: a padding cut short by a full disk (${size} bytes, all zeros)`;
    }
    writeZeros(fd, size, segSize);
    fs.fsyncSync(fd);
    return `padded ${path.basename(file)} from ${size} bytes to the segment size: a padding cut short by a full disk (its WAL is kept)`;
  } finally {
    fs.closeSync(fd);
  }
}

/** Suffix of a segment file made ahead of use (zero-filled, fsynced). */
export const PREP_SUFFIX = '.partial.prep';

/**
 * Writes of a segment's zeros in flight at once while it is made ahead:
 * one at a time, each write was a round trip between the thread pool and
 * the event loop, with a wake-up of each on this 2-core machine (64 kB
 * writes one at a time took half again the worker's CPU while catching
 * up, 8 at a time a fifth); with several in flight the thread pool goes
 * from one to the next and the loop takes their completions together.
 * Twice libuv's 4 threads: a complete segment's fsync and rename wait
 * behind at most a few of them (a few ms).
 */
const PREP_WINDOW = 8;

/**
 * Make `<segment>.partial.prep`: zero-filled to the segment size, `chunk`
 * bytes (at most ZERO_WRITE) per write, and fsynced, off the event loop.
 * Resolves to false (and leaves nothing behind) when `abandoned()` turned
 * true meanwhile or it failed.
 */
export async function prepareSegment(dir: string, timeline: number, segno: bigint, segSize: number, chunk: number, abandoned: () => boolean): Promise<boolean> {
  const file = path.join(dir, segmentName(timeline, segno, segSize) + PREP_SUFFIX);
  let fh: fs.promises.FileHandle | undefined;
  try {
    const n = zeroChunk(chunk);
    fh = await fs.promises.open(file, 'wx', 0o600);
    const handle = fh;
    let next = 0;
    let failed = false;
    // One of PREP_WINDOW lanes: writes the next `chunk` of the file until none
    // is left; a short write (the disk filling up) is continued, and the
    // next one throws ENOSPC.
    const lane = async (): Promise<void> => {
      try {
        while (next < segSize && !failed && !abandoned()) {
          let off = next;
          const end = Math.min(off + n, segSize);
          next = end;
          while (off < end) off += (await handle.write(ZEROS, 0, end - off, off)).bytesWritten;
        }
      } catch (err) {
        failed = true;
        throw err;
      }
    };
    // every lane settled before the file is closed or removed
    const lanes = await Promise.allSettled(Array.from({ length: PREP_WINDOW }, lane));
    for (const l of lanes) if (l.status === 'rejected') throw l.reason;
    if (!abandoned()) await fh.sync();
    await fh.close();
    fh = undefined;
    if (abandoned()) throw new Error('abandoned');
    return true;
  } catch {
    await fh?.close().catch(() => undefined);
    await fs.promises.rm(file, { force: true }).catch(() => undefined);
    return false;
  }
}

const fsyncAsync = (fd: number): Promise<void> => new Promise((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));

/** The segment file open for writing. */
export class WalFile {
  /** Segment name without suffix. */
  readonly name: string;
  /** Position of the segment's first byte. */
  readonly start: bigint;
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly timeline: number,
    readonly segno: bigint,
    readonly segSize: number,
    private readonly fd: number,
  ) {
    this.name = segmentName(timeline, segno, segSize);
    this.start = segmentStart(segno, segSize);
  }

  get partialPath(): string {
    return path.join(this.dir, `${this.name}.partial`);
  }

  /**
   * Open `<segment>.partial` of a timeline: an existing one must be a whole
   * padded segment (anything else is refused, as pg_receivewal does); a new
   * one is padded with zeros, `zeroWrite` bytes per write, and fsynced
   * with its directory.
   */
  static open(dir: string, timeline: number, segno: bigint, segSize: number, prepared = false, zeroWrite = ZERO_WRITE): WalFile {
    const name = segmentName(timeline, segno, segSize);
    const file = path.join(dir, `${name}.partial`);
    if (prepared && !fs.existsSync(file)) {
      // made ahead: zero-filled and fsynced; its name becomes durable with the directory
      fs.renameSync(file + '.prep', file);
      fsyncDir(dir);
    }
    const fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    let padding = false;
    try {
      const size = fs.fstatSync(fd).size;
      if (size !== 0 && size !== segSize) {
        throw new Error(`WAL file "${file}" has ${size} bytes, should be 0 or ${segSize}`);
      }
      if (size === 0) {
        padding = true;
        writeZeros(fd, 0, segSize, zeroWrite);
        fs.fsyncSync(fd);
        fsyncDir(dir);
      }
    } catch (err) {
      fs.closeSync(fd);
      // A file being padded holds no WAL yet: remove it, or the next attempt
      // (once space is freed) would find a segment of the wrong size.
      if (padding) fs.rmSync(file, { force: true });
      throw err;
    }
    return new WalFile(dir, timeline, segno, segSize, fd);
  }

  /** Write `data` at `offset` in the segment. */
  write(offset: number, data: Buffer): void {
    if (offset + data.length > this.segSize) throw new Error(`write past the end of segment ${this.name}`);
    let done = 0;
    while (done < data.length) {
      done += fs.writeSync(this.fd, data, done, data.length - done, offset + done);
    }
  }

  /** Write `bufs` (`total` bytes in all), one after the other, at `offset`: one pwritev. */
  writev(offset: number, bufs: Buffer[], total: number): void {
    if (offset + total > this.segSize) throw new Error(`write past the end of segment ${this.name}`);
    const done = fs.writevSync(this.fd, bufs, offset);
    // a short write (disk full, a signal): the rest byte by byte exact, until it completes or throws
    if (done < total) this.write(offset + done, Buffer.concat(bufs, total).subarray(done));
  }

  /**
   * Make what was written durable: fdatasync, as PostgreSQL's own WAL
   * writes (wal_sync_method's Linux default). The file was padded to its
   * full size and fsynced with its directory when created, so its size and
   * blocks never change: only the data needs to reach the disk, not the
   * modification time (whose journal commit fsync would wait for).
   */
  sync(): void {
    fs.fdatasyncSync(this.fd);
  }

  /** As `close(true)`, with the fsyncs on libuv's thread pool. */
  async complete(): Promise<string> {
    if (this.closed) throw new Error(`segment ${this.name} is already closed`);
    this.closed = true;
    try {
      await fsyncAsync(this.fd);
    } finally {
      fs.closeSync(this.fd);
    }
    const done = path.join(this.dir, this.name);
    await fs.promises.rename(this.partialPath, done);
    const dh = await fs.promises.open(this.dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return done;
  }

  /**
   * fsync and close; when `complete`, rename to `<segment>` and fsync the
   * directory. Returns the path the segment now has.
   */
  close(complete: boolean): string {
    if (this.closed) return this.partialPath;
    this.closed = true;
    try {
      fs.fsyncSync(this.fd);
    } finally {
      fs.closeSync(this.fd);
    }
    if (!complete) return this.partialPath;
    const done = path.join(this.dir, this.name);
    fs.renameSync(this.partialPath, done);
    fsyncDir(this.dir);
    return done;
  }
}
