/**
 * bench/failover/sync-loss.ts — synchronous mode of the promoter's cluster
 * mode loses no acknowledged commit.
 *
 * Each trial: fresh members (cluster.ts) with
 * tsworker_promoter.synchronous_mode = on; once the leader has recorded
 * both standbys as synchronous (ANY 1 of 2), one client commits rows on it
 * as fast as it can (autocommit INSERT ... RETURNING id) and records every
 * id acknowledged; at a random 0.5-1.5 s the leader's postmaster is
 * SIGKILLed; once a standby leads and accepts writes, every acknowledged
 * id must be there.
 */
import { performance } from 'node:perf_hooks';

import pg from 'pg';

import { TsCluster } from './cluster';
import { type Log, queryOnce, sleep, waitUntil } from './common';
import { PROBE_TABLE } from './measure';

export async function syncLossTrials(trials: number, timeoutMs: number, log: Log): Promise<{ ok: boolean; table: string }> {
  const lines: string[] = [];
  let lostTotal = 0;
  let ackedTotal = 0;
  let failed = 0;
  for (let t = 1; t <= trials; t++) {
    const sys = new TsCluster({ 'tsworker_promoter.synchronous_mode': 'on' });
    try {
      const nodes = await sys.setup(log);
      const members = nodes.members!;
      await waitUntil(
        'both standbys recorded as synchronous',
        async () => (await queryOnce<{ n: number }>(members[0].conn, `SELECT jsonb_array_length(status->'sync') AS n FROM tsworker.workers WHERE name = 'promoter'`))[0]?.n === 2,
        60_000,
      );
      const client = new pg.Client({ ...members[0].conn, application_name: 'sync_loss' });
      client.on('error', () => undefined);
      await client.connect();
      const acked: number[] = [];
      let writing = true;
      const writer = (async () => {
        while (writing) {
          try {
            const r = await client.query<{ id: string }>(`INSERT INTO ${PROBE_TABLE} DEFAULT VALUES RETURNING id`);
            acked.push(Number(r.rows[0].id));
          } catch {
            return;
          }
        }
      })();
      await sleep(500 + Math.random() * 1000);
      const t0 = await sys.killPrimary('postmaster');
      await writer.catch(() => undefined);
      writing = false;
      await client.end().catch(() => undefined);
      const lead = await waitUntil(
        'a standby to lead and accept writes',
        async () => {
          for (const m of members.slice(1)) {
            const r = await queryOnce<{ w: boolean }>(m.conn, `SELECT NOT pg_is_in_recovery() AND current_setting('tsworker.fenced') = 'off' AS w`).catch(() => []);
            if (r[0]?.w) return m;
          }
          return undefined;
        },
        timeoutMs,
        20,
      );
      const ms = performance.now() - t0;
      const there = new Set((await queryOnce<{ id: string }>(lead.conn, `SELECT id FROM ${PROBE_TABLE} WHERE id = ANY($1::bigint[])`, [acked])).map((r) => Number(r.id)));
      const lost = acked.filter((id) => !there.has(id)).length;
      lostTotal += lost;
      ackedTotal += acked.length;
      lines.push(`${String(t).padStart(5)} | ${String(acked.length).padStart(8)} | ${String(lost).padStart(4)} | ${lead.name.padEnd(10)} | ${(ms / 1000).toFixed(2)}`);
      log(`sync trial ${t}/${trials}: ${acked.length} commits acknowledged, ${lost} missing on ${lead.name} (leader after ${(ms / 1000).toFixed(2)} s)`);
    } catch (e) {
      failed++;
      lines.push(`${String(t).padStart(5)} | FAILED: ${(e as Error).message.split('\n')[0]}`);
      log(`sync trial ${t}/${trials} failed: ${(e as Error).message}\n${await sys.diagnostics().catch(() => '')}`);
    } finally {
      await sys.teardown();
    }
  }
  const table = [
    `Synchronous mode (pg_tsworker cluster mode, synchronous_mode = on, ANY 1 of 2 standbys): acknowledged commits after the leader's postmaster SIGKILL`,
    '',
    'trial | acked    | lost | new leader | leader writable after s',
    '------|----------|------|------------|------------------------',
    ...lines,
    '',
    `total: ${ackedTotal} acknowledged, ${lostTotal} lost, ${failed} failed trial(s)`,
  ].join('\n');
  return { ok: lostTotal === 0 && failed === 0, table };
}
