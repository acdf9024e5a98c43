/**
 * bench/spi/profile.ts — perf profiles of the TypeScript and the C worker
 * running one bench/spi workload (started by bench/spi/profile).
 *
 *   bench/spi/profile [--workload select1,insert,read,lookup] [--n N] [--rows R]
 *                     [--systems ts,c,ts,c] [--out DIR] [--no-perf] [--c-read-only] [--server-env NAME=VALUE]
 *
 * One temporary cluster set up as bench/spi/run sets it up; each worker runs
 * the workload once while `perf record -g` follows its pid, from the moment
 * it starts the timed part (the TypeScript worker publishes
 * phase 'running' in its status; the C worker is followed from its start,
 * which costs it nothing measurable) until it exits. Writes DIR/<system>.data
 * and DIR/<system>.txt (`perf report --no-children`, top entries) and
 * prints the CPU time each worker measured for the workload. --no-perf
 * only runs them (a system named twice runs twice, alternating: a quick
 * A/B on a noisy machine). The system c-ro is the C worker passing
 * read_only = true to SPI (bench/spi/run --help, --c-read-only), and
 * --c-read-only makes every C run do so. Run it under the shared bench lock.
 *
 * V8's JIT frames are anonymous in these profiles: the host ignores
 * NODE_OPTIONS (native/host/host_start.cc), so --perf-basic-prof needs a
 * private build that passes it.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Cluster, pidAlive } from '../../test/harness/cluster';
import { sh, sleep } from '../report';
import { BENCH_CONF, createTables, installWorker } from './setup';

const HERE = __dirname;
const TOP = path.resolve(HERE, '..', '..');

/** --server-env NAME=VALUE (repeatable): the server's environment, so its workers' too. */
function serverEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  process.argv.forEach((a, i) => {
    if (a === '--server-env') {
      const [k, v] = (process.argv[i + 1] ?? '').split(/=(.*)/s, 2);
      if (k) env[k] = v ?? '';
    }
  });
  return env;
}

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : dflt;
}

async function main(): Promise<void> {
  const workloads = arg('workload', 'select1,insert,read,lookup').split(',');
  const defaultN: Record<string, number> = { select1: 100_000, insert: 300_000, lookup: 200_000 };
  const rows = Number(arg('rows', '1000000'));
  const systems = arg('systems', 'ts,c').split(',');
  for (const s of systems) if (!['ts', 'c', 'c-ro'].includes(s)) throw new Error(`unknown system "${s}" (ts, c, c-ro)`);
  const out = path.resolve(arg('out', path.join(process.env.TMPDIR ?? '/tmp', 'spiprof')));
  fs.mkdirSync(out, { recursive: true });

  await sh('make', ['-s', '-C', HERE, 'install'], { cwd: TOP });
  const cluster = await Cluster.create('spiprof', { env: serverEnv(), conf: BENCH_CONF });
  const onSignal = () => {
    process.stderr.write('\ninterrupted: removing the cluster\n');
    void cluster.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const db = await cluster.connect({ applicationName: 'tsw_bench_profile' });
    const dir = installWorker(cluster);
    await createTables(db, rows);

    for (const workload of workloads) for (const system of systems) {
      const n = workload === 'read' ? rows : Number(arg('n', String(defaultN[workload])));
      await db.query('TRUNCATE bench_ins');
      const data = path.join(out, `${system}-${workload}.data`);
      let pid = 0;
      let done: Promise<unknown>;
      if (system === 'ts') {
        pid = Number(
          (
            await db.query(`SELECT tsworker.launch('bench_ts', $1, $2::jsonb) AS pid`, [
              path.join(dir, 'worker.ts'),
              JSON.stringify({ workload, n }),
            ])
          ).rows[0].pid,
        );
        for (;;) {
          const st = (await db.query(`SELECT status FROM tsworker.stat_workers WHERE name = 'bench_ts'`)).rows[0];
          if (st?.status?.phase === 'running') break;
          await sleep(1);
        }
        done = (async () => {
          while (pidAlive(pid)) await sleep(20);
        })();
      } else {
        const db2 = await cluster.connect({ applicationName: 'tsw_bench_profile_c' });
        let finished = false;
        done = db2
          .query('SELECT tsw_bench_c.run($1, $2, $3) AS s', [workload, n, system === 'c-ro' || process.argv.includes('--c-read-only')])
          .finally(() => {
            finished = true;
            return db2.end();
          });
        // A short run can end before its pid is seen: then it is not profiled.
        while (!finished) {
          const r = (await db.query(`SELECT pid FROM pg_stat_activity WHERE backend_type = 'tsw_bench_c'`)).rows[0];
          if (r) {
            pid = r.pid;
            break;
          }
          await sleep(1);
        }
      }
      const noPerf = process.argv.includes('--no-perf') || pid === 0;
      const perf = spawn(noPerf ? 'true' : 'perf', noPerf ? [] : ['record', '-q', '-g', '-F', '2000', '-o', data, '-p', String(pid)], {
        stdio: 'inherit',
      });
      await done;
      await new Promise((resolve) => {
        if (perf.exitCode !== null) resolve(undefined);
        perf.on('exit', resolve);
        setTimeout(() => perf.kill('SIGINT'), 200);
      });
      const r = (
        await db.query(`SELECT cpu_seconds, seconds FROM tsw_bench_results WHERE system = $1 ORDER BY id DESC LIMIT 1`, [
          system === 'ts' ? 'ts' : 'c',
        ])
      ).rows[0];
      process.stdout.write(`${system} ${workload} n=${n}: cpu ${(r.cpu_seconds * 1e3).toFixed(1)} ms, wall ${(r.seconds * 1e3).toFixed(1)} ms, ${((r.cpu_seconds / n) * 1e6).toFixed(2)} us/op cpu\n`);
      if (noPerf) continue;
      const report = await sh('perf', ['report', '-i', data, '--no-children', '--stdio', '-g', 'none', '--percent-limit', '0.5'], { cwd: TOP });
      fs.writeFileSync(path.join(out, `${system}-${workload}.txt`), report);
    }
    await db.end();
  } finally {
    await cluster.cleanup();
  }
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
