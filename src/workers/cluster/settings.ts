/**
 * Cluster mode's settings (the promoter's `tsworker_promoter.*` parameters
 * that matter when `etcd_hosts` is set) and the rules between them.
 *
 * Names follow Patroni's: `scope`, `namespace`, `name`, `ttl`, `loop_wait`,
 * `retry_timeout`, `maximum_lag_on_failover`, `synchronous_mode`,
 * `synchronous_mode_strict`, `synchronous_node_count`, the `nofailover` and
 * `nosync` tags, `restapi.listen`. Durations below a second are allowed
 * (`loop_wait`, `retry_timeout` are in milliseconds); etcd's lease TTL is
 * whole seconds.
 */
import * as os from 'os';

export const clusterSettings = {
  etcd_hosts: {
    type: 'string',
    default: '',
    context: 'postmaster',
    description: 'etcd endpoints (http://host:port, comma-separated) for cluster mode; empty: the two-node promoter.',
  },
  scope: { type: 'string', default: '', context: 'postmaster', description: 'Name of the cluster in etcd, the same on every member (cluster mode).' },
  namespace: { type: 'string', default: '/service/', context: 'postmaster', description: 'etcd key prefix above the scope (cluster mode).' },
  name: { type: 'string', default: '', context: 'postmaster', description: 'This member\'s name, unique in the cluster (cluster mode; default: cluster_name, else the host name).' },
  conninfo: { type: 'string', default: '', superuserOnly: true, description: 'Connection string other members use to reach this server and to stream from it (cluster mode).' },
  ttl: { type: 'int', default: 2, min: 1, max: 3600, unit: 's', description: 'Time to live of the leader lease in etcd (cluster mode).' },
  loop_wait: { type: 'int', default: 500, min: 10, max: 3_600_000, unit: 'ms', description: 'Time between two runs of the cluster loop (cluster mode).' },
  retry_timeout: { type: 'int', default: 750, min: 10, max: 3_600_000, unit: 'ms', description: 'Timeout of each etcd request and of each query to another member (cluster mode).' },
  maximum_lag_on_failover: { type: 'int', default: 1024, min: 0, unit: 'kB', description: 'A standby further behind the leader\'s last published position does not take the leader key (cluster mode).' },
  priority: { type: 'int', default: 1, min: 0, max: 1_000_000, description: 'Election preference among equally advanced standbys, higher first; 0 never takes the leader key (cluster mode).' },
  nofailover: { type: 'bool', default: false, description: 'Never take the leader key (cluster mode).' },
  nosync: { type: 'bool', default: false, description: 'Never be a synchronous standby (cluster mode).' },
  synchronous_mode: { type: 'bool', default: false, description: 'The leader keeps synchronous_standby_names and only a synchronous standby may take the leader key (cluster mode).' },
  synchronous_mode_strict: { type: 'bool', default: false, description: 'In synchronous mode, refuse to acknowledge commits when no synchronous standby is healthy (cluster mode).' },
  synchronous_node_count: { type: 'int', default: 1, min: 1, max: 100, description: 'Synchronous standbys that must confirm a commit (ANY k) in synchronous mode (cluster mode).' },
  restapi_listen: { type: 'string', default: '127.0.0.1:8008', description: 'address:port of the health endpoints for load balancers (cluster mode); empty: none.' },
} as const;

/** The values of the cluster settings, as the worker reads them. */
export interface ClusterSettings {
  etcd_hosts: string;
  scope: string;
  namespace: string;
  name: string;
  conninfo: string;
  ttl: number;
  loop_wait: number;
  retry_timeout: number;
  maximum_lag_on_failover: number;
  priority: number;
  nofailover: boolean;
  nosync: boolean;
  synchronous_mode: boolean;
  synchronous_mode_strict: boolean;
  synchronous_node_count: number;
  restapi_listen: string;
}

/** Timing in force, after Patroni's rule `loop_wait + 2 × retry_timeout ≤ ttl`. */
export interface Timing {
  ttlMs: number;
  loopWaitMs: number;
  retryTimeoutMs: number;
  /** Writes stop this long before the leader lease could expire. */
  fenceMarginMs: number;
  /** What was adjusted, for the log (null: nothing). */
  adjusted: string | null;
}

/**
 * How long before a lease of `leaseTtlMs` could expire its holder stops
 * writes: a quarter of it, at least 100 ms. Applied to the lease etcd
 * granted (its own TTL), never to a setting that may have changed since.
 */
export function fenceMarginMs(leaseTtlMs: number): number {
  return Math.max(100, Math.floor(leaseTtlMs / 4));
}

