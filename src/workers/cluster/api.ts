/**
 * Health endpoints for load balancers, compatible with Patroni's REST API
 * (patroni/api.py), so that an HAProxy or pgbouncer configuration written
 * for Patroni works unchanged:
 *
 *   GET /primary (also /, /master, /read-write, /leader)   200 on the leader that accepts writes
 *   GET /replica[?lag=16MB]                                200 on a running standby (within lag) that needs nothing
 *   GET /read-only, /sync, /async                          as Patroni
 *   GET /health                                            200 while PostgreSQL runs
 *   GET /liveness                                          200 while the cluster loop runs
 *   GET /readiness                                         200 on the leader, or a streaming standby within lag
 *   GET /cluster, /history, /patroni                       JSON documents
 *   POST /citus                                            a Citus worker group's event, on the
 *                                                          coordinator's leader (citus.ts, docs/citus.md)
 *
 * Every GET answers with a JSON body; HEAD and OPTIONS (HAProxy's
 * `option httpchk OPTIONS /primary`) with the status code only. Answers
 * come from the state of the last loop plus the fence, read live: a leader
 * whose fence closes answers 503 on /primary at once.
 */
import * as http from 'http';
import { performance } from 'perf_hooks';

import type { ClusterView } from './dcs-records';
import type { LocalState } from './local';

/** What the loop publishes for the endpoints. */
export interface ApiState {
  scope: string;
  name: string;
  /** `primary` out of recovery, `replica` in recovery. */
  role: 'primary' | 'replica';
  /** Holds the leader key. */
  leader: boolean;
  timeline: number | null;
  /** Flushed position (primary) or received/replayed (replica), bytes. */
  lsn: number | null;
  received: number | null;
  replayed: number | null;
  /** `streaming` while a standby streams. */
  replicationState: string | null;
  /** What this server needs before it can follow (`restart`, `rewind`, `rebuild`), or null. */
  needs: string | null;
  /** The leader's last published position, bytes. */
  leaderOptime: number | null;
  /** Members of the synchronous set. */
  syncMembers: string[];
  maximumLagOnFailover: number;
  tags: { nofailover: boolean; nosync: boolean };
  serverVersion: number;
  postmasterStartTime: string | null;
  sysid: string;
  dcsLastSeen: number | null;
  /** `performance.now()` of the last completed loop. */
  lastLoopAt: number;
  ttlMs: number;
  /** Maintenance mode (`config.pause` in etcd). */
  pause: boolean;
  cluster: { members: Record<string, unknown>[]; scope: string; pause?: boolean };
  history: unknown[];
}

/** The part of the endpoints' state that comes from this server and the cluster's keys. */
export function apiStateOf(
  local: LocalState,
  view: ClusterView | null,
  s: { scope: string; maximum_lag_on_failover: number; nofailover: boolean; nosync: boolean },
): Omit<ApiState, 'name' | 'leader' | 'needs' | 'serverVersion' | 'postmasterStartTime' | 'dcsLastSeen' | 'lastLoopAt' | 'ttlMs'> {
  return {
    scope: s.scope,
    role: local.recovery ? 'replica' : 'primary',
    timeline: local.timeline,
    lsn: local.lsn,
    received: local.recovery ? local.lsn : null,
    replayed: local.replayed,
    replicationState: local.receiver,
    leaderOptime: view?.status?.optime ?? null,
    syncMembers: view?.sync?.members ?? [],
    maximumLagOnFailover: s.maximum_lag_on_failover * 1024,
    tags: { nofailover: s.nofailover, nosync: s.nosync },
    sysid: local.sysid,
    pause: view?.config?.pause === true,
    cluster: {
      scope: s.scope,
      ...(view?.config?.pause === true ? { pause: true } : {}),
      members: view
        ? [...view.members.entries()].map(([name, m]) => ({
            name,
            role: name === view.leader?.name ? 'leader' : m.role === 'primary' ? 'primary' : 'replica',
            state: m.role === 'replica' && m.streaming_from ? 'streaming' : m.state,
            api_url: m.api_url,
            timeline: m.timeline,
            lsn: m.lsn,
            lag: view.status && m.lsn !== null && name !== view.leader?.name ? Math.max(0, view.status.optime - m.lsn) : 0,
            tags: { nofailover: m.nofailover, nosync: m.nosync },
            ...(m.error ? { error: m.error } : {}),
          }))
        : [],
    },
    history: view?.history ?? [],
  };
}

