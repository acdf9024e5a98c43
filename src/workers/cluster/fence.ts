/**
 * The worker's side of the write fence (native/shim/fence.c): opening it
 * after each renewal of the leader lease, closing it, and saying in the log
 * and the status when writes stop and resume.
 *
 * The deadline lives in shared memory and every backend checks it, so
 * writes stop at the deadline whatever this worker is doing; the timer
 * here only reports it.
 */
import { performance } from 'perf_hooks';

import { addon } from '../../runtime/addon';

export class WriteFence {
  /** `performance.now()` until which writes are allowed (0: closed). */
  private openUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private closedReason: string | null = 'this member has not held the leader lease since the server started';
  private closedAt: string | null = null;

  constructor(private readonly onChange: (open: boolean, reason: string | null) => void) {}

  /** Whether the fence is in use on this server (cluster mode was on at server start). */
  static managed(): boolean {
    return addon().fenceState() !== null;
  }

  /** Allow writes until `until` (`performance.now()` time); a past time closes the fence. */
  openUntilTime(until: number, lapseReason: string): void {
    const ms = Math.floor(until - performance.now());
    if (ms <= 0) {
      this.close(lapseReason);
      return;
    }
    addon().fenceOpenFor(ms, lapseReason);
    const wasClosed = this.openUntil <= performance.now();
    this.openUntil = until;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.lapsed(lapseReason), ms + 1);
    if (wasClosed) {
      this.closedReason = null;
      this.closedAt = null;
      this.onChange(true, null);
    }
  }

  /** Close the fence now. */
  close(reason: string): void {
    addon().fenceOpenFor(0, reason);
    clearTimeout(this.timer);
    const wasOpen = this.openUntil > performance.now();
    this.openUntil = 0;
    if (wasOpen || this.closedReason === null) {
      this.closedReason = reason;
      this.closedAt = new Date().toISOString();
      this.onChange(false, reason);
    }
  }

  private lapsed(reason: string): void {
    if (this.openUntil > performance.now()) return;
    this.openUntil = 0;
    this.closedReason = reason;
    this.closedAt = new Date().toISOString();
    this.onChange(false, reason);
  }

  /** True while writes are allowed. */
  get open(): boolean {
    return this.openUntil > performance.now();
  }

  /** Milliseconds writes stay allowed (0 when closed). */
  get remainingMs(): number {
    return Math.max(0, Math.round(this.openUntil - performance.now()));
  }

  get reason(): string | null {
    return this.open ? null : this.closedReason;
  }

  get since(): string | null {
    return this.open ? null : this.closedAt;
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
