/**
 * The coordinator leader's side of Citus support: it keeps `pg_dist_node`
 * pointing at each group's primary, as Patroni's CitusHandler does
 * (patroni/postgresql/mpp/citus.py), with sessions to its own server's
 * Citus database (citus-session.ts).
 *
 * Requests (tasks) come from two places:
 *   - the members of worker groups, through POST /citus on this member's
 *     health endpoints: `before_demote` (a switchover is about to stop the
 *     group's primary), `before_promote` (the candidate holds the leader key
 *     and is about to promote), `after_promote` (a new primary accepts
 *     writes);
 *   - every heartbeat, pg_dist_node as read then against the leaders
 *     recorded in etcd (`syncMetaData`, Patroni's `sync_meta_data`): a
 *     missed request or a row changed by hand is repaired there.
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
 * own transaction, once the new primary accepts writes.
 *
 * Unlike Patroni, whose one session serves the groups one after the other
 * (a group's open transaction holds every other group's failover), each
 * group has its own lane: its queue (the newest task replaces a queued one)
 * and its session. A group whose update cannot get its locks (a worker that
 * froze, see citus-session.ts) or whose transaction is open does not hold
 * the others. Only the primary row of each group is kept (noderole
 * 'primary'): standbys are not registered as secondaries.
 */
import type { WorkerContext } from '../../runtime/index';
import type { Json } from '../../runtime/define';
import { COORDINATOR_GROUP } from './citus-settings';
import { CitusSession, blockers, distNodeOf, nodeText, readDistNodes, verifyAddress, type DistNode, type SqlError } from './citus-session';

export type { DistNode } from './citus-session';

export type CitusEventType = 'before_demote' | 'before_promote' | 'after_promote';

/** What became of a task. */
export interface TaskResult {
  /** applied: pg_dist_node changed (or the transaction committed); unchanged: it already said so; failed; dropped: replaced or abandoned. */
  outcome: 'applied' | 'unchanged' | 'failed' | 'dropped';
  error?: string;
  sqlstate?: string | null;
}

/** A requested change of a group's primary row. */
export interface CitusTask {
  event: CitusEventType;
  group: number;
  /** The group's leader that the request is about. */
  leader: string;
  host: string;
  port: number;
  /** The leader's published tsworker_promoter.conninfo, checked before the row moves to it (null: not checked). */
  conninfo: string | null;
  /** The leader's system identifier in etcd (null: not compared). */
  sysid: string | null;
  /** How long a transaction this task opens may stay open (ms); null: a task of the heartbeat. */
  timeoutMs: number | null;
  /** lock_cooldown of citus_update_node() (ms): the coordinator's retry_timeout. */
  cooldownMs: number;
  /** Settled once the task is processed. */
  done: Promise<TaskResult>;
  resolve: (r: TaskResult) => void;
}

/** A switchover transaction open on a group's session. */
interface InFlight {
  task: CitusTask;
  /** The group's row as the transaction left it. */
  state: DistNode;
  openedAt: number;
  deadline: number;
}

/** One group: its queue and its session. */
interface Lane {
  group: number;
  session: CitusSession;
  queued: CitusTask | null;
  running: boolean;
  inFlight: InFlight | null;
  timer: NodeJS.Timeout | undefined;
  /** The last error, so that a failure repeated every heartbeat is an event once. */
  lastError: string;
  /** Failures in a row, and when the heartbeat tries again (doubling up to RETRY_MAX_MS: a worker that keeps refusing is not asked every loop). */
  failures: number;
  retryAt: number;
}

/** The longest wait of the heartbeat before it tries a failing group again (ms). */
const RETRY_MAX_MS = 15_000;

const same = (a: DistNode | undefined | null, host: string, port: number, demoted: boolean) =>
  !!a && a.host === host && a.port === port && a.demoted === demoted;

export class CitusCoordinator {
  private readonly lanes = new Map<number, Lane>();
  /** Reads pg_dist_node every heartbeat, and who blocks an update. */
  private readonly reader: CitusSession;
  /** pg_dist_node's primary rows as last read (every heartbeat), with this process's changes since. */
  private table: Map<number, DistNode> | null = null;
  private tableReadAt: string | null = null;
  private tableError: string | null = null;
  private stopped = false;

  constructor(
    private readonly w: WorkerContext<any>,
    private readonly database: string,
    private readonly event: (kind: string, detail: Record<string, unknown>, level?: 'info' | 'warning') => void,
  ) {
    this.reader = new CitusSession(w, database);
  }

