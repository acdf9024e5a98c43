/**
 * Test harness: a small network of "hosts" built from Linux network
 * namespaces, for partition tests (a primary, a standby, witnesses, each
 * reachable from the others over TCP, and partitions the test switches on
 * and off).
 *
 * Topology (everything lives outside the root network namespace, so a test
 * network never touches the machine's own interfaces, routes or firewall, and
 * addresses cannot clash with the machine's or with another run's):
 *
 *                      netns <prefix>            (the "hub": a router)
 *                   h1 10.213.1.1/24  h2 10.213.2.1/24  ...
 *                       |                |
 *                 veth  |                |  veth
 *                       |                |
 *     netns <prefix>-a  eth0 10.213.1.2   netns <prefix>-b  eth0 10.213.2.2 ...
 *                       default via .1                      default via .1
 *
 * Host i (1-based, in the order given to {@link Network.create}) has address
 * `10.213.i.2`; the hub forwards between the links (ip_forward=1 in the hub
 * only). `<prefix>` is `pgtsw<pid>-<random>`, so parallel runs and leftovers
 * from crashed runs do not clash; {@link Network.create} deletes leftovers
 * whose owning pid is gone, and a process `exit` hook deletes the current
 * run's namespaces if the test forgot {@link Network.destroy}.
 *
 * Namespaces isolate the network only, not the filesystem: a server inside a
 * namespace still listens on its Unix socket, which the test process (in the
 * root namespace) uses. Nothing in the root namespace can reach the 10.213
 * addresses, by design.
 *
 * A throttle ({@link Network.throttle}: one TCP source slowed down on its way
 * to one host, with iproute2's `tc`, htb and u32) makes a slow link instead.
 *
 * Partitions ({@link Network.partition}) use iproute2 only (no nft/iptables,
 * which are not installed):
 *
 *  - `mode: 'drop'` (default): `ip rule add from X to Y blackhole` in the
 *    hub, both directions. Packets between the groups are silently discarded
 *    on the way, like a dead link or a firewall DROP: connect() hangs until
 *    its timeout, established connections stall until keepalive/application
 *    timeouts (wal_receiver_timeout, wal_sender_timeout) notice. This is the
 *    realistic failure for a promoter: the primary just stops answering.
 *  - `mode: 'reject'`: `ip route add unreachable Y/32` inside each host X of
 *    one group for each host Y of the other (and vice versa). New
 *    connections fail at once with EHOSTUNREACH ("No route to host"), like
 *    an ICMP host-unreachable from a router; established connections stall
 *    as with 'drop' (their packets fail locally, no RST is sent). It is done
 *    in the hosts rather than as a `prohibit` rule in the hub because the
 *    kernel rate-limits the ICMP errors a router sends (about one a second
 *    after a short burst), which would make "reject" randomly time out.
 *
 * Requires root (CAP_NET_ADMIN and CAP_SYS_ADMIN for `ip netns`), the `ip`
 * tool (iproute2), and kernel support for network namespaces, veth and
 * policy routing.
 */

import { execFile, execFileSync } from 'node:child_process';
import * as crypto from 'node:crypto';

/** Second octet of the test network: host i gets 10.<SUBNET_OCTET>.i.2. */
const DEFAULT_SUBNET_OCTET = 213;
/** Bound on each `ip` invocation, ms. */
const IP_TIMEOUT_MS = 10_000;
/** Rule priority of the first partition rule in the hub (before `main` at 32766). */
const RULE_PREF_BASE = 1000;
/** Prefix of every namespace name created by this module. */
const NS_PREFIX = 'pgtsw';
/** Valid host name: short, usable in a namespace name. */
const HOST_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_]{0,19}$/;

/** How a partition blocks traffic; see the module comment. */
export type PartitionMode = 'drop' | 'reject';

/**
 * One host of a {@link Network}. Structurally compatible with the `netns`
 * option of `Cluster.create` / `Cluster.createStandby` (test/harness/cluster.ts).
 */
export interface NetHost {
  /** Host name given to {@link Network.create}. */
  readonly name: string;
  /** Network namespace name (as in `ip netns list`); use with `ip netns exec`. */
  readonly netns: string;
  /** The host's IPv4 address, reachable from every other host of the network. */
  readonly ip: string;
  /** CIDR covering every host of the network (for pg_hba.conf). */
  readonly cidr: string;
}

/** Options for {@link Network.create}. */
export interface NetworkOptions {
  /** Second octet of the 10.x.0.0/16 test network (default 213). Only matters inside the namespaces. */
  subnetOctet?: number;
}

