/**
 * bench/failover/autofailover.ts — pg_auto_failover 2.0 (Debian
 * postgresql-15-auto-failover + pg-auto-failover-cli: pg_autoctl), with its
 * defaults.
 *
 * Three pg_autoctl services in one temporary directory, on 127.0.0.1 with
 * free ports, each run in the foreground (`--run`) as the postgres OS user:
 * a monitor, then node1 (becomes primary), then node2 (becomes secondary).
 * `--auth trust --no-ssl --ssl-mode disable`; pg_autoctl edits pg_hba.conf
 * itself. XDG_CONFIG_HOME / XDG_DATA_HOME / XDG_RUNTIME_DIR / HOME point into
 * the temporary directory, so nothing lands in ~postgres. No monitor setting
 * (pgautofailover.health_check_*, node_considered_unhealthy_timeout,
 * primary_demote_timeout, ...) or keeper setting is changed.
 *
 * Losing the primary host = SIGKILL of node1's pg_autoctl keeper with its
 * whole process tree (its services and the postmaster with its children),
 * at once. The monitor and node2 stay up.
 */
import * as path from 'node:path';
import * as fs from 'node:fs';

import { getFreePort } from '../../test/harness/cluster';
import {
  type Daemon,
  type FailoverSystem,
  type Log,
  type Nodes,
  PG_BIN,
  freezeAndKill,
  makeDir,
  makeTmpDir,
  pidAlive,
  postmasterPid,
  processTree,
  queryOnce,
  startDaemon,
  stopTree,
  tail,
  waitGone,
  waitUntil,
} from './common';
import { PROBE_DDL, PROBE_TABLE } from './measure';

const PG_AUTOCTL = process.env.PG_AUTOCTL || '/usr/bin/pg_autoctl';

interface Service {
  name: string;
  pgdata: string;
  port: number;
  log: string;
  daemon?: Daemon;
}

interface NodeRow {
  nodename: string;
  reportedstate: string;
  goalstate: string;
  health: number;
}

export class AutoFailover implements FailoverSystem {
  readonly id = 'autofailover';
  readonly label = 'pg_auto_failover';
  readonly settings = 'pg_autoctl 2.0 defaults (monitor + primary + secondary; monitor health checks and timeouts untouched)';

  private base = '';
  private services: Service[] = [];
  private env: Record<string, string> = {};

  private monitorUri(): string {
    return `postgres://autoctl_node@127.0.0.1:${this.services[0].port}/pg_auto_failover?sslmode=disable`;
  }

  private start(s: Service, args: string[]): void {
    if (!this.base) throw new Error('torn down');
    s.daemon = startDaemon(
      PG_AUTOCTL,
      [
        ...args,
        '--pgdata',
        s.pgdata,
        '--pgport',
        String(s.port),
        '--pgctl',
        path.join(PG_BIN, 'pg_ctl'),
        '--hostname',
        '127.0.0.1',
        '--auth',
        'trust',
        '--no-ssl',
        '--ssl-mode',
        'disable',
        '--run',
      ],
      { cwd: this.base, env: this.env, logFile: s.log },
    );
  }

  private async nodeStates(): Promise<NodeRow[]> {
    return queryOnce<NodeRow>(
      { connectionString: this.monitorUri() },
      'SELECT nodename, reportedstate::text, goalstate::text, health FROM pgautofailover.node ORDER BY nodeid',
    );
  }

  private checkRunning(): void {
    for (const s of this.services) {
      if (s.daemon && !s.daemon.running()) throw new Error(`pg_autoctl for ${s.name} exited\n${tail(s.log)}`);
    }
  }

  /** Wait until the monitor reports exactly these (reported = goal) states and good health. */
  private async waitStates(what: string, want: Record<string, string>, timeoutMs: number): Promise<void> {
    await waitUntil(
      what,
      async () => {
        this.checkRunning();
        const rows = await this.nodeStates();
        if (rows.length !== Object.keys(want).length) return false;
        return rows.every((r) => want[r.nodename] === r.reportedstate && r.goalstate === r.reportedstate && r.health === 1);
      },
      timeoutMs,
      250,
    );
  }

  private conn(s: Service) {
    return { host: '127.0.0.1', port: s.port, user: 'postgres', database: 'postgres' };
  }

