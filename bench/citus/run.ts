/**
 * bench/citus/run.ts — worker group failover and switchover in a Citus
 * formation run by pg_tsworker's cluster mode (docs/citus.md), measured
 * through the coordinator as an application sees it.
 *
 * One formation (test/citus-helpers.ts): coordinator group 0 (a, b), worker
 * groups 1 (c, d) and 2 (e, f), each a primary and a streaming standby, one
 * etcd, a table distributed over 8 shards on both worker groups. Then,
 * alternating between the two worker groups, `--trials` times each:
 *
 *   failover (postmaster)  SIGKILL of the group primary's postmaster (its
 *                          promoter notices and releases the leader key);
 *   failover (crash)       SIGKILL of every process of the group primary (the
 *                          leader lease runs out after ttl), as a machine crash;
 *   switchover             SELECT tsworker.switchover(standby) on the group's
 *                          primary, under a load of 2 clients inserting one
 *                          distributed row each every 10 ms through the coordinator.
 *
 * Failover: time from the kill to the first distributed write that reaches
 * every shard (an INSERT of 32 keys through the coordinator), and to
 * pg_dist_node naming the new primary. Switchover: the longest time without
 * an acknowledged distributed write, the call's time, and acknowledged
 * writes missing afterwards (must be 0). After each trial the old primary
 * is rejoined (`pg_tsworker_ctl rejoin`, then start) as the systemd unit of
 * docs/failover.md does, and streams before the next trial.
 */
import { performance } from 'node:perf_hooks';

import { DistWriters, Formation, childPids, citusMissing, distWriteUntilOk, type FMember } from '../../test/citus-helpers';
import { Etcd } from '../../test/harness/etcd';
import { waitFor } from '../../test/harness/cluster';
import { median, table } from '../report';

const USAGE = `usage: bench/citus/run [--trials N]

  --trials N   trials of each measurement, alternating worker groups 1 and 2 (default 10)
`;

/** SIGKILL the primary: its postmaster only, or every process of the server (children first, so nobody releases the key). */
function kill(m: FMember, how: 'postmaster' | 'crash'): number {
  const pid = m.c.postmasterPid();
  if (!pid) throw new Error(`${m.name} does not run`);
  if (how === 'crash') {
    for (const c of childPids(pid)) {
      try {
        process.kill(c, 'SIGSTOP');
      } catch {
        // gone
      }
    }
  }
  const t = Date.now();
  if (how === 'crash') for (const c of childPids(pid)) process.kill(c, 'SIGKILL');
  process.kill(pid, 'SIGKILL');
  return t;
}

async function streaming(m: FMember): Promise<void> {
  await m.c.pollQueryUntil(`SELECT status FROM pg_stat_wal_receiver`, 'streaming', { timeoutMs: 120_000 });
}