  /** Read pg_dist_node (every heartbeat, before the tasks of the heartbeat are added). */
  async refresh(): Promise<void> {
    try {
      this.table = await readDistNodes(this.reader);
      this.tableReadAt = new Date().toISOString();
      this.tableError = null;
    } catch (err) {
      this.table = null;
      this.tableError = (err as Error).message;
    }
  }

  private lane(group: number): Lane {
    let l = this.lanes.get(group);
    if (!l) {
      l = { group, session: new CitusSession(this.w, this.database), queued: null, running: false, inFlight: null, timer: undefined, lastError: '', failures: 0, retryAt: 0 };
      this.lanes.set(group, l);
    }
    return l;
  }

  /**
   * Queue a task (a newer one for the same group replaces a queued one,
   * which is settled as dropped); null when it changes nothing. A heartbeat
   * task (timeoutMs null) does not replace a task from a member, nor touch
   * a group whose transaction is open and within its deadline.
   */
  add(t: Omit<CitusTask, 'done' | 'resolve'>): CitusTask | null {
    if (this.stopped) return null;
    const lane = this.lane(t.group);
    if (t.timeoutMs === null) {
      if (lane.queued && lane.queued.timeoutMs !== null) return null;
      // a switchover's transaction (or the task opening one) is ended by its own after_promote or deadline, never by the heartbeat
      if (lane.inFlight || (lane.running && !lane.queued)) return null;
      if (lane.retryAt > Date.now()) return null;
      if (!lane.inFlight && !lane.running && this.table && same(this.table.get(t.group), t.host, t.port, false)) return null;
    }
    const q = lane.queued;
    if (q && q.event === t.event && q.host === t.host && q.port === t.port && (t.timeoutMs === null || q.timeoutMs !== null)) return null;
    let resolve!: (r: TaskResult) => void;
    const done = new Promise<TaskResult>((r) => (resolve = r));
    const task: CitusTask = { ...t, done, resolve };
    if (q) q.resolve({ outcome: 'dropped', error: `replaced by a newer ${t.event} of group ${t.group}` });
    lane.queued = task;
    this.kick(lane);
    return task;
  }

  /** For the status: pg_dist_node as read at the last heartbeat (and changed since by this process), and the open transactions. */
  status(): { [key: string]: Json } {
    const nodes: Record<string, string> = {};
    for (const [g, n] of this.table ?? []) nodes[String(g)] = nodeText(n);
    const open = [...this.lanes.values()]
      .filter((l) => l.inFlight)
      .map((l) => ({ group: l.group, event: l.inFlight!.task.event, leader: l.inFlight!.task.leader, openMs: Date.now() - l.inFlight!.openedAt, deadlineInMs: l.inFlight!.deadline - Date.now() }));
    return {
      pg_dist_node: this.table ? nodes : null,
      pg_dist_node_read_at: this.tableReadAt,
      ...(this.tableError ? { pg_dist_node_error: this.tableError } : {}),
      ...(open.length ? { open_transactions: open } : {}),
    };
  }

  /** This member stopped leading the coordinator group: drop every task and the open transactions. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const l of this.lanes.values()) {
      clearTimeout(l.timer);
      l.queued?.resolve({ outcome: 'dropped', error: 'this member no longer leads the coordinator group' });
      l.queued = null;
      if (l.inFlight) {
        this.event('citus_transaction_abandoned', { group: l.group, reason: 'this member no longer leads the coordinator group' }, 'warning');
        l.inFlight.task.resolve({ outcome: 'dropped', error: 'abandoned' });
        l.inFlight = null;
      }
      l.session.close();
    }
    this.reader.close();
  }

  private kick(lane: Lane): void {
    if (this.stopped || lane.running || !lane.queued) return;
    lane.running = true;
    this.runLane(lane)
      .catch((err: Error) => this.w.log.warning(`citus: processing pg_dist_node tasks of group ${lane.group} failed: ${err.message}`))
      .finally(() => {
        lane.running = false;
        this.armDeadline(lane);
        this.kick(lane);
      });
  }

  /** Roll the open transaction back once its deadline passes. */
  private armDeadline(lane: Lane): void {
    clearTimeout(lane.timer);
    if (!lane.inFlight || this.stopped) return;
    lane.timer = setTimeout(() => void this.rollbackIfLate(lane), Math.max(0, lane.inFlight.deadline - Date.now()) + 5);
  }

