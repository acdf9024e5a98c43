/**
 * A cluster member's events and log lines: each event goes to the server
 * log at once and waits in memory until the member can store it in
 * `tsworker.events` (only the leader, while it accepts writes); a repeated
 * condition is logged once until it changes. Owner of the unstored events
 * and of the status's `lastEvent`.
 */
import type { WorkerContext } from '../../runtime/index';
import { storeEvents, type StoredEvent } from '../events';

const MAX_EVENTS = 200;

export type Level = 'info' | 'warning';

export class MemberLog {
  private readonly unstored: StoredEvent[] = [];
  private lastNote = '';
  /** The kind of the last event, shown in the status. */
  lastEvent: string | null = null;

  constructor(
    private readonly w: WorkerContext<any>,
    private readonly member: string,
  ) {}

  /** Log an event and keep it for tsworker.events (the 200 newest at most). */
  event(kind: string, detail: Record<string, unknown>, level: Level = 'info'): void {
    const e: StoredEvent = { at: new Date().toISOString(), kind, detail: JSON.parse(JSON.stringify({ member: this.member, ...detail })) };
    this.unstored.push(e);
    if (this.unstored.length > MAX_EVENTS) this.unstored.shift();
    this.lastEvent = kind;
    this.w.log[level](`${kind}: ${JSON.stringify(detail)}`);
  }

  /** Log a repeated condition once, until it changes. */
  note(text: string, level: Level = 'info'): void {
    if (text === this.lastNote) return;
    this.lastNote = text;
    this.w.log[level](text);
  }

  /** Store the events not yet in tsworker.events; `writable`: this server is the leader and accepts writes. */
  store(writable: boolean): void {
    if (this.unstored.length === 0 || !writable) return;
    try {
      storeEvents(this.w, this.unstored);
      this.unstored.length = 0;
    } catch (err) {
      this.note(`could not store events: ${(err as Error).message}`, 'warning');
    }
  }
}