/** Options for {@link Network.exec}. */
export interface ExecOptions {
  /** Run as this OS user (through `runuser -u <user> --`); default: the current user. */
  user?: string;
  /** Environment (default: this process's environment). */
  env?: NodeJS.ProcessEnv;
  /** Kill the command after this many ms (default 30000). */
  timeoutMs?: number;
  /** Reject when the command exits non-zero or is killed (default true). */
  check?: boolean;
  /** Working directory (default: this process's). */
  cwd?: string;
}

/** Result of {@link Network.exec}. */
export interface ExecResult {
  /** Exit status, or null if killed by a signal. */
  code: number | null;
  /** Signal that killed the command, if any. */
  signal: string | null;
  stdout: string;
  stderr: string;
  /** True if the command was killed because it exceeded `timeoutMs`. */
  timedOut: boolean;
}

/** Outcome of {@link Network.probe}. */
export type ProbeOutcome =
  /** TCP handshake completed. */
  | 'connected'
  /** The peer answered with RST (nothing listens on the port). */
  | 'refused'
  /** No answer within the timeout (dropped packets). */
  | 'timeout'
  /** Immediate local or ICMP error: EHOSTUNREACH, ENETUNREACH, EACCES (rejected). */
  | 'unreachable'
  /** Anything else (see `code`). */
  | 'error';

/** Result of {@link Network.probe}. */
export interface ProbeResult {
  outcome: ProbeOutcome;
  /** errno name for 'unreachable'/'refused'/'error' (e.g. 'EHOSTUNREACH'). */
  code?: string;
  /** How long the attempt took, ms. */
  ms: number;
}

/** Options for {@link Network.partition}. */
export interface PartitionOptions {
  /** 'drop' (default): silently discard packets; 'reject': fail new connections at once with "No route to host". */
  mode?: PartitionMode;
}

/** One blocked direction, as installed. */
interface Block {
  from: string;
  to: string;
  mode: PartitionMode;
  /** Hub rule priority (drop mode). */
  pref?: number;
}

/** Run a command; resolve with its result (never rejects unless `check`). */
function execCmd(file: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeout = opts.timeoutMs ?? 30_000;
  return new Promise((resolve, reject) => {
    execFile(
      file,
      args,
      {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        timeout,
        killSignal: 'SIGKILL',
        maxBuffer: 64 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: unknown; killed?: boolean; signal?: string | null }) | null;
        const result: ExecResult = {
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
          timedOut: !!e?.killed,
        };
        if (e && typeof e.code === 'string') {
          // Spawn failure (ENOENT etc.): always an error.
          reject(new Error(`cannot run ${file}: ${e.message}`));
          return;
        }
        if (e && (opts.check ?? true)) {
          const how = result.timedOut
            ? `timed out after ${timeout} ms`
            : result.signal
              ? `killed by ${result.signal}`
              : `exit status ${String(result.code)}`;
          const error = new Error(
            `command failed (${how}): ${[file, ...args].join(' ')}\n` +
              (stdout ? `--- stdout ---\n${stdout}` : '') +
              (stderr ? `--- stderr ---\n${stderr}` : ''),
          ) as Error & ExecResult;
          Object.assign(error, result);
          reject(error);
          return;
        }
        resolve(result);
      },
    );
  });
}

/** Run `ip <args>`, rejecting with its stderr on failure. */
async function ip(args: string[]): Promise<void> {
  await execCmd('ip', args, { timeoutMs: IP_TIMEOUT_MS });
}

/** Names from `ip netns list` (synchronous; empty if none or on error). */
function listNetnsSync(): string[] {
  try {
    const out = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: IP_TIMEOUT_MS });
    return out
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0])
      .filter((n) => n);
  } catch {
    return [];
  }
}

/** Delete a namespace name, ignoring "does not exist" and other errors (synchronous). */
function deleteNetnsSync(name: string): void {
  try {
    execFileSync('ip', ['netns', 'delete', name], { stdio: 'ignore', timeout: IP_TIMEOUT_MS });
  } catch {
    // already gone
  }
}

/** True if a process with this pid exists. */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Delete namespaces left behind by earlier runs of this module whose process
 * is gone (name `pgtsw<pid>-...` with no live <pid>). Processes still inside
 * such a namespace (e.g. a leaked postmaster) are not touched; they keep an
 * anonymous namespace whose veth has vanished with the hub.
 */
