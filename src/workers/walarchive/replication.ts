/**
 * START_REPLICATION over node-postgres, with pg-copy-streams' `both()` for
 * the copy-both stream: each readable chunk is one CopyData payload from
 * the source (`alignOnCopyDataFrame`), each write one CopyData to it.
 *
 * `both()` is written for a copy-both stream that ends with CommandComplete.
 * A physical stream that reaches the end of a historic timeline ends
 * differently (PostgreSQL's walsender): the source sends CopyDone, waits
 * for ours, then sends a one-row result set (next timeline, its start),
 * CommandComplete and ReadyForQuery. node-postgres hands that result set to
 * the active query, so the stream object here also takes rows, and a
 * ReadyForQuery that arrives without our CopyDone (after an error) ends it
 * quietly instead of calling an unset callback.
 */
import type { Duplex } from 'stream';
import type pg from 'pg';

import { formatLsn, parseLsn } from './lsn';
import { STATUS_UPDATE_SIZE, viewOf, writeStatusUpdate } from './messages';

interface CopyBothQuery extends Duplex {
  /** Set once the source's CopyBothResponse arrived (pg-copy-streams' `_startCopyIn`). */
  _gotCopyInResponse?: boolean;
  /** Write one CopyData (header and payload) to the connection's socket; false if it must drain. */
  flushChunk?(chunk: Buffer): boolean;
  handleRowDescription?(msg: unknown): void;
  handleDataRow?(msg: { fields: (string | null)[] }): void;
  handleReadyForQuery(connection: unknown): void;
  cb_flush?: () => void;
}

// pg-copy-streams ships no type declarations.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { both } = require('pg-copy-streams') as {
  both(text: string, options?: { alignOnCopyDataFrame?: boolean; readableHighWaterMark?: number }): CopyBothQuery;
};

/** Bytes buffered by the socket and the copy-both stream before they pause reading. */
export const STREAM_BUFFER = 1024 * 1024;

/** Where a stream is to start. */
export interface StartPoint {
  /** Physical slot to stream from, or null. */
  slot: string | null;
  lsn: bigint;
  timeline: number;
}

/** How a stream ended. */
export type StreamEnd =
  /** The source reached the end of this (historic) timeline; continue on `timeline` from `start`. */
  | { kind: 'timeline'; timeline: number; start: bigint }
  /** The source ended the stream without a next timeline (after our CopyDone). */
  | { kind: 'done' }
  /** An error from the source or the connection. */
  | { kind: 'error'; error: Error & { code?: string } };

/** A running START_REPLICATION. */
export interface ReplicationStream {
  /** Called with each CopyData payload from the source, in order. */
  onMessage(fn: (payload: Buffer) => void): void;
  /**
   * Send a Standby status update (messages.ts) with these positions; false
   * when the stream has ended. Its buffer is reused while the socket has
   * taken each one whole (the usual case: one is sent per turn in
   * synchronous mode).
   */
  sendStatusUpdate(write: bigint, flush: bigint, replyRequested?: boolean): boolean;
  /** Resolves once the stream has ended, whichever way. */
  readonly ended: Promise<StreamEnd>;
}

/** The START_REPLICATION command (PHYSICAL). */
export function startCommand(p: StartPoint): string {
  return `START_REPLICATION ${p.slot ? `SLOT "${p.slot}" ` : ''}PHYSICAL ${formatLsn(p.lsn)} TIMELINE ${p.timeline}`;
}

/** Send START_REPLICATION on a connected replication client and stream. */
export function startReplication(client: pg.Client, start: StartPoint): ReplicationStream {
  // A message (up to 128 kB of WAL) fits below the mark: the parser reads on
  // instead of pausing the socket after each one.
  const q = both(startCommand(start), { alignOnCopyDataFrame: true, readableHighWaterMark: STREAM_BUFFER });
  let next: { timeline: number; start: bigint } | null = null;
  let finished = false;
  let failure: (Error & { code?: string }) | null = null;

  q.handleRowDescription = () => undefined;
  q.handleDataRow = (msg) => {
    const [tli, pos] = msg.fields;
    if (tli !== null && pos !== null) next = { timeline: Number(tli), start: parseLsn(pos) };
  };
  const readyForQuery = q.handleReadyForQuery.bind(q);
  q.handleReadyForQuery = (connection) => {
    if (!q.cb_flush) q.cb_flush = () => q.emit('finish');
    readyForQuery(connection);
  };

  const ended = new Promise<StreamEnd>((resolve) => {
    const settle = (): void => {
      if (finished) return;
      finished = true;
      if (failure) resolve({ kind: 'error', error: failure });
      else if (next) resolve({ kind: 'timeline', ...next });
      else resolve({ kind: 'done' });
    };
    q.on('error', (err: Error) => {
      failure ??= err;
      settle();
    });
    // The source's CopyDone ends the readable side: answer with ours.
    q.on('end', () => {
      if (!q.writableEnded) q.end();
    });
    q.on('finish', settle);
    client.once('end', () => {
      failure ??= Object.assign(new Error('the replication connection was closed'), { code: 'ECONNRESET' });
      settle();
    });
  });
  client.query(q as unknown as pg.Submittable); // a stream: query() returns it, not a promise
  const socket = (client as unknown as { connection?: { stream?: { cork(): void; uncork(): void; writableLength: number } } }).connection?.stream;
  // The status update buffer, and whether a write may still hold it (then the next one takes a new buffer).
  let status = Buffer.allocUnsafe(STATUS_UPDATE_SIZE);
  let statusView = viewOf(status);
  let statusHeld = false;

  // One CopyData payload to the source; false when the stream has ended.
  const send = (payload: Buffer): boolean => {
    if (finished || q.writableEnded || q.destroyed) return false;
    // pg-copy-streams writes the CopyData header and the payload apart:
    // corked, they leave in one system call, and the source wakes once.
    socket?.cork();
    try {
      // Once the copy-both stream is open and nothing waits in its
      // Writable's queue, the CopyData goes straight to the socket by
      // pg-copy-streams' own framing (`flushChunk`, what its `_write`
      // calls): the same bytes, in the same order, without the Writable's
      // buffering, callback and next tick on each status update (one per
      // turn in synchronous mode). Before CopyBothResponse, or with
      // writes still queued, `write()` keeps them in order.
      if (q._gotCopyInResponse === true && q.writableLength === 0 && typeof q.flushChunk === 'function') q.flushChunk(payload);
      else q.write(payload);
    } finally {
      socket?.uncork();
    }
    return true;
  };

  return {
    onMessage(fn) {
      q.on('data', fn);
    },
    sendStatusUpdate(write, flush, replyRequested = false) {
      if (statusHeld) {
        status = Buffer.allocUnsafe(STATUS_UPDATE_SIZE);
        statusView = viewOf(status);
      }
      writeStatusUpdate(status, statusView, write, flush, replyRequested);
      const sent = send(status);
      // Written whole, nothing refers to the buffer any more; else the socket or the stream queued it.
      statusHeld = !socket || socket.writableLength > 0 || q.writableLength > 0;
      return sent;
    },
    ended,
  };
}
