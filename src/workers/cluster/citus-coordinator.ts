/**
 * The coordinator leader's side of Citus support: it keeps `pg_dist_node`
 * pointing at each group's primary, as Patroni's CitusHandler does
 * (patroni/postgresql/mpp/citus.py), over one client session to its own
 * server's Citus database.
 *
 * Requests (tasks) come from two places:
 *   - the members of worker groups, through POST /citus on this member's
 *     health endpoints: `before_demote` (a switchover is about to stop the
 *     group's primary), `before_promote` (the candidate holds the leader key
 *     and is about to promote), `after_promote` (a new primary accepts
 *     writes);
 *   - every heartbeat, the leaders recorded in etcd (`syncMetaData`, Patroni's
 *     `sync_meta_data`): a missed or refused request is repaired there.
 *
 * A switchover is one transaction on the coordinator:
 *
 *   before_demote   BEGIN; citus_update_node(id, '<old host>-demoted', port, true, cooldown)
 *                   (new distributed writes to the group wait on Citus's locks)
 *   before_promote  citus_update_node(id, '<new host>', port, true, cooldown)
 *   after_promote   COMMIT (the waiting writes go to the new primary)
 *
 * and the transaction is rolled back when its deadline passes without an
 * `after_promote`. A failover (no graceful demote) is one statement, in its
 * own transaction, once the new primary accepts writes. Only the primary
 * row of each group is kept (noderole 'primary'): standbys are not
 * registered as secondaries.
 */
import pg from 'pg';

import type { WorkerContext } from '../../runtime/index';
import { COORDINATOR_GROUP } from './citus-settings';

export type CitusEventType = 'before_demote' | 'before_promote' | 'after_promote';

/** A group's primary as pg_dist_node holds it (or should hold it). */
export interface DistNode {
  host: string;
  port: number;
  /** '<host>-demoted' in pg_dist_node: the group is paused for a switchover. */
  demoted: boolean;
  nodeid: number | null;
}

/** A requested change of a group's primary row. */
export interface CitusTask {
  event: CitusEventType;
  group: number;
  /** The group's leader that the request is about. */
  leader: string;
  host: string;
  port: number;
  /** How long a transaction this task opens may stay open (ms); null: a task of the heartbeat. */
  timeoutMs: number | null;
  /** lock_cooldown of citus_update_node() (ms). */
  cooldownMs: number;
  /** Settled once the task is processed (applied, or dropped). */
  done: Promise<void>;
  resolve: () => void;
}

const same = (a: DistNode | undefined | null, host: string, port: number, demoted: boolean) =>
  !!a && a.host === host && a.port === port && a.demoted === demoted;

/** A client session to this server's Citus database over its Unix socket, as the role the worker runs as. */
export function citusClient(w: WorkerContext<any>, database: string): pg.Client {
  const who = w.query<{ u: string }>('SELECT current_user AS u')[0];
  const dirs = (w.setting('unix_socket_directories') ?? '').split(',').map((d) => d.trim()).filter(Boolean);
  const client = new pg.Client({
    host: dirs[0] ?? '127.0.0.1',
    port: Number(w.setting('port') ?? 5432),
    user: who.u,
    database,
    application_name: `pg_tsworker ${w.name} (citus)`,
    connectionTimeoutMillis: 10_000,
    options: '-c statement_timeout=0 -c idle_in_transaction_session_timeout=0',
  });
  client.on('error', () => undefined);
  return client;
}

export class CitusCoordinator {
  private client: pg.Client | null = null;
  /** pg_dist_node's primary rows by group, as last read or written; null: read it again. */
  private cache: Map<number, DistNode> | null = null;
  private tasks: CitusTask[] = [];
  /** The task whose transaction is open, and the group's row as the transaction left it. */
  private inFlight: { task: CitusTask; state: DistNode; deadline: number } | null = null;
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** The last error of each group, so that a failure repeated every heartbeat is an event once. */
  private readonly lastError = new Map<number, string>();

  constructor(
    private readonly w: WorkerContext<any>,
    private readonly database: string,
    private readonly event: (kind: string, detail: Record<string, unknown>, level?: 'info' | 'warning') => void,
  ) {}

