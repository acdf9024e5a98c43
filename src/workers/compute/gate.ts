/**
 * One SPI user at a time. A worker has one transaction at a time, and an
 * apply keeps its transaction open across turns of the event loop (so that
 * the HTTP API answers meanwhile); whatever else uses SPI (routes, the
 * activity monitor, /metrics) waits its turn here instead of failing with
 * PgError 25001.
 */
export class SpiGate {
  private tail: Promise<unknown> = Promise.resolve();
  private held = false;

  /** True while some caller holds the gate. */
  get busy(): boolean {
    return this.held;
  }

  /** Run `fn` once every earlier caller is done; resolves with its result. */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    const result = this.tail.then(async () => {
      this.held = true;
      try {
        return await fn();
      } finally {
        this.held = false;
      }
    });
    this.tail = result.catch(() => undefined);
    return result;
  }
}
