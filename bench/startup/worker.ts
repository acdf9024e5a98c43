/**
 * bench/startup/worker.ts — the worker whose start bench/startup measures.
 *
 * A small but ordinary worker module (types, a class, a settings
 * declaration, a loop), so that compiling it costs what compiling a real
 * worker costs. Its first line reports when it was written (Date.now()),
 * the process's CPU time so far and its pid; then it waits until it is
 * stopped, so that the runner can read its memory.
 *
 * The runner writes copies of this file with the marker below replaced,
 * so that every "cold" launch compiles content no cache has seen, and
 * compiles it to CommonJS for the ".js" launch.
 */
import { defineWorker } from 'pg-tsworker';

/** Replaced by the runner: makes each cold copy's content new. */
const VARIANT = 'BENCH_VARIANT';

type Unit = 'ms' | 's' | 'min';

interface Sample {
  at: number;
  value: number;
  unit: Unit;
}

/** A bounded ring of samples, as a worker keeping recent measurements would. */
class Ring<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(private readonly capacity: number) {
    this.items = new Array<T | undefined>(capacity);
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  get size(): number {
    return this.count;
  }

  *values(): IterableIterator<T> {
    for (let i = 0; i < this.count; i++) {
      const item = this.items[(this.next - this.count + i + this.capacity) % this.capacity];
      if (item !== undefined) yield item;
    }
  }
}

function toMs(s: Sample): number {
  switch (s.unit) {
    case 'ms':
      return s.value;
    case 's':
      return s.value * 1000;
    case 'min':
      return s.value * 60_000;
  }
}

export function summary(samples: Iterable<Sample>): { n: number; mean: number } {
  let n = 0;
  let sum = 0;
  for (const s of samples) {
    n++;
    sum += toMs(s);
  }
  return { n, mean: n === 0 ? 0 : sum / n };
}

export default defineWorker({
  name: 'startup',
  settings: {
    keep: { type: 'int', default: 16, min: 1, description: 'Samples kept.' },
  },
  async main(w) {
    const cpu = process.cpuUsage();
    w.log.info(`startup-bench first line variant=${VARIANT} pid=${process.pid} at=${Date.now()} cpu_us=${cpu.user + cpu.system}`);
    const ring = new Ring<Sample>(w.settings.keep);
    while (await w.wait()) {
      ring.push({ at: Date.now(), value: 1, unit: 's' });
      w.status.set({ samples: summary(ring.values()) });
    }
  },
});
