/**
 * The socket of the replication connection (node-postgres's `stream`
 * option), reading the WAL stream in large slices with Node.js's `onread`
 * option of `net.Socket`.
 *
 * A plain socket reads at most 64 kB per system call (libuv's read size)
 * into a new buffer each time, and the stream's reader then runs once per
 * read. The source sends XLogData of up to 128 kB: nearly every message
 * then spans two reads, and pg-copy-streams' copy-both reader (which hands
 * out one buffer per CopyData message) allocates, zero-fills and copies
 * each of them. Here each read takes all that the kernel holds, up to what
 * is left of a 1 MB slab: a message inside one read is a slice of it, not a
 * copy, and the reader runs once for several messages.
 *
 * The data goes into the socket's readable side (`push`), as a plain
 * socket's reads do, so node-postgres and pg-copy-streams read it as
 * usual; `push` returning false pauses reading, as it does for them. Each
 * read gets memory no earlier read handed out (a slab is never reused; a
 * new one is taken once less than MIN_READ of it is left): the slices stay
 * valid for as long as anything holds them. Over TLS, Node.js's TLS layer
 * reads the connection itself and these options are not used.
 */
import * as net from 'net';

/** Bytes of one slab (small enough for malloc to reuse freed ones: 4 MB took twice the page faults). */
const SLAB = 1024 * 1024;
/** A new slab once less than this is left of the current one. */
const MIN_READ = 256 * 1024;

/** A socket for node-postgres's `stream` option; `highWaterMark`: bytes buffered before reading pauses. */
export function streamSocket(highWaterMark: number): net.Socket {
  let slab = Buffer.allocUnsafe(SLAB);
  let used = 0;
  const socket: net.Socket = new net.Socket({
    readableHighWaterMark: highWaterMark,
    onread: {
      // called once before the first read, then after each read: where the next read goes
      buffer: () => {
        if (SLAB - used < MIN_READ) {
          slab = Buffer.allocUnsafe(SLAB);
          used = 0;
        }
        return slab.subarray(used);
      },
      // `buf` is what `buffer()` returned last; the read filled its first `n` bytes
      callback: (n: number, buf: Uint8Array) => {
        used += n;
        return socket.push(Buffer.from(buf.buffer, buf.byteOffset, n));
      },
    },
  } as net.SocketConstructorOpts);
  return socket;
}