  /**
   * Queue a task (a newer one for the same group replaces a queued one);
   * false when it changes nothing. A heartbeat task (timeoutMs null) does
   * not replace a task from a member, nor touch a group whose transaction is
   * open and within its deadline.
   */
  add(t: Omit<CitusTask, 'done' | 'resolve'>): CitusTask | null {
    let resolve!: () => void;
    const done = new Promise<void>((r) => (resolve = r));
    const task: CitusTask = { ...t, done, resolve };
    const i = this.tasks.findIndex((x) => x.group === t.group);
    if (t.timeoutMs === null) {
      if (i >= 0 && this.tasks[i].timeoutMs !== null) return null;
      if (this.inFlight && this.inFlight.task.group === t.group && this.inFlight.deadline > Date.now()) return null;
    }
    const demoted = t.event === 'before_demote';
    if (i >= 0) {
      const q = this.tasks[i];
      if (q.event === t.event && same({ ...q, demoted: q.event === 'before_demote', nodeid: null }, t.host, t.port, demoted)) return null;
      this.tasks[i] = task;
      q.resolve();
    } else {
      const cur = this.inFlight?.task.group === t.group ? this.inFlight.state : this.cache?.get(t.group);
      if (this.cache && !(this.inFlight?.task.group === t.group) && same(cur, t.host, t.port, demoted)) return null;
      this.tasks.push(task);
    }
    this.kick();
    return task;
  }

