import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Cluster, waitFor } from '/work/wt/walfix2/test/harness/cluster';
import { archiveDir, pgSpawn, stopProgram } from '/work/wt/walfix2/test/walarchive-helpers';

const MB = 1024n * 1024n;
async function lsn(c: Cluster, sql = 'SELECT pg_current_wal_flush_lsn()'): Promise<bigint> {
  const [hi, lo] = (await c.queryText(sql)).split('/');
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}
function cpu(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}
async function main() {
  const perf = process.argv.includes('--perf');
  const rounds = Number(process.env.ROUNDS ?? 2);
  const clusters: Cluster[] = [];
  try {
    const src = await Cluster.create('prof-src', { allowStreaming: true, conf: { max_wal_size: '4GB', checkpoint_timeout: '30min' } });
    clusters.push(src);
    const host = await Cluster.create('prof-host', { conf: { shared_preload_libraries: 'pg_tsworker' } });
    clusters.push(host);
    await host.query('CREATE EXTENSION pg_tsworker');
    await src.query(`SELECT pg_create_physical_replication_slot('wa', true), pg_create_physical_replication_slot('rw', true)`);
    await src.query('CREATE TABLE backlog(id int, pad text)');
    for (let r = 0; r < rounds; r++) {
      const dir = archiveDir(host, `wa${r}`);
      const rwdir = archiveDir(src, `rw${r}`);
      const start = await lsn(src);
      while ((await lsn(src)) - start < 400n * MB) {
        await src.query(`INSERT INTO backlog SELECT g, repeat('x', 200) FROM generate_series(1, 200000) g`);
        await src.query('TRUNCATE backlog');
      }
      await src.query('SELECT pg_switch_wal()');
      const target = await lsn(src, 'SELECT pg_current_wal_insert_lsn()');
      const p = target - (target % (16n * MB)) - 1n;
      const last = await src.queryText(`SELECT pg_walfile_name('${(p >> 32n).toString(16)}/${(p & 0xffffffffn).toString(16)}'::pg_lsn)`);
      execFileSync('sync');
      // pg_receivewal
      const t1 = performance.now();
      const rw = pgSpawn('pg_receivewal', ['-d', src.connectionString(), '-S', 'rw', '-D', rwdir, '-n'], path.join(src.baseDir, 'rw.log'));
      await waitFor(() => fs.existsSync(path.join(rwdir, last)), { timeoutMs: 600_000, intervalMs: 5, what: 'rw' });
      const rwSecs = (performance.now() - t1) / 1000;
      const rwCpu = cpu(rw.pid!);
      await stopProgram(rw);
      execFileSync('sync');
      await host.query(`SELECT tsworker.launch('walarchive', 'walarchive', $1::jsonb)`, [
        JSON.stringify({ source_conninfo: src.connectionString(), directory: dir, slot: 'wa', status_interval: '10s', synchronous: 'off' }),
      ]);
      await waitFor(async () => (await src.queryText(`SELECT active FROM pg_replication_slots WHERE slot_name = 'wa'`)) === 't', { intervalMs: 5, what: 'active' });
      const t0 = performance.now();
      const pid = Number(await host.queryText(`SELECT pid FROM tsworker.workers WHERE name = 'walarchive'`));
      const c0 = cpu(pid);
      let pr: ReturnType<typeof spawn> | null = null;
      if (perf) pr = spawn('perf', ['record', '-F', '999', '-g', '-p', String(pid), '-o', `/tmp/walfix2tmp/perf${r}.data`], { stdio: 'ignore' });
      await waitFor(() => fs.existsSync(path.join(dir, last)), { timeoutMs: 600_000, intervalMs: 5, what: 'wa' });
      const secs = (performance.now() - t0) / 1000;
      const c1 = cpu(pid);
      if (pr) { pr.kill('SIGINT'); await new Promise((r) => pr!.once('exit', r)); }
      const mb = Number(target - start) / 1e6;
      console.log(`round ${r}: wa ${(mb / secs).toFixed(0)} MB/s cpu ${(c1 - c0).toFixed(2)}s | rw ${(mb / rwSecs).toFixed(0)} MB/s cpu ${rwCpu.toFixed(2)}s | ratio ${(rwSecs / secs).toFixed(2)}`);
      await host.query(`SELECT tsworker.stop('walarchive')`);
      await waitFor(async () => (await src.queryText(`SELECT active FROM pg_replication_slots WHERE slot_name = 'wa'`)) === 'f', { what: 'stop' });
      const log = fs.readFileSync(host.logFile ?? path.join(host.baseDir, 'prof-host.log'), 'utf8').split('\n').filter((l) => /PROF/.test(l)).slice(-3);
      for (const l of log) console.log(l);
    }
  } finally {
    for (const c of clusters.reverse()) await c.cleanup().catch(() => undefined);
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
