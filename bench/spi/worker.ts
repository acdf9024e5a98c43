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
// The workloads are those of tsw_bench_c.c, statement for statement:
//   select1  n transactions, each SELECT 1                 (w.query)
//   insert   one transaction, n parameterised inserts      (tx.query with params)
//   read     one transaction reading every row of bench_read, every column
//            turned into a JavaScript value
//   lookup   one transaction, n times SELECT t FROM bench_read WHERE id = $1
//            with ids from the PRNG every system uses
import { defineWorker } from 'pg-tsworker';

const WORKLOADS = ['select1', 'insert', 'read', 'lookup'];

interface Measured {
  seconds: number;
  checksum: bigint;
}

function timed(fn: () => bigint): Measured {
  const t0 = process.hrtime.bigint();
  const checksum = fn();
  const t1 = process.hrtime.bigint();
  return { seconds: Number(t1 - t0) / 1e9, checksum };
}

export default defineWorker({
  name: 'bench_ts',
  restart: 'never',
  backoffMax: 0,
  settings: {
    workload: { type: 'string', default: 'select1', description: 'select1, insert, read or lookup.' },
    n: { type: 'int', default: 20000, min: 0, description: 'Iterations (ignored by read).' },
  },
  main(w) {
    const { workload, n } = w.settings;
    if (!WORKLOADS.includes(workload)) throw new Error(`unknown workload "${workload}"`);
    w.status.set({ workload, n, phase: 'running' });

    let result: Measured;
    switch (workload) {
      case 'select1':
        result = timed(() => {
          let sum = 0;
          for (let i = 0; i < n; i++) {
            sum += w.query<{ '?column?': number }>('SELECT 1')[0]['?column?'];
          }
          return BigInt(sum);
        });
        break;

      case 'insert':
        result = timed(() =>
          w.transaction((tx) => {
            let inserted = 0;
            for (let i = 1; i <= n; i++) {
              inserted += tx.query('INSERT INTO bench_ins(id, v) VALUES ($1, $2)', [i, `v${i}`]).rowCount;
            }
            return BigInt(inserted);
          }),
        );
        break;

      case 'read':
        // One query returning the whole table: the runtime has neither
        // cursors nor prepare() yet. Once it does, this becomes a cursor read
        // in batches of 10000 rows (as the C worker does), so that memory
        // stays bounded; until then all 1M rows are materialised at once
        // (the bench cluster raises tsworker.max_old_space_mb for it).
        result = timed(() =>
          w.transaction((tx) => {
            const rows = tx.query<{ id: bigint; n: string; f: number; t: string; ts: string; b: boolean }>(
              'SELECT id, n, f, t, ts, b FROM bench_read',
            );
            let sink = 0n;
            let len = 0;
            let fsum = 0;
            for (const r of rows) {
              sink += r.id;
              len += r.n.length + r.t.length + r.ts.length + (r.b ? 1 : 0);
              fsum += r.f;
            }
            if (fsum < 0) w.log.debug(`sink ${sink} ${len}`); // keep the loop observable
            return BigInt(rows.length);
          }),
        );
        break;

      case 'lookup': {
        const maxid = Number(w.query<{ m: bigint }>('SELECT max(id) AS m FROM bench_read')[0].m);
        // Prepared once per transaction by the C worker and the external
        // client; the runtime has no prepare() yet, so each call here plans
        // the statement again. Switch to prepare() when the runtime has it.
        result = timed(() =>
          w.transaction((tx) => {
            let x = 42;
            let total = 0;
            for (let i = 0; i < n; i++) {
              x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
              const id = 1 + (x % maxid);
              const rows = tx.query<{ t: string }>('SELECT t FROM bench_read WHERE id = $1', [id]);
              if (rows.length === 1) total += rows[0].t.length;
            }
            return BigInt(total);
          }),
        );
        break;
      }

      default:
        throw new Error(`unknown workload "${workload}"`);
    }

    w.query(
      `INSERT INTO public.tsw_bench_results(system, workload, n, seconds, checksum) VALUES ('ts', $1, $2, $3, $4)`,
      [workload, n, result.seconds, result.checksum],
    );
    w.status.set({ workload, n, phase: 'done', seconds: result.seconds });
  },
});