/** "16MB", "1024", "10 kB" in bytes; null when unparsable. */
export function parseBytes(text: string): number | null {
  const m = /^\s*(\d+)\s*(B|kB|KB|MB|GB|TB)?\s*$/.exec(text);
  if (!m) return null;
  const mult: Record<string, number> = { B: 1, kB: 1024, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
  return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

export class HealthApi {
  private server: http.Server | undefined;

  constructor(
    private readonly state: () => ApiState | null,
    /** True while writes are allowed here (the fence is open). */
    private readonly writable: () => boolean,
    private readonly version: string,
    /** POST requests (Citus's POST /citus on the coordinator's leader, docs/citus.md); absent: 405. */
    private readonly post?: (path: string, body: unknown) => Promise<{ code: number; body: unknown }>,
  ) {}

  /** Listen on `address:port`; rejects when it is not that (naming tsworker_promoter.restapi_listen) or cannot be bound. */
  listen(listen: string): Promise<void> {
    const i = listen.lastIndexOf(':');
    const host = listen.slice(0, i);
    const port = Number(listen.slice(i + 1));
    if (!/^[^\s:]+:\d+$/.test(listen) || port > 65535) {
      return Promise.reject(new Error(`tsworker_promoter.restapi_listen "${listen}" is not address:port (a port up to 65535)`));
    }
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.server.keepAliveTimeout = 1000;
    return new Promise((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => {
        this.server!.removeListener('error', reject);
        this.server!.on('error', () => undefined);
        resolve();
      });
    });
  }

  close(): void {
    this.server?.close();
    this.server?.closeAllConnections?.();
    this.server = undefined;
  }

  /** The status code and body for a request (exported for the documentation's examples and tests). */
  answer(method: string, url: string, now: number): { code: number; body: unknown } {
    const st = this.state();
    const u = new URL(url, 'http://x');
    const path = u.pathname.replace(/\/+$/, '') || '/';
    if (!st) return { code: 503, body: { state: 'starting' } };
    const writable = this.writable();
    const status = this.status(st, writable);
    const lagParam = u.searchParams.get('lag');
    const maxLag = lagParam === null ? Number.MAX_SAFE_INTEGER : (parseBytes(lagParam) ?? Number.MAX_SAFE_INTEGER);
    const lag = st.leaderOptime !== null && st.replayed !== null ? Math.max(0, st.leaderOptime - st.replayed) : 0;
    // a standby that must be rebuilt (its replay is stuck) serves stale or foreign data: not a replica to read from
    const replica = st.role === 'replica' && st.needs === null && lag <= maxLag;
    const primary = st.leader && st.role === 'primary' && writable;
    const inSync = st.syncMembers.includes(st.name);
    const ok = (b: boolean) => (b ? 200 : 503);
    switch (path) {
      case '/':
      case '/primary':
      case '/master':
      case '/read-write':
        return { code: ok(primary), body: status };
      case '/leader':
        return { code: ok(st.leader && writable), body: status };
      case '/replica':
        return { code: ok(replica), body: status };
      case '/read-only':
        return { code: ok(primary || replica), body: status };
      case '/sync':
      case '/synchronous':
        return { code: ok(replica && inSync), body: status };
      case '/read-only-sync':
        return { code: ok(primary || (replica && inSync)), body: status };
      case '/async':
      case '/asynchronous':
        return { code: ok(replica && !inSync), body: status };
      case '/health':
        return { code: 200, body: status };
      case '/liveness': {
        const limit = st.ttlMs * (st.role === 'primary' ? 1 : 2);
        return { code: ok(now - st.lastLoopAt < limit), body: { lastLoopMsAgo: Math.round(now - st.lastLoopAt), limitMs: limit } };
      }
      case '/readiness': {
        const readyLag = lagParam === null ? st.maximumLagOnFailover : maxLag;
        const lagging = st.leaderOptime !== null && st.replayed !== null && st.leaderOptime - st.replayed > readyLag;
        return { code: ok(primary || (st.role === 'replica' && st.replicationState === 'streaming' && !lagging)), body: status };
      }
      case '/patroni':
        return { code: 200, body: status };
      case '/cluster':
        return { code: 200, body: st.cluster };
      case '/history':
        return { code: 200, body: st.history };
      default:
        return { code: 503, body: status };
    }
  }

  private status(st: ApiState, writable: boolean): Record<string, unknown> {
    return {
      state: st.role === 'primary' && !writable ? 'fenced' : 'running',
      postmaster_start_time: st.postmasterStartTime,
      role: st.role,
      server_version: st.serverVersion,
      xlog:
        st.role === 'primary'
          ? { location: st.lsn }
          : { received_location: st.received, replayed_location: st.replayed, paused: false },
      timeline: st.timeline,
      ...(st.role === 'replica' && st.replicationState ? { replication_state: st.replicationState } : {}),
      ...(st.syncMembers.includes(st.name) ? { sync_standby: true } : {}),
      dcs_last_seen: st.dcsLastSeen,
      database_system_identifier: st.sysid,
      ...(st.pause ? { pause: true } : {}),
      tags: st.tags,
      patroni: { version: this.version, scope: st.scope, name: st.name },
    };
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const method = req.method ?? 'GET';
    if (method === 'POST' && this.post) {
      this.handlePost(req, res, this.post);
      return;
    }
    let out: { code: number; body: unknown };
    try {
      out = this.answer(method, req.url ?? '/', performance.now());
    } catch (err) {
      out = { code: 503, body: { error: (err as Error).message } };
    }
    if (method === 'HEAD' || method === 'OPTIONS') {
      res.writeHead(out.code, { 'Content-Length': '0' });
      res.end();
      return;
    }
    if (method !== 'GET') {
      res.writeHead(405, { Allow: 'GET, HEAD, OPTIONS', 'Content-Length': '0' });
      res.end();
      return;
    }
    const body = JSON.stringify(out.body);
    res.writeHead(out.code, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
    res.end(body);
  }

  /** A POST with a JSON body of 64 kB at most: 400 for a malformed body, else the handler's answer. */
  private handlePost(req: http.IncomingMessage, res: http.ServerResponse, post: (path: string, body: unknown) => Promise<{ code: number; body: unknown }>): void {
    let text = '';
    let tooBig = false;
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      if (text.length + d.length > 65536) tooBig = true;
      else text += d;
    });
    req.on('end', () => {
      const send = (code: number, body: unknown) => {
        const out = JSON.stringify(body);
        res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(out)) });
        res.end(out);
      };
      let body: unknown;
      try {
        if (tooBig) throw new Error('the body is larger than 64 kB');
        body = JSON.parse(text);
      } catch (err) {
        send(400, { error: `the body is not JSON: ${(err as Error).message}` });
        return;
      }
      const path = new URL(req.url ?? '/', 'http://x').pathname.replace(/\/+$/, '') || '/';
      post(path, body).then(
        (out) => send(out.code, out.body),
        (err: Error) => send(503, { error: err.message }),
      );
    });
  }
}
