/**
 * bench/failover/repmgr.ts — repmgr 5 + repmgrd (Debian postgresql-15-repmgr).
 *
 * Two nodes built with the test harness (test/harness/cluster.ts): a primary
 * and a streaming standby, both with shared_preload_libraries = 'repmgr',
 * registered in a `repmgr` database (superuser postgres, trust over
 * 127.0.0.1), and repmgrd running on both, as a normal deployment does:
 *
 *   monitor_interval_secs = 1, reconnect_attempts = 3, reconnect_interval = 1
 *   failover = automatic, promote_command = repmgr standby promote,
 *   follow_command = repmgr standby follow --upstream-node-id=%n
 *
 * Losing the primary host = SIGKILL of the primary's postmaster with all its
 * children and the primary's repmgrd, at once.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Cluster } from '../../test/harness/cluster';
import {
  type Daemon,
  type FailoverSystem,
  type Log,
  type Nodes,
  PG_BIN,
  freezeAndKill,
  queryOnce,
  runAsServer,
  startDaemon,
  stopTree,
  tail,
  waitGone,
  waitUntil,
  writeFile,
} from './common';
import { probeReplication } from './measure';

const REPMGR = path.join(PG_BIN, 'repmgr');
const REPMGRD = path.join(PG_BIN, 'repmgrd');

export const REPMGR_SETTINGS = {
  monitor_interval_secs: 1,
  reconnect_attempts: 3,
  reconnect_interval: 1,
};

interface Node {
  id: number;
  name: string;
  cluster: Cluster;
  conf: string;
  log: string;
  daemon?: Daemon;
}

export class Repmgr implements FailoverSystem {
  readonly id = 'repmgr';
  readonly label = 'repmgrd';
  readonly settings =
    `monitor_interval_secs=${REPMGR_SETTINGS.monitor_interval_secs}, reconnect_attempts=${REPMGR_SETTINGS.reconnect_attempts}, ` +
    `reconnect_interval=${REPMGR_SETTINGS.reconnect_interval}, failover=automatic (repmgr standby promote)`;

  private nodes: Node[] = [];

  private conninfo(c: Cluster): string {
    return `host=127.0.0.1 port=${c.port} user=postgres dbname=repmgr connect_timeout=2`;
  }

  private writeConf(n: Node): void {
    const q = (s: string) => `'${s.replace(/'/g, "''")}'`;
    const cmd = (sub: string) => `${REPMGR} ${sub} -f ${n.conf} --log-to-file`;
    writeFile(
      n.conf,
      [
        `node_id=${n.id}`,
        `node_name=${q(n.name)}`,
        `conninfo=${q(this.conninfo(n.cluster))}`,
        `data_directory=${q(n.cluster.dataDir)}`,
        `pg_bindir=${q(PG_BIN)}`,
        `log_level='INFO'`,
        `log_file=${q(n.log)}`,
        `failover='automatic'`,
        `promote_command=${q(cmd('standby promote'))}`,
        `follow_command=${q(cmd('standby follow') + ' --upstream-node-id=%n')}`,
        `monitor_interval_secs=${REPMGR_SETTINGS.monitor_interval_secs}`,
        `reconnect_attempts=${REPMGR_SETTINGS.reconnect_attempts}`,
        `reconnect_interval=${REPMGR_SETTINGS.reconnect_interval}`,
        `repmgrd_pid_file=${q(path.join(n.cluster.baseDir, 'repmgrd.pid'))}`,
        '',
      ].join('\n'),
    );
  }

  private repmgr(n: Node, args: string[]): Promise<string> {
    return runAsServer(REPMGR, ['-f', n.conf, ...args], { cwd: n.cluster.baseDir, timeoutMs: 60_000 });
  }

  async setup(log: Log): Promise<Nodes> {
    const conf = { shared_preload_libraries: 'repmgr', wal_log_hints: true };
    const primary = await Cluster.create('rm-primary', { allowStreaming: true, conf });
    const p: Node = { id: 1, name: 'node1', cluster: primary, conf: '', log: '' };
    this.nodes.push(p);
    p.conf = path.join(primary.baseDir, 'repmgr.conf');
    p.log = path.join(primary.baseDir, 'repmgrd.log');
    this.writeConf(p);
    await primary.query('CREATE DATABASE repmgr');
    await this.repmgr(p, ['primary', 'register']);

    const standby = await Cluster.createStandby(primary, 'rm-standby', { conf });
    const s: Node = { id: 2, name: 'node2', cluster: standby, conf: '', log: '' };
    this.nodes.push(s);
    s.conf = path.join(standby.baseDir, 'repmgr.conf');
    s.log = path.join(standby.baseDir, 'repmgrd.log');
    this.writeConf(s);
    // What `repmgr standby clone` would write: connect over TCP with application_name = node_name.
    await standby.query(
      `ALTER SYSTEM SET primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres application_name=${s.name}'`,
    );
    await standby.query('SELECT pg_reload_conf()');
    await waitUntil(
      'the standby to stream from the primary',
      async () =>
        (await primary.query(`SELECT 1 FROM pg_stat_replication WHERE application_name = '${s.name}' AND state = 'streaming'`))
          .length > 0,
      30_000,
    );
    await this.repmgr(s, ['standby', 'register']);
    // The registration is written on the primary; the standby's repmgrd reads its own node record
    // locally and exits ("no metadata record found for this node") if it has not been replayed yet.
    await waitUntil(
      'the standby to replay its repmgr registration',
      async () =>
        (await standby.query(`SELECT 1 FROM repmgr.nodes WHERE node_id = ${s.id}`, [], { database: 'repmgr' })).length > 0,
      30_000,
      50,
    );

    for (const n of this.nodes) {
      n.daemon = startDaemon(REPMGRD, ['-f', n.conf, '--daemonize=false'], {
        cwd: n.cluster.baseDir,
        logFile: path.join(n.cluster.baseDir, 'repmgrd.stdout'),
      });
    }
    // repmgrd on the standby is watching its upstream once it logs the monitoring start.
    await waitUntil(
      "the standby's repmgrd to monitor the primary",
      () => {
        for (const n of this.nodes) {
          if (!n.daemon!.running()) throw new Error(`repmgrd on ${n.name} exited\n${tail(n.log)}`);
        }
        return /monitoring connection to upstream node/.test(readText(s.log));
      },
      30_000,
      100,
    );
    await waitUntil(
      "the primary's repmgrd to monitor it",
      () => /monitoring cluster primary/.test(readText(p.log)),
      30_000,
      100,
    );
    // One more check that replication is healthy right before the kill.
    await probeReplication(primary, standby);
    return {
      standby: { host: '127.0.0.1', port: standby.port, user: 'postgres', database: 'postgres' },
      describe: `primary :${primary.port} (repmgrd ${p.daemon!.pid}), standby :${standby.port} (repmgrd ${s.daemon!.pid})`,
    };
  }

  async killPrimary(): Promise<number> {
    const p = this.nodes[0];
    const pm = p.cluster.postmasterPid();
    if (pm === undefined) throw new Error('primary has no postmaster.pid');
    const { t0, pids } = freezeAndKill([pm, p.daemon!.pid]);
    await waitGone(pids);
    return t0;
  }

  async teardown(): Promise<void> {
    await Promise.all(this.nodes.map((n) => (n.daemon ? stopTree([n.daemon.pid], 5_000) : undefined)));
    for (const n of this.nodes.reverse()) await n.cluster.cleanup().catch(() => undefined);
    this.nodes = [];
  }

  async diagnostics(): Promise<string> {
    const out: string[] = [];
    for (const n of this.nodes) {
      out.push(tail(n.log), tail(n.cluster.logFile, 15));
    }
    const s = this.nodes[1];
    if (s) {
      try {
        const r = await queryOnce(
          { host: '127.0.0.1', port: s.cluster.port, user: 'postgres', database: 'postgres' },
          'SELECT pg_is_in_recovery()',
        );
        out.push(`standby pg_is_in_recovery: ${JSON.stringify(r)}`);
      } catch (e) {
        out.push(`standby not reachable: ${(e as Error).message}`);
      }
    }
    return out.join('\n');
  }
}

function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
