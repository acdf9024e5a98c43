/**
 * A cluster-mode member that is part of a Citus formation (docs/citus.md):
 * what its promoter does besides running its own group's cluster.
 *
 *   every member, on its group's leader: the Citus database and the citus
 *     extension exist (Patroni's bootstrap: CREATE DATABASE, CREATE
 *     EXTENSION citus); a missing extension is a logged configuration error
 *     and a `citus_error` event;
 *   a worker group's member tells the coordinator's leader (found in etcd
 *     under group 0) about its group's primary, by POST /citus on the
 *     coordinator leader's health endpoints, as Patroni does:
 *       before_demote   the leader, in a switchover, before it stops writes;
 *       before_promote  the candidate of a switchover, before it promotes;
 *       after_promote   a primary that now accepts writes;
 *   the coordinator's leader applies them to pg_dist_node
 *     (citus-coordinator.ts) and, every heartbeat, reconciles pg_dist_node
 *     with the leaders of every group in etcd.
 */
import * as http from 'http';

import type { WorkerContext } from '../../runtime/index';
import type { Json } from '../../runtime/define';
import { CitusCoordinator, type CitusEventType, type TaskResult } from './citus-coordinator';
import { citusClient } from './citus-session';
import { COORDINATOR_GROUP, distNodeAddress, type CitusSettings } from './citus-settings';
import { Dcs } from './dcs';
import type { ClusterView } from './dcs-records';
import { clusterPrefix } from './settings';

/** The body of POST /citus (Patroni's: type, group, leader, timeout in s, cooldown in s). */
export interface CitusEvent {
  type: CitusEventType;
  group: number;
  leader: string;
  timeout: number;
  cooldown: number;
}

/** What the Citus part needs from the member. */
export interface CitusHost {
  readonly w: WorkerContext<any>;
  readonly name: string;
  readonly group: number;
  readonly database: string;
  readonly conninfo: () => string;
  /** A client of the whole formation's keys (`<namespace>/<scope>/`). */
  readonly formation: Dcs;
  ttlMs(): number;
  retryTimeoutMs(): number;
  event(kind: string, detail: Record<string, unknown>, level?: 'info' | 'warning'): void;
}

/** How long the coordinator's transaction may stay open in a switchover: the lease, the candidate's wait for the old leader (5 s), a promotion. */
export function switchoverDeadlineMs(ttlMs: number): number {
  return ttlMs + 5000 + 5000;
}

