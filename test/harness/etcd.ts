/**
 * Test harness: a real etcd (Debian's etcd-server, /usr/bin/etcd) for
 * cluster-mode tests and benchmarks: one member, its own data directory in
 * a temporary directory, listening on loopback or inside a network
 * namespace (test/harness/netns.ts), stopped and started again on demand.
 *
 *   const etcd = await Etcd.start('t');               // http://127.0.0.1:<port>
 *   const etcd = await Etcd.start('t', { netns: net.host('e') });   // http://10.213.x.2:2379
 *   await etcd.stop(); await etcd.start();            // same data: leases survive
 *   await etcd.cleanup();
 *
 * Environment: ETCD_BIN (default /usr/bin/etcd).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import { getFreePort, waitFor, type NetnsPlacement } from './cluster';

export const ETCD_BIN = process.env.ETCD_BIN || '/usr/bin/etcd';

export interface EtcdOptions {
  /** Run inside this network namespace, listening on its IP (needs root). */
  netns?: NetnsPlacement;
}

/** Resolves once a TCP connection to host:port succeeds (from this process's namespace). */
function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('connect', () => done(true));
    s.on('error', () => done(false));
  });
}

export class Etcd {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly host: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly netns: NetnsPlacement | undefined,
  ) {}

  /** The client URL members use (`http://host:port`). */
  get url(): string {
    return `http://${this.host}:${this.clientPort}`;
  }

  /** The etcd process's pid while it runs (`ip netns exec` execs etcd itself), else undefined. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get logFile(): string {
    return path.join(this.dir, 'etcd.log');
  }

  /** Create a fresh etcd and start it; resolves once it accepts connections. */
  static async start(name: string, opts: EtcdOptions = {}): Promise<Etcd> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pgtsw-etcd-${name}-`));
    const host = opts.netns?.ip ?? '127.0.0.1';
    const clientPort = opts.netns ? 2379 : await getFreePort();
    const peerPort = opts.netns ? 2380 : await getFreePort();
    const etcd = new Etcd(name, dir, host, clientPort, peerPort, opts.netns);
    await etcd.start();
    return etcd;
  }

  /** Start (again, with the same data) and wait until it listens. */
  async start(): Promise<void> {
    if (this.child) return;
    const peer = `http://${this.host}:${this.peerPort}`;
    const args = [
      '--name', this.name,
      '--data-dir', path.join(this.dir, 'data'),
      '--listen-client-urls', this.url,
      '--advertise-client-urls', this.url,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `${this.name}=${peer}`,
      '--log-level', 'warn',
    ];
    const log = fs.openSync(this.logFile, 'a');
    const [cmd, argv] = this.netns ? ['ip', ['netns', 'exec', this.netns.netns, ETCD_BIN, ...args]] : [ETCD_BIN, args];
    const child = spawn(cmd, argv, { stdio: ['ignore', log, log], detached: true });
    fs.closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    child.on('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    if (this.netns) {
      // not reachable from here: wait for etcd's own "ready" line
      await waitFor(() => /ready to serve client requests/.test(fs.readFileSync(this.logFile, 'utf8')) || undefined, {
        timeoutMs: 30_000,
        intervalMs: 50,
        what: `etcd ${this.name} to serve`,
      }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 300));
    } else {
      await waitFor(() => canConnect(this.host, this.clientPort), { timeoutMs: 30_000, intervalMs: 50, what: `etcd ${this.name} to listen` });
    }
    if (!this.child) throw new Error(`etcd ${this.name} exited at start:\n${fs.readFileSync(this.logFile, 'utf8').slice(-2000)}`);
  }

  /** Stop it (SIGTERM, then SIGKILL after 10 s); its data stays. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    try {
      process.kill(child.pid, 'SIGTERM');
    } catch {
      // gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stop it and remove its data (unless PG_TSWORKER_KEEP_TMP is set). */
  async cleanup(): Promise<void> {
    await this.stop();
    if (process.env.PG_TSWORKER_KEEP_TMP) console.error(`pg_tsworker test harness: keeping etcd ${this.name} in ${this.dir}`);
    else fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