  async setup(_log: Log): Promise<Nodes> {
    this.base = makeTmpDir('paf');
    const xdg = makeDir(path.join(this.base, 'xdg'), 0o755);
    this.env = {
      HOME: this.base,
      XDG_CONFIG_HOME: makeDir(path.join(xdg, 'config')),
      XDG_DATA_HOME: makeDir(path.join(xdg, 'data')),
      XDG_RUNTIME_DIR: makeDir(path.join(xdg, 'run')),
    };
    const svc = async (name: string): Promise<Service> => ({
      name,
      pgdata: path.join(this.base, name),
      port: await getFreePort(),
      log: path.join(this.base, `${name}.log`),
    });
    const monitor = await svc('monitor');
    const node1 = await svc('node1');
    const node2 = await svc('node2');
    this.services = [monitor, node1, node2];

    this.start(monitor, ['create', 'monitor']);
    await waitUntil(
      'the pg_auto_failover monitor to accept connections',
      async () => {
        this.checkRunning();
        return (await queryOnce({ connectionString: this.monitorUri() }, 'SELECT 1 FROM pgautofailover.formation')).length > 0;
      },
      60_000,
      250,
    );

    this.start(node1, ['create', 'postgres', '--name', 'node1', '--listen', '127.0.0.1', '--monitor', this.monitorUri()]);
    await this.waitStates('node1 to become "single"', { node1: 'single' }, 90_000);

    this.start(node2, ['create', 'postgres', '--name', 'node2', '--listen', '127.0.0.1', '--monitor', this.monitorUri()]);
    await this.waitStates('node1 "primary" and node2 "secondary"', { node1: 'primary', node2: 'secondary' }, 120_000);

    await waitUntil(
      'node2 to stream from node1',
      async () => (await queryOnce(this.conn(node1), "SELECT 1 FROM pg_stat_replication WHERE state = 'streaming'")).length > 0,
      30_000,
    );
    await queryOnce(this.conn(node1), PROBE_DDL);
    const [{ l }] = await queryOnce<{ l: string }>(this.conn(node1), 'SELECT pg_current_wal_lsn()::text AS l');
    await waitUntil(
      'node2 to replay the probe table',
      async () =>
        (await queryOnce<{ ok: boolean }>(this.conn(node2), `SELECT pg_last_wal_replay_lsn() >= '${l}'::pg_lsn AS ok`))[0].ok,
      30_000,
      50,
    );
    // The probe table must be writable on the primary (synchronous replication to node2 is on).
    await queryOnce(this.conn(node1), `INSERT INTO ${PROBE_TABLE} DEFAULT VALUES`);
    await this.waitStates('both nodes healthy on the monitor', { node1: 'primary', node2: 'secondary' }, 60_000);
    return {
      standby: this.conn(node2),
      describe:
        `monitor :${monitor.port}, node1 :${node1.port} (keeper ${node1.daemon!.pid}, postmaster ${postmasterPid(node1.pgdata)}), ` +
        `node2 :${node2.port}`,
    };
  }

  async killPrimary(): Promise<number> {
    const node1 = this.services[1];
    const roots = [node1.daemon!.pid];
    const pm = postmasterPid(node1.pgdata);
    if (pm !== undefined) roots.push(pm);
    const { t0, pids } = freezeAndKill(roots);
    await waitGone(pids);
    return t0;
  }

  async teardown(): Promise<void> {
    // Data nodes first, then the monitor; pg_autoctl stops its Postgres on SIGTERM.
    for (const s of [...this.services].reverse()) {
      if (s.daemon?.running()) await stopTree([s.daemon.pid], 15_000);
    }
    // Any postmaster left behind (e.g. reparented after its keeper died).
    for (const s of this.services) {
      const pm = postmasterPid(s.pgdata);
      if (pm !== undefined && pidAlive(pm)) await stopTree(processTree([pm]).slice(0, 1), 5_000);
    }
    if (this.base && !process.env.PG_TSWORKER_KEEP_TMP) fs.rmSync(this.base, { recursive: true, force: true });
    else if (this.base) process.stderr.write(`keeping ${this.base}\n`);
    this.services = [];
    this.base = '';
  }

  async diagnostics(): Promise<string> {
    const out: string[] = [];
    for (const s of this.services) out.push(tail(s.log, 20));
    try {
      out.push(`monitor nodes: ${JSON.stringify(await this.nodeStates())}`);
      const ev = await queryOnce<{ description: string }>(
        { connectionString: this.monitorUri() },
        'SELECT eventtime::text, nodename, description FROM pgautofailover.event ORDER BY eventid DESC LIMIT 8',
      );
      out.push('monitor events (newest first):\n' + ev.map((e) => `  ${JSON.stringify(e)}`).join('\n'));
    } catch (e) {
      out.push(`monitor not reachable: ${(e as Error).message}`);
    }
    return out.join('\n');
  }
}