function post(url: string, body: unknown, timeoutMs: number): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = http.request(url, { method: 'POST', timeout: timeoutMs, headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ code: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

/**
 * The Citus part of a cluster-mode member, or null when
 * tsworker_promoter.citus_group is -1.
 */
export function citusPart(
  w: WorkerContext<any>,
  name: string,
  s: CitusSettings & { namespace: string; scope: string; conninfo: string },
  hosts: string[],
  timing: () => { ttlMs: number; retryTimeoutMs: number },
  event: CitusHost['event'],
): CitusMember | null {
  if (s.citus_group < 0) return null;
  return new CitusMember({
    w,
    name,
    group: s.citus_group,
    database: s.citus_database,
    conninfo: () => (w.settings as { conninfo: string }).conninfo,
    formation: new Dcs(hosts, clusterPrefix(s.namespace, s.scope), timing().retryTimeoutMs),
    ttlMs: () => timing().ttlMs,
    retryTimeoutMs: () => timing().retryTimeoutMs,
    event,
  });
}

export class CitusMember {
  private coordinator: CitusCoordinator | null = null;
  /** This member, as a worker group's primary, accepted writes at the last heartbeat. */
  private wasPrimary = false;
  /** The last POST /citus of this worker member, for the status. */
  private lastNotify: { [key: string]: Json } | null = null;
  /** A before_demote was sent: the next heartbeat as a primary says after_promote again. */
  private demoteSent = false;
  private bootstrapped = false;
  /** The bootstrap under way (CREATE EXTENSION takes seconds: it never holds up the loop, which renews the lease). */
  private booting: Promise<boolean> | null = null;
  private lastError = '';
  /** Coordinator: each group's leader in etcd at the last heartbeat (the formation at a glance, for the status). */
  private leaders: { [group: string]: string | null } = {};
  /** The heartbeat's sync under way (one at a time). */
  private syncing: Promise<void> | null = null;
  /** This server's system identifier (the coordinator checks its own conninfo reaches it). */
  private sysid: string | null = null;
  /** Coordinator: the switchover (etcd's failover key id) of each group whose before_demote was taken: one pause per switchover. */
  private readonly paused = new Map<number, string>();

  constructor(private readonly h: CitusHost) {}

  get isCoordinator(): boolean {
    return this.h.group === COORDINATOR_GROUP;
  }

  private error(what: string, detail: Record<string, unknown> = {}): void {
    if (what === this.lastError) return;
    this.lastError = what;
    this.h.event('citus_error', { group: this.h.group, error: what, ...detail }, 'warning');
  }

  /** Why the citus extension cannot be used on this server (null: it can). */
  extensionProblem(): string | null {
    const row = this.h.w.query<{ available: boolean; loaded: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'citus') AS available,
              'citus' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')) AS loaded`,
    )[0];
    if (!row.available) {
      return `the citus extension is not installed in this PostgreSQL (no citus.control in its extension directory), and tsworker_promoter.citus_group = ${this.h.group} expects it`;
    }
    if (!row.loaded) return `citus is not in shared_preload_libraries, and tsworker_promoter.citus_group = ${this.h.group} expects it`;
    return null;
  }

  /** On the group's leader: the Citus database and the citus extension exist (Patroni's bootstrap). */
  private async bootstrap(): Promise<boolean> {
    if (this.bootstrapped) return true;
    const problem = this.extensionProblem();
    if (problem) {
      this.error(problem, { setting: 'tsworker_promoter.citus_group' });
      return false;
    }
    const db = this.h.database;
    const exists = this.h.w.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_database WHERE datname = $1', [db])[0].n > 0;
    try {
      if (!exists) {
        const c = citusClient(this.h.w, 'postgres');
        try {
          await c.connect();
          await c.query(`CREATE DATABASE ${c.escapeIdentifier(db)}`);
          this.h.event('citus_database_created', { database: db });
        } finally {
          c.end().catch(() => undefined);
        }
      }
      const c = citusClient(this.h.w, db);
      try {
        await c.connect();
        const had = (await c.query(`SELECT count(*)::int AS n FROM pg_extension WHERE extname = 'citus'`)).rows[0].n > 0;
        if (!had) {
          await c.query('CREATE EXTENSION IF NOT EXISTS citus');
          this.h.event('citus_extension_created', { database: db });
        }
      } finally {
        c.end().catch(() => undefined);
      }
    } catch (err) {
      const e = err as Error & { code?: string };
      this.error(`could not create the citus extension in database "${db}" (tsworker_promoter.citus_database): ${e.message}`, { sqlstate: e.code ?? null });
      return false;
    }
    this.bootstrapped = true;
    this.lastError = '';
    return true;
  }

  /**
   * Every loop, after the member's own decisions. `primary`: this member
   * leads its group and accepts writes.
   */
  async heartbeat(primary: boolean): Promise<void> {
    if (!primary) {
      this.wasPrimary = false;
      this.bootstrapped = false;
      if (this.coordinator) {
        const c = this.coordinator;
        this.coordinator = null;
        await c.stop();
      }
      return;
    }
    if (!this.bootstrapped) {
      this.booting ??= this.bootstrap().finally(() => (this.booting = null));
      return;
    }
    if (this.isCoordinator) {
      // not awaited: reading pg_dist_node and etcd must not hold up this member's loop, which renews the lease
      this.syncing ??= this.syncMetaData()
        .catch((err: Error) => this.h.w.log.warning(`citus: the heartbeat's sync of pg_dist_node failed: ${err.message}`))
        .finally(() => (this.syncing = null));
      return;
    }
    if (!this.wasPrimary || this.demoteSent) {
      this.demoteSent = false;
      // not awaited: the coordinator's answer must not hold up this member's loop
      void this.notify('after_promote', 2000);
    }
    this.wasPrimary = true;
  }

  /**
   * Patroni's sync_meta_data, every heartbeat: pg_dist_node is read, and
   * each group whose leader in etcd is a running primary other than its row
   * gets a task (the coordinator's own row, group 0, included).
   */
  private async syncMetaData(): Promise<void> {
    this.coordinator ??= new CitusCoordinator(this.h.w, this.h.database, (k, d, l) => this.h.event(k, d, l));
    const coord = this.coordinator;
    await coord.refresh();
    const cooldownMs = this.h.retryTimeoutMs();
    const own = this.h.conninfo();
    const me = distNodeAddress(own);
    if (me) {
      this.sysid ??= this.h.w.query<{ s: string }>('SELECT system_identifier::text AS s FROM pg_catalog.pg_control_system()')[0].s;
      coord.add({ event: 'after_promote', group: COORDINATOR_GROUP, leader: this.h.name, ...me, conninfo: own, sysid: this.sysid, timeoutMs: null, cooldownMs });
    }
    let groups: Map<number, ClusterView>;
    try {
      groups = await this.h.formation.readGroups();
    } catch (err) {
      this.h.w.log.debug(`citus: could not read the formation's groups: ${(err as Error).message}`);
      return;
    }
    this.leaders = Object.fromEntries([...groups].map(([g, v]) => [String(g), v.leader?.name ?? null]));
    for (const [g, view] of groups) {
      if (g === COORDINATOR_GROUP || !view.leader) continue;
      const m = view.members.get(view.leader.name);
      if (!m || m.role !== 'primary' || m.state !== 'running') continue;
      const addr = distNodeAddress(m.conninfo);
      if (addr) coord.add({ event: 'after_promote', group: g, leader: view.leader.name, ...addr, conninfo: m.conninfo, sysid: m.sysid || null, timeoutMs: null, cooldownMs });
    }
  }

  /** The server is shutting down. */
  async close(): Promise<void> {
    await this.coordinator?.stop();
    this.coordinator = null;
    this.h.formation.close();
  }

  /** For the status: the group, and on the coordinator's leader pg_dist_node as read at the last heartbeat; on a worker member its last notification. */
  status(): { [key: string]: Json } {
    return {
      group: this.h.group,
      ...(this.coordinator ? { ...this.coordinator.status(), leaders: this.leaders } : {}),
      ...(this.lastNotify ? { last_notify: this.lastNotify } : {}),
    };
  }

  /** Switchover, on the leader of a worker group: pause the group's writes on the coordinator before stopping them here. */
  async beforeDemote(): Promise<void> {
    if (this.isCoordinator) return;
    this.demoteSent = true;
    await this.notify('before_demote', switchoverDeadlineMs(this.h.ttlMs()));
  }

  /** Switchover, on the candidate holding the leader key: point the group's row at this member before it promotes. */
  async beforePromote(): Promise<void> {
    if (this.isCoordinator) return;
    await this.notify('before_promote', 2000);
  }

  /** POST the event to the coordinator's leader; a failure is logged (the heartbeat repairs pg_dist_node). */
  private async notify(type: CitusEventType, waitMs: number): Promise<void> {
    const t0 = Date.now();
    let url = '(unknown)';
    try {
      const coord = (await this.h.formation.readGroups()).get(COORDINATOR_GROUP);
      const leader = coord?.leader ? coord.members.get(coord.leader.name) : undefined;
      if (!leader?.api_url) throw new Error('the coordinator group has no leader with health endpoints in etcd');
      url = leader.api_url.replace(/\/patroni$/, '') + '/citus';
      const body: CitusEvent = {
        type,
        group: this.h.group,
        leader: this.h.name,
        timeout: switchoverDeadlineMs(this.h.ttlMs()) / 1000,
        cooldown: this.h.retryTimeoutMs() / 1000,
      };
      const res = await post(url, body, waitMs);
      if (res.code === 202) {
        this.lastNotify = { event: type, result: 'pending', at: new Date().toISOString() };
        this.h.event('citus_notify_pending', { event: type, coordinator: url, ms: Date.now() - t0, what: 'queued on the coordinator, not applied yet (its heartbeat applies it)' });
        return;
      }
      if (res.code !== 200) throw new Error(`HTTP ${res.code}: ${res.body.slice(0, 300)}`);
      this.lastNotify = { event: type, result: 'applied', at: new Date().toISOString() };
      this.h.event('citus_notified', { event: type, coordinator: url, ms: Date.now() - t0 });
    } catch (err) {
      this.lastNotify = { event: type, result: 'failed', error: (err as Error).message, at: new Date().toISOString() };
      this.h.event('citus_notify_failed', { event: type, coordinator: url, error: (err as Error).message, ms: Date.now() - t0 }, 'warning');
    }
  }

  /**
   * POST /citus on the coordinator's leader: check the event against etcd
   * (the group's leader must be the member it names; a before_demote needs
   * a switchover of that group in etcd, once per switchover; the address
   * comes from etcd, the cooldown and the longest transaction from this
   * member's own settings), queue it, and answer once it is applied (200),
   * failed (500) or still queued at the end of the wait (202).
   */
  async handlePost(path: string, body: unknown): Promise<{ code: number; body: unknown }> {
    if (path !== '/citus') return { code: 404, body: { error: `no POST ${path}` } };
    if (!this.isCoordinator) return { code: 400, body: { error: `this member is in Citus group ${this.h.group}, not the coordinator's (0)` } };
    if (!this.coordinator) return { code: 503, body: { error: 'this member does not lead the coordinator group' } };
    const e = body as Partial<CitusEvent> | null;
    const types: CitusEventType[] = ['before_demote', 'before_promote', 'after_promote'];
    if (!e || typeof e !== 'object' || !types.includes(e.type as CitusEventType)) return { code: 400, body: { error: `"type" must be one of ${types.join(', ')}` } };
    if (!Number.isInteger(e.group) || (e.group as number) <= COORDINATOR_GROUP) return { code: 400, body: { error: `"group" must be a worker group id (an integer above 0), not ${JSON.stringify(e.group)}` } };
    if (typeof e.leader !== 'string' || !e.leader) return { code: 400, body: { error: '"leader" must name the member' } };
    const type = e.type as CitusEventType;
    const group = e.group as number;
    const view = (await this.h.formation.readGroups()).get(group);
    const refuse = (why: string) => {
      this.h.w.log.log(`citus: refusing ${type} of group ${group} from "${e.leader}": ${why}`);
      return { code: 409, body: { error: why } };
    };
    if (!view?.leader || view.leader.name !== e.leader) {
      return refuse(`member "${e.leader}" does not hold the leader key of group ${group} (etcd: ${view?.leader ? `"${view.leader.name}"` : 'nobody'})`);
    }
    const sw = view.failover;
    if (type === 'before_demote') {
      // only the leader of a switchover in progress pauses its group's writes, once per switchover
      if (!sw || (sw.leader !== null && sw.leader !== e.leader) || !['requested', 'accepted', 'fenced'].includes(sw.state)) {
        return refuse(`no switchover away from "${e.leader}" is in progress in group ${group} in etcd`);
      }
      if (this.paused.get(group) === sw.id) return refuse(`group ${group}'s writes were already paused for switchover ${sw.id}`);
      this.paused.set(group, sw.id);
    }
    if (type === 'before_promote' && (!sw || sw.member !== e.leader || sw.state === 'refused')) {
      return refuse(`no switchover to "${e.leader}" is in progress in group ${group} in etcd`);
    }
    const m = view.members.get(e.leader);
    const addr = distNodeAddress(m?.conninfo ?? '');
    if (!m || !addr) return refuse(`member "${e.leader}" published no TCP host and port in its conninfo`);
    const ownMs = switchoverDeadlineMs(this.h.ttlMs());
    const timeoutMs = Math.min(ownMs, Math.max(1000, Number(e.timeout) * 1000 || ownMs));
    const task = this.coordinator.add({ event: type, group, leader: e.leader, ...addr, conninfo: m.conninfo, sysid: m.sysid || null, timeoutMs, cooldownMs: this.h.retryTimeoutMs() });
    if (!task) return { code: 200, body: { accepted: false, event: type, group, outcome: 'unchanged' } };
    const waitMs = type === 'before_demote' ? timeoutMs : 1500;
    const r = await Promise.race([task.done, new Promise<null>((res) => setTimeout(() => res(null), waitMs))]);
    if (r === null) return { code: 202, body: { accepted: true, event: type, group, outcome: 'pending' } };
    return answer(type, group, r);
  }
}

function answer(type: CitusEventType, group: number, r: TaskResult): { code: number; body: unknown } {
  if (r.outcome === 'failed' || r.outcome === 'dropped') return { code: r.outcome === 'failed' ? 500 : 409, body: { accepted: false, event: type, group, outcome: r.outcome, error: r.error ?? null } };
  return { code: 200, body: { accepted: true, event: type, group, outcome: r.outcome } };
}
