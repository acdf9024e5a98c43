// bench/spi/worker.ts — the TypeScript side of the SPI benchmark.
//
// Launched once per measurement by bench/spi/run:
//
//   SELECT tsworker.launch('bench_ts', '<dir>/worker.ts', '{"workload": "select1", "n": 20000}')
//
// It runs one workload through the pg-tsworker API, timing only the workload
// with process.hrtime.bigint(), writes the seconds into
// public.tsw_bench_results (as the C worker of tsw_bench_c.c does) and
// returns, so the worker exits 0 and is not restarted.
//
// Each workload first runs untimed on a tenth of its size (insert's
// warm-up rolled back, lookup's from another PRNG seed, read's on the first
// tenth of the rows), as the C worker does: both time their steady state.
//
// The workloads are those of tsw_bench_c.c, statement for statement:
//   select1  n transactions, each SELECT 1                 (w.query)
//   insert   one transaction, n inserts of a statement prepared with types
//            (int8, text), without per-statement savepoints: the C worker
//            runs them without subtransactions too
//   read     one transaction reading every row of bench_read through a
//            cursor in batches of 10000, every column turned into a
//            JavaScript value (ts arrives as a Date)
//   lookup   one transaction, n times the prepared
//            SELECT t FROM bench_read WHERE id = $1 with ids from the PRNG
//            every system uses
import { defineWorker } from 'pg-tsworker';

const WORKLOADS = ['select1', 'insert', 'read', 'lookup'];

interface Measured {
  seconds: number;
  /** CPU time of the whole process (every thread: V8's GC helpers too). */
  cpuSeconds: number;
  checksum: bigint;
}

function timed(fn: () => bigint): Measured {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const checksum = fn();
  const t1 = process.hrtime.bigint();
  const c1 = process.cpuUsage(c0);
  return { seconds: Number(t1 - t0) / 1e9, cpuSeconds: (c1.user + c1.system) / 1e6, checksum };
}

export default defineWorker({
  name: 'bench_ts',
  restart: 'never',
  backoffMax: 0,
  settings: {
    workload: { type: 'string', default: 'select1', description: 'select1, insert, read or lookup.' },
    n: { type: 'int', default: 20000, min: 0, description: 'Iterations (read: the rows of bench_read, for the size of its warm-up).' },
  },
  main(w) {
    const { workload, n } = w.settings;
    if (!WORKLOADS.includes(workload)) throw new Error(`unknown workload "${workload}"`);
    w.status.set({ workload, n, phase: 'running' });

    // Each workload runs first untimed on a tenth of its size, as the C
    // worker does (here: JIT compilation and the heap's growth), then timed.
    const warm = Math.floor(n / 10);
    const READ_SQL = 'SELECT id, n, f, t, ts, b FROM bench_read';
    let result: Measured;
    switch (workload) {
      case 'select1': {
        const run = (count: number): bigint => {
          let sum = 0;
          for (let i = 0; i < count; i++) {
            sum += w.query<{ '?column?': number }>('SELECT 1')[0]['?column?'];
          }
          return BigInt(sum);
        };
        run(warm);
        result = timed(() => run(n));
        break;
      }

      case 'insert': {
        class WarmUpDone extends Error {}
        const run = (count: number, keep: boolean): bigint =>
          w.transaction(
            (tx) => {
              const ins = tx.prepare('INSERT INTO bench_ins(id, v) VALUES ($1, $2)', ['int8', 'text']);
              let inserted = 0;
              for (let i = 1; i <= count; i++) {
                inserted += ins.query([i, `v${i}`]).rowCount;
              }
              ins.free();
              if (!keep) throw new WarmUpDone(); // rolled back
              return BigInt(inserted);
            },
            { statementSavepoints: false },
          );
        try {
          run(warm, false);
        } catch (err) {
          if (!(err instanceof WarmUpDone)) throw err;
        }
        result = timed(() => run(n, true));
        break;
      }

      case 'read': {
        const run = (sql: string): bigint =>
          w.transaction((tx) => {
            let sink = 0n;
            let len = 0;
            let fsum = 0;
            let count = 0;
            const cursor = tx.cursor<{ id: bigint; n: string; f: number; t: string; ts: Date; b: boolean }>(sql);
            for (const rows of cursor.batches(10000)) {
              for (const r of rows) {
                sink += r.id;
                len += r.n.length + r.t.length + (r.ts.getTime() > 0 ? 1 : 0) + (r.b ? 1 : 0);
                fsum += r.f;
              }
              count += rows.length;
            }
            if (fsum < 0) w.log.debug(`sink ${sink} ${len}`); // keep the loop observable
            return BigInt(count);
          });
        run(`${READ_SQL} LIMIT ${warm}`); // n: bench_read's rows
        result = timed(() => run(READ_SQL));
        break;
      }

      case 'lookup': {
        const maxid = Number(w.query<{ m: bigint }>('SELECT max(id) AS m FROM bench_read')[0].m);
        // Prepared once per transaction, as the C worker and the external client do;
        // without statement subtransactions, which neither of them has.
        const run = (count: number, seed: number): bigint =>
          w.transaction((tx) => {
            const lookup = tx.prepare<{ t: string }>('SELECT t FROM bench_read WHERE id = $1', ['int8']);
            let x = seed;
            let total = 0;
            for (let i = 0; i < count; i++) {
              x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
              const id = 1 + (x % maxid);
              const rows = lookup.query([id]);
              if (rows.length === 1) total += rows[0].t.length;
            }
            lookup.free();
            return BigInt(total);
          }, { statementSavepoints: false });
        run(warm, 7);
        result = timed(() => run(n, 42));
        break;
      }

      default:
        throw new Error(`unknown workload "${workload}"`);
    }

    w.query(
      `INSERT INTO public.tsw_bench_results(system, workload, n, seconds, checksum, cpu_seconds) VALUES ('ts', $1, $2, $3, $4, $5)`,
      [workload, n, result.seconds, result.checksum, result.cpuSeconds],
    );
    w.status.set({ workload, n, phase: 'done', seconds: result.seconds });
  },
});
