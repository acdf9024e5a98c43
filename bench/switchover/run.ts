/**
 * bench/switchover/run.ts — the write pause of a planned switchover:
 * pg_tsworker's cluster mode (`SELECT tsworker.switchover(candidate)` on the
 * leader) next to Patroni 3.0.2 (`patronictl switchover --leader L
 * --candidate C --force`), each with 1 primary + 2 standbys and one etcd on
 * 127.0.0.1 (the clusters of bench/failover: cluster.ts and patroni.ts).
 *
 * For each system: build the cluster, start one writer per member (an
 * autocommit INSERT every 20 ms, as an application whose pooler sends
 * writes to whichever member takes them: bench/failover/measure.ts), then
 * switch over round-robin (node1 → node2 → node3 → node1 ...) `--trials`
 * times. The write pause of a switchover is from the last INSERT the old
 * leader acknowledged to the first one the new leader acknowledged. Before
 * each switchover every member streams from the leader: Patroni restarts
 * the old leader as a replica itself; the old leader of cluster mode shuts
 * down and is started as the systemd unit of docs/failover.md does
 * (`pg_tsworker_ctl rejoin`, then start). Prints per-system median and max
 * of the pause and of the call, the ratio, and the longest window in which
 * two members accepted writes (must be 0).
 */
import { performance } from 'node:perf_hooks';

import { median } from '../report';
import { TsCluster } from '../failover/cluster';
import { queryOnce, sleep, waitUntil, type Nodes } from '../failover/common';
import { MemberWriters } from '../failover/measure';
import { Patroni, PATRONI_TIMING } from '../failover/patroni';

interface SwitchoverSystem {
  readonly id: string;
  readonly label: string;
  readonly settings: string;
  setup(log: (m: string) => void): Promise<Nodes>;
  switchover(leader: string, candidate: string): Promise<string>;
  afterSwitchover(old: string): Promise<void>;
  teardown(): Promise<void>;
  diagnostics(): Promise<string>;
}

const SYSTEMS: { id: string; make: () => SwitchoverSystem }[] = [
  { id: 'patroni', make: () => new Patroni() },
  { id: 'cluster', make: () => new TsCluster() },
];

const USAGE = `usage: bench/switchover/run [--trials N] [--only patroni|cluster[,...]]

  --trials N   switchovers per system, round-robin through the 3 members (default 10)
  --only LIST  run only these systems

Systems:
  patroni   Patroni 3.0.2 + etcd: ttl=${PATRONI_TIMING.ttl} s, loop_wait=${PATRONI_TIMING.loop_wait} s, retry_timeout=${PATRONI_TIMING.retry_timeout} s; patronictl switchover --force
  cluster   pg_tsworker cluster mode + etcd, default timing; SELECT tsworker.switchover(candidate)
`;

interface Trial {
  from: string;
  to: string;
  pauseMs: number;
  callMs: number;
  overlapMs: number;
}

function log(msg: string): void {
  process.stderr.write(`[switchover ${new Date().toISOString().slice(11, 23)}] ${msg}\n`);
}

async function streamingFrom(nodes: Nodes, leader: string): Promise<void> {
  const conn = nodes.members!.find((m) => m.name === leader)!.conn;
  await waitUntil(
    `both other members to stream from ${leader}`,
    async () => Number((await queryOnce<{ n: string }>(conn, `SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming'`))[0].n) === 2,
    120_000,
    100,
  );
}

async function runSystem(sys: SwitchoverSystem, trials: number): Promise<Trial[]> {
  log(`${sys.id}: setting up (${sys.settings})`);
  const nodes = await sys.setup(log);
  const out: Trial[] = [];
  const writers = new MemberWriters(nodes.members!);
  try {
    let leader = 'node1';
    for (let i = 1; i <= trials; i++) {
      await streamingFrom(nodes, leader);
      await sleep(1000);
      const to = `node${(Number(leader.slice(4)) % 3) + 1}`;
      const t0 = performance.now();
      const said = await sys.switchover(leader, to);
      const callMs = performance.now() - t0;
      const { pauseMs, overlapMs } = await writers.switchPause(t0, leader, to, 120_000);
      log(`${sys.id} ${i}: ${leader} -> ${to}: write pause ${pauseMs.toFixed(0)} ms, call ${callMs.toFixed(0)} ms (${said.trim().split('\n').pop()?.slice(0, 160)})`);
      out.push({ from: leader, to, pauseMs, callMs, overlapMs });
      await sys.afterSwitchover(leader);
      leader = to;
    }
    await streamingFrom(nodes, leader);
  } catch (err) {
    log(`${sys.id} failed: ${(err as Error).message}\n${await sys.diagnostics()}`);
    throw err;
  } finally {
    await writers.stop();
    await sys.teardown();
  }
  return out;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let trials = 10;
  let only = SYSTEMS.map((s) => s.id);
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--trials') trials = Number(argv[++i]);
    else if (argv[i] === '--only') only = argv[++i].split(',');
    else {
      process.stdout.write(USAGE);
      process.exit(argv[i] === '--help' ? 0 : 2);
    }
  }
  const results = new Map<string, Trial[]>();
  for (const s of SYSTEMS.filter((x) => only.includes(x.id))) results.set(s.id, await runSystem(s.make(), trials));
  const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const lines = ['', `| system | switchovers | write pause median (max) | call median (max) | two members writable |`, '|---|---|---|---|---|'];
  for (const [id, ts] of results) {
    const p = ts.map((t) => t.pauseMs);
    const c = ts.map((t) => t.callMs);
    lines.push(`| ${SYSTEMS.find((s) => s.id === id)!.make().label} | ${ts.length} | ${fmt(median(p))} (${fmt(Math.max(...p))}) | ${fmt(median(c))} (${fmt(Math.max(...c))}) | ${Math.max(...ts.map((t) => t.overlapMs)).toFixed(0)} ms |`);
  }
  const pa = results.get('patroni');
  const cl = results.get('cluster');
  if (pa && cl) {
    lines.push('', `write pause, cluster mode / Patroni: median ${(median(cl.map((t) => t.pauseMs)) / median(pa.map((t) => t.pauseMs))).toFixed(2)}×, max ${(Math.max(...cl.map((t) => t.pauseMs)) / Math.max(...pa.map((t) => t.pauseMs))).toFixed(2)}× (target ≤ 0.5×)`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: Error) => {
  process.stderr.write(`${err.stack ?? err.message}\n`);
  process.exit(1);
});