interface FailoverTrial {
  group: number;
  how: string;
  writeMs: number;
  distNodeMs: number;
}
interface SwitchoverTrial {
  group: number;
  pauseMs: number;
  callMs: number;
  acked: number;
  lost: number;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(USAGE);
    return;
  }
  const i = args.indexOf('--trials');
  const trials = i >= 0 ? Number(args[i + 1]) : 10;
  if (!Number.isInteger(trials) || trials < 1) throw new Error(`--trials needs a positive integer\n${USAGE}`);
  const missing = citusMissing();
  if (missing) throw new Error(missing);
  const log = (m: string) => process.stderr.write(`[citus bench ${new Date().toISOString().slice(11, 23)}] ${m}\n`);

  const etcd = await Etcd.start('citus-bench');
  const f = new Formation(etcd, 'cb');
  const failovers: FailoverTrial[] = [];
  const switchovers: SwitchoverTrial[] = [];
  let base = 1_000_000;
  try {
    log('building the formation: coordinator a, b; worker groups c, d and e, f');
    await f.addGroup(0, ['a', 'b']);
    await f.addGroup(1, ['c', 'd']);
    await f.addGroup(2, ['e', 'f']);
    const coord = f.byName('a');
    for (const n of ['a', 'c', 'e']) await f.pointsAt(coord, f.byName(n));
    await coord.c.query(`CREATE TABLE dist(k bigint NOT NULL, v text, at timestamptz DEFAULT clock_timestamp()); SELECT create_distributed_table('dist', 'k', shard_count := 8)`, [], { database: 'citus' });

    const rejoin = async (old: FMember, group: number) => {
      await f.rejoinAndStart(old);
      await streaming(old);
      const lead = await f.leader(group);
      if (lead === old) throw new Error(`${old.name} leads again`);
    };

    for (const how of ['postmaster', 'crash'] as const) {
      for (let t = 0; t < trials; t++) {
        const group = 1 + (t % 2);
        const old = await f.leader(group);
        const other = f.members.find((m) => m.group === group && m !== old)!;
        await streaming(other);
        await new Promise((r) => setTimeout(r, 500));
        const killedAt = kill(old, how);
        const [wrote, pointedAt] = await Promise.all([distWriteUntilOk(coord, base, 120_000), f.pointsAt(coord, other, 120_000).then(() => Date.now())]);
        base += 100;
        failovers.push({ group, how, writeMs: wrote - killedAt, distNodeMs: pointedAt - killedAt });
        log(`failover (${how}) of group ${group} ${old.name} -> ${other.name}: first distributed write after ${wrote - killedAt} ms`);
        await waitFor(() => !old.c.isRunning(), { timeoutMs: 30_000, what: `${old.name} to be gone` });
        await rejoin(old, group);
      }
    }

    for (let t = 0; t < trials; t++) {
      const group = 1 + (t % 2);
      const old = await f.leader(group);
      const to = f.members.find((m) => m.group === group && m !== old)!;
      await streaming(to);
      const writers = new DistWriters(() => coord, 2, 100_000_000 + t * 1_000_000);
      await waitFor(() => writers.acks.length > 50, { timeoutMs: 30_000, what: 'writes before the switchover' });
      const started = Date.now();
      const t0 = performance.now();
      await old.c.query('SELECT tsworker.switchover($1)', [to.name]);
      const callMs = Math.round(performance.now() - t0);
      await f.pointsAt(coord, to, 60_000);
      const switched = Date.now();
      const { acked, lost } = await writers.finish(coord, switched);
      const trial = { group, pauseMs: writers.longestGap(started - 1000, switched + 300), callMs, acked: acked.length, lost: lost.length };
      switchovers.push(trial);
      log(`switchover of group ${group} ${old.name} -> ${to.name}: pause ${trial.pauseMs} ms, call ${callMs} ms, ${trial.acked} acknowledged, ${trial.lost} lost`);
      await rejoin(old, group);
    }
  } finally {
    await f.cleanup();
    await etcd.cleanup();
  }

  const ms = (x: number) => `${Math.round(x)} ms`;
  const rows: string[][] = [];
  for (const how of ['postmaster', 'crash']) {
    const xs = failovers.filter((x) => x.how === how);
    if (xs.length === 0) continue;
    rows.push([
      `worker group failover, SIGKILL ${how === 'crash' ? 'of every process (lease expiry)' : 'of the postmaster'}`,
      String(xs.length),
      `kill → first distributed write: median ${ms(median(xs.map((x) => x.writeMs)))}, max ${ms(Math.max(...xs.map((x) => x.writeMs)))}`,
      `kill → pg_dist_node updated: median ${ms(median(xs.map((x) => x.distNodeMs)))}`,
    ]);
  }
  if (switchovers.length > 0) {
    rows.push([
      'worker group switchover under 2 writers',
      String(switchovers.length),
      `longest write pause: median ${ms(median(switchovers.map((x) => x.pauseMs)))}, max ${ms(Math.max(...switchovers.map((x) => x.pauseMs)))}`,
      `call median ${ms(median(switchovers.map((x) => x.callMs)))}; ${switchovers.reduce((s, x) => s + x.acked, 0)} acknowledged writes, ${switchovers.reduce((s, x) => s + x.lost, 0)} lost`,
    ]);
  }
  process.stdout.write(`\n${table(['measurement', 'trials', 'time', 'also'], rows, [false, true, false, false])}\n`);
  process.stdout.write('(pg_tsworker cluster mode at its defaults: ttl 2 s, loop_wait 500 ms, retry_timeout 750 ms; Patroni side by side is not measured here)\n');
}

main().catch((err: Error) => {
  process.stderr.write(`bench/citus: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