export function removeStaleNetworks(): string[] {
  const removed: string[] = [];
  const re = new RegExp(`^${NS_PREFIX}(\\d+)-[0-9a-f]+(-[A-Za-z0-9_]+)?$`);
  for (const name of listNetnsSync()) {
    const m = re.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidExists(pid)) continue;
    deleteNetnsSync(name);
    removed.push(name);
  }
  return removed;
}

/** Networks not yet destroyed, for the exit hook. */
const live = new Set<Network>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const n of live) n.destroySync();
  });
}

/**
 * A test network of hosts (network namespaces) connected through a router
 * namespace. Create with {@link Network.create}; always {@link destroy} it
 * (after stopping the servers running in it), e.g. in `after()`.
 */
export class Network {
  /** Namespace name prefix of this network (`pgtsw<pid>-<random>`); also the hub's namespace name. */
  readonly prefix: string;
  /** The hub (router) namespace. */
  readonly hubNetns: string;
  /** CIDR covering all hosts, e.g. 10.213.0.0/16. */
  readonly cidr: string;
  private readonly hostMap = new Map<string, NetHost>();
  private readonly blocks = new Map<string, Block>();
  private nextPref = RULE_PREF_BASE;
  private destroyed = false;
  /** Every namespace created so far (hub first), for destroy. */
  private readonly created: string[] = [];

  private constructor(prefix: string, octet: number) {
    this.prefix = prefix;
    this.hubNetns = prefix;
    this.cidr = `10.${octet}.0.0/16`;
  }