  /** The primary rows last seen in pg_dist_node, by group (for the status). */
  nodes(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [g, n] of this.cache ?? []) out[String(g)] = `${n.host}${n.demoted ? '-demoted' : ''}:${n.port}`;
    return out;
  }

  /** This member stopped leading the coordinator group: drop every task and the open transaction. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const t of this.tasks) t.resolve();
    this.tasks = [];
    if (this.inFlight) {
      this.event('citus_transaction_abandoned', { group: this.inFlight.task.group, reason: 'this member no longer leads the coordinator group' }, 'warning');
      this.inFlight.task.resolve();
      this.inFlight = null;
    }
    this.closeClient();
  }

  private closeClient(): void {
    this.client?.end().catch(() => undefined);
    this.client = null;
    this.cache = null;
  }

  private kick(): void {
    if (this.stopped || this.running) return;
    this.running = true;
    this.process()
      .catch((err: Error) => this.w.log.warning(`citus: processing pg_dist_node tasks failed: ${err.message}`))
      .finally(() => {
        this.running = false;
        this.armDeadline();
        if (!this.stopped && this.pick()) this.kick();
      });
  }

  /** Roll the open transaction back once its deadline passes. */
  private armDeadline(): void {
    clearTimeout(this.timer);
    if (!this.inFlight || this.stopped) return;
    this.timer = setTimeout(() => void this.rollbackIfLate(), Math.max(0, this.inFlight.deadline - Date.now()) + 5);
  }

  private async rollbackIfLate(): Promise<void> {
    if (this.running) {
      this.armDeadline();
      return;
    }
    const f = this.inFlight;
    if (!f || f.deadline > Date.now()) return;
    this.running = true;
    try {
      this.event('citus_rollback', { group: f.task.group, event: f.task.event, leader: f.task.leader, reason: 'no after_promote before the deadline: pg_dist_node is left as it was' }, 'warning');
      this.inFlight = null;
      f.task.resolve();
      await this.query('ROLLBACK').catch(() => undefined);
      this.cache = null;
    } finally {
      this.running = false;
      if (this.pick()) this.kick();
    }
  }

  /** The next task: the open transaction's group first, then the coordinator's own row, then the oldest. */
  private pick(): CitusTask | null {
    if (this.inFlight) return this.tasks.find((t) => t.group === this.inFlight!.task.group) ?? null;
    return this.tasks.find((t) => t.group === COORDINATOR_GROUP) ?? this.tasks[0] ?? null;
  }

  private async query<R extends pg.QueryResultRow = any>(sql: string, params: unknown[] = []): Promise<R[]> {
    if (!this.client) {
      const c = citusClient(this.w, this.database);
      await c.connect();
      this.client = c;
    }
    try {
      return (await this.client.query<R>(sql, params)).rows;
    } catch (err) {
      const e = err as Error & { code?: string };
      // a session error leaves no usable session: start again from what pg_dist_node holds
      if (!e.code || !/^[0-9A-Z]{5}$/.test(e.code)) this.closeClient();
      throw err;
    }
  }

  private async loadCache(): Promise<Map<number, DistNode>> {
    if (this.cache) return this.cache;
    const rows = await this.query<{ groupid: number; nodename: string; nodeport: number; nodeid: number }>(
      `SELECT groupid, nodename, nodeport, nodeid FROM pg_catalog.pg_dist_node WHERE noderole = 'primary' ORDER BY nodeid`,
    );
    const cache = new Map<number, DistNode>();
    for (const r of rows) {
      const demoted = r.nodename.endsWith('-demoted');
      cache.set(r.groupid, { host: demoted ? r.nodename.slice(0, -'-demoted'.length) : r.nodename, port: r.nodeport, demoted, nodeid: r.nodeid });
    }
    this.cache = cache;
    return cache;
  }

  private async process(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const task = this.pick();
      if (!task) return;
      this.tasks.splice(this.tasks.indexOf(task), 1);
      try {
        await this.apply(task);
        this.lastError.delete(task.group);
      } catch (err) {
        const e = err as Error & { code?: string };
        if (this.lastError.get(task.group) !== e.message || task.timeoutMs !== null) {
          this.event('citus_error', { group: task.group, event: task.event, leader: task.leader, error: e.message, sqlstate: e.code ?? null }, 'warning');
        }
        this.lastError.set(task.group, e.message);
        if (this.inFlight) {
          await this.query('ROLLBACK').catch(() => undefined);
          this.inFlight.task.resolve();
          this.inFlight = null;
        }
        this.cache = null;
      } finally {
        task.resolve();
      }
    }
  }

  /** Bring the group's primary row to what the task asks, in Patroni's order. */
  private async apply(task: CitusTask): Promise<void> {
    const cache = await this.loadCache();
    const demoted = task.event === 'before_demote';
    const inTx = this.inFlight !== null;
    const cur = this.inFlight?.state ?? cache.get(task.group) ?? null;
    const t0 = Date.now();
    if (!cur) {
      if (demoted) return;
      // a group seen for the first time: the coordinator registers itself, a worker group's primary is added
      let id: number;
      if (task.group === COORDINATOR_GROUP) {
        await this.query(`SELECT pg_catalog.citus_set_coordinator_host($1, $2, 'primary', 'default')`, [task.host, task.port]);
        id = (await this.query<{ nodeid: number }>(`SELECT nodeid FROM pg_catalog.pg_dist_node WHERE groupid = 0 AND noderole = 'primary'`))[0].nodeid;
      } else {
        id = (await this.query<{ nodeid: number }>(`SELECT pg_catalog.citus_add_node($1, $2, $3, 'primary', 'default') AS nodeid`, [task.host, task.port, task.group]))[0].nodeid;
      }
      cache.set(task.group, { host: task.host, port: task.port, demoted: false, nodeid: id });
      this.event('citus_node_added', { group: task.group, host: task.host, port: task.port, nodeid: id, leader: task.leader });
      return;
    }
    const changed = !same(cur, task.host, task.port, demoted);
    if (task.event !== 'after_promote' && !inTx) {
      if (!changed) return;
      await this.query('BEGIN');
      this.inFlight = { task, state: { ...cur }, deadline: Date.now() + (task.timeoutMs ?? 10_000) };
    }
    if (changed) {
      await this.query('SELECT pg_catalog.citus_update_node($1, $2, $3, true, $4)', [
        cur.nodeid,
        task.host + (demoted ? '-demoted' : ''),
        task.port,
        task.cooldownMs,
      ]);
    }
    const next: DistNode = { host: task.host, port: task.port, demoted, nodeid: cur.nodeid };
    const detail = {
      group: task.group,
      event: task.event,
      leader: task.leader,
      nodeid: cur.nodeid,
      from: `${cur.host}${cur.demoted ? '-demoted' : ''}:${cur.port}`,
      to: `${task.host}${demoted ? '-demoted' : ''}:${task.port}`,
      ms: 0,
    };
    if (task.event === 'after_promote') {
      if (this.inFlight) {
        await this.query('COMMIT');
        const openMs = Date.now() - (this.inFlight.deadline - (this.inFlight.task.timeoutMs ?? 10_000));
        this.inFlight.task.resolve();
        this.inFlight = null;
        cache.set(task.group, next);
        this.event('citus_node_updated', { ...detail, ms: Date.now() - t0, transaction: 'committed', openMs });
      } else if (changed) {
        cache.set(task.group, next);
        this.event('citus_node_updated', { ...detail, ms: Date.now() - t0, transaction: 'single statement' });
      }
      return;
    }
    this.inFlight!.state = next;
    if (changed) this.event('citus_node_updating', { ...detail, ms: Date.now() - t0, transaction: 'open' });
  }
}