  private async rollbackIfLate(lane: Lane): Promise<void> {
    if (lane.running) return this.armDeadline(lane);
    const f = lane.inFlight;
    if (!f || f.deadline > Date.now()) return;
    lane.running = true;
    try {
      this.event('citus_rollback', { group: lane.group, event: f.task.event, leader: f.task.leader, openMs: Date.now() - f.openedAt, reason: 'no after_promote before the deadline: pg_dist_node is left as it was' }, 'warning');
      lane.inFlight = null;
      f.task.resolve({ outcome: 'failed', error: 'rolled back at the deadline' });
      await lane.session.query('ROLLBACK', [], 5000).catch(() => undefined);
    } finally {
      lane.running = false;
      this.kick(lane);
    }
  }

  private async runLane(lane: Lane): Promise<void> {
    while (lane.queued && !this.stopped) {
      const task = lane.queued;
      lane.queued = null;
      try {
        task.resolve(await this.apply(lane, task));
        lane.lastError = '';
        lane.failures = 0;
        lane.retryAt = 0;
      } catch (err) {
        const e = err as SqlError;
        if (/database ".*" does not exist/.test(e.message)) {
          e.message += `; every member of the formation needs the same tsworker_promoter.citus_database (this coordinator's is "${this.database}")`;
        }
        lane.failures++;
        lane.retryAt = Date.now() + Math.min(RETRY_MAX_MS, 500 * 2 ** lane.failures);
        if (lane.lastError !== e.message || task.timeoutMs !== null) {
          this.event('citus_error', { group: task.group, event: task.event, leader: task.leader, error: e.message, sqlstate: e.code ?? null }, 'warning');
        }
        lane.lastError = e.message;
        if (lane.inFlight) {
          await lane.session.query('ROLLBACK', [], 5000).catch(() => undefined);
          if (lane.inFlight.task !== task) lane.inFlight.task.resolve({ outcome: 'failed', error: e.message });
          lane.inFlight = null;
        }
        task.resolve({ outcome: 'failed', error: e.message, sqlstate: e.code ?? null });
      }
    }
  }

  /** The server at the task's address is its member, a primary (or, for before_promote, the candidate); throws why not. */
  private async verify(task: CitusTask, cur: DistNode | null): Promise<void> {
    if (!task.conninfo) return;
    const problem = await verifyAddress(task.leader, task.conninfo, task.sysid, 3000, task.event !== 'before_promote');
    if (problem) throw new Error(`${problem}: group ${task.group}'s row in pg_dist_node ${cur ? `stays ${nodeText(cur)}` : 'is not added'}`);
  }

  /** citus_update_node with a lock wait bounded by the cooldown: a lock that is not granted fails, naming who holds it. */
  private async updateNode(lane: Lane, nodeid: number | null, host: string, port: number, cooldownMs: number): Promise<void> {
    const lockMs = cooldownMs + 3000;
    const s = lane.session;
    await s.query(`SELECT pg_catalog.set_config('lock_timeout', $1, false), pg_catalog.set_config('statement_timeout', $2, false)`, [`${lockMs}ms`, `${lockMs + 7000}ms`], 10_000);
    let holders: number[] = [];
    const probe = setTimeout(() => {
      this.reader
        .query<{ p: number[] }>('SELECT pg_catalog.pg_blocking_pids($1) AS p', [s.backendPid], 3000)
        .then((r) => (holders = r[0]?.p ?? []))
        .catch(() => undefined);
    }, cooldownMs + 1000);
    try {
      await s.query('SELECT pg_catalog.citus_update_node($1, $2, $3, true, $4)', [nodeid, host, port, cooldownMs], lockMs + 10_000);
    } catch (err) {
      const e = err as SqlError;
      if (e.code === '55P03' || e.code === '57014' || !e.code) {
        const who = await blockers(this.reader, holders);
        e.message = `citus_update_node of group ${lane.group} did not get its locks within ${lockMs} ms (lock_cooldown ${cooldownMs} ms + 3 s): ${e.message}${who ? `; held by ${who}` : ''}; a backend that Citus terminated but that still waits for an answer from a worker that does not respond (a frozen server) keeps its locks until that server answers or is stopped; the heartbeat tries again (backing off up to 15 s)`;
      }
      throw e;
    } finally {
      clearTimeout(probe);
    }
  }

