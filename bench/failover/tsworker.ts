/**
 * bench/failover/tsworker.ts — pg_tsworker's built-in `promoter` worker
 * (src/workers/promoter.ts, docs/failover.md).
 *
 * Two nodes built with the test harness (test/harness/cluster.ts): a primary
 * with shared_preload_libraries = 'pg_tsworker' and CREATE EXTENSION
 * pg_tsworker, and a streaming standby made with pg_basebackup -R
 * (Cluster.createStandby) that runs the promoter in standby mode with the
 * same check interval and count as repmgrd in repmgr.ts:
 *
 *   shared_preload_libraries = 'pg_tsworker'
 *   tsworker.workers = 'promoter'
 *   tsworker_promoter.interval = '1s'
 *   tsworker_promoter.timeout = '1s'
 *   tsworker_promoter.failures = 3
 *
 * Every other promoter setting is its default (no witnesses, max_lag 16 MB,
 * keep_connection on, no hooks). As for repmgr, the standby's
 * primary_conninfo (which the promoter watches) goes over TCP to 127.0.0.1
 * with application_name = node2, instead of the Unix socket pg_basebackup -R
 * wrote. Ready = the promoter reports the primary's identity `verified`
 * (IDENTIFY_SYSTEM succeeded; it never promotes without that).
 *
 * Losing the primary host = SIGKILL of the primary's postmaster with all its
 * children, at once (there is no agent on the primary: the promoter lives on
 * the standby).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Cluster } from '../../test/harness/cluster';
import { type FailoverSystem, type Log, type Nodes, freezeAndKill, queryOnce, tail, waitGone, waitUntil, writeFile } from './common';
import { probeReplication } from './measure';

export const PROMOTER_SETTINGS = {
  'tsworker_promoter.interval': '1s',
  'tsworker_promoter.timeout': '1s',
  'tsworker_promoter.failures': 3,
};

const STANDBY_NAME = 'node2';

export class TsWorker implements FailoverSystem {
  readonly id = 'tsworker';
  readonly label = 'pg_tsworker promoter';
  readonly settings =
    `interval=${PROMOTER_SETTINGS['tsworker_promoter.interval']}, timeout=${PROMOTER_SETTINGS['tsworker_promoter.timeout']}, ` +
    `failures=${PROMOTER_SETTINGS['tsworker_promoter.failures']}, no witnesses, other settings default (pg_promote on the standby)`;

  private primary: Cluster | undefined;
  private standby: Cluster | undefined;

  async setup(_log: Log): Promise<Nodes> {
    const primary = await Cluster.create('tw-primary', {
      allowStreaming: true,
      conf: { shared_preload_libraries: 'pg_tsworker' },
    });
    this.primary = primary;
    await primary.query('CREATE EXTENSION pg_tsworker');

    // Created stopped, so that the promoter starts with the final primary_conninfo.
    const standby = await Cluster.createStandby(primary, 'tw-standby', {
      start: false,
      conf: {
        shared_preload_libraries: 'pg_tsworker',
        'tsworker.workers': 'promoter',
        ...PROMOTER_SETTINGS,
      },
    });
    this.standby = standby;
    // pg_basebackup -R wrote primary_conninfo (Unix socket) into postgresql.auto.conf; use TCP, as repmgr.ts does.
    const auto = path.join(standby.dataDir, 'postgresql.auto.conf');
    const lines = fs.readFileSync(auto, 'utf8').split('\n').filter((l) => !/^\s*primary_conninfo\s*=/.test(l));
    if (lines[lines.length - 1] === '') lines.pop();
    lines.push(`primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${STANDBY_NAME}'`, '');
    writeFile(auto, lines.join('\n'), 0o600);
    await standby.start();

    await waitUntil(
      'the standby to stream from the primary',
      async () =>
        (
          await primary.query(
            `SELECT 1 FROM pg_stat_replication WHERE application_name = '${STANDBY_NAME}' AND state = 'streaming'`,
          )
        ).length > 0,
      30_000,
    );
    await waitUntil(
      "the promoter to verify the primary's identity",
      async () =>
        (await standby.query<{ i: string }>(`SELECT status->>'identity' AS i FROM tsworker.stat_workers WHERE name = 'promoter'`))[0]
          ?.i === 'verified',
      60_000,
      100,
    );
    // One more check that replication is healthy right before the kill.
    await probeReplication(primary, standby);
    return {
      standby: { host: '127.0.0.1', port: standby.port, user: 'postgres', database: 'postgres' },
      describe: `primary :${primary.port} (postmaster ${primary.postmasterPid()}), standby :${standby.port} (promoter)`,
    };
  }

  async killPrimary(): Promise<number> {
    const pm = this.primary?.postmasterPid();
    if (pm === undefined) throw new Error('primary has no postmaster.pid');
    const { t0, pids } = freezeAndKill([pm]);
    await waitGone(pids);
    return t0;
  }

  /** The promoter's own account of the trial: its promoted event's durations. */
  async explain(): Promise<string> {
    const s = this.standby;
    if (!s) return '';
    const conn = { host: '127.0.0.1', port: s.port, user: 'postgres', database: 'postgres' };
    // the promoter stores its events right after the promotion, which the first write can precede
    const ev = await waitUntil(
      'the promoter to store its events',
      async () => {
        const rows = await queryOnce<{ kind: string; at: string; detail: Record<string, unknown> }>(
          conn,
          `SELECT kind, at::text, detail FROM tsworker.events WHERE kind IN ('check_failed', 'promoted') ORDER BY id`,
        );
        return rows.some((r) => r.kind === 'promoted') && rows;
      },
      5000,
      100,
    );
    return ev.map((e) => `${e.kind} ${e.at.slice(11, 23)} ${e.kind === 'promoted' ? JSON.stringify(e.detail.durations) : String(e.detail.reason).slice(0, 60)}`).join('; ');
  }

  async teardown(): Promise<void> {
    const nodes = [this.standby, this.primary];
    this.standby = undefined;
    this.primary = undefined;
    for (const c of nodes) if (c) await c.cleanup().catch(() => undefined);
  }

  async diagnostics(): Promise<string> {
    const out: string[] = [];
    if (this.primary) out.push(tail(this.primary.logFile, 15));
    const s = this.standby;
    if (s) {
      out.push(tail(s.logFile, 40));
      const conn = { host: '127.0.0.1', port: s.port, user: 'postgres', database: 'postgres' };
      try {
        const r = await queryOnce(conn, `SELECT pg_is_in_recovery() AS recovery, (SELECT status FROM tsworker.stat_workers WHERE name = 'promoter') AS promoter`);
        out.push(`standby: ${JSON.stringify(r)}`);
        const ev = await queryOnce(conn, `SELECT at::text, kind, detail FROM tsworker.events ORDER BY id DESC LIMIT 10`).catch(
          (e: Error) => [{ error: e.message }],
        );
        out.push('standby tsworker.events (newest first):\n' + ev.map((e) => `  ${JSON.stringify(e)}`).join('\n'));
      } catch (e) {
        out.push(`standby not reachable: ${(e as Error).message}`);
      }
    }
    return out.join('\n');
  }
}
