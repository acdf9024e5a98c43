/**
 * Cursors: a statement's rows read a batch at a time through a portal
 * (SPI_cursor_fetch), so that any number of rows fits in constant memory.
 */
import type { Addon } from './addon';
import type { Cursor, CursorOptions, Row } from './define';
import { resultFlags, rowsOf, type Rows } from './results';

const DEFAULT_BATCH = 1000;

/** Give the event loop a turn (latch, signals, timers) between batches. */
function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function checkCount(n: unknown, what: string): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n)) throw new TypeError(`${what}: count must be an integer`);
  return n;
}

export function cursorBatch(options: CursorOptions | undefined): number {
  const size = options?.batchSize ?? DEFAULT_BATCH;
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 1) {
    throw new TypeError('cursor(): options.batchSize must be an integer >= 1');
  }
  return size;
}

export class PortalCursor<R extends Row> implements Cursor<R> {
  private closed = false;
  private readonly flags: number;

  constructor(
    private readonly addon: Addon,
    private readonly name: string,
    private readonly batchSize: number,
    options: CursorOptions | undefined,
  ) {
    this.flags = resultFlags(options, 'cursor()', addon.constants.result);
  }

  private check(what: string): void {
    if (this.closed) throw new Error(`cursor.${what}(): the cursor is closed`);
  }

  fetch(count = 1): Rows<R> {
    this.check('fetch');
    const n = checkCount(count, 'cursor.fetch()');
    return rowsOf<R>(this.addon.fetchCursor(this.name, n >= 0, Math.abs(n), this.flags));
  }

  move(count: number): number {
    this.check('move');
    const n = checkCount(count, 'cursor.move()');
    return this.addon.moveCursor(this.name, n >= 0, Math.abs(n));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.closeCursor(this.name);
  }

  batches(size = this.batchSize): Iterable<Rows<R>> & AsyncIterable<Rows<R>> {
    if (!Number.isSafeInteger(size) || size < 1) throw new TypeError('cursor.batches(size): size must be an integer >= 1');
    const next = (): Rows<R> | undefined => {
      if (this.closed) return undefined;
      const rows = this.fetch(size);
      if (rows.length < size) this.close();
      return rows.length > 0 ? rows : undefined;
    };
    return {
      *[Symbol.iterator]() {
        for (let rows = next(); rows; rows = next()) yield rows;
      },
      async *[Symbol.asyncIterator]() {
        for (let rows = next(); rows; rows = next()) {
          yield rows;
          await yieldToLoop();
        }
      },
    };
  }

  *[Symbol.iterator](): Iterator<R> {
    for (const rows of this.batches()) yield* rows;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<R> {
    for await (const rows of this.batches()) yield* rows;
  }
}
