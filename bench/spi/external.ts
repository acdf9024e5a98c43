// bench/spi/external.ts — the external-client side of the SPI benchmark: the
// same workloads as worker.ts and tsw_bench_c.c, from a separate Node process
// using `pg` over the server's Unix socket.
//
//   node --import tsx bench/spi/external.ts --host <socket dir> --port <port> \
//        [--database postgres] [--user postgres] [--pin CPU] --workload select1 --n 20000
//
// --pin CPU puts this process and its backend on one CPU (taskset; needs
// root or the server's OS user) before the timed part: a round trip then
// costs no cross-CPU wake-up.
//
// Prints one JSON line: {"seconds": ..., "checksum": "..."}. Only the
// workload is timed (process.hrtime.bigint()), not connecting.
//
// Statements:
//   select1  n times client.query('SELECT 1') (simple protocol, autocommit:
//            one transaction each)
//   insert   BEGIN; n times the named prepared statement
//            INSERT INTO bench_ins(id, v) VALUES ($1, $2); COMMIT
//   read     BEGIN; SELECT id, n, f, t, ts, b FROM bench_read; COMMIT — one
//            plain query returning every row: pg-cursor is not installed in
//            this checkout, so no batched cursor read. pg's default type
//            parsers turn every column into a JavaScript value.
//   lookup   BEGIN; n times the named prepared statement
//            SELECT t FROM bench_read WHERE id = $1 (ids from the shared PRNG); COMMIT
import { execFileSync } from 'node:child_process';

import pg from 'pg';

function parseArgs(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else out[a.slice(2)] = argv[++i] ?? '';
  }
  return out;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const workload = args.workload;
  const n = Number(args.n ?? 0);
  if (!args.host || !args.port) throw new Error('--host and --port are required');
  const client = new pg.Client({
    host: args.host,
    port: Number(args.port),
    user: args.user ?? 'postgres',
    database: args.database ?? 'postgres',
    application_name: 'tsw_bench_external',
  });
  await client.connect();
  try {
    if (args.pin !== undefined) {
      const backend = String((await client.query('SELECT pg_backend_pid() AS p')).rows[0].p);
      execFileSync('taskset', ['-a', '-p', '-c', args.pin, String(process.pid)], { stdio: 'ignore' });
      execFileSync('taskset', ['-p', '-c', args.pin, backend], { stdio: 'ignore' });
    }
    let checksum = 0n;
    let t0: bigint;
    let t1: bigint;
    switch (workload) {
      case 'select1': {
        t0 = process.hrtime.bigint();
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const res = await client.query('SELECT 1');
          sum += res.rows[0]['?column?'] as number;
        }
        t1 = process.hrtime.bigint();
        checksum = BigInt(sum);
        break;
      }
      case 'insert': {
        t0 = process.hrtime.bigint();
        let inserted = 0;
        await client.query('BEGIN');
        for (let i = 1; i <= n; i++) {
          const res = await client.query({
            name: 'insert',
            text: 'INSERT INTO bench_ins(id, v) VALUES ($1, $2)',
            values: [i, `v${i}`],
          });
          inserted += res.rowCount ?? 0;
        }
        await client.query('COMMIT');
        t1 = process.hrtime.bigint();
        checksum = BigInt(inserted);
        break;
      }
      case 'read': {
        t0 = process.hrtime.bigint();
        await client.query('BEGIN');
        const res = await client.query('SELECT id, n, f, t, ts, b FROM bench_read');
        let len = 0;
        let fsum = 0;
        let tsum = 0;
        for (const r of res.rows) {
          len += (r.id as string).length + (r.n as string).length + (r.t as string).length + (r.b ? 1 : 0);
          fsum += r.f as number;
          tsum += (r.ts as Date).getTime();
        }
        await client.query('COMMIT');
        t1 = process.hrtime.bigint();
        if (fsum < 0 && tsum < 0) console.error(len); // keep the loop observable
        checksum = BigInt(res.rows.length);
        break;
      }
      case 'lookup': {
        const maxid = Number((await client.query('SELECT max(id) AS m FROM bench_read')).rows[0].m);
        t0 = process.hrtime.bigint();
        await client.query('BEGIN');
        let x = 42;
        let total = 0;
        for (let i = 0; i < n; i++) {
          x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
          const id = 1 + (x % maxid);
          const res = await client.query({
            name: 'lookup',
            text: 'SELECT t FROM bench_read WHERE id = $1',
            values: [id],
          });
          if (res.rows.length === 1) total += (res.rows[0].t as string).length;
        }
        await client.query('COMMIT');
        t1 = process.hrtime.bigint();
        checksum = BigInt(total);
        break;
      }
      default:
        throw new Error(`unknown workload "${workload}" (select1, insert, read, lookup)`);
    }
    process.stdout.write(JSON.stringify({ seconds: Number(t1 - t0) / 1e9, checksum: checksum.toString() }) + '\n');
  } finally {
    await client.end();
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
