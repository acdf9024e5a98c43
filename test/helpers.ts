/**
 * Helpers shared by the test files: worker fixtures copied where the
 * server's OS user can read them, and log checks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { Cluster } from './harness/cluster';
import { pgMajor } from './harness/pg-config';

const FIXTURES = path.join(__dirname, 'fixtures');

/**
 * Copy the fixtures of `test/fixtures/<set>` into `<cluster.baseDir>/<set>`
 * (world-readable, since the checkout may not be) and return that directory.
 */
export function installFixtures(cluster: Cluster, set = 'workers'): string {
  const dest = path.join(cluster.baseDir, set);
  fs.cpSync(path.join(FIXTURES, set), dest, { recursive: true });
  const chmod = (p: string) => {
    const st = fs.statSync(p);
    fs.chmodSync(p, st.isDirectory() ? 0o755 : 0o644);
    if (st.isDirectory()) for (const e of fs.readdirSync(p)) chmod(path.join(p, e));
  };
  chmod(dest);
  return dest;
}

/**
 * Whether the server has custom wait events (`WaitEventExtensionNew`,
 * PostgreSQL 17 and later). With them, a worker waiting in its event loop
 * shows its own name as `pg_stat_activity.wait_event`; before 17 every
 * worker shows `Extension` (PG_WAIT_EXTENSION), the documented fallback.
 */
export const CUSTOM_WAIT_EVENTS: boolean = pgMajor() >= 17;

/** The `wait_event` of worker `name` while it waits in its event loop (type `Extension`). */
export function idleWaitEvent(name: string): string {
  return CUSTOM_WAIT_EVENTS ? name : 'Extension';
}

/** {@link idleWaitEvent} as SQL over a pg_stat_activity row (a bgworker's backend_type is its name). */
export const IDLE_WAIT_EVENT_SQL: string = CUSTOM_WAIT_EVENTS ? 'backend_type' : `'Extension'`;

/** Lines of the server log, from `offset`, matching `re`. */
export function logLines(cluster: Cluster, re: RegExp, offset = 0): string[] {
  return cluster
    .readLog(offset)
    .split('\n')
    .filter((l) => re.test(l));
}

/** Signs in the log that the postmaster crash-restarted the cluster. */
export const CRASH_RESTART = /terminating any other active server processes|was terminated by signal|all server processes terminated; reinitializing/;

/** Background worker pids, by backend_type. */
export async function workerPids(cluster: Cluster): Promise<Map<string, number>> {
  const rows = await cluster.query<{ backend_type: string; pid: number }>(
    `SELECT backend_type, pid FROM pg_stat_activity WHERE backend_type NOT IN
       ('client backend', 'autovacuum launcher', 'logical replication launcher', 'background writer',
        'checkpointer', 'walwriter', 'archiver', 'startup', 'walreceiver', 'walsender', 'autovacuum worker',
        -- 17: slot sync and WAL summaries; 18: AIO's io_method = worker (the default)
        'slotsync worker', 'walsummarizer', 'io worker')`,
  );
  return new Map(rows.map((r) => [r.backend_type, r.pid]));
}