  /** Bring the group's primary row to what the task asks, in Patroni's order. */
  private async apply(lane: Lane, task: CitusTask): Promise<TaskResult> {
    const s = lane.session;
    const demoted = task.event === 'before_demote';
    const t0 = Date.now();
    let cur: DistNode | null;
    if (lane.inFlight && task.timeoutMs === null) return { outcome: 'dropped', error: 'a switchover transaction is open on this group' };
    if (lane.inFlight) cur = lane.inFlight.state;
    else {
      const rows = await s.query<{ nodename: string; nodeport: number; nodeid: number }>(
        `SELECT nodename, nodeport, nodeid FROM pg_catalog.pg_dist_node WHERE groupid = $1 AND noderole = 'primary' ORDER BY nodeid LIMIT 1`,
        [task.group],
        10_000,
      );
      cur = rows[0] ? distNodeOf(rows[0].nodename, rows[0].nodeport, rows[0].nodeid) : null;
    }
    const source = task.timeoutMs === null ? 'heartbeat' : 'POST /citus';
    if (!cur) {
      if (demoted) return { outcome: 'unchanged' };
      // a group seen for the first time (or whose row was removed): the coordinator registers itself, a worker group's primary is added
      await this.verify(task, null);
      // citus_add_node copies reference tables: no statement_timeout left by an update on this session
      await s.query(`SELECT pg_catalog.set_config('statement_timeout', '0', false)`);
      let id: number;
      if (task.group === COORDINATOR_GROUP) {
        await s.query(`SELECT pg_catalog.citus_set_coordinator_host($1, $2, 'primary', 'default')`, [task.host, task.port], 60_000);
        id = (await s.query<{ nodeid: number }>(`SELECT nodeid FROM pg_catalog.pg_dist_node WHERE groupid = 0 AND noderole = 'primary'`))[0].nodeid;
      } else {
        id = (await s.query<{ nodeid: number }>(`SELECT pg_catalog.citus_add_node($1, $2, $3, 'primary', 'default') AS nodeid`, [task.host, task.port, task.group], 60_000))[0].nodeid;
      }
      this.table?.set(task.group, { host: task.host, port: task.port, demoted: false, nodeid: id });
      this.event('citus_node_added', { group: task.group, host: task.host, port: task.port, nodeid: id, leader: task.leader, source });
      return { outcome: 'applied' };
    }
    const changed = !same(cur, task.host, task.port, demoted);
    if (changed && !demoted) await this.verify(task, cur);
    if (task.event !== 'after_promote' && !lane.inFlight) {
      if (!changed) return { outcome: 'unchanged' };
      await s.query('BEGIN');
      lane.inFlight = { task, state: { ...cur }, openedAt: Date.now(), deadline: Date.now() + (task.timeoutMs ?? 10_000) };
    }
    if (changed) await this.updateNode(lane, cur.nodeid, task.host + (demoted ? '-demoted' : ''), task.port, task.cooldownMs);
    const next: DistNode = { host: task.host, port: task.port, demoted, nodeid: cur.nodeid };
    const detail = { group: task.group, event: task.event, leader: task.leader, nodeid: cur.nodeid, from: nodeText(cur), to: nodeText(next), source };
    if (task.event === 'after_promote') {
      const f = lane.inFlight;
      if (f) {
        await s.query('COMMIT');
        lane.inFlight = null;
        f.task.resolve({ outcome: 'applied' });
        this.table?.set(task.group, next);
        this.event('citus_node_updated', { ...detail, ms: Date.now() - t0, transaction: 'committed', openMs: Date.now() - f.openedAt });
        return { outcome: 'applied' };
      }
      if (!changed) return { outcome: 'unchanged' };
      this.table?.set(task.group, next);
      this.event('citus_node_updated', {
        ...detail,
        ms: Date.now() - t0,
        transaction: 'single statement',
        ...(task.timeoutMs === null ? { why: `pg_dist_node named ${nodeText(cur)}, etcd's leader of group ${task.group} is "${task.leader}" at ${nodeText(next)}` } : {}),
      });
      return { outcome: 'applied' };
    }
    lane.inFlight!.state = next;
    if (changed) this.event('citus_node_updating', { ...detail, ms: Date.now() - t0, transaction: 'open' });
    return { outcome: changed ? 'applied' : 'unchanged' };
  }
}