  /**
   * Build a network with one namespace per host name (names: letters,
   * digits, underscore; at most 20 characters; at most 250 hosts). Each host
   * has its loopback up, one veth to the hub and a default route through it.
   * Removes stale namespaces of dead earlier runs first.
   */
  static async create(hostNames: string[], opts: NetworkOptions = {}): Promise<Network> {
    if (typeof process.getuid === 'function' && process.getuid() !== 0) {
      throw new Error('Network.create needs root (ip netns add)');
    }
    const octet = opts.subnetOctet ?? DEFAULT_SUBNET_OCTET;
    if (!Number.isInteger(octet) || octet < 0 || octet > 255) throw new Error(`bad subnetOctet ${octet}`);
    if (hostNames.length === 0 || hostNames.length > 250) throw new Error('need 1..250 host names');
    const seen = new Set<string>();
    for (const h of hostNames) {
      if (!HOST_NAME_RE.test(h)) throw new Error(`bad host name ${JSON.stringify(h)} (want ${HOST_NAME_RE})`);
      if (seen.has(h)) throw new Error(`duplicate host name ${h}`);
      seen.add(h);
    }
    removeStaleNetworks();
    const prefix = `${NS_PREFIX}${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const netw = new Network(prefix, octet);
    live.add(netw);
    installExitHook();
    try {
      const hub = netw.hubNetns;
      await ip(['netns', 'add', hub]);
      netw.created.push(hub);
      await ip(['-n', hub, 'link', 'set', 'lo', 'up']);
      // Forwarding in the hub only; the hosts are plain end points.
      await execCmd('ip', ['netns', 'exec', hub, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1'], {
        timeoutMs: IP_TIMEOUT_MS,
      }).catch(() =>
        execCmd('ip', ['netns', 'exec', hub, 'sh', '-c', 'echo 1 > /proc/sys/net/ipv4/ip_forward'], {
          timeoutMs: IP_TIMEOUT_MS,
        }),
      );
      for (let i = 0; i < hostNames.length; i++) {
        const name = hostNames[i];
        const n = i + 1;
        const ns = `${prefix}-${name}`;
        const hubIf = `h${n}`;
        const hubIp = `10.${octet}.${n}.1`;
        const hostIp = `10.${octet}.${n}.2`;
        await ip(['netns', 'add', ns]);
        netw.created.push(ns);
        // Both veth ends are created directly inside their namespaces: the
        // root namespace never sees them, so interface names cannot clash.
        await ip(['-n', hub, 'link', 'add', hubIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        await ip(['-n', hub, 'addr', 'add', `${hubIp}/24`, 'dev', hubIf]);
        await ip(['-n', hub, 'link', 'set', hubIf, 'up']);
        await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
        await ip(['-n', ns, 'addr', 'add', `${hostIp}/24`, 'dev', 'eth0']);
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        await ip(['-n', ns, 'route', 'add', 'default', 'via', hubIp]);
        netw.hostMap.set(name, { name, netns: ns, ip: hostIp, cidr: netw.cidr });
      }
      return netw;
    } catch (e) {
      await netw.destroy();
      throw e;
    }
  }

  /** Names of the hosts, in creation order. */
  get hostNames(): string[] {
    return [...this.hostMap.keys()];
  }

  /** The host object (namespace, IP, CIDR); pass it as `netns` to Cluster.create/createStandby. */
  host(name: string): NetHost {
    const h = this.hostMap.get(name);
    if (!h) throw new Error(`unknown host ${JSON.stringify(name)} (have ${this.hostNames.join(', ')})`);
    return h;
  }

  /** IP address of a host. */
  ip(name: string): string {
    return this.host(name).ip;
  }

  /** Namespace name of a host. */
  netns(name: string): string {
    return this.host(name).netns;
  }

  /**
   * Run `argv` inside a host's namespace (`ip netns exec <ns> [runuser -u
   * <user> --] argv...`). Rejects on non-zero exit unless `check: false`.
   */
  async exec(hostName: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new Error('exec: empty argv');
    const inner = opts.user ? ['runuser', '-u', opts.user, '--', ...argv] : argv;
    return execCmd('ip', ['netns', 'exec', this.netns(hostName), ...inner], opts);
  }

  /**
   * Try a TCP connection from inside host `from` to `to`'s IP (or any
   * address given as `to` if it is not a host name) and `port`, giving up
   * after `timeoutMs` (default 2000). Never rejects for network errors: the
   * outcome tells what happened ('connected', 'refused', 'timeout',
   * 'unreachable', 'error').
   */
  async probe(from: string, to: string, port: number, timeoutMs = 2000): Promise<ProbeResult> {
    const addr = this.hostMap.has(to) ? this.ip(to) : to;
    const script = `
      const net = require('node:net');
      const [host, port, timeout] = process.argv.slice(1);
      const t0 = Date.now();
      const done = (r) => { process.stdout.write(JSON.stringify({ ...r, ms: Date.now() - t0 })); process.exit(0); };
      const s = net.connect({ host, port: Number(port) });
      setTimeout(() => done({ outcome: 'timeout' }), Number(timeout));
      s.on('connect', () => done({ outcome: 'connected' }));
      s.on('error', (e) => done({
        outcome: e.code === 'ECONNREFUSED' ? 'refused'
          : ['EHOSTUNREACH', 'ENETUNREACH', 'EACCES', 'EPERM'].includes(e.code) ? 'unreachable' : 'error',
        code: e.code,
      }));
    `;
    // A clean environment: no NODE_OPTIONS (tsx loaders) for the probe.
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    const res = await this.exec(from, [process.execPath, '-e', script, addr, String(port), String(timeoutMs)], {
      env,
      timeoutMs: timeoutMs + 10_000,
    });
    return JSON.parse(res.stdout) as ProbeResult;
  }

  /**
   * Block traffic between every host of `groupA` and every host of `groupB`,
   * both ways (see the module comment for the modes). Hosts in neither group,
   * and pairs within a group, are unaffected. Partitions add up; pairs
   * already blocked are left as they are.
   */
  async partition(groupA: string[], groupB: string[], opts: PartitionOptions = {}): Promise<void> {
    const mode = opts.mode ?? 'drop';
    for (const a of groupA) this.host(a);
    for (const b of groupB) this.host(b);
    for (const a of groupA) {
      for (const b of groupB) {
        if (a === b) throw new Error(`partition: host ${a} is in both groups`);
        await this.block(a, b, mode);
        await this.block(b, a, mode);
      }
    }
  }

  /** Cut one host off from every other host (partition([host], others)). */
  async isolate(hostName: string, opts: PartitionOptions = {}): Promise<void> {
    await this.partition(
      [hostName],
      this.hostNames.filter((h) => h !== hostName),
      opts,
    );
  }

  /**
   * Remove partitions: all of them, or only those between `groupA` and
   * `groupB` (both ways) when given.
   */
  async heal(groupA?: string[], groupB?: string[]): Promise<void> {
    if ((groupA === undefined) !== (groupB === undefined)) throw new Error('heal: give both groups or neither');
    const keys = [...this.blocks.keys()].filter((k) => {
      if (!groupA || !groupB) return true;
      const { from, to } = this.blocks.get(k)!;
      return (groupA.includes(from) && groupB.includes(to)) || (groupB.includes(from) && groupA.includes(to));
    });
    let firstError: unknown;
    for (const k of keys) {
      try {
        await this.unblock(this.blocks.get(k)!);
        this.blocks.delete(k);
      } catch (e) {
        firstError ??= e;
      }
    }
    if (firstError !== undefined) throw firstError;
  }

  /**
   * Slow the TCP traffic from host `from`'s port `port` to host `to` down to
   * `kbit` kbit/s: an htb class on the hub's link to `to`, chosen by a u32
   * filter on source address and port; everything else on that link (etcd,
   * other connections) keeps full speed. A WAL stream throttled this way
   * keeps going, slowly. `unthrottle(to)` removes it.
   */
  async throttle(from: string, port: number, to: string, kbit: number): Promise<void> {
    const dev = this.hubIf(to);
    const tc = (args: string[]) => execCmd('tc', ['-n', this.hubNetns, ...args], { timeoutMs: IP_TIMEOUT_MS });
    await tc(['qdisc', 'replace', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '10']);
    await tc(['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '10gbit', 'quantum', '200000']);
    await tc(['class', 'add', 'dev', dev, 'parent', '1:', 'classid', '1:20', 'htb', 'rate', `${kbit}kbit`, 'ceil', `${kbit}kbit`, 'quantum', '1514']);
    // a queue of at most 100 packets: with the device's 1000, TCP sees seconds of delay and stalls on
    // retransmission timeouts; with a few dozen, a burst is dropped and the stream can stall as well
    await tc(['qdisc', 'add', 'dev', dev, 'parent', '1:20', 'handle', '20:', 'pfifo', 'limit', '100']);
    await tc(['filter', 'add', 'dev', dev, 'parent', '1:', 'protocol', 'ip', 'prio', '1', 'u32',
      'match', 'ip', 'src', `${this.ip(from)}/32`, 'match', 'ip', 'sport', String(port), '0xffff', 'flowid', '1:20']);
  }

  /** `tc -s` statistics of the throttle towards host `to` (sent, dropped, overlimits, backlog), for a failure's message. */
  async throttleStats(to: string): Promise<string> {
    const r = await execCmd('tc', ['-n', this.hubNetns, '-s', 'qdisc', 'show', 'dev', this.hubIf(to)], { timeoutMs: IP_TIMEOUT_MS, check: false });
    return r.stdout.trim();
  }

  /** Remove the throttles towards host `to` (throttle()); nothing when there are none. */
  async unthrottle(to: string): Promise<void> {
    await execCmd('tc', ['-n', this.hubNetns, 'qdisc', 'del', 'dev', this.hubIf(to), 'root'], { timeoutMs: IP_TIMEOUT_MS }).catch(() => undefined);
  }

  /** The hub's end of host `name`'s veth (h1, h2, ... in creation order). */
  private hubIf(name: string): string {
    this.host(name);
    return `h${this.hostNames.indexOf(name) + 1}`;
  }

  /** Currently blocked directions, e.g. `['a->b (drop)', 'b->a (drop)']`. */
  blocked(): string[] {
    return [...this.blocks.values()].map((b) => `${b.from}->${b.to} (${b.mode})`);
  }

  private async block(from: string, to: string, mode: PartitionMode): Promise<void> {
    const key = `${from}\0${to}`;
    if (this.blocks.has(key)) return;
    const blk: Block = { from, to, mode };
    if (mode === 'drop') {
      blk.pref = this.nextPref++;
      await ip(['-n', this.hubNetns, 'rule', 'add', 'pref', String(blk.pref), 'from', `${this.ip(from)}/32`, 'to', `${this.ip(to)}/32`, 'blackhole']);
    } else {
      await ip(['-n', this.netns(from), 'route', 'add', 'unreachable', `${this.ip(to)}/32`]);
    }
    this.blocks.set(key, blk);
  }

  private async unblock(blk: Block): Promise<void> {
    if (blk.mode === 'drop') {
      await ip(['-n', this.hubNetns, 'rule', 'del', 'pref', String(blk.pref)]);
    } else {
      await ip(['-n', this.netns(blk.from), 'route', 'del', 'unreachable', `${this.ip(blk.to)}/32`]);
    }
  }

  /**
   * Delete all namespaces of this network (hosts, then the hub; the veth
   * pairs go with them). Idempotent. Stop servers running in the namespaces
   * first: a process still inside keeps its (now disconnected) namespace alive.
   */
  async destroy(): Promise<void> {
    this.destroySync();
  }

  /** Synchronous {@link destroy} (used by the process exit hook). */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    for (const ns of [...this.created].reverse()) deleteNetnsSync(ns);
    this.created.length = 0;
    this.blocks.clear();
  }
}
