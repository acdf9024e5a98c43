/**
 * A loop's wait that can be cut short: the promoter's loops run every
 * interval, and at once when something happens (a dropped connection, a
 * changed leader key, a reload).
 */
import type { WorkerContext } from '../runtime/index';

export class Trigger {
  private wake: (() => void) | undefined;
  /** Why the next run was asked for at once (null: it was not). */
  pending: string | null = null;

  /** Ask for the next run at once. */
  fire(why: string): void {
    this.pending = why;
    this.wake?.();
  }

  /** The pending reason, cleared. */
  take(): string | null {
    const why = this.pending;
    this.pending = null;
    return why;
  }

  /** Wait until `ms` pass, the latch is set, or fire(); false once shutdown is asked. */
  async pause(w: WorkerContext<any>, ms: number): Promise<boolean> {
    if (this.pending) return !w.shutdownRequested;
    const woken = new Promise<boolean>((resolve) => {
      this.wake = () => resolve(true);
    });
    const r = await Promise.race([w.wait({ timeout: Math.max(0, ms) }), woken]);
    this.wake = undefined;
    return r && !w.shutdownRequested;
  }
}