/** The smallest loop interval the adjustment goes down to. */
const MIN_LOOP_WAIT_MS = 100;

/**
 * Enforce `loop_wait + 2 × retry_timeout ≤ ttl` as Patroni does: reduce
 * `loop_wait` first, and `retry_timeout` only when `loop_wait` would drop
 * below its minimum. The fence closes a quarter of the TTL (at least
 * 100 ms) before the lease could expire.
 */
export function timing(s: Pick<ClusterSettings, 'ttl' | 'loop_wait' | 'retry_timeout'>): Timing {
  const ttlMs = s.ttl * 1000;
  let loopWaitMs = s.loop_wait;
  let retryTimeoutMs = s.retry_timeout;
  let adjusted: string | null = null;
  if (MIN_LOOP_WAIT_MS + 2 * retryTimeoutMs > ttlMs) {
    const was = `loop_wait ${loopWaitMs} ms, retry_timeout ${retryTimeoutMs} ms`;
    loopWaitMs = Math.min(loopWaitMs, MIN_LOOP_WAIT_MS);
    retryTimeoutMs = Math.floor((ttlMs - loopWaitMs) / 2);
    adjusted = `loop_wait + 2 × retry_timeout ≤ ttl (${ttlMs} ms) was violated (${was}): using loop_wait ${loopWaitMs} ms, retry_timeout ${retryTimeoutMs} ms`;
  } else if (loopWaitMs + 2 * retryTimeoutMs > ttlMs) {
    const was = loopWaitMs;
    loopWaitMs = ttlMs - 2 * retryTimeoutMs;
    adjusted = `loop_wait + 2 × retry_timeout ≤ ttl (${ttlMs} ms) was violated with retry_timeout ${retryTimeoutMs} ms: loop_wait ${was} ms lowered to ${loopWaitMs} ms`;
  }
  return { ttlMs, loopWaitMs, retryTimeoutMs, fenceMarginMs: fenceMarginMs(ttlMs), adjusted };
}

/** The member's name: the setting, else PostgreSQL's cluster_name, else the host name (as native/shim/cluster_boot.c). */
export function memberName(setting: string, clusterName: string | null): string {
  return setting || clusterName || os.hostname();
}

/** The etcd endpoints of the setting; throws on a malformed one. */
export function parseHosts(setting: string): string[] {
  const hosts = setting
    .split(',')
    .map((h) => h.trim())
    .filter((h) => h.length > 0);
  for (const h of hosts) {
    if (!/^https?:\/\/[^/\s]+(:\d+)?\/?$/.test(h)) throw new Error(`etcd host "${h}" is not http(s)://host:port`);
  }
  return hosts;
}

/**
 * The key prefix of a cluster: `<namespace>/<scope>/`, with single slashes;
 * in a Citus formation (`group` ≥ 0) the group's cluster, `<namespace>/<scope>/<group>/` (docs/citus.md).
 */
export function clusterPrefix(namespace: string, scope: string, group = -1): string {
  const ns = `/${namespace}/`.replace(/\/+/g, '/');
  return group >= 0 ? `${ns}${scope}/${group}/` : `${ns}${scope}/`;
}

/**
 * What is wrong with the settings for cluster mode (empty: nothing). A
 * member with a configuration error takes part in nothing: it never takes
 * the leader key and never accepts a write.
 */
export function configErrors(s: ClusterSettings): string[] {
  const errors: string[] = [];
  try {
    if (parseHosts(s.etcd_hosts).length === 0) errors.push('tsworker_promoter.etcd_hosts names no etcd endpoint');
  } catch (err) {
    errors.push(`tsworker_promoter.etcd_hosts: ${(err as Error).message}`);
  }
  if (!s.scope) errors.push('tsworker_promoter.scope is empty: name the cluster, the same on every member');
  else if (!/^[A-Za-z0-9_.-]+$/.test(s.scope)) errors.push(`tsworker_promoter.scope "${s.scope}" may hold only letters, digits, "_", "." and "-"`);
  if (s.name && !/^[A-Za-z0-9_.-]+$/.test(s.name)) errors.push(`tsworker_promoter.name "${s.name}" may hold only letters, digits, "_", "." and "-"`);
  if (!s.conninfo) errors.push('tsworker_promoter.conninfo is empty: other members could not reach this one');
  if (s.restapi_listen && (!/^[^\s:]+:\d+$/.test(s.restapi_listen) || Number(s.restapi_listen.split(':')[1]) > 65535)) errors.push(`tsworker_promoter.restapi_listen "${s.restapi_listen}" is not address:port`);
  return errors;
}
